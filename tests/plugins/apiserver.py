"""Fixtures for the embedded API server (filled in by app/demo work)."""
