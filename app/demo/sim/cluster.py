"""`DemoCluster`: the embedded API server and a scenario's simulation, started and stopped together.

    async with DemoCluster("hyperpod", seed=1, speed=20) as cluster:
        cluster.url, cluster.kubeconfig_path, cluster.mlflow_uri

    with DemoCluster.start_in_thread(scenario="bare", speed=0) as handle:   # from synchronous code
        handle.advance(60)                                                   # simulated seconds, now
        handle.call(lambda: handle.cluster.simulation.world.store.list("v1", "Pod"))

`hyperdesk demo`, `hyperdesk demo serve` and the test fixtures all run the cluster through this class.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import shutil
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from ..apiserver import LocalApiServer
from .runner import Simulation

T = TypeVar("T")


class DemoCluster:
    def __init__(
        self,
        scenario: str = "hyperpod",
        *,
        seed: int = 0,
        speed: float = 1.0,
        port: int = 0,
        kubeconfig: str | Path | None = None,
        mlflow_dir: str | Path | None = None,
        preroll: float | None = None,
        epoch: datetime | None = None,
        access: Any = None,
        mlflow: bool = True,
    ) -> None:
        """`mlflow=False` runs without an MLflow store (training still logs to pods); `mlflow_dir` defaults to a
        temporary directory removed on stop."""
        self.scenario = scenario
        self.server = LocalApiServer(port=port, kubeconfig_path=kubeconfig, access=access)
        self._own_mlflow_dir = mlflow and mlflow_dir is None and scenario != "empty"
        self._mlflow_dir = Path(mlflow_dir) if mlflow_dir else None
        self._settings = {"seed": seed, "speed": speed, "preroll": preroll, "epoch": epoch}
        self.simulation: Simulation | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def kubeconfig_path(self) -> Path:
        return self.server.kubeconfig_path

    @property
    def mlflow_dir(self) -> Path | None:
        return self._mlflow_dir

    @property
    def mlflow_uri(self) -> str | None:
        return self.simulation.mlflow_uri if self.simulation else None

    async def start(self) -> None:
        if self._own_mlflow_dir:
            self._mlflow_dir = Path(tempfile.mkdtemp(prefix="hyperdesk-demo-mlflow-"))
        await self.server.start()
        try:
            mlflow_dir = self._mlflow_dir if self.scenario != "empty" else None
            self.simulation = Simulation(self.server, self.scenario, mlflow_dir=mlflow_dir, **self._settings)
            await self.simulation.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self.simulation is not None:
            self.simulation.keep_mlflow = not self._own_mlflow_dir
            await self.simulation.stop()
        await self.server.stop()
        if self._own_mlflow_dir and self._mlflow_dir is not None:
            shutil.rmtree(self._mlflow_dir, ignore_errors=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    @classmethod
    def start_in_thread(cls, **kwargs: Any) -> DemoThread:
        """Start a cluster on its own event loop in a daemon thread; `kwargs` go to the constructor."""
        return DemoThread(lambda: cls(**kwargs)).start()


class DemoThread:
    """A `DemoCluster` on a background event loop, usable from synchronous code (the TUI's thread, tests)."""

    def __init__(self, factory: Callable[[], DemoCluster]) -> None:
        self._factory = factory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="hyperdesk-demo", daemon=True)
        self._ready: concurrent.futures.Future[DemoCluster] = concurrent.futures.Future()
        self._cluster: DemoCluster | None = None
        self._stopped = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        cluster = self._factory()
        try:
            self._loop.run_until_complete(cluster.start())
        except BaseException as exc:  # report startup failures to the starting thread
            self._ready.set_exception(exc)
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
            self._stopped.set()
            return
        self._cluster = cluster
        self._ready.set_result(cluster)
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(cluster.stop())
            pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
            self._stopped.set()

    def start(self, timeout: float = 120) -> Self:
        self._thread.start()
        self._ready.result(timeout=timeout)
        return self

    @property
    def cluster(self) -> DemoCluster:
        assert self._cluster is not None
        return self._cluster

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def kubeconfig_path(self) -> Path:
        return self.cluster.kubeconfig_path

    @property
    def mlflow_uri(self) -> str | None:
        return self.cluster.mlflow_uri

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 120, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on the cluster's loop and return its result (awaiting it if it is async)."""

        async def run() -> T:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                return await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=timeout)

    def advance(self, seconds: float) -> None:
        """Move simulated time `seconds` ahead now."""
        simulation = self.cluster.simulation
        if simulation is not None:
            self.call(simulation.advance, seconds)

    def stop(self, timeout: float = 30) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
