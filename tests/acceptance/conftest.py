"""The acceptance runs' own fixtures: the real Odoo 17 (`real_odoo`, `odoo_gate`) and its hooks
(the long first-start timeout, the start-up figure in the summary) from real_odoo.py beside this
file, and the real mosquitto (`broker`) from tests/helpers/mqtt_fixtures.py.

A plugin module can only be named by the top-level conftest; importing fixtures and hooks here
keeps them to this folder, so the core run never loads them."""

from tests.acceptance.real_odoo import (
    odoo_gate,
    pytest_collection_modifyitems,
    pytest_terminal_summary,
    real_odoo,
)
from tests.helpers.mqtt_fixtures import _subscriptions_end_with_their_test, broker

__all__ = [
    "_subscriptions_end_with_their_test",
    "broker",
    "odoo_gate",
    "pytest_collection_modifyitems",
    "pytest_terminal_summary",
    "real_odoo",
]
