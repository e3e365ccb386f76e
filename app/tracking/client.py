"""MLflow access through the mlflow client (`mlflow-skinny`), so tracking URIs served by plugins keep working
(SageMaker's ARN URIs through `sagemaker-mlflow`, Databricks, a local `sqlite:///` store).

Every call here blocks: the TUI runs them in thread workers, the CLI directly. mlflow is imported on first use, never
at module import, so the first frame does not wait for it. Failures become `TrackingError` with one line for people.

`Tracker` is what the Training pane and `hyperdesk curve --follow` poll: it keeps the runs and the histories it has
fetched, and on each poll asks for a metric's history only when the run's latest record for it has a later step
or a later timestamp than any point held. On an http(s) server only the points from the last step held on are asked
for (the server's `get-history-bulk-interval` with `start_step`); other stores (plugins, `sqlite:///`) give the whole
history, of which only the new points are added. A run resumed from a checkpoint into the same run logs steps below
the last one held, which neither MLflow's latest record (the one of the highest step) nor `start_step` shows: so a
running run's history is read whole every `RESUME_CHECK_SECONDS` (twice as long after each read that found no such
point, up to 16 times), and the points not held are merged in where their steps belong.
`Tracker.fetch` runs in a thread and returns the new points;
`Tracker.apply` adds them (on the UI's event loop in the pane, so a chart being drawn never sees a list grow).
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
    stamps: dict[str, int] = field(default_factory=dict)
    """key -> timestamp (ms) of the latest record"""
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
    from app.tracking.uri import redact, secrets_of

    shown = redact(uri)
    message = str(exc).replace(uri, shown)
    for secret in secrets_of(uri):
        message = message.replace(secret, "***")
    text = message
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    lowered = text.lower().replace(shown.lower(), "") + " " + message.lower().replace(shown.lower(), "")
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


def name_literal(name: str) -> str | None:
    """`name` as a string literal of mlflow's search filter. The filter parser keeps backslashes (`'a\\'b'` is the
    value `a\\'b`), so a name with `'` is quoted with `"`; None for a name with both quote characters, which no
    literal can hold."""
    if "'" not in name:
        return f"'{name}'"
    if '"' not in name:
        return f'"{name}"'
    return None


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
            with _http_settings(self.timeout):
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

    @property
    def known_experiments(self) -> dict[str, str]:
        """experiment id -> name, as the last listing found them (no request)."""
        return dict(self._experiments)

    def run(self, ref: str) -> RunInfo:
        """A run by id, or by name (the newest run of that name)."""
        ref = ref.strip()
        if not ref:
            raise TrackingError("no run named", "bad-input")
        experiments = self.experiments()
        if ids := list(experiments):
            quoted = name_literal(ref)
            found = self._call(lambda c: c.search_runs(ids, filter_string=f"attributes.run_name = {quoted}",
                                                       max_results=1, order_by=["attributes.start_time DESC"]))\
                if quoted is not None else []
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

    def get(self, run_id: str) -> RunInfo:
        """One run by id (a run outside the newest listed ones too)."""
        if not self._experiments:
            self.experiments()
        return self._info(self._call(lambda c: c.get_run(run_id)))

    def history(self, run_id: str, key: str) -> list[tuple[int, int, float]]:
        found = self._call(lambda c: c.get_metric_history(run_id, key))
        return [(m.step, m.timestamp, m.value) for m in found]

    @property
    def http(self) -> bool:
        return self.uri.lower().startswith(("http://", "https://"))

    def history_since(self, run_id: str, key: str, start_step: int, end_step: int | None) -> list[tuple[int, int, float]]:
        """The points of steps start_step..end_step: on an http(s) server through `get-history-bulk-interval` (only
        those steps travel), else (or where that answer may be sampled, or the server lacks the call) the whole
        history."""
        if not self.http:
            return self.history(run_id, key)
        end = end_step if end_step is not None and end_step >= start_step else 2 ** 62
        try:
            found = self._call(lambda c: _bulk_interval(self.uri, run_id, key, start_step, end, self.timeout))
        except TrackingError as exc:
            if exc.kind in ("unreachable", "slow"):
                raise
            return self.history(run_id, key)  # an older server or a proxy without the call
        if found is None:
            return self.history(run_id, key)
        return found

    def _info(self, run: Any) -> RunInfo:
        info, data = run.info, run.data
        # The latest record of each metric, with its step and time, is only on the private `_metric_objs` (the
        # public `data.metrics` has values only). Without it the steps are unknown and a poll asks for the points
        # past the last one held every time (still only the new ones on an http server).
        metric_objs = getattr(data, "_metric_objs", None)
        metric_objs = metric_objs if isinstance(metric_objs, (list, tuple)) else []
        steps = {m.key: m.step for m in metric_objs if hasattr(m, "step")}
        stamps = {m.key: m.timestamp for m in metric_objs if hasattr(m, "timestamp")}
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
            stamps=stamps,
            params=dict(data.params),
            tags={k: v for k, v in data.tags.items() if not k.startswith("mlflow.") or k == "mlflow.runName"},
        )


BULK_MAX = 2500
"""The server's cap on points per run of one `get-history-bulk-interval` answer; at the cap it samples."""

