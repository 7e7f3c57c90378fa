"""Offline-first sync with the farm's Odoo: the outbox pushed exactly once, the herd pulled in."""
