"""Maintenance scripts (vendored browser code, the Pi's wheels)."""
