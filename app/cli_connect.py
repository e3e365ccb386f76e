"""Connect: `hyperdesk connect`, `hyperdesk proxy` and the `get tunnels` kind (issue #9).

Imports only argparse at module level: `hyperdesk --version` imports this module.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """This area's subcommands; each sets `handler=fn(args, settings, kubeconfig) -> exit code`."""
    connect = sub.add_parser("connect", parents=[common],
                             help="open a tunnel to a space's IDE (foreground; Ctrl-C closes it)")
    connect.add_argument("space", help="the space: NAME or NAMESPACE/NAME (a Workspace or a Kubeflow Notebook); "
                                       "also pod/NAME or svc/NAME (an endpoint's service) in -n's namespace")
    connect.add_argument("--via", metavar="SSH_HOST",
                         help="through this login node or bastion ([user@]host[:port] or a ~/.ssh/config Host); "
                              "default: the API server's pods/portforward")
    connect.add_argument("--local-port", type=int, default=None,
                         help="local port on 127.0.0.1 (default: the pod port; another one if it is taken)")
    connect.add_argument("--port", type=int, default=None,
                         help="the pod port (default: 8888 for a space), or the service port for svc/NAME")
    connect.add_argument("--open", choices=("browser", "vscode", "print", "web-ui"), default=None,
                         help="what to do once open (default: browser on a laptop, print on a login node); "
                              "web-ui: no tunnel, print the jupyter-k8s space's WorkspaceConnection web-ui URL "
                              "(and open it where a browser would be)")
    connect.add_argument("--path", default="/home/sagemaker-user",
                         help="folder VS Code opens over SSH (--open vscode, spaces that run sshd)")
    connect.add_argument("--accept-host-key", metavar="SHA256:...",
                         help="trust the SSH host key with this fingerprint (shown when the key was unknown)")
    connect.add_argument("--accept-space-key", metavar="SHA256:...",
                         help="trust the space's own sshd host key with this fingerprint (--open vscode; shown "
                              "when the key was unknown)")
    connect.set_defaults(handler=_connect)

    proxy = sub.add_parser("proxy", parents=[common],
                           help="bridge stdin/stdout to a space's port (an SSH ProxyCommand)")
    proxy.add_argument("space", help="the space: NAME or NAMESPACE/NAME; also pod/NAME or svc/NAME")
    proxy.add_argument("--port", type=int, required=True, help="the pod port (22 for the space's sshd)")
    proxy.add_argument("--via", metavar="SSH_HOST", help="through this login node (default: pods/portforward)")
    proxy.set_defaults(handler=_proxy)


def _fail(message: str, code: int) -> int:
    print(f"hyperdesk: error: {message}", file=sys.stderr, flush=True)
    return code


def _check_port(value: int | None, option: str) -> str | None:
    if value is not None and not 0 <= value < 65536:
        return f"{option} must be between 0 and 65535"
    return None


def _cluster(settings: Any, kubeconfig: Any) -> tuple[Any, str] | str:
    from app.get import cluster_problem

    if problem := cluster_problem(kubeconfig, settings.context):
        return problem[0]
    context = kubeconfig.context(settings.context)
    from app.cluster.connection import ClusterConnection

    connection = ClusterConnection(list(kubeconfig.paths) or None, settings.context)
    return connection, settings.namespace or context.namespace or "default"


