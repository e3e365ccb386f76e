"""The connection to one kubeconfig context, through the asyncio edition of the official client.

The kubernetes client takes about half a second to import, so this module imports it only inside its
coroutines; callers run those in workers, never before the first frame.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

HealthState = Literal["no-config", "connecting", "connected", "unreachable", "error"]


@dataclass(frozen=True)
class Health:
    state: HealthState
    detail: str = ""
    server_version: str | None = None


class ClusterConnection:
    """An API client for one context. `open()` loads credentials (running exec plugins), `close()` frees it.

    The kubeconfig files are read, never written (the client's default would persist refreshed tokens).
    """

    def __init__(self, kubeconfig_paths: list[Path], context: str | None, timeout: float = 5.0) -> None:
        self.kubeconfig_paths = kubeconfig_paths
        self.context = context
        self.timeout = timeout
        self.api_client: Any = None

    async def open(self) -> Any:
        from kubernetes.aio import client, config

        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=os.pathsep.join(str(p) for p in self.kubeconfig_paths),
            context=self.context,
            client_configuration=configuration,
            persist_config=False,
        )
        self.api_client = client.ApiClient(configuration=configuration)
        return self.api_client

    async def close(self) -> None:
        if self.api_client is not None:
            await self.api_client.close()
            self.api_client = None

    async def probe(self) -> Health:
        """Ask the server its version: the cheapest request that proves the route and the credentials work."""
        try:
            if self.api_client is None:
                await self.open()
            from kubernetes.aio import client

            info = await asyncio.wait_for(client.VersionApi(self.api_client).get_code(), self.timeout)
            return Health("connected", server_version=info.git_version)
        except asyncio.TimeoutError:
            return Health("unreachable", f"no answer within {self.timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - every failure becomes a state the top bar shows
            return Health(*_describe_failure(exc))


def _describe_failure(exc: Exception) -> tuple[HealthState, str]:
    name = type(exc).__name__
    if name == "ConfigException":
        return "error", f"kubeconfig: {exc}"
    if name == "ApiException":
        status = getattr(exc, "status", None)
        if status in (401, 403):
            return "error", f"the server refused the credentials ({status})"
        return "error", f"the server answered {status} {getattr(exc, 'reason', '')}".strip()
    if isinstance(exc, OSError) or "ClientConnector" in name or "ServerDisconnected" in name:
        return "unreachable", _first_line(exc)
    return "error", f"{name}: {_first_line(exc)}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
