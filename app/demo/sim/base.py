"""What every controller of the simulator shares: the `Controller` base class and the `World` it acts on.

A controller reads the `ObjectCache`, writes through the store's public helpers (`create`, `put`, `patch`,
`delete`), and keeps nothing in memory that the API does not also show, except what a real component would keep
privately (the device plugin's GPU assignment, a training process's step). It never talks to the TUI.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..apiserver import ApiError
from .cache import GroupKind, ObjectCache
from .clock import Rng, SimClock

if TYPE_CHECKING:
    from ..apiserver import LocalApiServer
    from .gpus import DeviceAllocator
    from .kubelet import Kubelet
    from .mlflow_writer import MlflowWriter

log = logging.getLogger("hyperdesk.demo.sim")


@dataclass
class JobHints:
    """How a simulated training job behaves (scenario jobs set these; other jobs get defaults from their args)."""

    total_steps: int = 500
    step_seconds: float = 3.0
    fail_at_step: int | None = None  # the first run of the job crashes at this step, once
    model: str = "llama-3-8b"
    learning_rate: float = 3e-4
    warmup_steps: int = 50
    eval_every: int = 50
    checkpoint_every: int = 50
    initial_loss: float = 10.8
    final_loss: float = 2.1
    tokens_per_step: int = 4 * 1024 * 1024
    extra: dict[str, Any] = field(default_factory=dict)


class World:
    """The state and services shared by the controllers of one simulated cluster."""

    def __init__(self, server: LocalApiServer, seed: int, clock: SimClock) -> None:
        self.server = server
        self.store = server.store
        self.logs = server.logs
        self.proxies = server.proxies
        self.port_forwards = server.port_forwards
        self.seed = seed
        self.rng = Rng(seed)
        self.clock = clock
        self.cache = ObjectCache(self.store)
        self.hints: dict[tuple[str, str], JobHints] = {}
        self.activity: dict[tuple[str, str], str] = {}  # (namespace, pod) -> "train", "idle", "serve", "load"
        self.devices: DeviceAllocator | None = None
        self.mlflow: MlflowWriter | None = None
        self.kubelet: Kubelet | None = None
        self.wake: Callable[[], None] = lambda: None  # the runner sets it: reconcile soon
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._event_names = itertools.count(1)

    # --- timers ---------------------------------------------------------------------------------------------------

    def after(self, delay: float, callback: Callable[[], None]) -> None:
        """Run `callback` once simulated time has advanced by `delay` seconds (in the order timers were set)."""
        heapq.heappush(self._timers, (self.clock.elapsed + max(delay, 0.0), next(self._sequence), callback))

    def due_timers(self) -> list[Callable[[], None]]:
        due = []
        while self._timers and self._timers[0][0] <= self.clock.elapsed + 1e-9:
            due.append(heapq.heappop(self._timers)[2])
        return due

    # --- writes -------------------------------------------------------------------------------------------------------

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return self.store.create(obj)
        except ApiError as exc:
            log.debug("create %s %s failed: %s", obj.get("kind"), obj.get("metadata", {}).get("name"), exc)
            return None

    def put(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create or replace `obj`, status included (a controller's write).

        The write goes out at the kind's storage version. Where versions spell a field differently (Kueue), writers
        put both spellings in; the server keeps the storage version's.
        """
        kind = self.store.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if kind is not None:
            meta = obj.get("metadata") or {}
            uid = meta.get("uid")
            if uid:
                # An update computed from a cached object: never resurrect it, nor overwrite a namesake.
                current = self.store.lookup(kind, meta.get("namespace", "") if kind.namespaced else "", meta.get("name", ""))
                if current is None or current.obj["metadata"].get("uid") != uid:
                    return None
            obj = {**obj, "apiVersion": kind.api_version(kind.storage_version)}
        try:
            return self.store.put(obj)
        except ApiError as exc:
            log.debug("put %s %s failed: %s", obj.get("kind"), obj.get("metadata", {}).get("name"), exc)
            return None

    def delete(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        try:
            self.store.delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace", ""))
        except ApiError as exc:
            log.debug("delete %s %s failed: %s", obj.get("kind"), meta.get("name"), exc)

    def event(
        self,
        involved: dict[str, Any],
        reason: str,
        message: str,
        *,
        type_: str = "Normal",
        component: str = "",
        host: str = "",
    ) -> None:
        """Record a core/v1 Event about `involved`, as the component that did something to it would."""
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        stamp = self.clock.timestamp()
        source: dict[str, Any] = {"component": component}
        if host:
            source["host"] = host
        self.create(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{meta['name']}.{self.seed:04x}{next(self._event_names):012x}", "namespace": namespace},
                "involvedObject": {
                    "apiVersion": involved.get("apiVersion", "v1"),
                    "kind": involved.get("kind", ""),
                    "name": meta["name"],
                    "namespace": meta.get("namespace", ""),
                    "uid": meta.get("uid", ""),
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "source": source,
                "reportingComponent": component,
                "reportingInstance": host,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            }
        )


class Controller:
    """A reconciler: `reconcile()` runs when a watched kind changed (and once at start); `tick()` every quantum."""

    watches: frozenset[GroupKind] = frozenset()
    name = "controller"

    def __init__(self, world: World) -> None:
        self.world = world
        self.dirty = True

    @property
    def cache(self) -> ObjectCache:
        return self.world.cache

    async def start(self) -> None:
        """Set up what needs the event loop (local HTTP servers); called before the first reconcile."""

    def reconcile(self) -> None:
        """Bring the world closer to what the API objects ask for."""

    def tick(self) -> None:
        """Time passed by one quantum."""

    async def flush(self) -> None:
        """Wait for background work this controller started (servers starting), e.g. after a fast-forward."""

    async def stop(self) -> None:
        """Release what `start` set up."""
