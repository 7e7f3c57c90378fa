"""Stand-ins for what a test machine lacks: Modbus milk meters, a whole parlour, an Odoo server."""
