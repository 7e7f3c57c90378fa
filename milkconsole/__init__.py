"""Milk Console core: meters -> readings -> sessions -> SQLite -> Odoo, with no Qt anywhere.

The console (`ui/`) and the headless gateway both stand on this package; it never imports Qt,
`ui`, `simulators` or `bench`. Its layers, top to bottom: `app` (start-up), `config` (the config
file), the features (`sync`, `mqtt`, `web`, `reports`, `health`, `supervision`, `technician`,
`housekeeping`), `store`, `herd` (the herd's rules), `meters` (the meter pipeline), and the basics.
`lint-imports` checks them (pyproject.toml `[tool.importlinter]`; README "Layout").
"""

__version__ = "0.1.0"
