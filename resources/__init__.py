"""Data, not code: meter register-map profiles, style sheets and icons (shipped as package data)."""
