"""MLflow access through the mlflow client (`mlflow-skinny`), so tracking URIs served by plugins keep working
(SageMaker's ARN URIs through `sagemaker-mlflow`, Databricks, a local `sqlite:///` store).

Every call here blocks: the TUI runs them in thread workers, the CLI directly. mlflow is imported on first use, never
at module import, so the first frame does not wait for it. Failures become `TrackingError` with one line for people.

`Tracker` is what the Training pane and `hyperdesk curve --follow` poll: it keeps the runs and the histories it has
fetched, and on each poll asks for a metric's history only when the run's latest step for it moved past the last
step held (the tracking API has no "points after step N" query; the run's own latest-metric record tells whether a
fetch is needed at all, and only the new steps are appended and smoothed).
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from app.tracking.curves import History

DEFAULT_JOB_TAG = "hyperdesk.job"
SYSTEM_PREFIX = "system/"


class TrackingError(Exception):
    """A tracking failure for people. `kind`: unreachable, slow, not-found, bad-input, error."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    name: str
    experiment_id: str
    experiment: str
    status: str
    start_time: int | None
    """ms since the epoch"""
    end_time: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    """key -> latest value"""
    steps: dict[str, int] = field(default_factory=dict)
    """key -> latest step"""
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def duration_seconds(self, now_ms: int) -> float | None:
        if self.start_time is None:
            return None
        end = self.end_time if self.end_time else (now_ms if self.status == "RUNNING" else None)
        return None if end is None else max(0.0, (end - self.start_time) / 1000)

    def job_ref(self, job_tag: str | None = DEFAULT_JOB_TAG) -> tuple[str | None, str]:
        """(namespace or None, job name) this run belongs to: the job tag's value (`NAME` or `NAMESPACE/NAME`) when
        the run has it, else the run name; the namespace from the `kubernetes.namespace` tag when the tag has none."""
        value = self.tags.get(job_tag or DEFAULT_JOB_TAG) or self.name
        namespace, _, name = value.rpartition("/")
        return (namespace or self.tags.get("kubernetes.namespace") or None), name

    @property
    def metric_keys(self) -> list[str]:
        return sorted(self.metrics)

    def as_dict(self, job: str | None) -> dict[str, Any]:
        """`get runs -o json`."""
        return {
            "run_id": self.run_id,
            "name": self.name,
            "experiment": self.experiment,
            "experiment_id": self.experiment_id,
            "status": self.status,
            "start_time": _iso(self.start_time),
            "end_time": _iso(self.end_time),
            "job": job,
            "metrics": {k: _json_number(v) for k, v in sorted(self.metrics.items())},
            "steps": dict(sorted(self.steps.items())),
            "params": dict(sorted(self.params.items())),
        }


def _iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def params_summary(params: dict[str, str], width: int = 40) -> str:
    text = " ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return text if len(text) <= width else text[: width - 1] + "…"


def describe_error(exc: BaseException, uri: str) -> TrackingError:
    """One line for any failure of the mlflow client."""
    if isinstance(exc, TrackingError):
        return exc
    from app.tracking.uri import redact

    shown = redact(uri)
    text = str(exc).replace(uri, shown)
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    lowered = text.lower() + " " + str(exc).lower().replace(uri.lower(), "")
    uri = shown
    if "timed out" in lowered or "timeout" in lowered:
        return TrackingError(f"MLflow at {uri} is slow: no answer within the timeout ({text[:160]})", "slow")
    if any(s in lowered for s in ("connection refused", "max retries", "connectionerror", "remotedisconnected",
                                  "connection aborted", "connection reset", "failed to establish",
                                  "name or service not known", "unable to open database")):
        return TrackingError(f"MLflow at {uri} is unreachable: {_reason(lowered, text)}", "unreachable")
    if "resource_does_not_exist" in lowered or "not found" in lowered:
        return TrackingError(text[:200], "not-found")
    return TrackingError(f"MLflow at {uri}: {text[:200]}")


def _reason(lowered: str, text: str) -> str:
    for phrase in ("connection refused", "connection reset", "connection aborted", "remote end closed connection",
                   "name or service not known", "unable to open database file"):
        if phrase in lowered:
            return phrase
    return text[:160]


