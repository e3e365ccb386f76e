"""Pod logs for the Jobs pane and `hyperdesk logs`: one pod's stream, all pods of a job interleaved, and a bounded
ring buffer for the view.

    async for line in stream_logs(conn, "team-a", "train-pod-0", follow=True, tail_lines=100):
        ...
    async for pod, line in job_logs(conn, row.pods, follow=False, tail_lines=None, timestamps=False,
                                    previous=False, prefix=True):
        ...

Memory stays bounded whatever the pods write: lines longer than `MAX_LINE_BYTES` are cut (and marked), several
pods feed one bounded queue (a slow reader slows the streams, the server buffers), and `LogBuffer` keeps the
newest `maxlen` lines. Without `follow`, the lines of several pods are merged in time order (the server's
timestamps, asked for and stripped again when not wanted); with `follow` they come as they arrive.
"""

from __future__ import annotations

import asyncio
import heapq
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from app.cluster.actions import EXIT_BAD_INPUT, EXIT_FAILURE, ActionError
from app.cluster.connection import ApiError, ClusterConnection

MAX_LINE_BYTES = 16 * 1024
TRUNCATED = " …[line cut]"
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def _split_pod(pod: str, namespace: str | None = None) -> tuple[str, str]:
    if "/" in pod:
        ns, _, name = pod.partition("/")
        return ns, name
    if namespace is None:
        raise ValueError(f"pod {pod!r} has no namespace")
    return namespace, pod


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace").rstrip("\r")


async def _default_container(conn: ClusterConnection, namespace: str, pod: str) -> str | None:
    """The container kubectl would pick: the default-container annotation, else the first container."""
    try:
        obj = await conn.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}")
    except ApiError:
        return None
    annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
    containers = [c.get("name") for c in (obj.get("spec") or {}).get("containers") or ()]
    if annotation in containers:
        return annotation
    return containers[0] if containers else None


async def stream_logs(conn: ClusterConnection, namespace: str, pod: str, *, container: str | None = None,
                      follow: bool = False, tail_lines: int | None = None, timestamps: bool = False,
                      previous: bool = False, since_seconds: int | None = None,
                      max_line_bytes: int = MAX_LINE_BYTES) -> AsyncIterator[str]:
    """The lines of one container's log as they arrive (without their newline).

    With `follow`, the stream ends when the container stops or the pod is deleted. Without `container`, a pod with
    several containers shows its default one (as kubectl does). Raises ActionError with the server's own words
    (`container "x" in pod "y" is waiting to start: ContainerCreating`, `previous terminated container ... not
    found`); exit code 2 when the pod or container does not exist, 1 otherwise.
    """
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
    query: dict[str, Any] = {"container": container, "follow": follow or None, "tailLines": tail_lines,
                             "timestamps": timestamps or None, "previous": previous or None,
                             "sinceSeconds": since_seconds}
    headers = {"Accept": "text/plain, */*"}
    try:
        stream = conn.stream(path, query, headers)
        response = await stream.__aenter__()
    except ApiError as exc:
        if container is None and exc.status == 400 and "container name must be specified" in str(exc):
            chosen = await _default_container(conn, namespace, pod)
            if chosen:
                retry = stream_logs(conn, namespace, pod, container=chosen, follow=follow, tail_lines=tail_lines,
                                    timestamps=timestamps, previous=previous, since_seconds=since_seconds,
                                    max_line_bytes=max_line_bytes)
                try:
                    async for line in retry:
                        yield line
                finally:
                    await retry.aclose()
                return
        code = EXIT_BAD_INPUT if exc.status in (400, 403, 404) else EXIT_FAILURE
        raise ActionError(f"logs of pod {namespace}/{pod}: {exc}", code) from None
    try:
        buffer = bytearray()
        skipping = False  # inside the rest of a line that was already cut
        async for chunk in response.content.iter_any():
            buffer += chunk
            while True:
                end = buffer.find(b"\n")
                if end < 0:
                    break
                if skipping:
                    skipping = False
                elif end > max_line_bytes:
                    yield _decode(bytes(buffer[:max_line_bytes])) + TRUNCATED
                else:
                    yield _decode(bytes(buffer[:end]))
                del buffer[:end + 1]
            if len(buffer) > max_line_bytes:
                if not skipping:
                    yield _decode(bytes(buffer[:max_line_bytes])) + TRUNCATED
                skipping = True
                buffer.clear()
        if buffer and not skipping:
            yield _decode(bytes(buffer))
    except (ApiError, OSError, asyncio.TimeoutError) as exc:
        raise ActionError(f"logs of pod {namespace}/{pod}: the stream broke: {exc or type(exc).__name__}") from None
    except Exception as exc:  # noqa: BLE001 - aiohttp's payload errors
        if type(exc).__module__.startswith("aiohttp"):
            raise ActionError(f"logs of pod {namespace}/{pod}: the stream broke: {exc or type(exc).__name__}") from None
        raise
    finally:
        await stream.__aexit__(None, None, None)


# --------------------------------------------------------------------------------------------- several pods

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?\s")


def split_timestamp(line: str) -> tuple[str, str]:
    """(sortable key, line without its RFC 3339 timestamp); key `""` when the line has none."""
    match = _STAMP.match(line)
    if not match:
        return "", line
    key = f"{match.group(1)}.{(match.group(2) or '').ljust(9, '0')}"
    return key, line[match.end():]


def _pod_label(pod: str) -> str:
    return pod.rpartition("/")[2]


