"""Routes: how one TCP stream reaches a port inside the cluster.

- `PortForwardRoute`: the API server's `pods/portforward` subresource, spoken over aiohttp's WebSocket with the
  `v4.channel.k8s.io` framing (channel 0 data, channel 1 errors; each opens with the port as two little-endian
  bytes). One WebSocket per stream, authenticated exactly as the cluster connection's other requests.
- `SshRoute`: a `direct-tcpip` channel through a login node or bastion over asyncssh, which reads `~/.ssh/config`
  (Host aliases, User, Port, IdentityFile, ProxyJump), uses the agent and verifies the host key against
  known_hosts. One SSH connection carries every stream; keepalives detect a dead route and `ensure()` dials again.

Both give the tunnel an `asyncio`-style pair: `(read(n) -> bytes, write(bytes), close())` behind `Stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

PORTFORWARD_PROTOCOL = "v4.channel.k8s.io"
SAFE_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
KEEPALIVE_SECONDS = 5.0
KEEPALIVE_COUNT = 2
WS_QUIET_AFTER_EOF = 2.0
"""Seconds a port-forward stream waits for more of the answer once its client has finished sending."""
READY_SECONDS = 30.0
"""How long a probe waits for the port-forward's port headers before calling the API server silent."""


class RouteError(Exception):
    """The route cannot reach the target now (server down, refused, forbidden); the message is for the user."""


class HostKeyError(RouteError):
    """The SSH server's host key is unknown or changed: the connection was refused. `fingerprint` is the key the
    server offered (SHA256), so the user can compare it with what their administrator publishes."""

    def __init__(self, message: str, host: str, port: int, fingerprint: str | None, changed: bool) -> None:
        super().__init__(message)
        self.host, self.port, self.fingerprint, self.changed = host, port, fingerprint, changed


class Stream(Protocol):
    async def read(self) -> bytes: ...
    """The next chunk; b'' at the end."""

    async def write(self, data: bytes) -> None: ...

    async def write_eof(self) -> None:
        """The local client finished sending: pass the end on (a half-close where the route has one)."""

    async def close(self) -> None: ...


class Route(Protocol):
    kind: str
    """`ssh` or `api`."""
    description: str

    async def ensure(self) -> None:
        """Make sure the route is up (dial it if needed); RouteError when it cannot be."""

    async def open(self) -> Stream: ...

    async def wait_lost(self) -> BaseException | None:
        """Return when a route with a persistent connection has lost it (never, for a route without one)."""

    async def close(self) -> None: ...


# --------------------------------------------------------------------------------------------- api portforward