class Tracking:
    """The mlflow client for one tracking URI. Blocking: call it from a thread."""

    def __init__(self, uri: str, *, timeout: float = 10.0) -> None:
        if not uri or not uri.strip():
            raise TrackingError("no MLflow tracking URI", "bad-input")
        self.uri = uri.strip()
        self.timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()
        self._experiments: dict[str, str] = {}

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                # A TUI must fail fast and say so: mlflow's default is 7 retries with backoff and a 120 s timeout.
                # The user's own settings of these variables win.
                os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
                os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(1, self.timeout))))
                try:
                    from mlflow.tracking import MlflowClient

                    self._client = MlflowClient(tracking_uri=self.uri)
                except Exception as exc:  # noqa: BLE001 - an unusable URI scheme, a missing plugin
                    from app.tracking.uri import redact

                    raise TrackingError(f"MLflow tracking URI {redact(self.uri)!r} cannot be used: "
                                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                                        "bad-input") from None
            return self._client

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        client = self.client()
        try:
            return fn(client, *args, **kwargs)
        except TrackingError:
            raise
        except Exception as exc:  # noqa: BLE001 - every client failure becomes one line
            raise describe_error(exc, self.uri) from None

    def experiments(self) -> dict[str, str]:
        """experiment id -> name (active experiments)."""
        found = self._call(lambda c: c.search_experiments(max_results=1000))
        self._experiments = {e.experiment_id: e.name for e in found}
        return dict(self._experiments)

    def runs(self, experiment: str | None = None, max_results: int = 500) -> list[RunInfo]:
        """The latest runs (newest first) of one experiment (name or id) or of all."""
        experiments = self.experiments()
        if experiment is not None:
            ids = [i for i, name in experiments.items() if experiment in (i, name)]
            if not ids:
                known = ", ".join(sorted(experiments.values())) or "none"
                raise TrackingError(f"no experiment {experiment!r} (known: {known})", "not-found")
        else:
            ids = list(experiments)
        if not ids:
            return []
        found = self._call(lambda c: c.search_runs(ids, max_results=max_results, order_by=["attributes.start_time DESC"]))
        return [self._info(run) for run in found]

    def run(self, ref: str) -> RunInfo:
        """A run by id, or by name (the newest run of that name)."""
        ref = ref.strip()
        if not ref:
            raise TrackingError("no run named", "bad-input")
        experiments = self.experiments()
        if ids := list(experiments):
            escaped = ref.replace("'", "\\'")
            found = self._call(lambda c: c.search_runs(ids, filter_string=f"attributes.run_name = '{escaped}'",
                                                       max_results=1, order_by=["attributes.start_time DESC"]))
            if found:
                return self._info(found[0])
        if len(ref) == 32 and all(ch in "0123456789abcdef" for ch in ref):
            try:
                return self._info(self._call(lambda c: c.get_run(ref)))
            except TrackingError as exc:
                if exc.kind not in ("not-found", "error"):
                    raise
        from app.tracking.uri import redact

        raise TrackingError(f"no run {ref!r} (neither a run name nor a run id) at {redact(self.uri)}", "not-found")

    def history(self, run_id: str, key: str) -> list[tuple[int, int, float]]:
        found = self._call(lambda c: c.get_metric_history(run_id, key))
        return [(m.step, m.timestamp, m.value) for m in found]

    def _info(self, run: Any) -> RunInfo:
        info, data = run.info, run.data
        metric_objs = getattr(data, "_metric_objs", None) or []
        steps = {m.key: m.step for m in metric_objs}
        return RunInfo(
            run_id=info.run_id,
            name=info.run_name or data.tags.get("mlflow.runName") or info.run_id,
            experiment_id=info.experiment_id,
            experiment=self._experiments.get(info.experiment_id, info.experiment_id),
            status=info.status,
            start_time=info.start_time,
            end_time=info.end_time,
            metrics=dict(data.metrics),
            steps=steps,
            params=dict(data.params),
            tags={k: v for k, v in data.tags.items() if not k.startswith("mlflow.") or k == "mlflow.runName"},
        )


@dataclass
class Poll:
    """What one poll brought: the runs, and which (run id, metric) histories gained points."""

    runs: list[RunInfo]
    changed: set[tuple[str, str]]
    seconds: float


class Tracker:
    """Runs and the histories the screen wants, fetched incrementally. Blocking: one poll at a time, in a thread."""

    def __init__(self, tracking: Tracking) -> None:
        self.tracking = tracking
        self.histories: dict[tuple[str, str], History] = {}
        self.runs: dict[str, RunInfo] = {}
        self._lock = threading.Lock()

    def history(self, run_id: str, key: str) -> History | None:
        return self.histories.get((run_id, key))

    def poll(self, wanted: Iterable[tuple[str, str]], experiment: str | None = None) -> Poll:
        """List the runs, then bring each wanted (run id, metric) history up to the run's latest step.
        Polls from two threads (the timer's and a key's) take turns."""
        with self._lock:
            return self._poll(list(wanted), experiment)

    def _poll(self, wanted: list[tuple[str, str]], experiment: str | None) -> Poll:
        started = time.monotonic()
        runs = self.tracking.runs(experiment)
        self.runs = {run.run_id: run for run in runs}
        changed: set[tuple[str, str]] = set()
        for run_id, key in wanted:
            run = self.runs.get(run_id)
            if run is None:
                continue
            history = self.histories.get((run_id, key))
            latest = run.steps.get(key)
            if key not in run.metrics:
                continue  # the metric is absent from this run: nothing to fetch
            if history is not None and latest is not None and history.last_step is not None \
                    and latest <= history.last_step:
                continue
            points = self.tracking.history(run_id, key)
            if history is None:
                history = self.histories[(run_id, key)] = History(key)
            if history.extend(points) or not history.steps:
                changed.add((run_id, key))
        return Poll(runs, changed, time.monotonic() - started)
