"""The console's tests: the real mosquitto (`broker`, tests/helpers/mqtt_fixtures.py) for the
status bar's broker state. Qt itself comes from pytest-qt (`qtbot`, `qapp`)."""

from tests.helpers.mqtt_fixtures import _subscriptions_end_with_their_test, broker

__all__ = ["_subscriptions_end_with_their_test", "broker"]