class _WsStream:
    def __init__(self, session: Any, socket: Any, port: int) -> None:
        self._session, self._socket, self._port = session, socket, port
        self._headers_seen: set[int] = set()
        self._ending = asyncio.Event()
        self._pending: asyncio.Future[Any] | None = None

    async def _receive(self) -> Any:
        """The next WebSocket message; None once the client has finished and the target stays quiet."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._socket.receive())
        if not self._ending.is_set():
            ending = asyncio.ensure_future(self._ending.wait())
            try:
                await asyncio.wait([self._pending, ending], return_when=asyncio.FIRST_COMPLETED)
            finally:
                ending.cancel()
        if not self._pending.done():
            done, _ = await asyncio.wait([self._pending], timeout=WS_QUIET_AFTER_EOF)
            if not done:
                return None
        pending, self._pending = self._pending, None
        return pending.result()

    async def read(self) -> bytes:
        from aiohttp import WSMsgType

        while True:
            message = await self._receive()
            if message is None:
                await self.close()
                return b""
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                return b""
            if message.type != WSMsgType.BINARY or not message.data:
                continue
            channel, payload = message.data[0], message.data[1:]
            if channel not in self._headers_seen:  # the port header that opens each channel
                self._headers_seen.add(channel)
                payload = payload[2:]
            if channel == 1 and payload:
                raise RouteError(payload.decode("utf-8", "replace").strip())
            if channel == 0 and payload:
                return bytes(payload)

    async def ready(self, quiet: float) -> None:
        """For a probe: wait (up to READY_SECONDS) for both channels' port headers, which say the API server and
        the node began the forward, then up to `quiet` seconds more, plus as long as the headers took to come, for
        the node's refusal on the error channel. So the verdict does not hang on how fast the API server or a
        credential plugin answers; data from the target ends the wait at once. RouteError when refused."""
        from aiohttp import WSMsgType

        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline: float | None = None
        while True:
            if deadline is None:
                timeout = started + READY_SECONDS - loop.time()
            else:
                timeout = deadline - loop.time()
            if self._pending is None:
                self._pending = asyncio.ensure_future(self._socket.receive())
            done, _ = await asyncio.wait([self._pending], timeout=max(0.0, timeout))
            if not done:
                if deadline is None:
                    raise RouteError(f"the port-forward to port {self._port} did not begin within "
                                     f"{READY_SECONDS:g} s: the API server or the node does not answer")
                return  # the headers came and no refusal followed: the target accepted the connection
            pending, self._pending = self._pending, None
            message = pending.result()
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                if deadline is None:
                    raise RouteError(f"the API server ended the port-forward to port {self._port} before it began")
                return
            if message.type != WSMsgType.BINARY or not message.data:
                continue
            channel, payload = message.data[0], message.data[1:]
            if channel not in self._headers_seen:
                self._headers_seen.add(channel)
                payload = payload[2:]
            if channel == 1 and payload:
                raise RouteError(payload.decode("utf-8", "replace").strip())
            if channel == 0 and payload:
                return  # the target itself spoke (an sshd's banner)
            if deadline is None and {0, 1} <= self._headers_seen:
                deadline = loop.time() + quiet + (loop.time() - started)

    async def write(self, data: bytes) -> None:
        await self._socket.send_bytes(b"\x00" + data)

    async def write_eof(self) -> None:
        # the v4 port-forward protocol cannot half-close a stream, and closing now would lose the answer (or the
        # error) still on its way: from now on the stream ends once the target has been quiet for a moment
        self._ending.set()

    async def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        with contextlib.suppress(Exception):
            await self._socket.close()


def tls_context(api_client: Any) -> Any:
    """The TLS settings the cluster connection's own requests use: the client's SSL context, or, should a client
    version not keep one, a context built from its Configuration the same way. Never "no verification" unless the
    kubeconfig itself says insecure-skip-tls-verify."""
    import ssl

    context = getattr(getattr(api_client, "rest_client", None), "ssl_context", None)
    if isinstance(context, ssl.SSLContext):
        return context
    configuration = api_client.configuration
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file or None)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _PodGone(RouteError):
    """The route's pod no longer exists: the space's pod may have to be resolved again."""


async def resolved(resolve: Any) -> Any:
    """The space's pod now, from a route's `resolve`; RouteError (the resolver's own words) when there is none."""
    from app.tunnels.targets import TargetError

    try:
        return await resolve()
    except TargetError as exc:
        raise RouteError(str(exc)) from None


class PortForwardRoute:
    """`pods/portforward` through the API server of a `ClusterConnection`."""

    kind = "api"

    def __init__(self, connection: Any, namespace: str, pod: str, port: int, resolve: Any = None) -> None:
        self.connection, self.namespace, self.pod, self.port = connection, namespace, pod, port
        self.description = "api portforward"
        self._session: Any = None
        self.resolve = resolve
        """None, or a coroutine function giving the space's pod now (an object with `pod` and `pod_ip`): asked
        when the pod is gone (a space stopped and started, a pod rescheduled), so the tunnel finds the new one."""

    async def ensure(self) -> None:
        from app.cluster.connection import ApiError

        try:
            await self.connection.open()
        except ApiError as exc:
            raise RouteError(str(exc)) from None

    async def open(self) -> Stream:
        try:
            return await self._open()
        except _PodGone as gone:
            if self.resolve is None:
                raise RouteError(str(gone)) from None
            pod = (await resolved(self.resolve)).pod
            if pod == self.pod:
                raise RouteError(str(gone)) from None
            self.pod = pod
        try:
            return await self._open()
        except _PodGone as gone:
            raise RouteError(str(gone)) from None

    async def _open(self) -> Stream:
        import aiohttp

        from app.cluster.connection import ApiError

        try:
            api_client = await self.connection.open()
        except ApiError as exc:
            raise RouteError(str(exc)) from None
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.pod}/portforward"
        _, url, headers, _, _ = await api_client.param_serialize(
            method="GET", resource_path=path, query_params=[("ports", str(self.port))],
            header_params={}, auth_settings=["BearerToken"])
        url = url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        if self._session is None or self._session.closed:
            ssl_context = tls_context(api_client) if url.startswith("wss://") else False
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context))
        try:
            socket = await self._session.ws_connect(url, headers=headers, protocols=(PORTFORWARD_PROTOCOL,),
                                                    max_msg_size=16 * 1024 * 1024, heartbeat=30)
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                # as the connection's own requests do: an exec plugin's token is fetched again on the next try
                self.connection.invalidate_credentials()
            if exc.status == 404:
                raise _PodGone(f"pod {self.namespace}/{self.pod} is gone") from None
            raise RouteError(f"the API server refused the port-forward to {self.namespace}/{self.pod}:{self.port}:"
                             f" {exc.status} {exc.message}") from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise RouteError(f"cannot reach the API server {self.connection.server}: {exc or type(exc).__name__}"
                             ) from None
        return _WsStream(self._session, socket, self.port)

    async def wait_lost(self) -> BaseException | None:
        await asyncio.Event().wait()
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# --------------------------------------------------------------------------------------------------------- ssh


