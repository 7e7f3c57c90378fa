"""Shared test setup. Qt must find no display to need: the offscreen platform is chosen here, at
import time, before any test module loads Qt (else a display-less run dies without a summary)."""

import logging
import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Odoo sync fixtures (`sim`, `vault`, `db`) and the MQTT broker (`broker`): a module defining its
# own of a name overrides them; and the real Odoo 17 fixture (`real_odoo`), its JSON-RPC helper
# and fault gates.
pytest_plugins = ["tests.odoo_fixtures", "tests.mqtt_fixtures", "tests.real_odoo"]


@pytest.fixture(autouse=True)
def _root_log_handlers_do_not_outlive_their_test() -> Iterator[None]:
    # A CLI test runs the real logging set-up in this process; its stderr and file handlers
    # must not print later tests' expected errors into the run's output.
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    yield
    for handler in root.handlers[:]:
        if handler not in before:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
