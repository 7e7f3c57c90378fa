"""Shared test setup. Qt must find no display to need: the offscreen platform is chosen here, at
import time, before any test module loads Qt (else a display-less run dies without a summary).

The tests are grouped by layer, one folder each, and every test carries its layer's marker
(`pytest -m core`, `-m "not acceptance"`...):

- `core/`: the core alone (`milkconsole/`, with the simulators as its stand-in meters and Odoo).
  Nothing there imports Qt, directly or through a fixture: `scripts/test.sh` runs this folder
  again in `.venv-core`, where PySide6 and pyqtgraph are not installed.
- `ui/`: the console's widgets and the whole console (Qt, offscreen).
- `simulators/`: the simulators themselves (the protocols they speak, their plans).
- `acceptance/`: end-to-end runs with real parts: the parlour end to end, the real Odoo 17,
  kill -9 runs, MQTT against mosquitto, the installer, a real browser, a full disk.
- `helpers/`: what several layers share, importable without Qt.
"""

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Odoo sync fixtures (`sim`, `vault`, `db`), for every layer: a module defining its own of a
# name overrides them. Only this top-level conftest may name plugins; the layers' conftests take
# in the rest where it is used: the real mosquitto (ui, acceptance), the real Odoo (acceptance).
pytest_plugins = ["tests.helpers.odoo_fixtures"]

LAYERS = ("core", "ui", "simulators", "acceptance")
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The folder is the layer: its marker is added here, not written on every module. A test
    # outside the layer folders (a branch that still adds to the old flat tests/) would escape
    # `-m core` and the run without Qt: it is refused, not left unmarked.
    strays: set[str] = set()
    for item in items:
        try:
            folder = item.path.resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if folder in LAYERS:
            item.add_marker(getattr(pytest.mark, folder))
        else:
            strays.add(str(item.path.resolve().relative_to(TESTS.parent)))
    if strays:
        raise pytest.UsageError(
            f"{', '.join(sorted(strays))}: a test belongs in one of tests/{', tests/'.join(LAYERS)}"
            " (see tests/conftest.py)"
        )


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