@dataclass(frozen=True)
class SshOptions:
    """Where the login node is and how to trust it. Unset values come from `~/.ssh/config` (asyncssh reads it)."""

    host: str
    port: int | None = None
    username: str | None = None
    known_hosts: Path | None = None
    """None: the user's own (~/.ssh/known_hosts and the config's UserKnownHostsFile)."""
    client_keys: tuple[Path, ...] | None = None
    """None: the agent and the default identities, as `ssh` uses them."""
    config: tuple[Path, ...] | None = None
    """None: ~/.ssh/config."""


class _SshStream:
    def __init__(self, reader: Any, writer: Any) -> None:
        self._reader, self._writer = reader, writer

    async def read(self) -> bytes:
        try:
            return await self._reader.read(256 * 1024)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def write_eof(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.write_eof()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()


def split_host(text: str) -> tuple[str | None, str, int | None]:
    """`user@host:port` -> (user, host, port); every part but the host optional."""
    user, _, rest = text.rpartition("@")
    host, port = rest, None
    if rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
        port = int(port_text)
    if not SAFE_HOST.match(host) or (user and not SAFE_HOST.match(user)):
        raise ValueError(f"{text!r} is not a valid SSH host ([user@]host[:port], letters, digits, '.', '-', '_')")
    return user or None, host, port


class SshRoute:
    """`direct-tcpip` to `remote_host:remote_port` through one SSH connection to a login node."""

    kind = "ssh"

    def __init__(self, options: SshOptions, remote_host: str, remote_port: int, resolve: Any = None) -> None:
        self.options, self.remote_host, self.remote_port = options, remote_host, remote_port
        self.description = f"ssh via {options.host}"
        self.resolve = resolve
        """As PortForwardRoute's: asked for the pod's IP again when the login node cannot reach the old one."""
        self._connection: Any = None
        self._lock = asyncio.Lock()

    def _kwargs(self) -> dict[str, Any]:
        o = self.options
        kwargs: dict[str, Any] = {"keepalive_interval": KEEPALIVE_SECONDS, "keepalive_count_max": KEEPALIVE_COUNT,
                                  "connect_timeout": 10}
        if o.port is not None:
            kwargs["port"] = o.port
        if o.username is not None:
            kwargs["username"] = o.username
        if o.known_hosts is not None:
            kwargs["known_hosts"] = str(o.known_hosts)
        if o.client_keys is not None:
            kwargs["client_keys"] = [str(p) for p in o.client_keys]
            kwargs["agent_path"] = None
        if o.config is not None:
            kwargs["config"] = [str(p) for p in o.config]
        else:
            # asyncssh.connect reads ~/.ssh/config by itself, but SSHClientConnectionOptions.construct (the host key
            # place, the keepalive check) does not: name it, so all three see the same Host, Port and known_hosts
            default = Path.home() / ".ssh" / "config"
            if os.access(default, os.R_OK):
                kwargs["config"] = [str(default)]
        return kwargs

    async def ensure(self) -> None:
        import asyncssh

        async with self._lock:
            if self._connection is not None and not self._connection.is_closed():
                return
            self._connection = None
            try:
                self._connection = await asyncssh.connect(self.options.host, **await self._connect_kwargs())
            except asyncssh.HostKeyNotVerifiable as exc:
                raise await self._host_key_error(exc) from None
            except asyncssh.PermissionDenied:
                raise RouteError(f"{self.options.host} refused the SSH login: no key of the agent or "
                                 "~/.ssh was accepted") from None
            except FileNotFoundError as exc:
                if exc.filename and Path(exc.filename).expanduser() in (await self.host_key_place()).known_hosts:
                    # the config's UserKnownHostsFile does not exist yet: as for OpenSSH, nothing is trusted
                    raise await self._host_key_error(exc) from None
                raise RouteError(f"cannot reach {self.options.host} over SSH: {exc}") from None
            except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
                raise RouteError(f"cannot reach {self.options.host} over SSH: "
                                 f"{getattr(exc, 'reason', None) or exc or type(exc).__name__}") from None
            except ValueError as exc:  # asyncssh's ConfigParseError and other bad settings (a key file, a port)
                raise RouteError(f"cannot use the SSH settings for {self.options.host}: {exc}") from None

    async def _connect_kwargs(self) -> dict[str, Any]:
        """`_kwargs()`, less the keepalive settings that ~/.ssh/config sets itself (ServerAliveInterval and
        ServerAliveCountMax win over hyperdesk's defaults, as they do for ssh)."""
        import asyncssh

        kwargs = self._kwargs()
        base = {k: v for k, v in kwargs.items() if not k.startswith("keepalive_")}
        resolved = await asyncssh.SSHClientConnectionOptions.construct(None, host=self.options.host, **base)
        for option, key in (("ServerAliveInterval", "keepalive_interval"),
                            ("ServerAliveCountMax", "keepalive_count_max")):
            if resolved.config.get(option, None) is not None:
                del kwargs[key]
        return kwargs

    async def keepalive(self) -> tuple[float, int]:
        """The keepalive interval (seconds) and count this route's SSH connection is made with, as asyncssh resolves
        them: ~/.ssh/config's ServerAliveInterval/ServerAliveCountMax where it sets them, else hyperdesk's."""
        import asyncssh

        resolved = await asyncssh.SSHClientConnectionOptions.construct(None, host=self.options.host,
                                                                       **await self._connect_kwargs())
        return float(resolved.keepalive_interval), int(resolved.keepalive_count_max)

    async def host_key_place(self) -> "HostKeyPlace":
        """Where this login node's key is fetched from and trusted, as ~/.ssh/config resolves it: HostName, Port,
        ProxyJump, HostKeyAlias and UserKnownHostsFile, exactly as the connection itself uses them."""
        import asyncssh

        kwargs = self._kwargs()
        try:
            resolved = await asyncssh.SSHClientConnectionOptions.construct(None, host=self.options.host, **kwargs)
        except (ValueError, OSError, asyncssh.Error) as exc:
            raise RouteError(f"cannot use the SSH settings for {self.options.host}: {exc}") from None
        files = resolved.known_hosts
        if not files:  # asyncssh's default: ~/.ssh/known_hosts
            paths = [Path.home() / ".ssh" / "known_hosts"]
        elif isinstance(files, (str, Path)):
            paths = [Path(files)]
        else:
            paths = [Path(f) for f in files if isinstance(f, (str, Path))]
        fetch = {k: v for k, v in kwargs.items() if k in ("port", "config")}
        return HostKeyPlace(self.options.host, fetch, resolved.host_key_alias or resolved.host, resolved.port,
                            tuple(p.expanduser() for p in paths))

    async def _host_key_error(self, exc: Exception) -> HostKeyError:
        """Ask the server for its key (nothing else is sent) so the refusal can show the fingerprint."""
        place = await self.host_key_place()
        fingerprint = None
        key = await place.server_key(quiet=True)
        if key is not None:
            fingerprint = key.get_fingerprint("sha256")
        changed = bool(place.trusted())
        what = "CHANGED" if changed else "not known"
        where = f"{place.name} port {place.port}" + ("" if place.name == self.options.host
                                                     else f" ({self.options.host})")
        message = f"the host key of {where} is {what} (server offered {fingerprint or 'no key'}); connection refused."
        if not changed and fingerprint:
            message += (" Check the fingerprint, then accept it with "
                        f"`hyperdesk connect ... --accept-host-key {fingerprint}` or with `a` in the connect dialog.")
        return HostKeyError(message, place.name, place.port, fingerprint, changed)

    async def accept_host_key(self, expected_fingerprint: str) -> tuple[str, Path]:
        """The user's explicit step, against the place ~/.ssh/config resolves: (fingerprint, file written)."""
        place = await self.host_key_place()
        return await place.accept(expected_fingerprint), place.known_hosts[0]

    async def open(self) -> Stream:
        import asyncssh

        await self.ensure()
        try:
            reader, writer = await self._connection.open_connection(self.remote_host, self.remote_port)
        except asyncssh.ChannelOpenError as exc:
            if self.resolve is not None:
                pod_ip = (await resolved(self.resolve)).pod_ip
                if pod_ip and pod_ip != self.remote_host:  # the pod moved (a new pod, a new IP): try it once
                    self.remote_host = pod_ip
                    return await self.open()
            raise RouteError(f"{self.options.host} could not connect to {self.remote_host}:{self.remote_port}: "
                             f"{exc.reason}") from None
        except (asyncssh.Error, OSError) as exc:
            raise RouteError(f"the SSH connection to {self.options.host} failed: {exc}") from None
        return _SshStream(reader, writer)

    async def wait_lost(self) -> BaseException | None:
        connection = self._connection
        if connection is None:
            return None
        await connection.wait_closed()
        return RouteError(f"the SSH connection to {self.options.host} was lost")

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
            with contextlib.suppress(Exception):
                await connection.wait_closed()


@dataclass(frozen=True)
class HostKeyPlace:
    """One login node's host key: fetched from `fetch_host` with `fetch` (port, config: ProxyJump and HostName come
    from there), known as `name` (HostKeyAlias or HostName) on `port` in `known_hosts` (the first one is written)."""

    fetch_host: str
    fetch: dict[str, Any]
    name: str
    port: int
    known_hosts: tuple[Path, ...]
    fetcher: Any = None
    """A coroutine function returning the server's key, instead of dialling `fetch_host` (a space's sshd, reached
    through a route)."""

    @property
    def entry(self) -> str:
        """The host as asyncssh matches it (the port in brackets unless 22)."""
        return self.name if self.port == 22 else f"[{self.name}]:{self.port}"

    async def server_key(self, quiet: bool = False) -> Any:
        import asyncssh

        try:
            if self.fetcher is not None:
                return await asyncio.wait_for(self.fetcher(), 30)
            return await asyncio.wait_for(asyncssh.get_server_host_key(self.fetch_host, **self.fetch), 15)
        except RouteError:
            if quiet:
                return None
            raise
        except (asyncssh.Error, OSError, asyncio.TimeoutError, ValueError) as exc:
            if quiet:
                return None
            raise RouteError(f"cannot read the host key of {self.fetch_host}: {exc or type(exc).__name__}") from None

    def trusted(self) -> list[Any]:
        """The keys the known_hosts files already trust for this host: any means an offered key CHANGED."""
        import asyncssh

        keys: list[Any] = []
        for path in self.known_hosts:
            try:
                if path.is_file():
                    matched = asyncssh.read_known_hosts(str(path)).match(self.name, "",
                                                                          None if self.port == 22 else self.port)[0]
                    keys.extend(matched)
            except (OSError, ValueError, asyncssh.Error):
                continue
        return keys

    async def accept(self, expected_fingerprint: str) -> str:
        """Fetch the key again, check it matches the fingerprint the user saw, and append it to the first
        known_hosts file. RouteError when the key differs or another key is trusted (never adds one unseen)."""
        key = await self.server_key()
        if key is None:
            raise RouteError(f"{self.fetch_host} offered no host key")
        fingerprint = key.get_fingerprint("sha256")
        if fingerprint != expected_fingerprint:
            raise RouteError(f"{self.fetch_host} now offers {fingerprint}, not {expected_fingerprint}: not accepted")
        trusted = self.trusted()
        if any(k.get_fingerprint("sha256") == fingerprint for k in trusted):
            return fingerprint
        if trusted:
            raise RouteError(f"known_hosts already trusts another key for {self.entry}: the host key CHANGED. If the "
                             f"change is expected, remove the old one yourself (ssh-keygen -R '{self.entry}')")
        target = self.known_hosts[0]
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        line = f"{self.entry} {key.export_public_key('openssh').decode().strip()}\n"
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(line)
        return fingerprint


async def accept_host_key(host: str, port: int, expected_fingerprint: str, known_hosts: Path) -> str:
    """Accept `host:port`'s key into `known_hosts` (no ~/.ssh/config involved): see `HostKeyPlace.accept`."""
    place = HostKeyPlace(host, {"port": port, "config": []}, host, port, (known_hosts,))
    return await place.accept(expected_fingerprint)


def route_for(connection: Any, target: Any, via: str | None, known_hosts: Path | None = None,
              resolve: Any = None) -> Any:
    """The route to `target` (an `app.tunnels.targets.Target`): the API server's port-forward when `via` is empty,
    else an SSH route through login node `via` ([user@]host[:port]) to the pod's IP (RouteError when it has none).
    `resolve`, when given, finds the target's pod again once the route finds it gone (a space stopped and started)."""
    if not via:
        return PortForwardRoute(connection, target.namespace, target.pod, target.port, resolve)
    user, host, port = split_host(via)
    if not target.pod_ip:
        raise RouteError(f"pod {target.pod} has no IP yet: the login node cannot reach it")
    return SshRoute(SshOptions(host, port=port, username=user, known_hosts=known_hosts), target.pod_ip, target.port,
                    resolve)