_ENV_LOCK = threading.Lock()


class _http_settings:
    """mlflow's HTTP client takes its retries and timeout from the environment only, read at each request. For one
    call, set `MLFLOW_HTTP_REQUEST_MAX_RETRIES=0` and `MLFLOW_HTTP_REQUEST_TIMEOUT` (the client's timeout) to fail
    fast (a TUI must say "unreachable" in seconds: mlflow's default is 7 retries with backoff and 120 s) unless the
    user set them, then put the environment back, so one client's timeout is not another's.

    The environment is the process's, so this is not invisible: while a call is in flight (up to the timeout, 10 s
    by default) a child process started by any thread (a tunnel's ssh or kubectl) inherits those two variables,
    those two only, and only where the user had not set them; a child started outside a call inherits neither.
    `_ENV_LOCK` makes every MLflow call of the process run one at a time, so a call that hangs holds back the
    others (of every `Tracking`) until its timeout."""

    def __init__(self, timeout: float) -> None:
        self.values = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                       "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(max(1, math.ceil(timeout))))}
        self.set: list[str] = []

    def __enter__(self) -> None:
        _ENV_LOCK.acquire()
        for name, value in self.values.items():
            if name not in os.environ:
                os.environ[name] = value
                self.set.append(name)

    def __exit__(self, *exc: Any) -> None:
        for name in self.set:
            os.environ.pop(name, None)
        self.set = []
        _ENV_LOCK.release()


