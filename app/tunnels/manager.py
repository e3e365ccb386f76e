"""Tunnels and their registry. Tunnels live as long as the app (or the `hyperdesk connect` process); quitting asks
first while any is open.

A `Tunnel` listens on 127.0.0.1 (never another address) and carries each accepted connection over its route. A
route with a persistent connection (SSH) is watched: when it drops, the tunnel says `reconnecting`, dials again with
backoff, and keeps listening on the same local port meanwhile, so the browser or IDE only has to retry.

The manager can publish its tunnels to a small JSON file per process (`<runtime dir>/tunnels/<pid>.json`, owner
only), which `hyperdesk get tunnels` reads; files of processes that are gone are ignored and removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from app.tunnels.routes import Route, RouteError

BACKOFF_FIRST = 0.25
BACKOFF_MAX = 5.0
PUBLISH_SECONDS = 1.0
PROBE_SECONDS = 0.5


class Closable(Protocol):
    name: str

    async def close(self) -> None: ...


@dataclass(frozen=True)
class TunnelRow:
    """What the Tunnels view and `hyperdesk get tunnels` show of one tunnel: plain data."""

    name: str
    target: str
    local: str
    route: str
    state: str
    bytes_in: int
    bytes_out: int
    uptime_seconds: float
    last_error: str
    note: str = ""
    url: str = ""


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def bind_local(preferred: int) -> tuple[Any, int, str]:
    """A listening socket on 127.0.0.1: `preferred` when free, else any free port, with a note saying so."""
    import socket

    def listen(port: int) -> Any:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    note = ""
    try:
        sock = listen(preferred)
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES) or preferred == 0:
            raise
        sock = listen(0)
        why = "was taken" if exc.errno == errno.EADDRINUSE else "needs root (a privileged port)"
        note = f"local port {preferred} {why}; using {sock.getsockname()[1]}"
    return sock, sock.getsockname()[1], note


async def probe(route: Route) -> None:
    """One stream to the target before saying "open": a forbidden port-forward or a closed pod port is a RouteError
    now, not a surprise on the first request. A port-forward stream waits for the API server's port headers and
    then for the node's refusal (`ready`); an SSH channel is refused when it opens, so silence means it connected."""
    stream = await route.open()
    try:
        ready = getattr(stream, "ready", None)
        if ready is not None:
            await ready(PROBE_SECONDS)
        else:
            try:
                await asyncio.wait_for(stream.read(), PROBE_SECONDS)
            except asyncio.TimeoutError:
                pass
    finally:
        await stream.close()


class Tunnel:
    """127.0.0.1:`local_port` -> `target` over `route`."""

    def __init__(self, name: str, target: str, route: Route, local_port: int = 0, path: str = "/") -> None:
        self.name, self.target, self.route = name, target, route
        self.preferred_port = local_port
        self.path = path
        self.local_port = 0
        self.state = "starting"
        """starting, open, error (the last stream could not reach the target), reconnecting (SSH), closed"""
        self.last_error = ""
        self.note = ""
        self.bytes_in = 0
        """Bytes from the target to the local client."""
        self.bytes_out = 0
        self.started = time.monotonic()
        self.started_wall = time.time()
        self._server: asyncio.base_events.Server | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._streams: set[asyncio.Task[None]] = set()
        self.reconnects = 0
        self.changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}{self.path}"

    def _set(self, state: str, error: str | None = None) -> None:
        self.state = state
        if error is not None:
            self.last_error = error
        self.changed.set()

    async def start(self) -> None:
        """Bind the local port and bring the route up; RouteError (and the port released) when it cannot."""
        sock, self.local_port, self.note = bind_local(self.preferred_port)
        try:
            await self.route.ensure()
            await self._probe()
            self._server = await asyncio.start_server(self._accept, sock=sock)
        except BaseException:  # RouteError, a bug, or the connect being cancelled: release the port and the route
            if self._server is not None:
                self._server.close()
                self._server = None
            sock.close()
            await asyncio.shield(self.route.close())
            raise
        self.started, self.started_wall = time.monotonic(), time.time()
        self._set("open")
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def _probe(self) -> None:
        await probe(self.route)

    async def _supervise(self) -> None:
        """Wait for the route to drop; dial it again with backoff while the local port keeps listening."""
        while True:
            lost = await self.route.wait_lost()
            self._set("reconnecting", str(lost) if lost else None)
            delay = BACKOFF_FIRST
            while True:
                try:
                    await self.route.ensure()
                    break
                except Exception as exc:  # noqa: BLE001 - whatever the dial raised, the supervisor keeps trying
                    self._set("reconnecting", str(exc) or type(exc).__name__)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BACKOFF_MAX)
            self.reconnects += 1
            self._set("open")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            await self._carry(reader, writer)
        except asyncio.CancelledError:
            # the tunnel is closing; re-raising would make asyncio log the connection callback as an error
            pass
        finally:
            writer.close()
            self._streams.discard(task)

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            stream = await self.route.open()
        except RouteError as exc:
            # the listener stays; the state says the target cannot be reached now (until a stream gets through)
            self._set("error" if self.state in ("open", "error") else self.state, str(exc))
            return
        if self.state == "error":
            self._set("open")
        try:
            await self._pump(reader, writer, stream)
        finally:
            await stream.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: Any) -> None:
        async def upstream() -> None:
            while data := await reader.read(256 * 1024):
                self.bytes_out += len(data)
                await stream.write(data)

        async def downstream() -> None:
            while data := await stream.read():
                self.bytes_in += len(data)
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if isinstance(exc, RouteError):
                    self._set(self.state, str(exc))
            if tasks[0] in done and not tasks[0].cancelled() and tasks[0].exception() is None \
                    and not tasks[1].done():
                # the client finished sending: tell the target (half-close), then let the answer come back; the
                # target ends the stream once it has answered
                with contextlib.suppress(Exception):
                    await stream.write_eof()
                with contextlib.suppress(Exception):
                    await tasks[1]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def row(self, now: float | None = None) -> TunnelRow:
        now = time.monotonic() if now is None else now
        return TunnelRow(self.name, self.target, f"127.0.0.1:{self.local_port}", self.route.description,
                         self.state, self.bytes_in, self.bytes_out, max(0.0, now - self.started), self.last_error,
                         self.note, self.url)

    async def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        for task in list(self._streams):
            task.cancel()
        await asyncio.gather(*self._streams, return_exceptions=True)
        await self.route.close()
        self._set("closed")


