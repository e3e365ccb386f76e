"""One open watch: the events it is owed, filtered by its selection, waiting for its connection to send them.

The store calls `offer` synchronously for every commit of the watched resource; the watcher only filters and
appends, so a write costs the same whether or not anyone watches. The connection's writer task takes everything
queued at once (`drain`) and writes it in one chunk: batching is what lets one watcher receive tens of thousands of
events per second. A watcher whose backlog exceeds its bound is dropped, as the real server drops watchers that
cannot keep up: its connection is aborted at once (its writer may be stuck writing to a client that stopped
reading), and the client resumes from the last resourceVersion it saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .kinds import Kind
from .selectors import Selection
from .store import ADDED, DELETED, MODIFIED, Event, StoredObject

WatchItem = tuple[str, StoredObject]


class Watcher:
    def __init__(
        self, kind: Kind, selection: Selection, *, max_backlog: int, abort: Callable[[], None] | None = None
    ) -> None:
        self.kind = kind
        self.selection = selection
        self.closed: str | None = None  # why the watch ended, once it has
        self.dropped = False  # ended as a network failure would: the connection is aborted, not ended
        self.stalled = False  # fault injection: keep the connection open but send nothing
        self._max_backlog = max_backlog
        self._bound = max_backlog  # the backlog allowed now: more while the initial events are queued
        self._abort = abort
        self._pending: list[WatchItem] = []
        self._wake = asyncio.Event()
        self._everything = selection.is_everything and selection.namespace is None

    def queue(self, items: list[WatchItem]) -> None:
        """Queue events directly (the initial ADDED events and the replay of history)."""
        if items:
            self._pending.extend(items)
            self._bound = len(self._pending) + self._max_backlog
            self._wake.set()

    def offer(self, event: Event) -> None:
        """Queue `event` if it concerns this watch, translated by selection changes as the real server does."""
        if self.closed is not None:
            return
        if self._everything:
            item: WatchItem | None = (event.type, event.new)
        else:
            item = self.translate(event)
        if item is None:
            return
        self._pending.append(item)
        if len(self._pending) > self._bound:
            self.drop("the watcher fell too far behind")
            return
        self._wake.set()

    def translate(self, event: Event) -> WatchItem | None:
        """What this watcher sees of `event`: an object entering the selection is ADDED, leaving it is DELETED."""
        matches = self.selection.matches
        if event.type == DELETED:
            return (DELETED, event.new) if matches(event.new.obj) else None
        now_in = matches(event.new.obj)
        was_in = event.old is not None and matches(event.old.obj)
        if event.type == ADDED or not was_in:
            return (ADDED, event.new) if now_in else None
        if now_in:
            return (MODIFIED, event.new)
        assert event.old is not None
        return (DELETED, event.old.at_revision(event.rv))

    async def wait(self, timeout: float | None) -> None:
        """Wait until events are queued or the watch is closed (or `timeout` seconds pass)."""
        if self._pending or self.closed is not None:
            return
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return

    @property
    def pending(self) -> bool:
        """Whether events are queued and not yet taken by the connection's writer."""
        return bool(self._pending)

    def drain(self) -> list[WatchItem]:
        items, self._pending = self._pending, []
        self._bound = self._max_backlog
        return items

    def drop(self, reason: str) -> None:
        """End the watch as a network failure would: abort its connection now, even in the middle of a write."""
        self.close(reason)
        if not self.dropped:
            self.dropped = True
            if self._abort is not None:
                self._abort()

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
        self._wake.set()
