"""`DemoCluster`: the embedded API server and a scenario's simulation, started and stopped together.

    async with DemoCluster("hyperpod", seed=1, speed=20) as cluster:
        cluster.url, cluster.kubeconfig_path, cluster.mlflow_uri

    with DemoCluster.start_in_thread(scenario="bare", speed=0) as handle:   # from synchronous code
        handle.advance(60)                                                   # simulated seconds, now
        handle.call(lambda: handle.cluster.simulation.world.store.list("v1", "Pod"))

`hyperdesk demo`, `hyperdesk demo serve` and the test fixtures all run the cluster through this class.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ..apiserver import LocalApiServer
from ..loopthread import LoopThread
from .runner import Simulation


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


class DemoThread(LoopThread[DemoCluster]):
    """A `DemoCluster` on a background event loop, usable from synchronous code (the TUI's thread, tests).

    Startup and `call` wait 120 s, `stop` 30 s (see `LoopThread`)."""

    thread_name = "hyperdesk-demo"
    start_timeout = 120
    call_timeout = 120

    @property
    def cluster(self) -> DemoCluster:
        return self.running

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def kubeconfig_path(self) -> Path:
        return self.cluster.kubeconfig_path

    @property
    def mlflow_uri(self) -> str | None:
        return self.cluster.mlflow_uri

    def advance(self, seconds: float) -> None:
        """Move simulated time `seconds` ahead now."""
        simulation = self.cluster.simulation
        if simulation is not None:
            self.call(simulation.advance, seconds)
