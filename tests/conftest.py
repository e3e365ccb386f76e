"""Shared pytest setup.

Fixtures live in `tests/plugins/<topic>.py`, one module per area, so that work on one area never edits another's.
"""

pytest_plugins = [
    "tests.plugins.snapshots",
    "tests.plugins.tui",
    "tests.plugins.apiserver",
    "tests.plugins.demo",
    "tests.plugins.mlflow",
    "tests.plugins.endpoints",
    "tests.plugins.gpus",
    "tests.plugins.ssh",
]
