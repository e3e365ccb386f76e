"""The in-memory object store: one cluster-wide resourceVersion, bounded event histories, watcher fan-out.

Design
- Objects are plain dicts wrapped in immutable `StoredObject` versions that carry their JSON bytes, encoded once at
  write time: a LIST answer is a join of cached bytes, so listing 20,000 pods costs a few milliseconds.
- Every committed write takes the next value of a single counter, as etcd's revision does, and is appended to the
  bounded history of its resource (the watch cache the real server keeps per resource, so that busy pods never push
  a quiet kind's events out). Watches resume from any resourceVersion still in that history; older ones get 410.
  The same history reconstructs the state of a resource at an older revision, which gives paginated LISTs a
  consistent snapshot (as etcd does) while writes continue.
- Watchers and in-process subscribers (the simulator's controllers) are notified synchronously after each commit,
  in commit order: a write made by a subscriber while it is notified is delivered once everyone has the current
  event. Watchers only queue the event; their connection's writer task sends queued events in batches.

All methods must be called on the server's event loop thread (see `ServerThread` for other threads).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import errors
from .conversion import convert
from .kinds import Kind, KindRegistry
from .selectors import Selection

if TYPE_CHECKING:
    from .resources import ResourceStorage
    from .watch import Watcher

log = logging.getLogger("hyperdesk.demo.apiserver")

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"

Key = tuple[str, str]  # (namespace, name); namespace is "" for cluster-scoped kinds


def now_timestamp() -> str:
    """The current time as the API server writes timestamps (RFC 3339, seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def fresh_copy(obj: Any) -> Any:
    """A deep copy of caller-supplied JSON data (also rejects what JSON cannot represent, early)."""
    return json.loads(json.dumps(obj))


class StoredObject:
    """One version of one object: the dict (never mutated once stored), its revision and its JSON bytes."""

    __slots__ = ("obj", "rv", "raw", "_other_versions")

    def __init__(self, obj: dict[str, Any], rv: int) -> None:
        self.obj = obj
        self.rv = rv
        self.raw = encode(obj)
        self._other_versions: dict[str, bytes] | None = None

    @property
    def key(self) -> Key:
        meta = self.obj["metadata"]
        return (meta.get("namespace", ""), meta["name"])

    def encoded(self, api_version: str) -> bytes:
        """JSON bytes as served at `api_version` (converted once, then cached)."""
        if self.obj.get("apiVersion") == api_version:
            return self.raw
        if self._other_versions is None:
            self._other_versions = {}
        cached = self._other_versions.get(api_version)
        if cached is None:
            cached = encode(self.as_version(api_version))
            self._other_versions[api_version] = cached
        return cached

    def as_version(self, api_version: str) -> dict[str, Any]:
        """The object dict as served at `api_version` (a copy sharing what conversion leaves, when it differs)."""
        if self.obj.get("apiVersion") == api_version:
            return self.obj
        return convert(self.obj, api_version)

    def thaw(self, api_version: str | None = None) -> dict[str, Any]:
        """A private, mutable deep copy of the object (decoding the cached JSON is much faster than deepcopy)."""
        return json.loads(self.encoded(api_version or self.obj.get("apiVersion", "")))

    def at_revision(self, rv: int) -> StoredObject:
        """This object's content, stamped with another resourceVersion (what a DELETED event carries)."""
        obj = dict(self.obj)
        obj["metadata"] = {**obj["metadata"], "resourceVersion": str(rv)}
        return StoredObject(obj, rv)


@dataclass(frozen=True, slots=True)
class Event:
    """A committed change. `new` is the object after the change (for DELETED: its last state, at the new rv)."""

    type: str
    kind: Kind
    rv: int
    new: StoredObject
    old: StoredObject | None

    @property
    def object(self) -> dict[str, Any]:
        """The object after the change. Shared with the store: treat it as read-only (copy before changing)."""
        return self.new.obj


class _Table:
    """All current objects of one resource, plus their keys in LIST order (namespace, then name)."""

    __slots__ = ("objects", "keys")

    def __init__(self, objects: dict[Key, StoredObject] | None = None) -> None:
        self.objects: dict[Key, StoredObject] = objects if objects is not None else {}
        self.keys: list[Key] = sorted(self.objects)

    def put(self, key: Key, stored: StoredObject) -> None:
        if key not in self.objects:
            bisect.insort(self.keys, key)
        self.objects[key] = stored

    def remove(self, key: Key) -> None:
        if self.objects.pop(key, None) is not None:
            index = bisect.bisect_left(self.keys, key)
            del self.keys[index]

    def key_range(self, namespace: str | None) -> tuple[int, int]:
        """The positions in `keys` of one namespace's objects (all objects for None)."""
        if namespace is None:
            return 0, len(self.keys)
        start = bisect.bisect_left(self.keys, (namespace, ""))
        stop = bisect.bisect_left(self.keys, (namespace + "\x00", ""))
        return start, stop

    def values(self) -> list[StoredObject]:
        """Every object, in LIST order."""
        return [self.objects[key] for key in self.keys]


@dataclass(frozen=True)
class Snapshot:
    """The objects of one resource at one revision (`table` is the live one when `rv` is the latest)."""

    rv: int
    table: _Table


@dataclass(frozen=True)
class ListPage:
    items: list[StoredObject]
    rv: int
    continue_token: str
    remaining: int | None


class Store:
    """Objects of every kind, the revision counter, the event history and the watchers.

    The public helpers (`create`, `put`, `get`, `list`, `patch`, `delete`, `subscribe`) are the in-process API for
    tests and the simulator: they take and return plain dicts. The HTTP layer uses `resource(kind)`, which applies
    the same rules the API does.
    """

    def __init__(self, registry: KindRegistry, *, history_size: int = 10_000, snapshot_cache: int = 8) -> None:
        self.registry = registry
        self._rv = 0
        self._tables: dict[str, _Table] = {}
        self._history: dict[str, deque[Event]] = {}  # per resource key, oldest first
        self._history_size = history_size  # events kept per resource
        self._compacted: dict[str, int] = {}  # per resource key: every event with rv <= this is gone
        self._compacted_all = 0  # the same, for every resource (`compact`)
        self._watchers: dict[str, set[Watcher]] = {}
        self._subscribers: list[Callable[[Event], None]] = []
        self._undelivered: deque[Event] = deque()  # committed, not yet given to watchers and subscribers
        self._delivering = False
        self._snapshots: OrderedDict[tuple[str, int], Snapshot] = OrderedDict()
        self._snapshot_cache = snapshot_cache
        self._namespace_counts: dict[str, int] = {}
        self._storages: dict[str, ResourceStorage] = {}
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        """Where creation and deletion timestamps come from: the wall clock, or a simulation's clock (the demo
        points it at simulated time, so an object's age agrees with its conditions and events)."""

    def timestamp(self) -> str:
        """Now, by this store's clock, as the API server writes timestamps (RFC 3339, seconds, UTC)."""
        return self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # --- revision and history -------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The latest committed revision."""
        return self._rv

    @property
    def history_size(self) -> int:
        """How many events the history of each resource keeps."""
        return self._history_size

    def compact(self) -> None:
        """Forget every event history, as an etcd compaction does: older watches and continues get 410."""
        self._history.clear()
        self._compacted_all = self._rv
        self._snapshots.clear()

    def _compacted_rv(self, kind: Kind) -> int:
        return max(self._compacted_all, self._compacted.get(kind.resource_key, 0))

    def events_since(self, kind: Kind, rv: int) -> list[Event]:
        """Events of `kind` after revision `rv`, oldest first; 410 when its history no longer reaches back that far."""
        compacted = self._compacted_rv(kind)
        if rv < compacted:
            raise errors.gone(f"too old resource version: {rv} ({compacted + 1})")
        newer = []
        for event in reversed(self._history.get(kind.resource_key, ())):
            if event.rv <= rv:
                break
            newer.append(event)
        newer.reverse()
        return newer

    # --- reading -------------------------------------------------------------------------------------------

    def table(self, kind: Kind) -> _Table:
        table = self._tables.get(kind.resource_key)
        if table is None:
            table = self._tables[kind.resource_key] = _Table()
        return table

    def lookup(self, kind: Kind, namespace: str, name: str) -> StoredObject | None:
        table = self._tables.get(kind.resource_key)
        return table.objects.get((namespace if kind.namespaced else "", name)) if table else None

    def namespace_is_empty(self, namespace: str) -> bool:
        return self._namespace_counts.get(namespace, 0) == 0

    def objects_in_namespace(self, namespace: str) -> list[tuple[Kind, StoredObject]]:
        found = []
        for kind in self.registry.kinds():
            if not kind.namespaced:
                continue
            table = self._tables.get(kind.resource_key)
            if table is None:
                continue
            start, stop = table.key_range(namespace)
            found.extend((kind, table.objects[key]) for key in table.keys[start:stop])
        return found

    def snapshot(self, kind: Kind, rv: int | None = None) -> Snapshot:
        """The objects of `kind` at revision `rv` (now if None). Raises 410 when `rv` is older than the history.

        The current state is the live table, not a copy (valid until the next write); an older one is rebuilt from
        the history once and cached, so that the pages of one LIST share it.
        """
        if rv is None:
            return Snapshot(self._rv, self.table(kind))
        cache_key = (kind.resource_key, rv)
        cached = self._snapshots.get(cache_key)
        if cached is not None:
            self._snapshots.move_to_end(cache_key)
            return cached
        if rv >= self._rv:
            return Snapshot(self._rv, self.table(kind))
        state = dict(self.table(kind).objects)
        for event in reversed(self.events_since(kind, rv)):
            key = event.new.key
            if event.old is None:
                state.pop(key, None)
            else:
                state[key] = event.old
        snap = self._snapshots[cache_key] = Snapshot(rv, _Table(state))
        while len(self._snapshots) > self._snapshot_cache:
            self._snapshots.popitem(last=False)
        return snap

    def list_page(
        self,
        kind: Kind,
        selection: Selection,
        *,
        limit: int = 0,
        continue_token: str = "",
        rv: int | None = None,
    ) -> ListPage:
        """One page of a LIST, in key order, from a consistent snapshot (see module docstring)."""
        start_after: Key | None = None
        if continue_token:
            rv, start_after = decode_continue(continue_token, _list_prefix(kind, selection.namespace))
            if rv < self._compacted_rv(kind) and (kind.resource_key, rv) not in self._snapshots:
                raise errors.gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start "
                    "a new list without the continue parameter, or use the continue token in this response to "
                    "retrieve the remainder of the results. Continuing with the provided token results in an "
                    "inconsistent list - objects that were created, modified, or deleted between the time the first "
                    "chunk was returned and now may show up in the list."
                )
        snap = self.snapshot(kind, rv)
        keys, objects = snap.table.keys, snap.table.objects
        start, stop = snap.table.key_range(selection.namespace)
        if start_after is not None:
            start = max(start, bisect.bisect_right(keys, start_after))
        if selection.is_everything:
            end = stop if limit <= 0 else min(stop, start + limit)
            page = keys[start:end]
            items = [objects[key] for key in page]
            more = end < stop
            remaining = stop - end if more else None
            last = page[-1] if page else None
        else:
            items, index = [], start
            while index < stop and (limit <= 0 or len(items) < limit):
                stored = objects[keys[index]]
                if selection.matches(stored.obj):
                    items.append(stored)
                index += 1
            # Like etcd, promise more whenever keys remain, whether or not they match.
            more = index < stop
            remaining = None
            last = keys[index - 1] if index > start else None
        token = ""
        if more and last is not None:
            token = encode_continue(snap.rv, last, _list_prefix(kind, selection.namespace))
        return ListPage(items, snap.rv, token, remaining)

    # --- writing -------------------------------------------------------------------------------------------

    def commit(
        self,
        kind: Kind,
        obj: dict[str, Any] | None,
        old: StoredObject | None,
        *,
        last_state: dict[str, Any] | None = None,
    ) -> Event:
        """Record a change at the next revision.

        `obj` is the new content (its resourceVersion is stamped here), or None to delete `old`; a deletion's event
        carries `last_state` when given (the content of the write that released the object), else `old`'s content.
        """
        self._rv += 1
        rv = self._rv
        table = self.table(kind)
        if obj is None:
            assert old is not None
            if last_state is None:
                stored = old.at_revision(rv)
            else:
                last_state["metadata"]["resourceVersion"] = str(rv)
                stored = StoredObject(last_state, rv)
            table.remove(old.key)
            event = Event(DELETED, kind, rv, stored, old)
            if kind.namespaced:
                self._namespace_counts[old.key[0]] -= 1
        else:
            obj["metadata"]["resourceVersion"] = str(rv)
            stored = StoredObject(obj, rv)
            table.put(stored.key, stored)
            event = Event(MODIFIED if old is not None else ADDED, kind, rv, stored, old)
            if kind.namespaced and old is None:
                namespace = stored.key[0]
                self._namespace_counts[namespace] = self._namespace_counts.get(namespace, 0) + 1
        self._record(event)
        return event

    def _record(self, event: Event) -> None:
        key = event.kind.resource_key
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = deque()
        if len(history) >= self._history_size:
            self._compacted[key] = history.popleft().rv
        history.append(event)
        self._undelivered.append(event)
        if self._delivering:
            return  # a subscriber wrote while it was notified: its event goes out after the current one
        self._delivering = True
        try:
            while self._undelivered:
                current = self._undelivered.popleft()
                for watcher in tuple(self._watchers.get(current.kind.resource_key, ())):
                    watcher.offer(current)
                for subscriber in tuple(self._subscribers):
                    try:
                        subscriber(current)
                    except Exception:  # the change is committed: one broken subscriber must not stop the others
                        log.exception("subscriber %r failed on %s %s", subscriber, current.type, current.new.key)
        finally:
            self._delivering = False

    def drop_kind(self, kind: Kind) -> None:
        """Delete every object of `kind` (its CRD went away) and end its watches."""
        table = self._tables.get(kind.resource_key)
        if table is not None:
            for key in list(table.keys):
                self.commit(kind, None, table.objects[key])
        for watcher in tuple(self._watchers.get(kind.resource_key, ())):
            watcher.close("resource removed")

    # --- watchers and subscribers ------------------------------------------------------------------------------

    def add_watcher(self, watcher: Watcher) -> None:
        self._watchers.setdefault(watcher.kind.resource_key, set()).add(watcher)

    def remove_watcher(self, watcher: Watcher) -> None:
        watchers = self._watchers.get(watcher.kind.resource_key)
        if watchers is not None:
            watchers.discard(watcher)

    def watchers(self) -> list[Watcher]:
        return [w for group in self._watchers.values() for w in group]

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call `callback(event)` after every committed change; returns a function that unsubscribes.

        Callbacks run synchronously on the loop, after the change is fully committed, so they may write to the
        store themselves (their writes are new events, delivered to every subscriber after this one). An exception
        in a callback is logged; the write that caused it has succeeded.
        """
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    # --- in-process API ------------------------------------------------------------------------------------------

    def resource(self, kind: Kind) -> ResourceStorage:
        """The verb implementation (create, update, patch, delete...) for `kind`."""
        from .resources import ResourceStorage

        storage = self._storages.get(kind.resource_key)
        if storage is None or storage.kind is not kind:
            storage = self._storages[kind.resource_key] = ResourceStorage(self, kind)
        return storage

    def _kind_for(self, api_version: str, kind_name: str) -> Kind:
        kind = self.registry.by_kind(api_version, kind_name)
        if kind is None:
            raise errors.ApiError(404, "NotFound", f'no matches for kind "{kind_name}" in version "{api_version}"')
        return kind

    def _version_of(self, api_version: str) -> str:
        return api_version.rpartition("/")[2]

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create `obj` exactly as a POST would (status of status-subresource kinds is dropped)."""
        kind = self._kind_for(obj.get("apiVersion", ""), obj.get("kind", ""))
        namespace = obj.get("metadata", {}).get("namespace", "default" if kind.namespaced else "")
        written = self.resource(kind).create(self._version_of(obj["apiVersion"]), namespace, fresh_copy(obj))
        return written.stored.thaw()

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace `obj` with its status, ignoring resourceVersion: how a controller or a test seeds state."""
        kind = self._kind_for(obj.get("apiVersion", ""), obj.get("kind", ""))
        meta = obj.get("metadata", {})
        namespace = meta.get("namespace", "default" if kind.namespaced else "")
        written = self.resource(kind).put(self._version_of(obj["apiVersion"]), namespace, fresh_copy(obj))
        return written.stored.thaw()

    def get(self, api_version: str, kind_name: str, name: str, namespace: str = "") -> dict[str, Any]:
        kind = self._kind_for(api_version, kind_name)
        stored = self.resource(kind).get(namespace, name)
        return stored.thaw(api_version)

    def list(
        self,
        api_version: str,
        kind_name: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[dict[str, Any]]:
        from .selectors import parse_field_selector, parse_label_selector

        kind = self._kind_for(api_version, kind_name)
        selection = Selection(
            namespace, parse_label_selector(label_selector), parse_field_selector(field_selector, kind)
        )
        page = self.list_page(kind, selection)
        return [s.thaw(api_version) for s in page.items]

    def patch(
        self,
        api_version: str,
        kind_name: str,
        name: str,
        patch: Any,
        namespace: str = "",
        *,
        patch_type: str = "application/merge-patch+json",
        subresource: str = "",
    ) -> dict[str, Any]:
        kind = self._kind_for(api_version, kind_name)
        written = self.resource(kind).patch(
            # Patch functions copy what they take from the patch, so the caller's patch is never aliased.
            self._version_of(api_version),
            namespace,
            name,
            patch,
            patch_type,
            subresource=subresource,
        )
        return written.stored.thaw(api_version)

    def delete(self, api_version: str, kind_name: str, name: str, namespace: str = "") -> dict[str, Any]:
        """Delete as a DELETE would (finalizers defer it); returns the object's last state."""
        kind = self._kind_for(api_version, kind_name)
        written = self.resource(kind).delete(namespace, name)
        return written.stored.thaw(api_version)


def _list_prefix(kind: Kind, namespace: str | None) -> str:
    """What one LIST covers, as etcd's key prefix names it: `/pods/`, `/pods/team-a/`."""
    return f"/{kind.resource_key}/" + (f"{namespace}/" if namespace else "")


def encode_continue(rv: int, last: Key, prefix: str) -> str:
    """An opaque continue token: the snapshot revision, the LIST it continues and the last key served."""
    payload = {"v": "meta.k8s.io/v1", "rv": rv, "prefix": prefix, "start": f"{last[0]}/{last[1]}\x00"}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode_continue(token: str, prefix: str) -> tuple[int, Key]:
    """The revision and last key of a token issued for the LIST of `prefix`; 400 for any other token."""
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        namespace, _, name = payload["start"].rstrip("\x00").partition("/")
        rv, issued_for = int(payload["rv"]), payload["prefix"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, AttributeError):
        raise errors.bad_request(f"continue key is not valid: {token!r}") from None
    if issued_for != prefix:
        raise errors.bad_request(f"continue key is not valid: it continues the list of {issued_for}, not of {prefix}")
    return rv, (namespace, name)
