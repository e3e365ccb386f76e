"""The connection to one cluster context, through the asyncio edition of the official client.

`ClusterConnection` owns one `kubernetes.aio` ApiClient: the client's kubeconfig loader gives it TLS, bearer tokens,
client certificates, proxies and exec credential plugins (`aws eks get-token`), and its transport carries every
request. On top of that transport this module speaks raw JSON (`request`) and raw streams (`stream`): the panes
never need the generated model classes, and building them is several times slower than `json.loads`.

The kubernetes client takes about half a second to import, so it is imported only inside coroutines; callers run
those in workers, never before the first frame.
"""

from __future__ import annotations

import asyncio
import json
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Literal

HealthState = Literal["no-config", "connecting", "connected", "unreachable", "error"]

@dataclass(frozen=True)
class Health:
    state: HealthState
    detail: str = ""
    server_version: str | None = None


class ApiError(Exception):
    """A request the server answered with an error status, or could not be sent at all (status 0)."""

    def __init__(self, status: int, message: str, reason: str = "", retry_after: float | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.body = body


class ClusterConnection:
    """An API client for one context. `open()` loads credentials, `close()` frees the connection pool.

    The kubeconfig files are read, never written (the client's default would persist refreshed tokens). An exec
    plugin's token is fetched again when it expires, checked before each request.
    """

    def __init__(self, kubeconfig_paths: list[Path] | None, context: str | None, timeout: float = 10.0,
                 open_timeout: float = 30.0, pool_size: int | None = None) -> None:
        self.kubeconfig_paths = kubeconfig_paths
        self.pool_size = pool_size
        """Connections open at once (the client's default, 100, when None); more requests wait for one."""
        self.context = context
        self.timeout = timeout
        self.open_timeout = open_timeout
        self.api_client: Any = None
        self.server: str | None = None
        self._credentials: ExecCredentials | None = None
        self._closed = False
        self._opening = asyncio.Lock()

    async def open(self) -> Any:
        """Load the context's credentials (running its exec plugin, bounded by `open_timeout`) and build the client."""
        if self._closed:
            raise ApiError(0, "the connection was closed")
        async with self._opening:
            if self.api_client is None:
                try:
                    await asyncio.wait_for(self._open(), self.open_timeout)
                except asyncio.TimeoutError:
                    raise ApiError(0, f"the kubeconfig's credential plugin did not answer within "
                                      f"{self.open_timeout:g} s; if it needs an interactive login, run "
                                      f"`kubectl get namespaces` once in a shell") from None
            return self.api_client

    async def _open(self) -> None:
        from kubernetes.aio import client, config

        configuration = client.Configuration()
        if self.pool_size is not None:
            configuration.connection_pool_maxsize = self.pool_size
        if self.kubeconfig_paths:
            loader = await config.load_kube_config(
                config_file=os.pathsep.join(str(p) for p in self.kubeconfig_paths),
                context=self.context,
                client_configuration=configuration,
                persist_config=False,
            )
            if "exec" in (getattr(loader, "_user", None) or {}):
                self._credentials = ExecCredentials(loader)
                configuration.refresh_api_key_hook = self._credentials.refresh
        else:
            config.load_incluster_config(client_configuration=configuration)
        self.server = configuration.host
        self.api_client = client.ApiClient(configuration=configuration)

    def invalidate_credentials(self) -> None:
        """A 401 seen outside `request()` (a port-forward's WebSocket handshake): the exec plugin's token is fetched
        again on the next request, as client-go does. Nothing to do for credentials without a plugin."""
        if self._credentials is not None:
            self._credentials.invalidate()

    async def close(self) -> None:
        """Free the connection pool. A closed connection stays closed: later requests fail instead of reopening."""
        self._closed = True
        if self.api_client is not None:
            api_client, self.api_client = self.api_client, None
            await api_client.close()

    async def _send(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
                    headers: dict[str, str] | None, timeout: Any, data: bytes | None = None) -> Any:
        api_client = await self.open()
        params = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        header_params = {"Accept": "application/json", **(headers or {})}
        if (body is not None or data is not None) and "Content-Type" not in header_params:
            header_params["Content-Type"] = "application/json"
        try:
            _, url, header_params, body, _ = await api_client.param_serialize(
                method=method, resource_path=path, query_params=params, header_params=header_params,
                body=body, auth_settings=["BearerToken"],
            )
            if data is not None:
                return await _send_bytes(api_client, method, url, header_params, data, timeout)
            response = await api_client.call_api(method, url, header_params=header_params, body=body,
                                                 _request_timeout=timeout)
        except asyncio.TimeoutError:
            raise ApiError(0, f"no answer from {self.server} in time") from None
        except Exception as exc:  # noqa: BLE001 - transport failures of every kind become ApiError(0)
            if isinstance(exc, ApiError):
                raise
            raise ApiError(0, _transport_message(exc, self.server)) from None
        return response.response

    async def request(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                      headers: dict[str, str] | None = None, timeout: float | None = None) -> Any:
        """One request; the decoded JSON answer, or ApiError with the server's own message."""
        response = await self._send(method, path, query, body, headers, timeout or self.timeout)
        try:
            data = await response.read()
        except Exception as exc:  # noqa: BLE001
            raise ApiError(0, _transport_message(exc, self.server)) from None
        finally:
            response.release()
        if response.status >= 400:
            if response.status == 401 and self._credentials is not None:
                self._credentials.invalidate()  # as client-go does: the plugin runs again on the next request
            raise _api_error(response.status, response.reason or "", response.headers, data)
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            raise ApiError(response.status, f"the server answered {path} with something that is not JSON") from None

    @asynccontextmanager
    async def response(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                       data: bytes | None = None, headers: dict[str, str] | None = None,
                       timeout: Any = None) -> AsyncIterator[Any]:
        """One request whose raw answer the caller reads: yields the aiohttp response whatever its status, released
        on exit. `body` is sent as JSON, `data` as the bytes given; `timeout` is seconds or an aiohttp ClientTimeout
        (default: the connection's). Transport failures raise ApiError(0); a 401 makes the exec plugin run again on
        the next request, as `request()` does.
        """
        response = await self._send(method, path, query, body, headers,
                                    self.timeout if timeout is None else timeout, data)
        try:
            if response.status == 401 and self._credentials is not None:
                self._credentials.invalidate()
            yield response
        finally:
            response.release()

    @asynccontextmanager
    async def stream(self, path: str, query: dict[str, Any] | None = None,
                     headers: dict[str, str] | None = None) -> AsyncIterator[Any]:
        """A long-lived GET (watch, log follow): yields the aiohttp response, whose `.content` is read by the caller.

        No total timeout: the caller bounds the silence between chunks itself.
        """
        from aiohttp import ClientTimeout

        async with self.response("GET", path, query=query, headers=headers,
                                 timeout=ClientTimeout(total=None, sock_connect=10)) as response:
            if response.status >= 400:
                data = await response.read()
                raise _api_error(response.status, response.reason or "", response.headers, data)
            yield response

    async def probe(self) -> Health:
        """Ask the server its version: the cheapest request that proves the route and the credentials work."""
        try:
            info = await self.request("GET", "/version", timeout=5)
            return Health("connected", server_version=(info or {}).get("gitVersion"))
        except ApiError as exc:
            if exc.status == 0:
                return Health("unreachable", str(exc))
            if exc.status in (401, 403):
                return Health("error", f"the server refused the credentials ({exc.status})")
            return Health("error", f"the server answered {exc.status}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a broken kubeconfig is a state, not a crash
            return Health("error", f"kubeconfig: {first_line(exc)}")


class ExecCredentials:
    """The token of an exec credential plugin (`aws eks get-token`...), fetched again only when needed: when it
    is about to expire (the client's 5-minute margin), or after the server answered 401. A token without an
    expiry is kept until a 401. One plugin run at a time, however many requests are waiting for it."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._lock = asyncio.Lock()
        self._stale = False

    def invalidate(self) -> None:
        self._stale = True

    async def refresh(self, configuration: Any) -> None:
        loader = self._loader
        if not self._stale and getattr(loader, "token", None) and not hasattr(loader, "exec_plugin_expiry"):
            return
        async with self._lock:
            if self._stale and hasattr(loader, "exec_plugin_expiry"):
                del loader.exec_plugin_expiry
            if self._stale or hasattr(loader, "exec_plugin_expiry"):
                await loader.load_from_exec_plugin()  # a no-op while the token is valid
                self._stale = False
            if getattr(loader, "token", None):
                configuration.api_key["BearerToken"] = loader.token


async def _send_bytes(api_client: Any, method: str, url: str, headers: dict[str, str], data: bytes,
                      timeout: Any) -> Any:
    """The client's own session and connection pool, with the body as given: its REST layer would JSON-encode
    bytes under a JSON content type."""
    rest = api_client.rest_client
    if rest.pool_manager is None:
        rest.pool_manager = rest._create_pool_manager()  # noqa: SLF001 - the client builds its pool lazily too
    args: dict[str, Any] = {"headers": headers, "data": data, "timeout": timeout or 5 * 60}
    configuration = api_client.configuration
    if configuration.tls_server_name:
        args["server_hostname"] = configuration.tls_server_name
    if configuration.proxy:
        args["proxy"] = configuration.proxy
    if configuration.proxy_headers:
        args["proxy_headers"] = configuration.proxy_headers
    return await rest.pool_manager.request(method, url, **args)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _api_error(status: int, reason: str, headers: Any, data: bytes) -> ApiError:
    body: dict[str, Any] | None = None
    message = f"{status} {reason}".strip()
    try:
        decoded = json.loads(data) if data else None
        if isinstance(decoded, dict):
            body = decoded
            message = decoded.get("message") or message
    except ValueError:
        text = data.decode("utf-8", "replace").strip()
        if text:
            message = text.splitlines()[0][:300]
    retry_after = None
    if headers is not None and headers.get("Retry-After"):
        try:
            retry_after = float(headers["Retry-After"])
        except ValueError:
            retry_after = None
    return ApiError(status, message, reason=(body or {}).get("reason", reason), retry_after=retry_after, body=body)


def _transport_message(exc: Exception, server: str | None) -> str:
    detail = first_line(exc)
    return f"cannot reach {server}: {detail}" if server else detail


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
