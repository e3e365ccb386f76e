"""The glue between the connect dialog / Tunnels view and the tunnel core: what their keys do. Blocking or network
work runs in workers; results come back as state the dialogs poll (`ConnectSession.view()`, `TunnelManager.rows()`).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.screens.connect import ConnectScreen
from app.screens.dialogs import ConfirmScreen
from app.screens.tunnels import TunnelsScreen
from app.tunnels import ide
from app.tunnels.placement import detect
from app.tunnels.routes import RouteError
from app.tunnels.session import ConnectSession, ConnectView
from app.tunnels.targets import TargetError, space_target

if TYPE_CHECKING:
    from app.tui import HyperdeskApp

SPACE_STORES = ("workspaces", "notebooks", "pods")


def known_hosts() -> Path:
    return Path.home() / ".ssh" / "known_hosts"


def space_key(key: str) -> str:
    """`namespace/name`, also from a row key that starts with its store (`workspaces/ns/name`)."""
    parts = key.split("/")
    return "/".join(parts[-2:])


class ConnectController:
    """What the connect dialog's keys do for one space's session."""

    def __init__(self, app: "HyperdeskApp", session: ConnectSession) -> None:
        self.app, self.session = app, session

    def start(self, via: str | None = None) -> None:
        self.app.run_worker(self._open(via), group=f"connect:{self.session.target.key}", exclusive=True,
                            exit_on_error=False)

    async def _open(self, via: str | None = None) -> None:
        engine = self.app.engine
        if engine is None:
            self.session.state, self.session.error = "failed", "not connected to a cluster"
            return
        await self.session.open(self.app.tunnels, engine.connection, None, via)
        self.app.sync_space_connections()
        if self.session.tunnel is not None:
            follow(self.app, self.session.tunnel)

    def connect_browser(self, view: ConnectView) -> None:
        if not view.url:
            self.app.notify("the tunnel is not open yet", severity="warning")
        elif view.login_node:
            self.app.notify("hyperdesk runs on a login node: no browser here. Run the laptop line (c copies it), "
                            f"then open {view.url} on the laptop", timeout=10)
        elif not ide.has_graphical_browser():
            self.app.copy_to_clipboard(view.url)
            self.app.notify(f"no graphical browser here: copied {view.url}, open it yourself", timeout=10)
        else:
            self.app.run_worker(asyncio.to_thread(ide.open_browser, view.url), exit_on_error=False)
            self.app.notify(f"opening {view.url}")

    def connect_web_ui(self) -> None:
        """w: the jupyter-k8s WorkspaceConnection web-ui URL (no tunnel needed), shown and opened like o does."""
        session = self.session
        if session.target.kind != "Workspace":
            self.app.notify("web UI: only jupyter-k8s spaces (Workspace) offer a WorkspaceConnection",
                            severity="warning")
            return
        if self.app.readonly:
            self.app.notify("hyperdesk is read-only (--readonly): not creating a WorkspaceConnection",
                            severity="error")
            return
        session.web_ui, session.web_ui_error = "asking the cluster for a WorkspaceConnection…", False
        self.app.run_worker(self._web_ui(), group=f"webui:{session.target.key}", exclusive=True, exit_on_error=False)

    async def _web_ui(self) -> None:
        from app.tunnels.webui import web_ui_url

        session, engine = self.session, self.app.engine
        if engine is None:
            session.web_ui, session.web_ui_error = "not connected to a cluster", True
            return
        try:
            url = await web_ui_url(engine.connection, session.target.namespace, session.target.space)
        except TargetError as exc:
            session.web_ui, session.web_ui_error = str(exc), True
            return
        session.web_ui = url
        if session.placement.login_node:
            self.app.notify("hyperdesk runs on a login node: no browser here; open the Web UI link on the laptop",
                            timeout=10)
        elif not ide.has_graphical_browser():
            self.app.copy_to_clipboard(url)
            self.app.notify("no graphical browser here: copied the web UI URL, open it yourself", timeout=10)
        else:
            await asyncio.to_thread(ide.open_browser, url)
            self.app.notify("opening the web UI")

    def connect_vscode(self, view: ConnectView) -> None:
        target = self.session.target
        if not view.url:
            self.app.notify("the tunnel is not open yet", severity="warning")
            return
        if not target.runs_sshd:
            self.app.copy_to_clipboard(view.url)
            self.app.notify(f"copied {view.url}: in VS Code, Jupyter: Select Kernel > Existing Jupyter Server, "
                            "and paste it", timeout=10)
            return
        if self.app.readonly:
            self.app.notify("hyperdesk is read-only (--readonly): not writing ~/.ssh/config", severity="error")
            return
        # one at a time per space: a second v waits for nothing, it replaces the first
        self.app.run_worker(self._vscode(), group=f"vscode:{target.key}", exclusive=True, exit_on_error=False)

    async def _vscode(self) -> None:
        target = self.session.target
        engine = self.app.engine
        try:
            alias = ide.host_alias(target.namespace, target.space)
            known = ide.space_known_hosts()
            paths = list(self.app.kubeconfig.paths) if self.app.kubeconfig else []
            proxy = ide.proxy_command(target.namespace, target.space, 22, kind=target.kind,
                                      context=self.app.context_name, kubeconfig_paths=paths,
                                      via=self.session.via or None)
            block = ide.ssh_block(alias, proxy, known_hosts=known)
            config = Path.home() / ".ssh" / "config"
            await asyncio.to_thread(ide.write_ssh_block, config, alias, block, self.app.readonly)
            if engine is not None:
                fingerprint = await self.session.check_space_key(alias, engine.connection, known)
                if fingerprint is not None:
                    self.app.notify(f"wrote Host {alias}; its sshd offers the unknown key {fingerprint}: check it, "
                                    "press a to trust it, then v again", timeout=15)
                    return
            argv = await asyncio.to_thread(ide.vscode_argv, alias, f"/home/{ide.SPACE_USER}")
            if argv is not None:
                await asyncio.to_thread(ide.launch, argv)
        except (TargetError, RouteError, OSError) as exc:
            self.app.notify(str(exc), severity="error")
            return
        if argv is None:
            self.app.notify(f"wrote Host {alias} in {config}; `code` is not on PATH: in VS Code, "
                            f"Remote-SSH: Connect to Host… {alias}", timeout=12)
        else:
            self.app.notify(f"wrote Host {alias} in {config}; started VS Code")

    def connect_reroute(self, via: str) -> None:
        self.start(via)  # the session's route changes only once a tunnel is up on the new one

    def connect_accept_key(self, fingerprint: str) -> None:
        self.app.run_worker(self._accept(fingerprint), group=f"connect:{self.session.target.key}", exclusive=True,
                            exit_on_error=False)

    async def _accept(self, fingerprint: str) -> None:
        space_key = self.session.space_key_pending
        try:
            written = await self.session.accept_key()
        except RouteError as exc:
            self.app.notify(str(exc), severity="error")
            return
        except OSError as exc:  # known_hosts could not be written (permissions, a read-only home)
            self.app.notify(f"cannot trust {fingerprint}: {exc.strerror or exc}"
                            f"{' (' + exc.filename + ')' if exc.filename else ''}", severity="error")
            return
        self.app.notify(f"trusted {fingerprint}: added to {written or known_hosts()}")
        if space_key:
            await self._vscode()  # the space's sshd is trusted now: on to VS Code
        else:
            await self._open(self.session.trying)  # the route whose key this was

    def connect_close(self) -> None:
        tunnel = self.session.tunnel
        if tunnel is not None:
            TunnelsController(self.app).close_tunnels([tunnel.name])

    def open_tunnels(self) -> None:
        self.app.open_tunnels()


class TunnelsController:
    def __init__(self, app: "HyperdeskApp") -> None:
        self.app = app

    def open_tunnel_dialog(self, name: str) -> None:
        for session in self.app.connect_sessions.values():
            if session.tunnel is not None and session.tunnel.name == name:
                open_dialog(self.app, session)
                return

    def close_tunnels(self, names: list[str]) -> None:
        question = f"Close {'the tunnel ' + names[0] if len(names) == 1 else f'all {len(names)} tunnels'}?"

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.run_worker(self._close(names), exit_on_error=False)

        self.app.push_screen(ConfirmScreen(question), answered)

    async def _close(self, names: list[str]) -> None:
        for name in names:
            await self.app.tunnels.close(name)
        for session in self.app.connect_sessions.values():
            if session.tunnel is not None and session.tunnel.name in names:
                session.tunnel, session.state = None, "closed"
        self.app.sync_space_connections()
        self.app.notify(f"closed {', '.join(names)}")


def open_dialog(app: "HyperdeskApp", session: ConnectSession) -> ConnectController:
    controller = ConnectController(app, session)
    app.push_screen(ConnectScreen(f"Connect — {session.target.key}", session.view, controller))
    return controller


def connect_space(app: "HyperdeskApp", key: str) -> None:
    """The Spaces pane's `c`: reuse this space's open tunnel, or resolve its pod and open one."""
    key = space_key(key)
    if "/" not in key:  # `:connect NAME`: in the namespace on show, as every other command
        key = f"{getattr(app, 'namespace', None) or 'default'}/{key}"
    session = app.connect_sessions.get((app.context_name, key))
    if session is not None and session.tunnel is not None:
        open_dialog(app, session)
        return
    if app.engine is None:
        app.notify("not connected to a cluster", severity="error")
        return
    try:
        target = space_target(space_stores(app), key)
    except TargetError as exc:
        app.notify(str(exc), severity="error")
        return

    async def resolve() -> Any:
        """The space's pod now (the stores follow the cluster): asked when the tunnel's pod is gone."""
        return space_target(space_stores(app), key)

    session = ConnectSession(target, detect(os.environ), via=session.via if session else "",
                             local_port=getattr(app, "connect_local_port", None), resolve=resolve)
    app.connect_sessions[(app.context_name, key)] = session
    open_dialog(app, session).start()


def space_stores(app: "HyperdeskApp") -> dict[str, Any]:
    engine = app.engine
    if engine is None:
        raise TargetError("not connected to a cluster")
    return {name: engine.stores[name].snapshot() for name in SPACE_STORES if name in engine.stores}


def connections(app: "HyperdeskApp") -> dict[str, str]:
    """space key -> short text for the Spaces pane: `127.0.0.1:8888 api`, `... ssh`, with the tunnel's state when
    it is not open (`127.0.0.1:8888 api error`); the current context's sessions only."""
    shown: dict[str, str] = {}
    for (context, key), s in app.connect_sessions.items():
        if context == app.context_name and s.tunnel is not None:
            state = s.tunnel.state
            shown[key] = f"{s.tunnel.row().local} {s.tunnel.route.kind}" + ("" if state == "open" else f" {state}")
    return shown