def runtime_dir(environ: dict[str, str] | None = None) -> Path:
    """Where running processes publish their tunnels: $XDG_RUNTIME_DIR/hyperdesk, else the data dir."""
    from app.config import data_dir

    env = os.environ if environ is None else environ
    base = env.get("XDG_RUNTIME_DIR")
    return (Path(base) / "hyperdesk" if base else data_dir(env)) / "tunnels"


class TunnelManager:
    def __init__(self, publish_dir: Path | None = None) -> None:
        self._tunnels: dict[str, Closable] = {}
        self.publish_dir = publish_dir
        self._publisher: asyncio.Task[None] | None = None
        self._published = ""
        """The listing last written: it is written again only when it changes."""
        self.writes = 0

    def __len__(self) -> int:
        return len(self._tunnels)

    def add(self, tunnel: Closable) -> None:
        """Register `tunnel`; a name already taken (two connects of the same name that started together) gets the
        next free `name#N` here, in one step, so no tunnel is ever replaced and left running unlisted."""
        if self._tunnels.get(tunnel.name, tunnel) is not tunnel:
            tunnel.name = self.unique_name(tunnel.name)
        self._tunnels[tunnel.name] = tunnel
        self._publish()
        if self.publish_dir is not None and self._publisher is None:
            with contextlib.suppress(RuntimeError):
                self._publisher = asyncio.get_running_loop().create_task(self._publish_every())

    def names(self) -> list[str]:
        return sorted(self._tunnels)

    def get(self, name: str) -> Closable | None:
        return self._tunnels.get(name)

    def unique_name(self, base: str) -> str:
        name, n = base, 2
        while name in self._tunnels:
            name, n = f"{base}#{n}", n + 1
        return name

    def rows(self) -> list[TunnelRow]:
        now = time.monotonic()
        return [t.row(now) for _, t in sorted(self._tunnels.items()) if isinstance(t, Tunnel)]

    async def close(self, name: str) -> None:
        tunnel = self._tunnels.pop(name, None)
        if tunnel is not None:
            await tunnel.close()
        self._publish()

    async def close_all(self) -> None:
        for name in list(self._tunnels):
            await self.close(name)
        if self._publisher is not None:
            self._publisher.cancel()
            self._publisher = None
        self._publish()

    # -------------------------------------------------------------------------------- hyperdesk get tunnels

    async def _publish_every(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_SECONDS)
            self._publish()

    def _publish(self) -> None:
        if self.publish_dir is None:
            return
        path = self.publish_dir / f"{os.getpid()}.json"
        tunnels = [t for _, t in sorted(self._tunnels.items()) if isinstance(t, Tunnel)]
        items = []
        for tunnel in tunnels:
            item = asdict(tunnel.row())
            del item["uptime_seconds"]  # readers count it from `since`: the file changes only when the tunnels do
            items.append({**item, "since": round(tunnel.started_wall, 3)})
        text = json.dumps({"pid": os.getpid(), "process_started": process_started(os.getpid()),
                           "tunnels": items}) if items else ""
        if text == self._published:
            return
        try:
            if not items:
                path.unlink(missing_ok=True)
            else:
                self.publish_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                temporary = path.with_suffix(".tmp")
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(temporary, path)
                self.writes += 1
            self._published = text
        except OSError:
            pass  # a listing nobody may read is no reason to break a tunnel


def process_started(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), so a listing left by a dead process whose pid was reused by
    another one is told apart from a live one."""
    import psutil

    try:
        return round(psutil.Process(pid).create_time(), 2)
    except (psutil.Error, OSError):
        return None


def published_rows(directory: Path) -> list[TunnelRow]:
    """Tunnels that running hyperdesk processes published; files of dead processes are removed."""
    rows: list[TunnelRow] = []
    now = time.time()
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            pid = int(path.stem)
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        except PermissionError:
            pass
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            recorded = data.get("process_started")
            if recorded is not None and process_started(pid) not in (None, recorded):
                with contextlib.suppress(OSError):  # the pid now belongs to another process
                    path.unlink()
                continue
            for item in data.get("tunnels", []):
                since = item.pop("since", None)
                item.setdefault("uptime_seconds", max(0.0, now - since) if isinstance(since, (int, float)) else 0.0)
                rows.append(TunnelRow(**item))
        except (OSError, ValueError, TypeError, AttributeError):
            continue
    return rows
