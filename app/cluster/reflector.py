"""A reflector keeps one store equal to the server: LIST in pages, then WATCH from the list's resourceVersion.

- 410 Gone (the server compacted past our resourceVersion): relist, and replace the store's contents so that
  only the real differences are reported.
- Disconnects, 5xx and 429: reconnect with capped exponential backoff and full jitter, honouring Retry-After.
  The store turns `stale` (with the time it went stale) until the watch is back.
- A silent stall (no byte, not even a bookmark, within `stall_timeout`): drop the connection and watch again.
- 403: the store turns `forbidden`; 404: `unsupported` (the kind went away). Both are retried slowly.

Responses are parsed as raw JSON and trimmed; no generated model object is ever built.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import aiohttp

from app.cluster.connection import ApiError, ClusterConnection
from app.cluster.resources import ResourceKind, object_key, trim_object
from app.cluster.store import Store

log = logging.getLogger(__name__)


MAX_RETRY_AFTER = 120.0


class WatchExpired(Exception):
    """The server no longer has the history our resourceVersion needs (410 Gone)."""


class WatchStalled(Exception):
    """Nothing arrived on the watch within the stall bound."""


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter: the n-th failure waits uniformly in [0, min(cap, base*2^n)]."""

    base: float = 0.2
    cap: float = 30.0
    failures: int = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        """The wait before the next attempt; a server's Retry-After is a floor (bounded, so a bogus one can't
        park the reflector for hours)."""
        ceiling = min(self.cap, self.base * (2 ** self.failures))
        self.failures += 1
        delay = random.uniform(0, ceiling)
        return max(delay, min(retry_after, MAX_RETRY_AFTER)) if retry_after else delay

    def reset(self) -> None:
        self.failures = 0