def follow(app: "HyperdeskApp", tunnel: Any) -> None:
    """Keep the Spaces pane's CONNECTED column in step with `tunnel`'s state (error, reconnecting, open)."""

    async def watch() -> None:
        while tunnel.state != "closed":
            await tunnel.changed.wait()
            tunnel.changed.clear()
            app.sync_space_connections()

    app.run_worker(watch(), group=f"follow:{tunnel.name}", exclusive=True, exit_on_error=False)


def end_context(app: "HyperdeskApp", context: str | None) -> None:
    """`:ctx`: the routes of `context`'s tunnels use its cluster connection, which the switch closes; so its
    tunnels close too (said in a toast) and its sessions go, before a connect in the new context can reuse them."""
    ended = [(key, s) for (name, key), s in app.connect_sessions.items() if name == context]
    for key, _ in ended:
        app.workers.cancel_group(app, f"connect:{key}")
        del app.connect_sessions[(context, key)]
    names = [s.tunnel.name for _, s in ended if s.tunnel is not None]
    for _, s in ended:
        s.tunnel, s.state = None, "closed"
    if not names:
        return

    async def close() -> None:
        for name in names:
            await app.tunnels.close(name)
        app.sync_space_connections()
        app.notify(f"closed {len(names)} tunnel{'s' if len(names) > 1 else ''} of context {context} "
                   f"({', '.join(names)})")

    app.run_worker(close(), exit_on_error=False)


def open_tunnels(app: "HyperdeskApp") -> None:
    app.push_screen(TunnelsScreen(app.tunnels.rows, TunnelsController(app)))


def any_session(app: Any) -> bool:
    return bool(app.connect_sessions)
