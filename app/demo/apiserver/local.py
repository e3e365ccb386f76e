"""Running the server: `LocalApiServer` (asyncio) and `ServerThread` (its own loop in a thread, for sync code).

    async with LocalApiServer() as server:          # 127.0.0.1, a free port
        server.url, server.kubeconfig_path, server.store

    with LocalApiServer.start_in_thread() as handle:  # from synchronous code (kubectl tests, the sync client)
        handle.store.put({...})                     # marshalled onto the server's loop

The kubeconfig written next to the server has one context, `hyperdesk-demo`, with namespace `default`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import yaml
from aiohttp import web

from .catalog import DEFAULT_KINDS, NAMESPACE_KIND
from .kinds import Kind, KindRegistry
from .server import ApiServer, ServerOptions
from .store import Store

T = TypeVar("T")

CONTEXT_NAME = "hyperdesk-demo"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def kubeconfig_document(url: str, *, token: str | None = None, namespace: str = "default") -> dict[str, Any]:
    """A kubeconfig with a single `hyperdesk-demo` context pointing at `url`."""
    user: dict[str, Any] = {"token": token} if token else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": url}}],
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
    ) -> None:
        self.store = Store(KindRegistry(kinds), history_size=history_size)
        self.api = ApiServer(self.store, options or ServerOptions())
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
        return f"http://127.0.0.1:{self.port}"

    @property
    def kubeconfig_path(self) -> Path:
        if self._kubeconfig_path is None:
            raise RuntimeError("the server is not started")
        return self._kubeconfig_path

    async def start(self) -> None:
        self._runner = web.AppRunner(self.api.app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await self.start_listening()
        if self._kubeconfig_path is None:
            self._tempdir = Path(tempfile.mkdtemp(prefix="hyperdesk-apiserver-"))
            self._kubeconfig_path = self._tempdir / "kubeconfig"
        self.write_kubeconfig(self._kubeconfig_path)

    async def start_listening(self) -> None:
        """Bind 127.0.0.1 (again, on the same port after `stop_listening`)."""
        assert self._runner is not None
        # Bind the socket ourselves so that port 0 resolves to one known port before anything is written.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port or self._requested_port))
        self.port = sock.getsockname()[1]
        self._site = web.SockSite(self._runner, sock)
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
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(kubeconfig_document(self.url, token=token), sort_keys=False))

    async def stop(self) -> None:
        await self.api.shutdown_watches()
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


class ServerThread:
    """A `LocalApiServer` running in a background thread, usable from synchronous code."""

    def __init__(self, factory: Callable[[], LocalApiServer]) -> None:
        self._factory = factory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="hyperdesk-apiserver", daemon=True)
        self._ready: concurrent.futures.Future[LocalApiServer] = concurrent.futures.Future()
        self._server: LocalApiServer | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            server = self._factory()
            self._loop.run_until_complete(server.start())
        except BaseException as exc:  # report startup failures to the starting thread
            self._ready.set_exception(exc)
            self._loop.close()
            return
        self._server = server
        self._ready.set_result(server)
        self._loop.run_forever()
        self._loop.run_until_complete(server.stop())
        self._loop.close()

    def start(self) -> Self:
        self._thread.start()
        self._ready.result(timeout=30)
        return self

    @property
    def server(self) -> LocalApiServer:
        assert self._server is not None
        return self._server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def kubeconfig_path(self) -> Path:
        return self.server.kubeconfig_path

    @property
    def store(self) -> ThreadedStore:
        return ThreadedStore(self)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on the server's loop and return its result (awaiting it if it is async)."""

        async def run() -> T:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                return await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=60)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ThreadedStore:
    """The `Store`'s in-process API, callable from any thread (each call runs on the server's loop)."""

    def __init__(self, handle: ServerThread) -> None:
        self._handle = handle

    @property
    def _store(self) -> Store:
        return self._handle.server.store

    @property
    def resource_version(self) -> int:
        return self._handle.call(lambda: self._store.resource_version)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self._handle.call(self._store.create, obj)

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self._handle.call(self._store.put, obj)

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict[str, Any]:
        return self._handle.call(self._store.get, api_version, kind, name, namespace)

    def list(self, api_version: str, kind: str, namespace: str | None = None, **selectors: str) -> list[dict[str, Any]]:
        return self._handle.call(self._store.list, api_version, kind, namespace, **selectors)

    def patch(self, api_version: str, kind: str, name: str, patch: Any, namespace: str = "", **options: str) -> dict[str, Any]:
        return self._handle.call(self._store.patch, api_version, kind, name, patch, namespace, **options)

    def delete(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict[str, Any]:
        return self._handle.call(self._store.delete, api_version, kind, name, namespace)
