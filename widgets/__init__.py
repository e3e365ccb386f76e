"""Reusable Textual widgets that take plain data."""
