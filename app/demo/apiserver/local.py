"""Running the server: `LocalApiServer` (asyncio) and `ServerThread` (its own loop in a thread, for sync code).

    async with LocalApiServer() as server:          # 127.0.0.1, a free port
        server.url, server.kubeconfig_path, server.store
        server.logs.write("default", "pod", "main", ["hello"])
        server.faults.fail(0.2)

    with LocalApiServer.start_in_thread() as handle:  # from synchronous code (kubectl tests, the sync client)
        handle.store.put({...})                     # every call is marshalled onto the server's loop
        handle.proxies.register_pod("default", "pod", 9400, "http://127.0.0.1:9100")

The kubeconfig written next to the server has one context, `hyperdesk-demo`, with namespace `default` (and the
token of `user`, when one is given); `kubeconfig_for(user)` writes one for any configured user. The simulator
attaches to the same objects: it subscribes to the store, writes pod logs, and registers proxy and port-forward
targets.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import shutil
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml
from aiohttp import web

from ..loopthread import LoopThread
from .access import AccessControl
from .catalog import DEFAULT_KINDS, NAMESPACE_KIND
from .faults import Faults
from .kinds import Kind, KindRegistry
from .logs import PodLogs
from .portforward import PortForwards
from .proxy import Proxies
from .server import ApiServer, ServerOptions
from .store import Store
from .tls import Certificate, self_signed
from .visibility import Visibility

CONTEXT_NAME = "hyperdesk-demo"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def kubeconfig_document(
    url: str, *, token: str | None = None, ca_pem: bytes | None = None, namespace: str = "default"
) -> dict[str, Any]:
    """A kubeconfig with a single `hyperdesk-demo` context pointing at `url`."""
    user: dict[str, Any] = {"token": token} if token else {}
    cluster: dict[str, Any] = {"server": url}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": cluster}],
        "users": [{"name": CONTEXT_NAME, "user": user}],
        "contexts": [
            {"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": namespace}}
        ],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }


class LocalApiServer:
    """An in-memory Kubernetes API server on 127.0.0.1, with the system namespaces a real cluster starts with."""

    def __init__(
        self,
        *,
        port: int = 0,
        kubeconfig_path: str | Path | None = None,
        kinds: Iterable[Kind] = DEFAULT_KINDS,
        history_size: int = 10_000,
        options: ServerOptions | None = None,
        access: AccessControl | dict[str, Any] | str | Path | None = None,
        user: str | None = None,
        tls: bool | None = None,
        fault_seed: int | None = None,
    ) -> None:
        """Configure the server; nothing listens before `start`.

        `access`: users and rules (see `access.py`; default: anonymous may do anything). `user`: whose token the
        written kubeconfig carries (default: the first configured user, if any). `tls`: serve HTTPS with a
        self-signed certificate; by default only when `access` has token users, because kubectl sends tokens over
        TLS only. `fault_seed` makes injected random failures reproducible.
        """
        self.store = Store(KindRegistry(kinds), history_size=history_size)
        if access is not None and not isinstance(access, AccessControl):
            access = AccessControl.from_config(access)
        self.access = access or AccessControl()
        self._user = user
        self.api = ApiServer(self.store, options or ServerOptions(), self.access)
        self.faults = Faults(self.store, self._restart, seed=fault_seed)
        self.api.add_request_hook(self.faults.before_request)
        self.logs = PodLogs(self.store)
        self.proxies = Proxies(self.store)
        self.port_forwards = PortForwards(self.store)
        for feature in (self.logs, self.proxies, self.port_forwards, Visibility(self.store)):
            feature.install(self.api)
        self._tls = bool(self.access.users) if tls is None else tls
        self._certificate: Certificate | None = None
        self._ssl: ssl.SSLContext | None = None
        self._requested_port = port
        self._kubeconfig_path = Path(kubeconfig_path) if kubeconfig_path else None
        self._tempdir: Path | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port = 0
        for name in SYSTEM_NAMESPACES:
            self.store.resource(NAMESPACE_KIND).create("v1", "", {"metadata": {"name": name}})

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca_pem(self) -> bytes | None:
        """The PEM certificate clients must trust, when serving HTTPS."""
        return self._certificate.cert_pem if self._certificate else None

    @property
    def kubeconfig_path(self) -> Path:
        if self._kubeconfig_path is None:
            raise RuntimeError("the server is not started")
        return self._kubeconfig_path

    async def start(self) -> None:
        """Listen on 127.0.0.1 and write the kubeconfig; a start that fails (a port in use) leaves nothing behind."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self._tempdir = Path(tempfile.mkdtemp(prefix="hyperdesk-apiserver-"))
        if self._tls:
            self._certificate = self_signed()
            self._ssl = self._certificate.server_context(self._tempdir)
        self._runner = web.AppRunner(self.api.app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await self.start_listening()
        if self._kubeconfig_path is None:
            self._kubeconfig_path = self._tempdir / "kubeconfig"
        user = self.access.user(self._user) if self._user else next(iter(self.access.users), None)
        self.write_kubeconfig(self._kubeconfig_path, token=user.token if user else None)

    async def start_listening(self) -> None:
        """Bind 127.0.0.1 (again, on the same port after `stop_listening`)."""
        assert self._runner is not None
        # Bind the socket ourselves so that port 0 resolves to one known port before anything is written.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port or self._requested_port))
        self.port = sock.getsockname()[1]
        self._site = web.SockSite(self._runner, sock, ssl_context=self._ssl)
        await self._site.start()

    async def stop_listening(self) -> None:
        """Close the listening socket and every open connection; the store is kept."""
        await self.api.shutdown_watches()
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if self._runner is not None and self._runner.server is not None:
            await self._runner.server.shutdown(timeout=1)

    def write_kubeconfig(self, path: Path, *, token: str | None = None) -> None:
        """Write a kubeconfig readable by its owner only (it may hold a token), as kubectl writes them."""
        path.parent.mkdir(parents=True, exist_ok=True)
        document = kubeconfig_document(self.url, token=token, ca_pem=self.ca_pem)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            os.fchmod(handle.fileno(), 0o600)  # also when the file existed with a wider mode
            handle.write(yaml.safe_dump(document, sort_keys=False))

    def kubeconfig_for(self, user: str) -> Path:
        """A kubeconfig (next to the default one) that authenticates as `user` with its token."""
        path = self.kubeconfig_path.with_name(f"kubeconfig-{user}")
        self.write_kubeconfig(path, token=self.access.user(user).token)
        return path

    async def _restart(self, downtime: float) -> None:
        await self.stop_listening()
        await asyncio.sleep(downtime)
        await self.start_listening()

    async def stop(self) -> None:
        await self.api.shutdown_watches()
        await self.proxies.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @classmethod
    def start_in_thread(cls, **kwargs: Any) -> ServerThread:
        """Start a server on its own event loop in a daemon thread; `kwargs` go to the constructor."""
        return ServerThread(lambda: cls(**kwargs)).start()


class ServerThread(LoopThread[LocalApiServer]):
    """A `LocalApiServer` running in a background thread, usable from synchronous code.

    Startup waits 30 s, `call` 60 s, `stop` 30 s (see `LoopThread`)."""

    thread_name = "hyperdesk-apiserver"

    @property
    def server(self) -> LocalApiServer:
        return self.running

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def kubeconfig_path(self) -> Path:
        return self.server.kubeconfig_path

    @property
    def store(self) -> Any:
        """The server's `Store`, callable from this thread (see `OnLoop`)."""
        return OnLoop(self, lambda: self.server.store)

    @property
    def logs(self) -> Any:
        """The server's `PodLogs`, callable from this thread."""
        return OnLoop(self, lambda: self.server.logs)

    @property
    def proxies(self) -> Any:
        """The server's `Proxies`, callable from this thread (handler targets run on the server's loop)."""
        return OnLoop(self, lambda: self.server.proxies)

    @property
    def port_forwards(self) -> Any:
        """The server's `PortForwards`, callable from this thread."""
        return OnLoop(self, lambda: self.server.port_forwards)

    @property
    def faults(self) -> Any:
        """The server's `Faults`, callable from this thread (`restart` is awaited on the loop)."""
        return OnLoop(self, lambda: self.server.faults)

    def kubeconfig_for(self, user: str) -> Path:
        return self.call(self.server.kubeconfig_for, user)


class OnLoop:
    """A thread-safe view of a server-side object: every method call and attribute read runs on the server's loop.

    `handle.store`, `handle.logs`, `handle.proxies`, `handle.port_forwards` and `handle.faults` are such views, so
    synchronous test code and other threads use the same API as code on the loop (coroutines are awaited there).
    """

    def __init__(self, handle: ServerThread, target: Callable[[], Any]) -> None:
        self._handle = handle
        self._target = target

    def __getattr__(self, name: str) -> Any:
        value = self._handle.call(lambda: getattr(self._target(), name))
        if not callable(value):
            return value
        # Through a partial, so that a `timeout` argument reaches the method rather than `call`.
        return lambda *args, **kwargs: self._handle.call(functools.partial(value, *args, **kwargs))
