"""Milk Console core: meters -> readings -> sessions -> SQLite -> Odoo, with no Qt anywhere.

The console (`ui/`) and the headless gateway both stand on this package; it must never import Qt.
"""

__version__ = "0.1.0"
