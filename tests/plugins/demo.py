"""Fixtures for the simulated cluster behind `hyperdesk demo` (app/demo/sim)."""
