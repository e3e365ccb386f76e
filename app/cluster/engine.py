"""The watch engine of one cluster context: discovery, RBAC, one reflector per (kind, scope), coalesced delivery.

    engine = ClusterEngine(connection, namespace=None)
    engine.subscribe(on_change)               # on_change(store_name, changes, store), at most once per tick per store
    await engine.start(["pods", "workloads", "hyperpodpytorchjobs"])
    ... engine.stores["pods"].snapshot() ...
    await engine.set_scope(namespace="hyperpod-ns-team-a")
    await engine.close()                      # every watch of this context ends

Kinds the cluster does not serve get an `unsupported` store; kinds the user may not list+watch cluster-wide are
tried in the fallback namespace, and are `forbidden` when that is denied too. Nothing here raises to the caller
because a CRD is absent or access is denied: those are store states.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Iterable

from app.cluster.access import can_list_watch
from app.cluster.connection import ApiError, ClusterConnection
from app.cluster.discovery import Discovery, discover
from app.cluster.reflector import Backoff, Reflector, scope_label
from app.cluster.resources import KINDS, ResourceKind
from app.cluster.store import Changes, Store

log = logging.getLogger(__name__)

Subscriber = Callable[[str, Changes, Store], None]


class ClusterEngine:
    def __init__(
        self,
        connection: ClusterConnection,
        namespace: str | None = None,
        label_selector: str | None = None,
        fallback_namespace: str | None = None,
        flush_interval: float = 0.1,
        stall_timeout: float = 120.0,
        backoff: Callable[[], Backoff] = Backoff,
    ) -> None:
        self.connection = connection
        self.namespace = namespace
        self.label_selector = label_selector
        self.fallback_namespace = fallback_namespace
        self.flush_interval = flush_interval
        self.stall_timeout = stall_timeout
        self._backoff = backoff
        self.stores: dict[str, Store] = {}
        self.reflectors: dict[str, Reflector] = {}
        self.discovery: Discovery | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._subscribers: list[Subscriber] = []
        self._delivery: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    async def start(self, kinds: Iterable[str]) -> None:
        """Begin keeping these kinds' stores (idempotent per kind). Discovery runs once, on the first call."""
        async with self._lock:
            if self._closed:
                return
            if self.discovery is None:
                self.discovery = await discover(self.connection)
            if self._delivery is None:
                self._delivery = asyncio.create_task(self._deliver(), name="hyperdesk-store-delivery")
            new = [name for name in dict.fromkeys(kinds) if name not in self.stores]
            for name in new:
                self.stores[name] = Store(name)
            await asyncio.gather(*(self._start_reflector(KINDS[name]) for name in new))

    async def _start_reflector(self, kind: ResourceKind) -> None:
        store = self.stores[kind.name]
        assert self.discovery is not None
        version = self.discovery.version(kind.name)
        if version is None:
            failed = [f"{where}: {why}" for where, why in self.discovery.failed_groups.items()
                      if where.split("/")[0] == kind.group]
            detail = (f"discovery of {failed[0]}" if failed else
                      f"the cluster does not serve {kind.kind} ({kind.group or 'core'})")
            store.replace({})
            store.set_state("unsupported", detail)
            return
        namespace = self.namespace if kind.namespaced else None
        try:
            allowed = await can_list_watch(self.connection, kind, namespace)
            if not allowed and kind.namespaced and namespace is None and self.fallback_namespace:
                namespace = self.fallback_namespace
                allowed = await can_list_watch(self.connection, kind, namespace)
        except ApiError as exc:
            log.warning("access review for %s failed: %s; watching anyway", kind.name, exc)
            allowed = True
        if not allowed:
            where = scope_label(kind, namespace)
            store.replace({})
            store.set_state("forbidden", f"you may not list and watch {kind.plural} in {where}", scope=where)
            return
        if self._closed:
            return
        reflector = Reflector(self.connection, kind, version, store, namespace=namespace,
                              label_selector=self.label_selector if kind.namespaced else None,
                              stall_timeout=self.stall_timeout, backoff=self._backoff())
        self.reflectors[kind.name] = reflector
        self._tasks[kind.name] = asyncio.create_task(reflector.run(), name=f"hyperdesk-reflector-{kind.name}")

    async def set_scope(self, namespace: str | None, label_selector: str | None = None) -> None:
        """Re-scope every namespaced store: its reflector restarts and the store is brought to the new scope's
        contents (differences only)."""
        async with self._lock:
            if self._closed:
                return
            self.namespace, self.label_selector = namespace, label_selector
            names = [n for n in self.stores if KINDS[n].namespaced]
            await asyncio.gather(*(self._stop_reflector(name) for name in names))
            for name in names:
                self.stores[name].set_state("syncing")
            await asyncio.gather(*(self._start_reflector(KINDS[name]) for name in names))

    async def _stop_reflector(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        self.reflectors.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def retry_unavailable(self) -> None:
        """Discover again and retry the stores that were unsupported or forbidden at start: a CRD installed or a
        role granted since then shows up without a restart. Called on the app's periodic health check."""
        async with self._lock:
            if self._closed:
                return
            names = [n for n, s in self.stores.items()
                     if n not in self.reflectors and s.status.state in ("unsupported", "forbidden")]
            if not names:
                return
            self.discovery = await discover(self.connection)
            await asyncio.gather(*(self._start_reflector(KINDS[name]) for name in names))

    async def get_object(self, name: str, namespace: str | None, object_name: str) -> dict:
        """The full object, for the YAML view (stores keep trimmed copies)."""
        kind = KINDS[name]
        if kind.namespaced and not namespace:
            raise ValueError(f"{kind.plural} are namespaced: say which namespace {object_name!r} is in")
        version = (self.discovery.version(name) if self.discovery else None) or kind.versions[0]
        return await self.connection.request("GET", kind.path(version, namespace, object_name))

    async def close(self) -> None:
        """End every watch and the connection, and deliver nothing more. Safe to call twice; the connection closes
        even if this is cancelled, and a `start` or `set_scope` still running starts nothing new afterwards."""
        self._closed = True
        self._subscribers.clear()
        # Closing the connection first aborts requests in flight, so a `start` holding the lock returns at once.
        await self.connection.close()
        async with self._lock:
            await asyncio.gather(*(self._stop_reflector(name) for name in list(self._tasks)))
            if self._delivery is not None:
                self._delivery.cancel()
                await asyncio.gather(self._delivery, return_exceptions=True)
                self._delivery = None

    def flush(self) -> None:
        """Deliver what changed since the last tick: one call per store with changes."""
        for name, store in list(self.stores.items()):
            changes = store.drain()
            if changes:
                for callback in self._subscribers:
                    try:
                        callback(name, changes, store)
                    except Exception:  # noqa: BLE001 - a broken subscriber must not stop delivery to others
                        log.exception("store subscriber failed for %s", name)

    async def _deliver(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            self.flush()
