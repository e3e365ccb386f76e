"""`pods/portforward` over WebSocket, with the `v4.channel.k8s.io` framing the official Python client speaks.

For the n-th requested port, channel 2n carries data and channel 2n+1 errors; each channel's first server frame is
the port number (two bytes, little-endian). Every frame starts with its channel byte. A pod port is backed by a
local TCP port registered for it (the simulator's Jupyter server, a test's echo server); when nothing is
registered, or nothing listens there, the error channel says so in the container runtime's words and the data
channel is closed, as on a real node.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

from . import errors
from .catalog import BUILTIN_KINDS
from .discovery import Subresource
from .requestinfo import RequestInfo
from .server import ApiServer
from .store import DELETED, Event, Store

POD_KIND = next(k for k in BUILTIN_KINDS if k.plural == "pods")
PORTFORWARD_SUBRESOURCE = Subresource("", "pods", "portforward", ("create", "get"), "PodPortForwardOptions")
PROTOCOL = "v4.channel.k8s.io"
_CHUNK = 256 * 1024


class PortForwards:
    """Local TCP ports behind pod ports, and the WebSocket handler that connects to them."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._targets: dict[tuple[str, str, int], int] = {}
        store.subscribe(self._on_event)

    def install(self, api: ApiServer) -> None:
        api.register_subresource(PORTFORWARD_SUBRESOURCE, self._handle)

    def register(self, namespace: str, pod: str, port: int, local_port: int) -> None:
        """Forward connections to `port` of `pod` to 127.0.0.1:`local_port`."""
        self._targets[(namespace, pod, port)] = local_port

    def unregister(self, namespace: str, pod: str, port: int) -> None:
        self._targets.pop((namespace, pod, port), None)

    def target(self, namespace: str, pod: str, port: int) -> int | None:
        """The local port behind `port` of `pod` (None: nothing registered)."""
        return self._targets.get((namespace, pod, port))

    def _on_event(self, event: Event) -> None:
        if event.type == DELETED and event.kind.resource_key == POD_KIND.resource_key:
            namespace, name = event.new.key
            for key in [k for k in self._targets if k[:2] == (namespace, name)]:
                del self._targets[key]

    async def _handle(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        pod = self._store.resource(POD_KIND).get(info.namespace, info.name).obj
        offered = {p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")}
        if PROTOCOL not in offered:
            # kubectl port-forward speaks SPDY (tunnelled or not), which this server does not implement.
            raise errors.bad_request(
                f"port-forwarding is served over WebSocket with the {PROTOCOL} protocol only (as the official "
                "Python client speaks it); the SPDY protocol of kubectl port-forward is not supported"
            )
        ports = _ports(request.query.getall("ports", []))
        if not ports:
            raise errors.bad_request('query parameter "ports" is required')
        socket = web.WebSocketResponse(protocols=(PROTOCOL,), max_msg_size=16 * 1024 * 1024, autoping=True)
        await socket.prepare(request)
        for index, port in enumerate(ports):
            header = port.to_bytes(2, "little")
            await socket.send_bytes(bytes((2 * index,)) + header)
            await socket.send_bytes(bytes((2 * index + 1,)) + header)
        writers: dict[int, asyncio.StreamWriter] = {}
        readers: dict[int, asyncio.StreamReader] = {}
        for index, port in enumerate(ports):
            connection = await self._connect(info.namespace, pod, port)
            if isinstance(connection, str):
                await socket.send_bytes(bytes((2 * index + 1,)) + connection.encode())
                continue
            readers[2 * index], writers[2 * index] = connection
        pumps = [asyncio.create_task(_pump(reader, socket, channel, writers)) for channel, reader in readers.items()]
        if not writers:
            await socket.close()
            return socket
        try:
            await _receive(socket, writers)
        finally:
            for task in pumps:
                task.cancel()
            for writer in writers.values():
                writer.close()
            await socket.close()
        return socket

    async def _connect(
        self, namespace: str, pod: dict, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
        local = self._targets.get((namespace, pod["metadata"]["name"], port))
        if local is not None:
            try:
                return await asyncio.open_connection("127.0.0.1", local)
            except OSError:
                pass
        uid = pod["metadata"].get("uid", "")
        netns = f"/var/run/netns/cni-{uid[:8]}"
        return (
            f"an error occurred forwarding {port} -> {port}: error forwarding port {port} to pod {uid}, uid : "
            f'failed to execute portforward in network namespace "{netns}": failed to connect to localhost:{port} '
            f'inside namespace "{uid}", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused '
        )


def _ports(values: list[str]) -> list[int]:
    ports: list[int] = []
    for value in values:
        for text in value.split(","):
            try:
                port = int(text)
            except ValueError:
                raise errors.bad_request(f'invalid port "{text}"') from None
            if not 0 < port < 65536:
                raise errors.bad_request(f"port {port} must be between 1 and 65535, inclusive")
            ports.append(port)
    return ports


async def _pump(
    reader: asyncio.StreamReader,
    socket: web.WebSocketResponse,
    channel: int,
    writers: dict[int, asyncio.StreamWriter],
) -> None:
    """Target → client: data frames on `channel`. A target that closes ends its own channel; the WebSocket closes
    when the last one does."""
    prefix = bytes((channel,))
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(_CHUNK):
            await socket.send_bytes(prefix + data)
    writer = writers.pop(channel, None)
    if writer is not None:
        writer.close()
    if not writers:
        await socket.close()


async def _receive(socket: web.WebSocketResponse, writers: dict[int, asyncio.StreamWriter]) -> None:
    """Client → target: data frames to the connection of their channel, until either side closes."""
    async for message in socket:
        if message.type != WSMsgType.BINARY or not message.data:
            continue
        writer = writers.get(message.data[0])
        if writer is None:
            continue
        writer.write(message.data[1:])
        await writer.drain()
