"""One user's "connect to this space": the target, the route they chose, the tunnel once open, and what the connect
dialog shows of it (`ConnectView`, plain data). No Textual here: the app's glue runs `open()` in a worker and the
dialog polls `view()`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.tunnels.manager import Tunnel, TunnelManager, probe
from app.tunnels.placement import Placement
from app.tunnels.routes import HostKeyError, RouteError, SshOptions, SshRoute, route_for
from app.tunnels.targets import Target


@dataclass(frozen=True)
class ConnectView:
    """What the connect dialog shows."""

    target: str
    pod: str
    state: str
    """connecting, open, reconnecting, failed, closed"""
    route: str
    via: str
    url: str = ""
    local: str = ""
    note: str = ""
    error: str = ""
    fingerprint: str = ""
    """A refused, unknown SSH host key the user may accept (never a changed one)."""
    login_node: bool = False
    laptop_command: str = ""
    vscode: str = ""
    web_ui: str = ""
    """The jupyter-k8s WorkspaceConnection web-ui URL once fetched (w), or what is happening / went wrong."""
    web_ui_error: bool = False


class ConnectSession:
    def __init__(self, target: Target, placement: Placement, via: str = "", local_port: int | None = None,
                 resolve: Any = None) -> None:
        self.target, self.placement, self.via = target, placement, via
        """`via`: the route of the open tunnel (set once a tunnel is up on it)."""
        self.trying = via
        """The route of the last attempt: `via`, or a new one that failed (its host key may wait for `a`)."""
        self.local_port = target.port if local_port is None else local_port
        self.resolve = resolve
        """None, or a coroutine function giving the space's Target now: the routes ask it when the pod is gone."""
        self.tunnel: Tunnel | None = None
        self.state = "connecting"
        self.error = ""
        self.fingerprint = ""
        self.web_ui = ""
        self.web_ui_error = False
        self._ssh: SshOptions | None = None
        """The login node of the last SSH route tried: where an accepted host key goes."""
        self._space_key: Any = None
        """The space sshd's HostKeyPlace while its fingerprint waits for the user's accept step."""

    async def _resolve(self) -> Target:
        assert self.resolve is not None
        self.target = await self.resolve()
        return self.target

    def route(self, connection: Any, known_hosts: Path | None = None, via: str | None = None) -> Any:
        via = self.via if via is None else via
        route = route_for(connection, self.target, via, known_hosts, self._resolve if self.resolve is not None else None)
        if isinstance(route, SshRoute):
            self._ssh = route.options
        return route

    async def open(self, manager: TunnelManager, connection: Any, known_hosts: Path | None = None,
                   via: str | None = None) -> None:
        """Open (or move to `via`, another route) this session's tunnel; failures become the view's state. The new
        route is dialled and one stream reaches the target through it before the open tunnel is given up, so a
        typo in the SSH host, or a login node that cannot reach the pod, never costs a working tunnel. `via`
        becomes the session's route only once its tunnel is up."""
        previous = self.tunnel
        via = self.via if via is None else via
        self.trying = via
        self.error, self.fingerprint, self._space_key = "", "", None
        if previous is None:
            self.state = "connecting"
        try:
            route = self.route(connection, known_hosts, via)
        except (RouteError, ValueError) as exc:
            self._failed(str(exc))
            return
        try:
            await route.ensure()
            if previous is not None:
                await probe(route)
        except BaseException as exc:
            await asyncio.shield(route.close())  # a refused dial or a cancelled connect leaves no connection behind
            if isinstance(exc, HostKeyError):
                self._failed(str(exc), "" if exc.changed else (exc.fingerprint or ""))
                return
            if isinstance(exc, (RouteError, ValueError)):
                self._failed(str(exc))
                return
            raise
        try:
            if previous is not None:
                self.local_port = previous.local_port  # the same local port on the new route
                self.tunnel = None
                # once begun, closing the old tunnel completes even if this connect is cancelled meanwhile
                await asyncio.shield(manager.close(previous.name))
            tunnel = Tunnel(self.target.space, self.target.text, route, self.local_port, self.target.path)
            await tunnel.start()
        except RouteError as exc:
            self._failed(str(exc))
            return
        except OSError as exc:
            await route.close()
            self._failed(f"cannot listen on 127.0.0.1:{self.local_port}: {exc.strerror or exc}")
            return
        except BaseException:  # cancelled (or a bug) after the dial: the new route's connection goes too
            await asyncio.shield(route.close())
            raise
        manager.add(tunnel)  # names it uniquely
        self.tunnel, self.via = tunnel, via
        self.state = "open"

    def _failed(self, error: str, fingerprint: str = "") -> None:
        self.error, self.fingerprint = error, fingerprint
        if self.tunnel is None:
            self.state = "failed"

    async def check_space_key(self, alias: str, connection: Any, known_hosts: Path) -> str | None:
        """Before VS Code connects to the space's own sshd: None when its key is trusted; else its fingerprint,
        which the dialog then offers for the same explicit accept step as a login node's."""
        from app.tunnels.spacekey import space_key_place, unknown_fingerprint

        ssh_target = self.target.on_port(22)

        place = space_key_place(alias, lambda: route_for(connection, ssh_target, self.via), known_hosts)
        fingerprint = await unknown_fingerprint(place)
        if fingerprint is not None:
            self.fingerprint, self._space_key = fingerprint, place
        return fingerprint

    @property
    def space_key_pending(self) -> bool:
        """The fingerprint on show is the space's own sshd key (not a login node's)."""
        return self._space_key is not None and bool(self.fingerprint)

    async def accept_key(self) -> Path | None:
        """The user's explicit yes to the fingerprint the dialog showed; the known_hosts file it went to (the one
        ~/.ssh/config names for the login node, or hyperdesk's for a space's sshd), None when there was nothing."""
        if not self.fingerprint:
            return None
        if self._space_key is not None:
            place, self._space_key = self._space_key, None
            await place.accept(self.fingerprint)
            self.fingerprint = ""
            return place.known_hosts[0]
        if self._ssh is None:
            return None
        _, written = await SshRoute(self._ssh, "", 0).accept_host_key(self.fingerprint)
        self.fingerprint = ""
        return written

    def view(self) -> ConnectView:
        return replace(self._view(), web_ui=self.web_ui, web_ui_error=self.web_ui_error)

    def _view(self) -> ConnectView:
        tunnel = self.tunnel
        state = tunnel.state if tunnel is not None else self.state
        route = tunnel.route.description if tunnel else (f"ssh via {self.via}" if self.via else "api portforward")
        if tunnel is None:
            route = f"ssh via {self.trying}" if self.trying else "api portforward"
            return ConnectView(self.target.text, self.target.pod, state, route, self.trying, error=self.error,
                               fingerprint=self.fingerprint, login_node=self.placement.login_node)
        port = tunnel.local_port
        if self.error:  # a new route that failed: the open tunnel stays on its own route
            route = f"{tunnel.route.description} (kept: {'ssh via ' + self.trying if self.trying else 'api'} failed)"
        laptop = self.placement.laptop_command(port, port) if self.placement.login_node else ""
        vscode = (f"Remote-SSH host hyperdesk-{self.target.namespace}-{self.target.space} (v writes it)"
                  if self.target.runs_sshd else f"Jupyter: Existing Jupyter Server → {tunnel.url}")
        return ConnectView(self.target.text, self.target.pod, state, route, self.via, tunnel.url,
                           f"127.0.0.1:{port}", tunnel.note, tunnel.last_error or self.error, self.fingerprint,
                           self.placement.login_node, laptop, vscode)
