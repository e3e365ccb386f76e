"""Fixtures for the simulated cluster behind `hyperdesk demo` (app/demo/sim).

- `hyperpod_cluster` (module scope): the `hyperpod` scenario with its half hour of history, an MLflow store in a
  temporary directory, time paused after the pre-roll (`speed=0`): a test moves it with `advance(seconds)`, so
  what it sees is deterministic. `hyperpod_cluster.url`, `.kubeconfig_path`, `.mlflow_uri`.
- `bare_cluster`: the `bare` scenario (nodes, queues, controllers, no workloads), paused, without MLflow; tests
  submit their own objects and `advance` time to watch the controllers act.
- `demo_cluster(**kwargs)`: a factory for other settings (`scenario`, `seed`, `speed`, `epoch`, `preroll`,
  `mlflow`...; see `DemoCluster`), stopped at the end of the test.
- `demo_kubectl(handle)`: a `Kubectl` (see tests/plugins/apiserver.py) pointed at a demo cluster.

    def test_something(bare_cluster, demo_kubectl):
        kubectl = demo_kubectl(bare_cluster)
        kubectl("create", "-f", "-", stdin=JOB_YAML)
        bare_cluster.advance(60)
        assert kubectl.json("get", "job", "x", "-n", "hyperpod-ns-nlp")["status"]["succeeded"] == 1

Both fixtures fail the test if a controller raised while it ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.demo.sim import DemoCluster, DemoThread
from tests.plugins.apiserver import Kubectl

HYPERPOD_SEED = 7


def _errors(handle: DemoThread) -> list[str]:
    simulation = handle.cluster.simulation
    return list(simulation.errors) if simulation is not None else []


@pytest.fixture(scope="module")
def hyperpod_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoThread]:
    mlflow_dir = tmp_path_factory.mktemp("mlflow")
    with DemoCluster.start_in_thread(scenario="hyperpod", seed=HYPERPOD_SEED, speed=0, mlflow_dir=mlflow_dir) as handle:
        yield handle
        assert _errors(handle) == []


@pytest.fixture
def bare_cluster() -> Iterator[DemoThread]:
    with DemoCluster.start_in_thread(scenario="bare", seed=3, speed=0, mlflow=False) as handle:
        yield handle
        assert _errors(handle) == []


@pytest.fixture
def demo_cluster() -> Iterator[Callable[..., DemoThread]]:
    started: list[DemoThread] = []

    def start(**kwargs: Any) -> DemoThread:
        kwargs.setdefault("speed", 0)
        handle = DemoCluster.start_in_thread(**kwargs)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
    for handle in started:
        assert _errors(handle) == []


@pytest.fixture
def demo_kubectl(tmp_path: Path) -> Callable[[DemoThread], Kubectl]:
    def make(handle: DemoThread) -> Kubectl:
        return Kubectl(handle.kubeconfig_path, tmp_path / "kubectl-cache")

    return make