def scope_label(kind: ResourceKind, namespace: str | None, label_selector: str | None = None) -> str:
    """What a store covers, as the panes say it: `cluster`, `all namespaces`, `namespace team-a, app=x`."""
    where = "cluster" if not kind.namespaced else (f"namespace {namespace}" if namespace else "all namespaces")
    return f"{where}, {label_selector}" if label_selector and kind.namespaced else where


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a LIST is parsed.

    Parsing allocates hundreds of thousands of dicts that will live as long as the store; each allocation burst
    triggers collections that walk every one of them again (at 100,000 pods, half the sync's CPU). Reference
    counting still frees everything meanwhile; the collector resumes when the last concurrent LIST ends.
    """
    global _gc_pauses
    if _gc_pauses == 0 and not gc.isenabled():
        yield  # someone else turned it off: leave it as it is
        return
    _gc_pauses += 1
    gc.disable()
    try:
        yield
    finally:
        _gc_pauses -= 1
        if _gc_pauses == 0:
            gc.enable()


_gc_pauses = 0


class Reflector:
    page_size = 500
    forbidden_retry = 60.0

    def __init__(
        self,
        connection: ClusterConnection,
        kind: ResourceKind,
        version: str,
        store: Store,
        namespace: str | None = None,
        label_selector: str | None = None,
        stall_timeout: float = 120.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.connection = connection
        self.kind = kind
        self.version = version
        self.store = store
        self.namespace = namespace if kind.namespaced else None
        self.label_selector = label_selector or None
        self.stall_timeout = stall_timeout
        self.backoff = backoff or Backoff()
        self.resource_version: str | None = None
        self.relists = 0
        """How many times the reflector had to LIST again after the first sync (410s and restarts)."""
        self.path = kind.path(version, self.namespace)

    @property
    def scope(self) -> str:
        return scope_label(self.kind, self.namespace, self.label_selector)

    async def run(self) -> None:
        """Keep the store in sync until cancelled. Never raises except CancelledError."""
        while True:
            try:
                if self.resource_version is None:
                    await self._list()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except WatchExpired:
                log.info("%s: resourceVersion %s expired, relisting", self.path, self.resource_version)
                self.resource_version = None
            except WatchStalled:
                log.info("%s: watch silent for %.0f s, reconnecting", self.path, self.stall_timeout)
            except ApiError as exc:
                if exc.status == 410:  # a LIST continue token or a watch's resourceVersion is too old
                    log.info("%s: %s; relisting", self.path, exc)
                    self.resource_version = None
                    await asyncio.sleep(self.backoff.next_delay())  # short at first; grows if it repeats
                    continue
                await self._on_error(exc)
            except Exception as exc:  # noqa: BLE001 - a malformed answer must not kill the store
                log.exception("%s: unexpected failure", self.path)
                await self._on_error(ApiError(0, f"{type(exc).__name__}: {exc}"))

    async def _on_error(self, exc: ApiError) -> None:
        if exc.status in (403, 404):
            self.store.set_state("forbidden" if exc.status == 403 else "unsupported", str(exc), scope=self.scope)
            self.resource_version = None
            self.store.replace({})  # never show what an earlier scope or permission let us see
            await asyncio.sleep(self.forbidden_retry)
        else:
            self.store.set_state("stale", str(exc), scope=self.scope)
            await asyncio.sleep(self.backoff.next_delay(exc.retry_after))

    def _query(self) -> dict[str, Any]:
        return {"labelSelector": self.label_selector} if self.label_selector else {}

    async def _list(self) -> None:
        if self.store.status.state != "syncing" and len(self.store):
            self.relists += 1
        objects: dict[str, dict[str, Any]] = {}
        with cyclic_gc_paused():
            await self._list_pages(objects)
        self.store.replace(objects)
        self.backoff.reset()
        self.store.set_state("live", scope=self.scope)

    async def _list_pages(self, objects: dict[str, dict[str, Any]]) -> None:
        token: str | None = None
        resource_version: str | None = None
        while True:
            query = {**self._query(), "limit": self.page_size, "continue": token}
            page = await self.connection.request("GET", self.path, query=query, timeout=60)
            for item in page.get("items") or ():
                objects[object_key(item)] = trim_object(self.kind, item)
            meta = page.get("metadata") or {}
            resource_version = meta.get("resourceVersion") or resource_version
            token = meta.get("continue")
            if not token:
                break
            await asyncio.sleep(0)  # let the UI draw between pages
        self.resource_version = resource_version

    async def _watch(self) -> None:
        query = {
            **self._query(),
            "watch": True,
            "allowWatchBookmarks": True,
            "resourceVersion": self.resource_version,
            "timeoutSeconds": random.randint(300, 600),
        }
        opened = asyncio.get_running_loop().time()
        received = False
        async with self.connection.stream(self.path, query=query) as response:
            if self.store.status.state != "live":
                self.store.set_state("live", scope=self.scope)
            content = response.content
            buffer = b""
            while True:
                try:
                    async with asyncio.timeout(self.stall_timeout):
                        chunk = await content.readany()
                except TimeoutError:
                    raise WatchStalled from None
                except (aiohttp.ClientError, ConnectionError) as exc:
                    raise ApiError(0, f"watch connection lost: {type(exc).__name__}") from None
                if not chunk:
                    # The server ended the watch (timeoutSeconds): watch again from where we are. A watch that
                    # ends at once with nothing in it (a proxy closing streams) waits first, so it can't spin.
                    if not received and asyncio.get_running_loop().time() - opened < 1.0:
                        await asyncio.sleep(self.backoff.next_delay())
                    return
                lines = (buffer + chunk).split(b"\n")
                buffer = lines.pop()
                for line in lines:
                    if line.strip():
                        self._handle(json.loads(line))
                        received = True
                if received:
                    self.backoff.reset()
                await asyncio.sleep(0)

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise WatchExpired
            raise ApiError(code or 0, obj.get("message") or "watch error", reason=obj.get("reason", ""))
        resource_version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self.store.apply(kind, object_key(obj), trim_object(self.kind, obj))
        if resource_version:
            self.resource_version = resource_version
