"""One line that says what a pane's stores are doing: syncing, live, stale since when, forbidden, not served."""

from __future__ import annotations

import time

from app.cluster.store import Store


def describe_stores(stores: list[Store], now: float | None = None) -> str:
    now = time.time() if now is None else now
    parts = []
    for store in stores:
        status = store.status
        if status.state == "live":
            text = f"{store.name} {len(store):,}"
            if status.scope and status.scope not in ("all namespaces", "cluster"):
                text += f" ({status.scope})"
        elif status.state == "syncing":
            text = f"{store.name} syncing…"
        elif status.state == "stale":
            text = f"{store.name} stale for {human_age(now - status.since)} ({status.detail})"
        elif status.state == "forbidden":
            text = f"{store.name}: access denied"
        else:
            text = f"{store.name}: not served by this cluster"
        parts.append(text)
    return " · ".join(parts)


def human_age(seconds: float) -> str:
    """An age in one short word: 45s, 12m, 3h."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
