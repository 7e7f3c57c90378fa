"""The acceptance runs' own fixtures: the real Odoo 17 (`real_odoo`, `odoo_gate`) and its hooks
(the long first-start timeout, the start-up figure in the summary), from real_odoo.py beside
this file.

A plugin module can only be named by the top-level conftest; importing its fixtures and hooks
here keeps them to this folder, so the core and UI runs never load them."""

from tests.acceptance.real_odoo import (
    odoo_gate,
    pytest_collection_modifyitems,
    pytest_terminal_summary,
    real_odoo,
)

__all__ = ["odoo_gate", "pytest_collection_modifyitems", "pytest_terminal_summary", "real_odoo"]
