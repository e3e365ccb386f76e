"""The `/` filter of a table, as k9s users know it: a case-insensitive substring, `!x` inverts it."""

from __future__ import annotations

from typing import Iterable


def row_matches(cells: Iterable[object], query: str) -> bool:
    query = query.strip()
    if not query:
        return True
    invert = query.startswith("!")
    needle = query[1:].lower() if invert else query.lower()
    if not needle:
        return True
    found = any(needle in str(cell).lower() for cell in cells)
    return found != invert