def _connect(args: argparse.Namespace, settings: Any, kubeconfig: Any) -> int:
    import asyncio
    import os
    import signal

    for value, option in ((args.local_port, "--local-port"), (args.port, "--port")):
        if problem := _check_port(value, option):
            return _fail(problem, EXIT_USAGE)
    from app.tunnels import ide, placement
    from app.tunnels.manager import Tunnel, TunnelManager, runtime_dir
    from app.tunnels.routes import RouteError, route_for, split_host
    from app.tunnels.targets import TargetError, find_target

    where = placement.detect(os.environ)
    if args.open == "web-ui":
        return _web_ui(args, settings, kubeconfig, where, ide)
    mode = args.open or ("print" if where.login_node else "browser")
    if args.via:
        try:
            split_host(args.via)
        except ValueError as exc:
            return _fail(f"--via {exc}", EXIT_USAGE)
    elif args.accept_host_key:
        return _fail("--accept-host-key needs --via: only an SSH login node has a host key", EXIT_USAGE)
    found = _cluster(settings, kubeconfig)
    if isinstance(found, str):
        return _fail(found, EXIT_USAGE if kubeconfig is not None else EXIT_FAILURE)
    connection, namespace = found
    context_name = kubeconfig.context(settings.context).name

    async def body(manager: Any, stop: asyncio.Event) -> int:
        try:
            target = await find_target(connection, args.space, namespace, args.port)
            if mode == "vscode" and settings.readonly and target.runs_sshd:
                return _fail("hyperdesk is read-only (--readonly): --open vscode would write ~/.ssh/config "
                             f"(Host {ide.host_alias(target.namespace, target.space)})", EXIT_USAGE)

            async def again() -> Any:  # the space's pod now: a space stopped and started runs in a new pod
                return await find_target(connection, args.space, namespace, args.port)

            route = route_for(connection, target, args.via, resolve=again)
            if args.accept_host_key:
                # where ~/.ssh/config says this host's key lives (HostKeyAlias, UserKnownHostsFile, ProxyJump)
                _, written = await route.accept_host_key(args.accept_host_key)
                print(f"trusted {args.accept_host_key} for {args.via} in {written}", file=sys.stderr, flush=True)
            local = target.port if args.local_port is None else args.local_port
            tunnel = Tunnel(manager.unique_name(target.space), target.text, route, local, target.path)
            try:
                await tunnel.start()
            except OSError as exc:
                return _fail(f"cannot listen on 127.0.0.1:{local}: {exc.strerror or exc}", EXIT_FAILURE)
            manager.add(tunnel)
            print(f"tunnel open: {tunnel.url} -> {target.text} ({route.description})", flush=True)
            if tunnel.note:
                print(f"note: {tunnel.note}", flush=True)
            if where.login_node:
                print("this is a login node: on your laptop, run\n  "
                      f"{where.laptop_command(tunnel.local_port, tunnel.local_port)}\n"
                      f"then open http://127.0.0.1:{tunnel.local_port}{target.path}", flush=True)
                print(f"warning: {placement.SHARED_NODE_WARNING}", file=sys.stderr, flush=True)
            try:
                await _after_open(mode, tunnel, target, args, settings, where, ide, connection, context_name)
            except OSError as exc:
                print(f"warning: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}; the tunnel "
                      "stays open", file=sys.stderr, flush=True)
            except TargetError as exc:
                print(f"warning: {exc}; the tunnel stays open", file=sys.stderr, flush=True)
            print("Ctrl-C closes the tunnel.", flush=True)
            await stop.wait()
            return EXIT_OK
        except TargetError as exc:
            return _fail(str(exc), exc.exit_code)
        except RouteError as exc:  # HostKeyError included: its message carries the fingerprint
            return _fail(str(exc), EXIT_FAILURE)

    async def main() -> int:
        manager = TunnelManager(publish_dir=runtime_dir())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        work = asyncio.ensure_future(body(manager, stop))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([work, stopped], return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                return work.result()
            # Ctrl-C while still connecting (or while the tunnel is open): give up whatever is in flight
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            if len(manager) == 0:
                print("hyperdesk: connect cancelled", file=sys.stderr, flush=True)
                return 130
            return EXIT_OK
        finally:
            stopped.cancel()
            opened = len(manager) > 0
            await manager.close_all()
            await connection.close()
            if opened:
                print("tunnel closed", file=sys.stderr, flush=True)

    return asyncio.run(main())


def _web_ui(args: argparse.Namespace, settings: Any, kubeconfig: Any, where: Any, ide: Any) -> int:
    """`--open web-ui`: create a WorkspaceConnection, print its URL (never logged: it may carry a token)."""
    import asyncio

    from app.tunnels.targets import POD_OR_SERVICE, TargetError, split_ref
    from app.tunnels.webui import web_ui_url

    kind, _, rest = args.space.partition("/")
    if kind in POD_OR_SERVICE and rest:
        return _fail(f"--open web-ui needs a space (NAME or NAMESPACE/NAME), not {args.space}", EXIT_USAGE)
    if settings.readonly:
        return _fail("hyperdesk is read-only (--readonly): --open web-ui creates a WorkspaceConnection", EXIT_USAGE)
    found = _cluster(settings, kubeconfig)
    if isinstance(found, str):
        return _fail(found, EXIT_USAGE if kubeconfig is not None else EXIT_FAILURE)
    connection, default_namespace = found

    async def main() -> int:
        try:
            namespace, name = split_ref(args.space, default_namespace)  # as `connect` reads a space
            url = await web_ui_url(connection, namespace, name)
        except TargetError as exc:
            return _fail(str(exc), exc.exit_code)
        finally:
            await connection.close()
        print(url, flush=True)
        if not where.login_node and not ide.open_browser(url):
            print("no browser could be started: open the URL above yourself", file=sys.stderr, flush=True)
        return EXIT_OK

    return asyncio.run(main())


async def _after_open(mode: str, tunnel: Any, target: Any, args: argparse.Namespace, settings: Any, where: Any,
                      ide: Any, connection: Any, context_name: str | None) -> None:
    if mode == "browser" and not where.login_node:
        if not ide.open_browser(tunnel.url):
            print("no browser could be started: open the URL above yourself", flush=True)
    elif mode == "vscode":
        if target.runs_sshd:
            from pathlib import Path

            from app.tunnels.routes import route_for
            from app.tunnels.spacekey import space_key_place, unknown_fingerprint

            alias = ide.host_alias(target.namespace, target.space)
            known = ide.space_known_hosts()
            proxy = ide.proxy_command(target.namespace, target.space, 22, kind=target.kind, context=context_name,
                                      kubeconfig_paths=list(connection.kubeconfig_paths or []), via=args.via)
            block = ide.ssh_block(alias, proxy, known_hosts=known)
            config = Path.home() / ".ssh" / "config"
            changed = ide.write_ssh_block(config, alias, block, settings.readonly)
            print(f"{'wrote' if changed else 'kept'} Host {alias} in {config}", flush=True)
            ssh_target = target.on_port(22)
            place = space_key_place(alias, lambda: route_for(connection, ssh_target, args.via), known)
            if args.accept_space_key:
                await place.accept(args.accept_space_key)
                print(f"trusted {args.accept_space_key} for {alias} in {known}", flush=True)
            elif (fingerprint := await unknown_fingerprint(place)) is not None:
                print(f"the SSH host key of {alias} is not known (its sshd offers {fingerprint}). Check it, then "
                      f"run `hyperdesk connect {target.key} --open vscode --accept-space-key {fingerprint}`; "
                      "VS Code is not started until then", flush=True)
                return
            argv = ide.vscode_argv(alias, args.path)
            if argv is None:
                print(f"`code` is not on PATH: in VS Code, Remote-SSH: Connect to Host... {alias}", flush=True)
            else:
                ide.launch(argv)
                print(f"started {' '.join(argv)}", flush=True)
        else:
            print(f"VS Code: Jupyter: Select kernel > Existing Jupyter Server > {tunnel.url}", flush=True)


def _proxy(args: argparse.Namespace, settings: Any, kubeconfig: Any) -> int:
    """stdin -> the space's port -> stdout, for OpenSSH's ProxyCommand. Messages go to stderr only."""
    import asyncio

    if problem := _check_port(args.port, "--port"):
        return _fail(problem, EXIT_USAGE)
    from app.tunnels.routes import RouteError, route_for
    from app.tunnels.targets import TargetError, find_target

    found = _cluster(settings, kubeconfig)
    if isinstance(found, str):
        return _fail(found, EXIT_USAGE if kubeconfig is not None else EXIT_FAILURE)
    connection, namespace = found

    async def main() -> int:
        route = None
        try:
            target = await find_target(connection, args.space, namespace, args.port)
            route = route_for(connection, target, args.via)
            await route.ensure()
            stream = await route.open()
            await _bridge(stream)
            return EXIT_OK
        except TargetError as exc:
            return _fail(str(exc), exc.exit_code)
        except RouteError as exc:
            return _fail(str(exc), EXIT_FAILURE)
        except BrokenPipeError:
            return EXIT_OK  # ssh closed our stdout: it has what it wanted
        except OSError as exc:  # our stdin or stdout failed
            return _fail(f"stdin/stdout: {exc.strerror or exc}", EXIT_FAILURE)
        finally:
            if route is not None:
                await route.close()
            await connection.close()

    return asyncio.run(main())


PROXY_CHUNK = 256 * 1024
PROXY_QUEUED = 8
"""Chunks in flight between a stdio thread and the event loop, each way: a slow side holds the other back."""


async def _bridge(stream: Any, stdin: int | None = None, stdout: int | None = None) -> None:
    """Copy `stdin` -> `stream` and `stream` -> `stdout` (file descriptors; default: this process's) until the
    stream's answer ends. One long-lived daemon thread per direction does the blocking reads and writes: nothing
    starts a thread per chunk, and a thread still blocked in os.read(stdin) never keeps the process from exiting
    when the route fails (unlike the default executor, which `asyncio.run` joins on the way out)."""
    import asyncio
    import os
    import queue
    import threading

    stdin = sys.stdin.fileno() if stdin is None else stdin
    stdout = sys.stdout.fileno() if stdout is None else stdout
    loop = asyncio.get_running_loop()
    incoming: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
    read_credit = threading.Semaphore(PROXY_QUEUED)
    outgoing: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    write_credit = asyncio.Semaphore(PROXY_QUEUED)
    written: asyncio.Future[None] = loop.create_future()

    def hand_over(function: Any, *args: Any) -> bool:
        try:
            loop.call_soon_threadsafe(function, *args)
            return True
        except RuntimeError:  # the loop has gone: the process is exiting
            return False

    def reader() -> None:
        while True:
            read_credit.acquire()
            try:
                data: bytes | BaseException = os.read(stdin, PROXY_CHUNK)
            except OSError as exc:
                data = exc
            if not hand_over(incoming.put_nowait, data) or not data or isinstance(data, BaseException):
                return

    def finish(error: BaseException | None) -> None:
        if not written.done():
            written.set_exception(error) if error is not None else written.set_result(None)
        for _ in range(PROXY_QUEUED):
            write_credit.release()  # wake a downstream waiting for room: it then sees `written`

    def writer() -> None:
        error = None
        try:
            while (data := outgoing.get()) is not None:
                view = memoryview(data)
                while view:
                    view = view[os.write(stdout, view):]
                hand_over(write_credit.release)
        except OSError as exc:  # stdout closed (ssh went away)
            error = exc
        hand_over(finish, error)

    async def upstream() -> None:
        while True:
            data = await incoming.get()
            read_credit.release()
            if isinstance(data, BaseException):
                raise data
            if not data:
                break
            await stream.write(data)
        await stream.write_eof()

    async def downstream() -> None:
        while data := await stream.read():
            await write_credit.acquire()
            if written.done():
                break
            outgoing.put(data)
        outgoing.put(None)
        await written  # all of the answer is on stdout (or the OSError that stopped it)

    threading.Thread(target=reader, name="hyperdesk-proxy-stdin", daemon=True).start()
    threading.Thread(target=writer, name="hyperdesk-proxy-stdout", daemon=True).start()
    tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[0] in done and not tasks[1].done() and tasks[0].exception() is None:
            await tasks[1]  # stdin closed: let the rest of the answer come back
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        outgoing.put(None)  # the writer thread ends once what is queued is written
        await stream.close()


# --- hyperdesk get tunnels -----------------------------------------------------------------------------------------

def _tunnels(ctx: Any) -> list[dict[str, Any]]:
    from dataclasses import asdict

    from app.tunnels.manager import published_rows, runtime_dir

    return [asdict(row) for row in published_rows(runtime_dir())]


def _tunnel_cells(item: dict[str, Any]) -> dict[str, Any]:
    from app.model.jobs import human_duration
    from app.tunnels.manager import human_bytes

    return {**item, "bytes_in": human_bytes(item["bytes_in"]), "bytes_out": human_bytes(item["bytes_out"]),
            "uptime_seconds": human_duration(int(item["uptime_seconds"]))}


def register_kinds() -> None:
    """`hyperdesk get tunnels` (app.get.lookup calls this; importing app.get here would slow `--version`)."""
    from app.get import Kind, register

    register(Kind(
        name="tunnels", aliases=("tunnel", "tun"), fetch=_tunnels,
        columns=(("NAME", "name"), ("TARGET", "target"), ("LOCAL", "local"), ("ROUTE", "route"),
                 ("STATE", "state"), ("IN", "bytes_in"), ("OUT", "bytes_out"), ("UPTIME", "uptime_seconds"),
                 ("LAST ERROR", "last_error")),
        description="tunnels open in running hyperdesk processes", display=_tunnel_cells,
    ))

