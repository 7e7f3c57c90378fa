"""People's actions: users and PINs, the audit log, the supervisor's alert review."""
