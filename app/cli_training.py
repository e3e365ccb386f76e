"""Training: `hyperdesk curve` and the `get runs` kind (issue #11).

Imports only argparse at module level: `hyperdesk --version` imports this module.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """This area's subcommands; each sets `handler=fn(args, settings, kubeconfig) -> exit code`."""