def _bulk_interval(uri: str, run_id: str, key: str, start: int, end: int,
                   timeout: float) -> list[tuple[int, int, float]] | None:
    """Points of steps start..end from the server; None where the answer may be sampled (as many points as the cap:
    the caller then fetches the whole history)."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    response = http_request(get_default_host_creds(uri), "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                            "GET", max_retries=0, timeout=max(1, math.ceil(timeout)),
                            params={"run_ids": run_id, "metric_key": key, "start_step": start, "end_step": end,
                                    "max_results": BULK_MAX})
    if response.status_code == 404:
        return None
    response.raise_for_status()
    found = (response.json() or {}).get("metrics") or []
    if len(found) >= BULK_MAX:
        return None
    return [(int(m.get("step", 0)), int(m.get("timestamp", 0)), _float(m.get("value"))) for m in found]


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


RESUME_CHECK_SECONDS = 60.0
"""How long the latest record of a running run's metric may stand still before its whole history is read, to find
the points of a run resumed from a checkpoint (the wait doubles while nothing is found)."""


@dataclass
class Poll:
    """What one poll brought: the runs, and the new points of the wanted (run id, metric) histories."""

    runs: list[RunInfo]
    points: dict[tuple[str, str], list[tuple[int, int, float]]]
    seconds: float
    changed: set[tuple[str, str]] = field(default_factory=set)
    """Filled by `Tracker.apply`: the histories that gained points (or were made)."""


class Tracker:
    """Runs and the histories the screen wants, fetched incrementally. `fetch` blocks (run it in a thread, one at a
    time); `apply` does not (the pane runs it on its event loop, where the charts read the histories)."""

    def __init__(self, tracking: Tracking, resume_check_seconds: float = RESUME_CHECK_SECONDS) -> None:
        self.tracking = tracking
        self.histories: dict[tuple[str, str], History] = {}
        self.runs: dict[str, RunInfo] = {}
        self._lock = threading.Lock()
        self.resume_check_seconds = resume_check_seconds
        self._resume_checks: dict[tuple[str, str], tuple[float, float]] = {}
        """(run id, metric) -> (monotonic time of the next whole read, the wait before it)."""

    def _resume_check_due(self, pair: tuple[str, str], now: float) -> bool:
        due, _ = self._resume_checks.setdefault(pair, (now + self.resume_check_seconds, self.resume_check_seconds))
        return now >= due

    def _resume_checked(self, pair: tuple[str, str], now: float, found: bool) -> None:
        """After a whole read that found no point before the last one held, the next one waits twice as long (up to
        16 times the first wait); one that found some (a resumed run) starts the wait again from the first."""
        _, wait = self._resume_checks.get(pair, (0.0, self.resume_check_seconds))
        wait = self.resume_check_seconds if found else min(16 * self.resume_check_seconds, 2 * wait)
        self._resume_checks[pair] = (now + wait, wait)

    def history(self, run_id: str, key: str) -> History | None:
        return self.histories.get((run_id, key))

    def poll(self, wanted: Iterable[tuple[str, str]], experiment: str | None = None,
             only: Iterable[str] | None = None) -> Poll:
        """fetch, then apply (the CLI, which has one thread)."""
        return self.apply(self.fetch(wanted, experiment, only))

    def fetch(self, wanted: Iterable[tuple[str, str]], experiment: str | None = None,
              only: Iterable[str] | None = None) -> Poll:
        """List the runs (or, with `only`, get just those runs), then ask for each wanted (run id, metric) history's
        points past the last one held (only where the run's latest record of it is newer, or unknown). A wanted run
        missing from the listing (older than the newest listed) is got by id. Reads the histories, never changes
        them."""
        wanted = list(wanted)
        with self._lock:
            started = time.monotonic()
            runs = [self.tracking.get(r) for r in only] if only is not None else self.tracking.runs(experiment)
            by_id = {run.run_id: run for run in runs}
            for run_id in dict.fromkeys(r for r, _ in wanted):
                if run_id not in by_id:
                    try:
                        by_id[run_id] = self.tracking.get(run_id)
                    except TrackingError as exc:
                        if exc.kind != "not-found":
                            raise
                        continue
                    runs.append(by_id[run_id])
            points: dict[tuple[str, str], list[tuple[int, int, float]]] = {}
            for run_id, key in wanted:
                run = by_id.get(run_id)
                if run is None or key not in run.metrics:
                    continue  # the run or the metric is absent: nothing to fetch
                history = self.histories.get((run_id, key))
                last = history.last_point if history is not None else None
                latest_step, latest_ts = run.steps.get(key), run.stamps.get(key)
                if history is None or last is None:
                    points[(run_id, key)] = self.tracking.history(run_id, key)
                    continue
                if run.status == "RUNNING" and self._resume_check_due((run_id, key), started):
                    # MLflow's latest record is the one of the highest step: a run resumed from a checkpoint into
                    # the same run (logging steps below the last one held, at later times) does not show there, and
                    # `start_step` would skip its points. Now and then a running run's history is read whole.
                    found = history.unseen(self.tracking.history(run_id, key))
                    self._resume_checked((run_id, key), started, any((p[0], p[1]) < last for p in found))
                    if found:
                        points[(run_id, key)] = found
                    continue
                newest = history.newest if history.newest is not None else max(history.times)
                if latest_step is not None and latest_ts is not None \
                        and latest_step <= last[0] and latest_ts <= newest:
                    continue  # neither a later step nor a later record than those held: nothing asked
                if latest_step is not None and latest_step < last[0]:
                    # a store whose latest record is the newest one shows a resume: the whole history is asked for
                    points[(run_id, key)] = history.unseen(self.tracking.history(run_id, key))
                else:
                    points[(run_id, key)] = self.tracking.history_since(run_id, key, last[0], latest_step)
            return Poll(runs, points, time.monotonic() - started)

    def apply(self, poll: Poll) -> Poll:
        """Take in what `fetch` brought: the runs, and the new points appended to their histories."""
        self.runs = {run.run_id: run for run in poll.runs}
        for pair, points in poll.points.items():
            history = self.histories.get(pair)
            if history is None:
                history = self.histories[pair] = History(pair[1])
                poll.changed.add(pair)
            if history.extend(points):
                poll.changed.add(pair)
        return poll

    def prune(self, keep: Iterable[tuple[str, str]]) -> None:
        """Forget the histories not in `keep` (runs no longer charted)."""
        keep = set(keep)
        for pair in [p for p in self.histories if p not in keep]:
            del self.histories[pair]
