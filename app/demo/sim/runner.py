"""`Simulation`: the controllers of one scenario, wired to a `LocalApiServer` and driven by simulated time.

    async with LocalApiServer() as server:
        simulation = Simulation(server, "hyperpod", seed=7, speed=10, mlflow_dir=tmp)
        await simulation.start()          # objects, controllers, the pre-rolled history, then real-time pacing
        await simulation.advance(120)     # jump two simulated minutes ahead (tests)
        await simulation.stop()

Every quantum (one simulated second) runs the timers that came due, lets every controller `tick`, and reconciles
the controllers whose watched kinds changed until nothing changes any more. Changes made through the API from
outside (kubectl, the TUI) wake the loop at once, so controllers react within a round trip, without waiting for
the next quantum. At `speed` X, X quanta run per real second (0 pauses time: only `advance` moves it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Controller, World
from .cache import GroupKind
from .clock import QUANTUM, SimClock, default_epoch
from .deployments import Deployments, GarbageCollector
from .gpus import DcgmExporters, DeviceAllocator
from .inference import Inference
from .kubelet import Kubelet, Scheduler
from .kueue import Kueue
from .mlflow_writer import MlflowWriter, tracking_uri
from .scenario import DEFAULT_PREROLL, SCENARIOS, populate
from .training import TrainingOperator
from .workspaces import Workspaces

if TYPE_CHECKING:
    from ..apiserver import Event, LocalApiServer

log = logging.getLogger("hyperdesk.demo.sim")

MAX_SETTLE_ROUNDS = 50
MAX_LAG = 30.0  # simulated seconds the pacing may fall behind before it slows time down instead of catching up


class Simulation:
    def __init__(
        self,
        server: LocalApiServer,
        scenario: str = "hyperpod",
        *,
        seed: int = 0,
        speed: float = 1.0,
        epoch: datetime | None = None,
        preroll: float | None = None,
        mlflow_dir: str | Path | None = None,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
        self.scenario = scenario
        self.speed = speed
        self.preroll = DEFAULT_PREROLL[scenario] if preroll is None else preroll
        self.clock = SimClock(epoch or default_epoch(self.preroll))
        self.server = server
        self.seed = seed
        self.mlflow_dir = Path(mlflow_dir) if mlflow_dir else None
        self.world: World | None = None
        self.controllers: list[Controller] = []
        self.errors: list[str] = []
        self._wake = asyncio.Event()
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._base = 0.0  # simulated seconds owed to fast-forwards, outside real-time pacing
        self.keep_mlflow = True  # write everything queued on stop (False: the store is about to be deleted)

    @property
    def mlflow_uri(self) -> str | None:
        return tracking_uri(self.mlflow_dir) if self.mlflow_dir else None

    @property
    def elapsed(self) -> float:
        return self.clock.elapsed

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        world = self.world = World(self.server, self.seed, self.clock)
        self.server.store.clock = self.clock.now  # creation and deletion times in simulated time, as conditions are
        if self.scenario == "empty":
            return
        world.devices = DeviceAllocator()
        world.wake = self._wake.set
        if self.mlflow_dir is not None:
            self.mlflow_dir.mkdir(parents=True, exist_ok=True)
            world.mlflow = MlflowWriter(tracking_uri(self.mlflow_dir))
            world.mlflow.start()
        kubelet = Kubelet(world)
        world.kubelet = kubelet
        self.controllers = [
            GarbageCollector(world), Kueue(world), TrainingOperator(world), Deployments(world), Workspaces(world),
            Inference(world), Scheduler(world), kubelet, DcgmExporters(world),
        ]
        world.cache.add_listener(self._on_change)
        populate(world, self.scenario)
        for controller in self.controllers:
            await controller.start()
        self.settle()
        if self.preroll > 0:
            await self.advance(self.preroll)
        self._base = self.clock.elapsed
        self._task = asyncio.get_running_loop().create_task(self._run(), name="hyperdesk-demo-simulation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for controller in self.controllers:
            try:
                await controller.stop()
            except Exception:  # noqa: BLE001 - stopping must go on
                log.exception("stopping %s", controller.name)
        if self.world is not None:
            if self.world.mlflow is not None:
                await asyncio.to_thread(self.world.mlflow.stop, flush=self.keep_mlflow)
            self.world.cache.close()

    # --- time ---------------------------------------------------------------------------------------------------------

    def _on_change(self, group_kind: GroupKind, event: Event) -> None:
        for controller in self.controllers:
            if group_kind in controller.watches:
                controller.dirty = True
        if not self._busy:
            self._wake.set()

    def settle(self) -> None:
        """Reconcile dirty controllers, in order, until none is dirty."""
        self._busy = True
        try:
            for _ in range(MAX_SETTLE_ROUNDS):
                if not any(c.dirty for c in self.controllers):
                    return
                for controller in self.controllers:
                    if controller.dirty:
                        controller.dirty = False
                        self._guard(controller, controller.reconcile)
            log.warning("the simulation did not settle in %d rounds", MAX_SETTLE_ROUNDS)
        finally:
            self._busy = False

    def _guard(self, controller: Controller, call: Any) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - one controller's bug must not stop the cluster
            log.exception("%s failed", controller.name)
            self.errors.append(f"{controller.name}: {exc!r}")

    def step(self) -> None:
        """One quantum: advance the clock, run due timers, tick every controller, settle."""
        assert self.world is not None
        self.clock.advance(QUANTUM)
        self._busy = True
        try:
            for callback in self.world.due_timers():
                try:
                    callback()
                except Exception as exc:  # noqa: BLE001
                    log.exception("timer failed")
                    self.errors.append(f"timer: {exc!r}")
        finally:
            self._busy = False
        self.settle()
        self._busy = True
        try:
            for controller in self.controllers:
                self._guard(controller, controller.tick)
        finally:
            self._busy = False
        self.settle()

    async def advance(self, seconds: float) -> None:
        """Run `seconds` of simulated time now, as fast as possible (yielding to the loop now and then)."""
        if self.world is None or self.scenario == "empty":
            return
        self.settle()  # changes made through the API so far happen now, before time moves
        target = self.clock.elapsed + seconds
        count = 0
        started = time.monotonic()
        while self.clock.elapsed + QUANTUM <= target + 1e-9:
            self.step()
            count += 1
            if count % 50 == 0:
                await asyncio.sleep(0)
        self._base += seconds
        for controller in self.controllers:
            await controller.flush()
        self.settle()
        log.debug("advanced %.0f simulated seconds in %.2fs", seconds, time.monotonic() - started)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            if self.speed > 0:
                target = self._base + (loop.time() - started) * self.speed
                if target - self.clock.elapsed > MAX_LAG:
                    # The machine is too busy to keep up: slow simulated time down rather than burst.
                    started += (target - self.clock.elapsed - MAX_LAG) / self.speed
                    target = self._base + (loop.time() - started) * self.speed
                count = 0
                while self.clock.elapsed + QUANTUM <= target + 1e-9:
                    self.step()
                    count += 1
                    if count % 20 == 0:
                        await asyncio.sleep(0)
                next_due = started + (self.clock.elapsed + QUANTUM - self._base) / self.speed
                timeout = max(0.0, next_due - loop.time())
            else:
                timeout = 3600.0
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()
            self.settle()
            for controller in self.controllers:
                await controller.flush()
