"""Simulated training runs written to a local MLflow store, through `MlflowClient`, on a thread of their own.

The tracking URI is a SQLite store (`sqlite:///DIR/mlflow.db`): the same client hyperdesk reads with writes it, so
the demo's curves reach the TUI through the real MLflow code path. Importing mlflow and creating the store's tables
take a couple of seconds and every client call blocks, so none of it happens on the event loop: the simulation
queues run starts, metric points and run ends, and this thread sends them with `log_batch` (at most 1,000 metrics
per call), a few times a second.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("hyperdesk.demo.mlflow")

BATCH = 1000


def tracking_uri(directory: str | Path) -> str:
    return f"sqlite:///{Path(directory).resolve() / 'mlflow.db'}"


@dataclass
class _Run:
    experiment: str
    name: str
    tags: dict[str, str]
    params: dict[str, str]
    start_ms: int
    run_id: str = ""
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)
    end: tuple[str, int] | None = None


class MlflowWriter:
    """Queues run starts, metrics and ends from the simulation; a daemon thread writes them with MlflowClient."""

    def __init__(self, uri: str, *, interval: float = 0.5) -> None:
        self.uri = uri
        self._interval = interval
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._runs: dict[str, _Run] = {}
        self._thread = threading.Thread(target=self._main, name="hyperdesk-demo-mlflow", daemon=True)
        self._stop = threading.Event()
        self._idle = threading.Event()
        self.ready = threading.Event()
        self.error: str | None = None
        self.run_ids: dict[str, str] = {}
        self._started = False
        self._closing = False
        self._lock = threading.Lock()

    # --- called from the simulation (any thread) ----------------------------------------------------------------------

    def start(self) -> None:
        """Nothing happens until the first run starts: a cluster without training never pays for importing mlflow."""
        self._started = True

    def start_run(self, key: str, *, experiment: str, name: str, tags: dict[str, str], params: dict[str, Any],
                  start_ms: int) -> None:
        self._post("start", (key, _Run(experiment, name, dict(tags), {k: str(v) for k, v in params.items()}, start_ms)))

    def log(self, key: str, metrics: list[tuple[str, float, int, int]]) -> None:
        """Metric points (name, value, timestamp in ms, step) for the run `key`."""
        if metrics:
            self._post("log", (key, metrics))

    def end_run(self, key: str, status: str, end_ms: int) -> None:
        self._post("end", (key, status, end_ms))

    def _post(self, verb: str, payload: Any) -> None:
        self._idle.clear()
        self._inbox.put((verb, payload))
        with self._lock:
            if self._started and not self._closing and self._thread.ident is None:
                self._thread.start()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is written (for tests and shutdown)."""
        if not self._thread.is_alive() and self._inbox.empty():
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                return False
            if self._idle.wait(0.05) and self._inbox.empty():
                return True
        return False

    def stop(self, timeout: float = 10.0, *, flush: bool = True) -> None:
        """Stop the thread, after writing what is queued unless `flush` is False (a store about to be deleted)."""
        with self._lock:
            self._closing = True
            alive = self._thread.is_alive()
        if alive:
            if flush:
                self.flush(timeout)
            self._stop.set()
            self._thread.join(timeout if flush else 1.0)

    # --- the writer thread --------------------------------------------------------------------------------------------

    def _main(self) -> None:
        for noisy in ("mlflow", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self.uri)
            client.search_experiments(max_results=1)  # creates the tables now rather than on the first write
        except Exception as exc:  # noqa: BLE001 - reported through `error`, the demo goes on without curves
            self.error = f"MLflow store {self.uri} unavailable: {exc!r}"
            log.warning(self.error)
            self.ready.set()
            self._idle.set()
            return
        self.ready.set()
        experiments: dict[str, str] = {}
        while not self._stop.is_set():
            self._drain()
            try:
                self._write(client, experiments)
            except Exception as exc:  # noqa: BLE001 - keep the simulation alive; the TUI shows what did arrive
                log.warning("writing to MLflow failed: %r", exc)
            if self._inbox.empty():
                self._idle.set()
            self._stop.wait(self._interval)

    def _drain(self) -> None:
        while True:
            try:
                verb, payload = self._inbox.get_nowait()
            except queue.Empty:
                return
            if verb == "start":
                key, run = payload
                existing = self._runs.get(key)
                if existing is None:
                    self._runs[key] = run
                else:
                    existing.end = None
            elif verb == "log":
                key, metrics = payload
                if key in self._runs:
                    self._runs[key].metrics.extend(metrics)
            elif verb == "end":
                key, status, end_ms = payload
                if key in self._runs:
                    self._runs[key].end = (status, end_ms)

    def _write(self, client: Any, experiments: dict[str, str]) -> None:
        from mlflow.entities import Metric, Param

        for key, run in self._runs.items():
            if not run.run_id:
                experiment_id = experiments.get(run.experiment)
                if experiment_id is None:
                    found = client.get_experiment_by_name(run.experiment)
                    experiment_id = found.experiment_id if found else client.create_experiment(run.experiment)
                    experiments[run.experiment] = experiment_id
                created = client.create_run(experiment_id, start_time=run.start_ms, tags=run.tags, run_name=run.name)
                run.run_id = created.info.run_id
                self.run_ids[key] = run.run_id
                params = [Param(k, v) for k, v in run.params.items()]
                for start in range(0, len(params), 100):
                    client.log_batch(run.run_id, params=params[start : start + 100])
            while run.metrics:
                chunk, run.metrics = run.metrics[:BATCH], run.metrics[BATCH:]
                client.log_batch(run.run_id, metrics=[Metric(k, v, ts, step) for k, v, ts, step in chunk])
            if run.end is not None:
                status, end_ms = run.end
                client.set_terminated(run.run_id, status, end_time=end_ms)
                run.end = None
