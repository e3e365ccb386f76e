"""Where the upstream CRDs and samples are: `shared/reference/` beside the repository (as on CI's checkout)."""

from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
