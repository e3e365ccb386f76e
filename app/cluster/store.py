"""A store: the current objects of one kind in one scope, kept by a reflector, read by the panes.

Writers (one reflector) call `apply`, `replace` and `set_state`; readers take `snapshot()` and `version`. Every
change is also recorded as pending until the delivery loop `drain()`s it, so a burst of thousands of events
becomes one coalesced notification per tick.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

StoreState = Literal["syncing", "live", "stale", "forbidden", "unsupported"]

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


@dataclass(frozen=True)
class StoreStatus:
    state: StoreState
    since: float
    """When the store entered this state (time.time())."""
    detail: str = ""
    scope: str = ""
    """What the store covers, e.g. `all namespaces` or `namespace team-a` (after an RBAC fallback)."""


@dataclass
class Changes:
    """What changed since the last drain: key -> the latest change type, net of what cancelled out."""

    added: set[str] = field(default_factory=set)
    modified: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    events: int = 0
    state_changed: bool = False

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.deleted or self.state_changed)


class Store:
    def __init__(self, name: str) -> None:
        self.name = name
        self._objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        """Increases with every change; readers compare it to skip work when nothing changed."""
        self.status = StoreStatus("syncing", time.time())
        self._pending = Changes()

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: str) -> bool:
        return key in self._objects

    def get(self, key: str) -> dict[str, Any] | None:
        return self._objects.get(key)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A shallow copy readers may iterate while the store keeps changing. Objects are never mutated in place."""
        return dict(self._objects)

    def keys(self) -> set[str]:
        return set(self._objects)

    # ------------------------------------------------------------------------------------------- writers

    def apply(self, change: str, key: str, obj: dict[str, Any]) -> None:
        pending = self._pending
        pending.events += 1
        if change == DELETED:
            if self._objects.pop(key, None) is None:
                return
            if key in pending.added:
                pending.added.discard(key)
            else:
                pending.modified.discard(key)
                pending.deleted.add(key)
        else:
            existed = key in self._objects
            self._objects[key] = obj
            if not existed:
                if key in pending.deleted:
                    pending.deleted.discard(key)
                    pending.modified.add(key)
                else:
                    pending.added.add(key)
            elif key not in pending.added:
                pending.modified.add(key)
        self.version += 1

    def replace(self, objects: dict[str, dict[str, Any]]) -> int:
        """Make the store equal `objects` (after a relist), recording only the real differences. Returns their number."""
        differences = 0
        for key in [k for k in self._objects if k not in objects]:
            self.apply(DELETED, key, self._objects[key])
            differences += 1
        for key, obj in objects.items():
            current = self._objects.get(key)
            if current is None or _resource_version(current) != _resource_version(obj):
                self.apply(ADDED if current is None else MODIFIED, key, obj)
                differences += 1
        return differences

    def set_state(self, state: StoreState, detail: str = "", scope: str | None = None) -> None:
        status = self.status
        scope = status.scope if scope is None else scope
        if (state, detail, scope) == (status.state, status.detail, status.scope):
            return
        # A store that keeps failing stays stale since the first failure, not the latest one.
        since = status.since if state == status.state else time.time()
        self.status = StoreStatus(state, since, detail, scope)
        self._pending.state_changed = True
        self.version += 1

    def drain(self) -> Changes:
        pending, self._pending = self._pending, Changes()
        return pending


def _resource_version(obj: dict[str, Any]) -> Any:
    return (obj.get("metadata") or {}).get("resourceVersion")
