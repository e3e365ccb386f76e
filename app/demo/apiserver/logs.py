"""`pods/log`: container logs from per-container buffers that the simulator or a test writes to.

Each container of a pod has a current log and, after `restart`, the previous instance's log (`previous=true`).
The subresource honours `container`, `follow`, `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps` and
`limitBytes`, and answers the kubelet's errors: a container name is required for multi-container pods, unknown
containers and missing previous instances are 400s, and a container that never started is "waiting to start".
A follow stream receives lines as they are written and ends when the pod is deleted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from itertools import islice
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiohttp import web

from . import errors
from .catalog import BUILTIN_KINDS
from .discovery import Subresource
from .printers import parse_time
from .requestinfo import RequestInfo, parse_bool
from .server import ApiServer
from .store import DELETED, Event, Store

POD_KIND = next(k for k in BUILTIN_KINDS if k.plural == "pods")
LOG_SUBRESOURCE = Subresource("", "pods", "log", ("get",), "Pod")


@dataclass(frozen=True, slots=True)
class LogLine:
    time: datetime
    text: str

    def render(self, timestamps: bool) -> bytes:
        if not timestamps:
            return (self.text + "\n").encode()
        stamp = self.time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.time.microsecond * 1000:09d}Z"
        return f"{stamp} {self.text}\n".encode()


@dataclass
class _ContainerLog:
    current: deque[LogLine]
    previous: deque[LogLine] | None = None
    appended: int = 0  # lines ever appended to `current` (which keeps only the newest)
    restarts: int = 0
    closed: bool = False
    written: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        """Wake every follower, and arm a fresh event for the next write."""
        self.written.set()
        self.written = asyncio.Event()


class PodLogs:
    """Log buffers of pod containers, and the `pods/log` handler that serves them."""

    def __init__(self, store: Store, *, max_lines: int = 10_000) -> None:
        self._store = store
        self._max_lines = max_lines
        self._logs: dict[tuple[str, str, str], _ContainerLog] = {}
        store.subscribe(self._on_event)

    def install(self, api: ApiServer) -> None:
        api.register_subresource(LOG_SUBRESOURCE, self._handle)

    # --- writing (simulator, tests) -------------------------------------------------------------------------

    def _log(self, namespace: str, pod: str, container: str) -> _ContainerLog:
        key = (namespace, pod, container)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _ContainerLog(deque(maxlen=self._max_lines))
        return log

    def write(
        self, namespace: str, pod: str, container: str, lines: Iterable[str], *, at: datetime | None = None
    ) -> None:
        """Append lines to a container's current log (each string is one line), stamped `at` or now.

        Lines for a pod that does not exist (any more) are dropped: they would outlive it, and show in the log of
        the next pod of that name.
        """
        if self._store.lookup(POD_KIND, namespace, pod) is None:
            return
        log = self._log(namespace, pod, container)
        stamp = at or datetime.now(UTC)
        fresh = [LogLine(stamp, line.rstrip("\n")) for line in lines]
        log.current.extend(fresh)
        log.appended += len(fresh)
        log.notify()

    def restart(self, namespace: str, pod: str, container: str) -> None:
        """The container restarted: its current log becomes the previous one (`kubectl logs --previous`)."""
        log = self._log(namespace, pod, container)
        log.previous, log.current = log.current, deque(maxlen=self._max_lines)
        log.appended = 0
        log.restarts += 1
        log.notify()

    def _on_event(self, event: Event) -> None:
        if event.type != DELETED or event.kind.resource_key != POD_KIND.resource_key:
            return
        namespace, name = event.new.key
        for key in [k for k in self._logs if k[:2] == (namespace, name)]:
            log = self._logs.pop(key)
            log.closed = True
            log.notify()

    # --- serving ------------------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        if request.method != "GET":
            raise errors.method_not_allowed()
        pod = self._store.resource(POD_KIND).get(info.namespace, info.name).obj
        query = request.query
        container = self._container(pod, query.get("container", ""))
        previous = parse_bool(query.get("previous"), name="previous")
        log = self._logs.get((info.namespace, info.name, container))
        if previous and (log is None or log.previous is None):
            raise errors.bad_request(f'previous terminated container "{container}" in pod "{info.name}" not found')
        if log is None:
            waiting = self._waiting_reason(pod, container)
            if waiting:
                raise errors.bad_request(f'container "{container}" in pod "{info.name}" is waiting to start: {waiting}')
            log = self._log(info.namespace, info.name, container)
        try:
            tail = int(query["tailLines"]) if query.get("tailLines") not in (None, "") else None
            since_seconds = int(query["sinceSeconds"]) if query.get("sinceSeconds") else None
            limit = int(query["limitBytes"]) if query.get("limitBytes") else None
        except ValueError as exc:
            raise errors.bad_request(str(exc)) from None
        since_time = query.get("sinceTime")
        since = parse_time(since_time) if since_time else None
        if since_time and since is None:
            raise errors.bad_request(
                f'sinceTime: Invalid value: "{since_time}": parsing time "{since_time}" as "2006-01-02T15:04:05Z07:00"'
            )
        problems = []
        if since_seconds is not None and since_seconds <= 0:
            problems.append(errors.invalid("sinceSeconds", since_seconds, "must be greater than 0"))
        if since_seconds is not None and since_time:
            problems.append(errors.forbidden("sinceTime", "at most one of sinceTime or sinceSeconds may be specified"))
        if tail is not None and tail < 0:
            problems.append(errors.invalid("tailLines", tail, "must be greater than or equal to 0"))
        if limit is not None and limit < 1:
            problems.append(errors.invalid("limitBytes", limit, "must be greater than 0"))
        if problems:
            raise errors.invalid_object("", "PodLogOptions", "", problems)
        if since_seconds is not None:
            since = datetime.now(UTC) - timedelta(seconds=since_seconds)
        timestamps = parse_bool(query.get("timestamps"), name="timestamps")
        follow = parse_bool(query.get("follow"), name="follow") and not previous

        lines = list(log.previous if previous else log.current)
        if since is not None:
            lines = [line for line in lines if line.time >= since]
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        body = b"".join(line.render(timestamps) for line in lines)
        if limit is not None:
            body = body[:limit]
        if not follow:
            return web.Response(body=body, content_type="text/plain")
        return await self._follow(request, log, body, timestamps, limit)

    async def _follow(
        self, request: web.Request, log: _ContainerLog, initial: bytes, timestamps: bool, limit: int | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        seen, restarts = log.appended, log.restarts
        sent = len(initial)
        if initial:
            await response.write(initial)
        while limit is None or sent < limit:
            waiter = log.written
            if log.closed or log.restarts != restarts:
                break  # the pod is gone, or the container instance being followed has ended
            fresh = min(log.appended - seen, len(log.current))
            if not fresh:
                await waiter.wait()
                continue
            seen = log.appended
            newest = list(islice(reversed(log.current), fresh))  # only the new lines, not a copy of the buffer
            chunk = b"".join(line.render(timestamps) for line in reversed(newest))
            if limit is not None:
                chunk = chunk[: limit - sent]
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
        return response

    @staticmethod
    def _container(pod: dict, requested: str) -> str:
        spec = pod.get("spec") or {}
        names = [c.get("name", "") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]
        name = pod["metadata"]["name"]
        if not requested:
            main = [c.get("name", "") for c in spec.get("containers") or []]
            if len(main) == 1:
                return main[0]
            raise errors.bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(main)}]"
            )
        if requested not in names:
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested

    @staticmethod
    def _waiting_reason(pod: dict, container: str) -> str:
        status = pod.get("status") or {}
        for entry in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
            if entry.get("name") == container:
                waiting = (entry.get("state") or {}).get("waiting")
                return (waiting.get("reason") or "ContainerCreating") if waiting else ""
        return "ContainerCreating" if status.get("phase", "Pending") == "Pending" else ""
