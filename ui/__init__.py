"""The PySide6 parlour console: stall tiles, production dashboard and status bar over the core."""
