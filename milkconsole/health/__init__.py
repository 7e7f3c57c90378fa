"""Milk health: quality grades, abnormal-milking flags and mastitis detection per cow."""
