"""Snapshot SVGs live in the top-level `snapshots/` folder, one sub-folder per test module."""

from __future__ import annotations

from pathlib import Path

from pytest_textual_snapshot import SVGImageExtension

SNAPSHOT_ROOT = Path(__file__).resolve().parents[2] / "snapshots"


def _dirname(cls, *, test_location) -> str:  # noqa: ANN001 - syrupy's signature
    return str(SNAPSHOT_ROOT / Path(test_location.filepath).stem)


SVGImageExtension.dirname = classmethod(_dirname)