async def job_logs(conn: ClusterConnection, pods: list[str], *, follow: bool = False, tail_lines: int | None = None,
                   timestamps: bool = False, previous: bool = False, prefix: bool = False,
                   container: str | None = None, namespace: str | None = None,
                   on_error: Callable[[str, str], None] | None = None,
                   queue_size: int = 1000) -> AsyncIterator[tuple[str, str]]:
    """(pod, line) from every pod of a job. `pods` are `namespace/name` (as JobRow.pods), or names with `namespace`.

    `prefix` starts each line with `[pod] `. A pod whose log cannot be read (gone, not started) is reported to
    `on_error(pod, message)` and the others go on; without `on_error`, ActionError is raised once the others have
    ended, naming every pod that failed.
    """
    targets = [_split_pod(p, namespace) for p in pods]
    if not targets:
        raise ActionError("the job has no pods (yet): there are no logs to show", EXIT_BAD_INPUT)
    failures: list[str] = []

    def failed(pod: str, message: str) -> None:
        if on_error is not None:
            on_error(pod, message)
        else:
            failures.append(message)

    def shown(pod: str, line: str) -> tuple[str, str]:
        return pod, f"[{_pod_label(pod)}] {line}" if prefix else line

    options = {"container": container, "tail_lines": tail_lines, "previous": previous}
    if len(targets) == 1 or follow:
        stream = _arrival_order(conn, targets, follow=follow, timestamps=timestamps, failed=failed,
                                queue_size=queue_size, **options)
    else:
        stream = _time_order(conn, targets, timestamps=timestamps, failed=failed, **options)
    try:
        async for pod, line in stream:
            yield shown(pod, line)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    if failures:
        raise ActionError("; ".join(failures) if len(failures) < 4 else
                          f"{failures[0]}; and {len(failures) - 1} more pods", EXIT_FAILURE)


async def _arrival_order(conn: ClusterConnection, targets: list[tuple[str, str]], *, follow: bool, timestamps: bool,
                         failed: Callable[[str, str], None], queue_size: int, **options: Any) -> AsyncIterator[tuple[str, str]]:
    queue: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue(maxsize=queue_size)

    async def pump(namespace: str, name: str) -> None:
        key = f"{namespace}/{name}"
        lines = stream_logs(conn, namespace, name, follow=follow, timestamps=timestamps, **options)
        try:
            async for line in lines:
                await queue.put((key, line))
        except ActionError as exc:
            failed(key, str(exc))
        finally:
            await lines.aclose()
        await queue.put((key, None))

    tasks = [asyncio.create_task(pump(ns, name)) for ns, name in targets]
    try:
        running = len(tasks)
        while running:
            key, line = await queue.get()
            if line is None:
                running -= 1
                continue
            yield key, line
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _time_order(conn: ClusterConnection, targets: list[tuple[str, str]], *, timestamps: bool,
                      failed: Callable[[str, str], None], **options: Any) -> AsyncIterator[tuple[str, str]]:
    """A k-way merge on the server's timestamps: one pending line per pod in memory."""
    streams: list[tuple[str, AsyncIterator[str]]] = [
        (f"{ns}/{name}", stream_logs(conn, ns, name, timestamps=True, **options).__aiter__()) for ns, name in targets]

    async def pull(index: int) -> tuple[str, int, str] | None:
        key, stream = streams[index]
        try:
            line = await stream.__anext__()
        except StopAsyncIteration:
            return None
        except ActionError as exc:
            failed(key, str(exc))
            return None
        stamp, text = split_timestamp(line)
        return stamp, index, line if timestamps else text

    heap: list[tuple[str, int, str]] = []
    try:
        for entry in await asyncio.gather(*(pull(i) for i in range(len(streams)))):
            if entry is not None:
                heapq.heappush(heap, entry)
        while heap:
            _, index, line = heapq.heappop(heap)
            yield streams[index][0], line
            entry = await pull(index)
            if entry is not None:
                heapq.heappush(heap, entry)
    finally:
        for _, stream in streams:
            await stream.aclose()  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------- buffer

class LogBuffer:
    """The newest `maxlen` lines (each cut to `max_line_chars`): what the log view shows and searches.

    `dropped` counts lines that fell off the front, so a view can keep absolute line numbers:
    the line at index `i` is line `dropped + i` of everything appended.
    """

    def __init__(self, maxlen: int = 50_000, max_line_chars: int = MAX_LINE_BYTES) -> None:
        if maxlen <= 0:
            raise ValueError("maxlen must be positive")
        self.maxlen = maxlen
        self.max_line_chars = max_line_chars
        self._lines: deque[str] = deque(maxlen=maxlen)
        self.dropped = 0

    def append(self, line: str) -> None:
        if len(line) > self.max_line_chars:
            line = line[: self.max_line_chars] + TRUNCATED
        if len(self._lines) == self.maxlen:
            self.dropped += 1
        self._lines.append(line)

    def extend(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.append(line)

    def clear(self) -> None:
        self.dropped += len(self._lines)
        self._lines.clear()

    def __len__(self) -> int:
        return len(self._lines)

    def __getitem__(self, index: int) -> str:
        return self._lines[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._lines)

    def tail(self, count: int) -> list[str]:
        count = min(count, len(self._lines))
        return [self._lines[i] for i in range(len(self._lines) - count, len(self._lines))]

    def search(self, pattern: str | re.Pattern[str], *, regex: bool = False, ignore_case: bool = True) -> list[int]:
        """Indices of the lines matching `pattern` (a substring, or a regular expression with `regex`)."""
        if isinstance(pattern, re.Pattern):
            compiled = pattern
        elif regex:
            compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        else:
            if not pattern:
                return []
            if ignore_case:
                needle = pattern.casefold()
                return [i for i, line in enumerate(self._lines) if needle in line.casefold()]
            return [i for i, line in enumerate(self._lines) if pattern in line]
        return [i for i, line in enumerate(self._lines) if compiled.search(line)]
