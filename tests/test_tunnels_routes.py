"""Tunnels over each route, against real servers on 127.0.0.1: the simulated cluster's `pods/portforward`, a real
OpenSSH sshd and asyncssh's server as the login node. An HTTP request through the tunnel reaches the space's page."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import aiohttp
import pytest

from app.cluster.connection import ClusterConnection
from app.tunnels.manager import Tunnel, TunnelManager
from app.tunnels.routes import HostKeyError, PortForwardRoute, RouteError, SshOptions, SshRoute, accept_host_key
from app.tunnels.targets import TargetError, find_space

SPACE = "hyperpod-ns-nlp/alice-notebook"


def jupyter_port(cluster, namespace: str, pod: str) -> int:
    """Where the simulator serves the space's demo JupyterLab: what a login node reaches as the pod's IP:8888."""
    port = cluster.call(cluster.cluster.server.port_forwards.target, namespace, pod, 8888)
    assert port is not None, f"the simulator serves nothing behind {namespace}/{pod}:8888"
    return port


async def fetch(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=20)) as response:
            return response.status, await response.text()


@pytest.fixture
async def connection(hyperpod_cluster):
    connection = ClusterConnection([hyperpod_cluster.kubeconfig_path], None)
    yield connection
    await connection.close()


def ssh_options(keys, port: int) -> SshOptions:
    return SshOptions("127.0.0.1", port=port, username="root", known_hosts=keys.known_hosts,
                      client_keys=(keys.private,), config=(keys.config,))


async def test_api_portforward_reaches_the_space_page(connection):
    target = await find_space(connection, SPACE, "default")
    assert target.kind == "Workspace" and target.port == 8888
    tunnel = Tunnel("alice", target.text, PortForwardRoute(connection, target.namespace, target.pod, target.port))
    await tunnel.start()
    try:
        status, page = await fetch(f"{tunnel.url}lab")
        assert status == 200
        assert "Demo JupyterLab" in page and "hyperpod-ns-nlp/alice-notebook" in page
        assert tunnel.row().bytes_in >= len(page) and tunnel.row().route == "api portforward"
    finally:
        await tunnel.close()


async def test_ssh_routes_reach_the_space_page(hyperpod_cluster, connection, sshd, asyncssh_server, ssh_keys):
    target = await find_space(connection, SPACE, "default")
    port = jupyter_port(hyperpod_cluster, target.namespace, target.pod)
    for server_port, name in ((sshd.port, "openssh"), (asyncssh_server.port, "asyncssh")):
        tunnel = Tunnel(name, target.text, SshRoute(ssh_options(ssh_keys, server_port), "127.0.0.1", port))
        await tunnel.start()
        try:
            status, page = await fetch(f"{tunnel.url}lab")
            assert status == 200 and "Demo JupyterLab" in page, name
            assert tunnel.row().route == "ssh via 127.0.0.1"
        finally:
            await tunnel.close()


async def test_a_taken_local_port_picks_another_and_says_so(connection):
    target = await find_space(connection, SPACE, "default")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        tunnel = Tunnel("alice", target.text, PortForwardRoute(connection, target.namespace, target.pod, 8888),
                        local_port=busy)
        await tunnel.start()
        try:
            assert tunnel.local_port != busy
            assert tunnel.note == f"local port {busy} was taken; using {tunnel.local_port}"
            status, page = await fetch(tunnel.url)
            assert status == 200 and "Demo JupyterLab" in page
        finally:
            await tunnel.close()


async def test_the_listener_binds_loopback_only(connection):
    target = await find_space(connection, SPACE, "default")
    tunnel = Tunnel("alice", target.text, PortForwardRoute(connection, target.namespace, target.pod, 8888))
    await tunnel.start()
    try:
        assert {s.getsockname()[0] for s in tunnel._server.sockets} == {"127.0.0.1"}
    finally:
        await tunnel.close()


async def test_an_unknown_host_key_refuses_with_its_fingerprint(asyncssh_server, ssh_keys, tmp_path):
    import asyncssh

    empty = tmp_path / "empty_known_hosts"
    empty.touch()
    options = SshOptions("127.0.0.1", port=asyncssh_server.port, username="root", known_hosts=empty,
                         client_keys=(ssh_keys.private,), config=(ssh_keys.config,))
    expected = asyncssh.read_public_key(str(asyncssh_server.host_key.with_suffix(".pub"))).get_fingerprint()
    tunnel = Tunnel("x", "x", SshRoute(options, "127.0.0.1", 9))
    with pytest.raises(HostKeyError) as refused:
        await tunnel.start()
    assert refused.value.fingerprint == expected and not refused.value.changed
    assert expected in str(refused.value) and "refused" in str(refused.value)
    assert empty.read_text() == ""  # nothing was accepted on the user's behalf
    # The explicit step: accepting the fingerprint the user saw, after which the route comes up.
    assert await accept_host_key("127.0.0.1", asyncssh_server.port, expected, empty) == expected
    route = SshRoute(options, "127.0.0.1", 9)
    await route.ensure()
    await route.close()


async def test_accepting_a_different_fingerprint_adds_nothing(asyncssh_server, tmp_path):
    known = tmp_path / "known_hosts"
    with pytest.raises(RouteError, match="not accepted"):
        await accept_host_key("127.0.0.1", asyncssh_server.port, "SHA256:somethingelse", known)
    assert not known.exists()


async def test_a_changed_host_key_refuses(asyncssh_server, ssh_keys, tmp_path):
    from tests.plugins.ssh import keygen

    other = keygen(tmp_path / "other_host_key")
    changed = tmp_path / "changed_known_hosts"
    key_type, key = other.with_suffix(".pub").read_text().split()[:2]
    changed.write_text(f"[127.0.0.1]:{asyncssh_server.port} {key_type} {key}\n")
    options = SshOptions("127.0.0.1", port=asyncssh_server.port, username="root", known_hosts=changed,
                         client_keys=(ssh_keys.private,), config=(ssh_keys.config,))
    with pytest.raises(HostKeyError) as refused:
        await SshRoute(options, "127.0.0.1", 9).ensure()
    assert refused.value.fingerprint is not None and refused.value.changed
    assert "CHANGED" in str(refused.value) and "--accept-host-key" not in str(refused.value)
    with pytest.raises(RouteError, match="CHANGED"):  # accepting never replaces a trusted key
        await accept_host_key("127.0.0.1", asyncssh_server.port, refused.value.fingerprint, changed)
    assert changed.read_text().count("\n") == 1


async def test_a_stopped_sshd_comes_back_on_the_same_local_port(hyperpod_cluster, connection, sshd, ssh_keys):
    target = await find_space(connection, SPACE, "default")
    port = jupyter_port(hyperpod_cluster, target.namespace, target.pod)
    manager = TunnelManager()
    tunnel = Tunnel("alice", target.text, SshRoute(ssh_options(ssh_keys, sshd.port), "127.0.0.1", port))
    await tunnel.start()
    manager.add(tunnel)
    local = tunnel.local_port
    try:
        assert (await fetch(tunnel.url))[0] == 200
        sshd.kill()
        await wait_for(lambda: tunnel.state == "reconnecting", 30)
        assert tunnel.last_error
        with pytest.raises(aiohttp.ClientError):  # while the route is down, a request fails fast, not hangs
            await fetch(tunnel.url)
        sshd.start()
        await wait_for(lambda: tunnel.state == "open", 30)
        assert tunnel.local_port == local and tunnel.reconnects == 1
        status, page = await fetch(tunnel.url)
        assert status == 200 and "Demo JupyterLab" in page
        assert manager.rows()[0].local == f"127.0.0.1:{local}"
    finally:
        await manager.close_all()
    assert len(manager) == 0


async def test_a_space_that_does_not_exist_is_a_clear_error(connection):
    with pytest.raises(TargetError, match="no space hyperpod-ns-nlp/nope"):
        await find_space(connection, "hyperpod-ns-nlp/nope", "default")
    with pytest.raises(TargetError, match="not a valid"):
        await find_space(connection, "hyperpod-ns-nlp/Bad_Name;rm", "default")


async def wait_for(condition, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_the_api_route_survives_an_api_server_outage_on_the_same_port(hyperpod_cluster, connection):
    """pods/portforward refused (the API server answers 503), then the API server restarting: the tunnel says so,
    keeps its local port, and carries requests again once the server is back."""
    target = await find_space(connection, SPACE, "default")
    tunnel = Tunnel("alice", target.text, PortForwardRoute(connection, target.namespace, target.pod, 8888))
    await tunnel.start()
    faults = hyperpod_cluster.cluster.server.faults
    local = tunnel.local_port
    try:
        hyperpod_cluster.call(faults.fail, 1.0, status=503, match=lambda info: info.subresource == "portforward")
        with pytest.raises(aiohttp.ClientError):
            await fetch(tunnel.url)
        await wait_for(lambda: tunnel.state == "error", 5)
        assert "503" in tunnel.last_error and "refused the port-forward" in tunnel.last_error
        hyperpod_cluster.call(faults.clear)
        assert (await fetch(tunnel.url))[0] == 200 and tunnel.state == "open"
        # the API server goes away for a while: a request meanwhile fails cleanly and the tunnel says why
        from urllib.parse import urlsplit

        api_port = urlsplit(connection.server).port

        def api_down() -> bool:
            try:
                socket.create_connection(("127.0.0.1", api_port), timeout=1).close()
                return False
            except OSError:
                return True

        restart = asyncio.ensure_future(asyncio.to_thread(hyperpod_cluster.call, faults.restart, 4.0))
        await wait_for(api_down, 10)
        with pytest.raises(aiohttp.ClientError):
            await fetch(tunnel.url)
        assert tunnel.state == "error" and "cannot reach the API server" in tunnel.last_error
        assert not restart.done()  # that request was made during the outage
        await restart
        status, page = await fetch(tunnel.url)
        assert status == 200 and "Demo JupyterLab" in page
        assert tunnel.state == "open" and tunnel.local_port == local
    finally:
        hyperpod_cluster.call(faults.clear)
        await tunnel.close()


async def keep_alive_target() -> tuple[asyncio.base_events.Server, int, list[int]]:
    """A target that answers each chunk and keeps the connection until the client's end arrives (like an HTTP
    keep-alive server); `ended` counts the connections it saw end."""
    ended: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1024):
            writer.write(b"pong")
            await writer.drain()
        ended.append(1)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], ended


async def test_a_closed_client_releases_its_stream_on_each_route(connection, asyncssh_server, ssh_keys):
    """The client's end reaches the target (SSH: half-close; port-forward: the stream ends), so no stream waits
    forever on a keep-alive target after its client has gone."""
    server, port, ended = await keep_alive_target()
    target = await find_space(connection, SPACE, "default")
    routes = [SshRoute(ssh_options(ssh_keys, asyncssh_server.port), "127.0.0.1", port),
              PortForwardRoute(connection, target.namespace, target.pod, 8888)]
    try:
        for route in routes:
            tunnel = Tunnel("alice", "keep-alive", route)
            await tunnel.start()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", tunnel.local_port)
                if route.kind == "ssh":
                    writer.write(b"ping")
                    assert await reader.readexactly(4) == b"pong"
                await wait_for(lambda: len(tunnel._streams) == 1, 10)
                writer.close()
                await wait_for(lambda: not tunnel._streams, 10)
                if route.kind == "ssh":  # the target saw the end of the client's data (and of the start's probe)
                    await wait_for(lambda: len(ended) == 2, 10)
            finally:
                await tunnel.close()
    finally:
        server.close()


async def test_closing_a_tunnel_with_streams_open_logs_no_errors(asyncssh_server, ssh_keys):
    server, port, _ = await keep_alive_target()
    loop = asyncio.get_running_loop()
    errors: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    tunnel = Tunnel("alice", "keep-alive", SshRoute(ssh_options(ssh_keys, asyncssh_server.port), "127.0.0.1", port))
    await tunnel.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", tunnel.local_port)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"pong"
        await tunnel.close()
        assert await reader.read() == b""  # the tunnel closed the client's connection
        await asyncio.sleep(0)  # let done callbacks of the cancelled connection tasks run
        assert errors == []
        writer.close()
    finally:
        loop.set_exception_handler(previous)
        await tunnel.close()
        server.close()


async def test_a_malformed_ssh_config_is_a_clear_error_and_the_supervisor_survives_it(
        hyperpod_cluster, connection, sshd, ssh_keys):
    target = await find_space(connection, SPACE, "default")
    port = jupyter_port(hyperpod_cluster, target.namespace, target.pod)
    ssh_keys.config.write_text("Host *\n    Port abc\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        wanted = probe.getsockname()[1]
    tunnel = Tunnel("alice", target.text, SshRoute(ssh_options(ssh_keys, sshd.port), "127.0.0.1", port), wanted)
    with pytest.raises(RouteError, match="line 2: Invalid Port"):
        await tunnel.start()
    with socket.socket() as again:  # the local port was released
        again.bind(("127.0.0.1", wanted))

    ssh_keys.config.write_text("")
    await tunnel.start()
    try:
        sshd.kill()
        await wait_for(lambda: tunnel.state == "reconnecting", 30)
        ssh_keys.config.write_text("Host *\n    Port abc\n")
        sshd.start()
        await wait_for(lambda: "Invalid Port" in tunnel.last_error, 30)
        assert tunnel.state == "reconnecting"
        ssh_keys.config.write_text("")
        await wait_for(lambda: tunnel.state == "open", 30)
        assert (await fetch(tunnel.url))[0] == 200
    finally:
        await tunnel.close()


async def test_a_cancelled_connect_leaves_no_listener_and_no_connection(ssh_keys):
    """A login node that accepts TCP but never answers: the user gives up (the worker is cancelled) mid-dial."""
    peers: list[asyncio.StreamReader] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(reader)
        await reader.read()  # until hyperdesk hangs up
        writer.close()
        peers.remove(reader)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        wanted = probe.getsockname()[1]
    tunnel = Tunnel("alice", "x", SshRoute(ssh_options(ssh_keys, server.sockets[0].getsockname()[1]), "127.0.0.1",
                                           8888), wanted)
    try:
        start = asyncio.ensure_future(tunnel.start())
        await wait_for(lambda: len(peers) == 1, 10)
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await start
        with socket.socket() as again:  # the local port was released
            again.bind(("127.0.0.1", wanted))
        await wait_for(lambda: not peers, 10)  # and the half-made SSH connection hung up
    finally:
        server.close()


async def test_host_keys_follow_the_ssh_config(asyncssh_server, ssh_keys, tmp_path):
    """A ~/.ssh/config Host with HostName, Port, HostKeyAlias and UserKnownHostsFile: the refusal, the accept step
    and the check all use what the config resolves, not the alias typed or port 22 in ~/.ssh/known_hosts."""
    import asyncssh

    from tests.plugins.ssh import keygen

    mine = tmp_path / "cluster_known_hosts"
    ssh_keys.config.write_text(f"Host login\n    HostName 127.0.0.1\n    Port {asyncssh_server.port}\n"
                               f"    HostKeyAlias hyperpod-login\n    UserKnownHostsFile {mine}\n")
    options = SshOptions("login", username="root", client_keys=(ssh_keys.private,), config=(ssh_keys.config,))
    route = SshRoute(options, "127.0.0.1", 9)
    expected = asyncssh.read_public_key(str(asyncssh_server.host_key.with_suffix(".pub"))).get_fingerprint()
    with pytest.raises(HostKeyError) as refused:
        await route.ensure()
    assert refused.value.fingerprint == expected and not refused.value.changed
    assert f"hyperpod-login port {asyncssh_server.port} (login) is not known" in str(refused.value)
    fingerprint, written = await route.accept_host_key(expected)
    assert fingerprint == expected and written == mine
    assert mine.read_text().startswith(f"[hyperpod-login]:{asyncssh_server.port} ssh-ed25519 ")
    await route.ensure()  # trusted now, under the alias, in the config's file
    await route.close()

    # another key for the alias in that file: CHANGED, and nothing offered for acceptance
    other = keygen(tmp_path / "other_host_key")
    key_type, key = other.with_suffix(".pub").read_text().split()[:2]
    mine.write_text(f"[hyperpod-login]:{asyncssh_server.port} {key_type} {key}\n")
    with pytest.raises(HostKeyError) as changed:
        await route.ensure()
    assert changed.value.changed and "CHANGED" in str(changed.value) and "--accept-host-key" not in str(changed.value)


async def test_no_accept_command_without_a_fingerprint(ssh_keys, tmp_path):
    """When the server's key cannot be read back, the refusal says so and offers nothing to accept."""
    from app.tunnels.routes import HostKeyPlace

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    place = HostKeyPlace("127.0.0.1", {"port": port, "config": []}, "127.0.0.1", port, (tmp_path / "kh",))
    assert await place.server_key(quiet=True) is None
    route = SshRoute(SshOptions("127.0.0.1", port=port, known_hosts=tmp_path / "kh", config=(ssh_keys.config,)),
                     "127.0.0.1", 9)
    error = await route._host_key_error(Exception())
    assert error.fingerprint is None and "no key" in str(error) and "--accept-host-key" not in str(error)


async def test_the_published_listing_is_written_only_when_it_changes(connection, tmp_path):
    import json
    import os

    from app.tunnels.manager import published_rows

    target = await find_space(connection, SPACE, "default")
    manager = TunnelManager(publish_dir=tmp_path / "tunnels")
    tunnel = Tunnel("alice", target.text, PortForwardRoute(connection, target.namespace, target.pod, 8888))
    await tunnel.start()
    manager.add(tunnel)
    try:
        for _ in range(5):  # nothing changed: the uptime alone never rewrites the file
            manager._publish()
        assert manager.writes == 1
        (row,) = published_rows(tmp_path / "tunnels")
        assert row.name == "alice" and row.state == "open" and row.uptime_seconds >= 0
        assert (await fetch(tunnel.url))[0] == 200
        manager._publish()
        assert manager.writes == 2  # bytes moved: written again
        (row,) = published_rows(tmp_path / "tunnels")
        assert row.bytes_in > 0

        # a listing whose pid now belongs to another process (another start time) is stale and removed
        stale = tmp_path / "tunnels" / f"{os.getppid()}.json"
        data = json.loads((tmp_path / "tunnels" / f"{os.getpid()}.json").read_text())
        stale.write_text(json.dumps({**data, "pid": os.getppid(), "process_started": 1.0}))
        assert len(published_rows(tmp_path / "tunnels")) == 1 and not stale.exists()
    finally:
        await manager.close_all()
    assert not (tmp_path / "tunnels" / f"{os.getpid()}.json").exists()


async def test_keepalives_notice_a_hung_login_node_and_the_ssh_config_sets_them(hyperpod_cluster, connection,
                                                                                  sshd, ssh_keys):
    """The sshd session process stops answering (SIGSTOP) without closing anything: only keepalives can tell.
    ~/.ssh/config's ServerAliveInterval/CountMax (1 s x 2 here) win over hyperdesk's own (5 s x 2)."""
    import signal

    import psutil

    ssh_keys.config.write_text("Host *\n    ServerAliveInterval 1\n    ServerAliveCountMax 2\n")
    target = await find_space(connection, SPACE, "default")
    port = jupyter_port(hyperpod_cluster, target.namespace, target.pod)
    route = SshRoute(ssh_options(ssh_keys, sshd.port), "127.0.0.1", port)
    assert await route.keepalive() == (1.0, 2)  # from the config, not hyperdesk's 5 s x 2
    tunnel = Tunnel("alice", target.text, route)
    await tunnel.start()
    stopped: list[psutil.Process] = []
    try:
        assert (await fetch(tunnel.url))[0] == 200
        listener = psutil.Process(sshd.process.pid)
        sessions = listener.children(recursive=True)
        assert sessions  # the session process(es) of hyperdesk's connection
        for process in sessions:
            process.send_signal(signal.SIGSTOP)
            stopped.append(process)
        await wait_for(lambda: tunnel.state == "reconnecting" or tunnel.reconnects > 0, 30)
        await wait_for(lambda: tunnel.state == "open" and tunnel.reconnects == 1, 30)  # a fresh session
        assert (await fetch(tunnel.url))[0] == 200
    finally:
        for process in stopped:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGCONT)
        await tunnel.close()


async def slow_link(target_port: int, pace: float) -> asyncio.base_events.Server:
    """A TCP proxy to the API server at 127.0.0.1:`target_port` whose way back is slow: the server's answer to the
    WebSocket upgrade, then each port-forward frame, reaches hyperdesk `pace` seconds after the one before, as from
    an API server far away."""

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def frame(reader: asyncio.StreamReader) -> bytes:
        """One WebSocket frame from the server (unmasked)."""
        head = await reader.readexactly(2)
        length = head[1] & 0x7F
        extra = b""
        if length in (126, 127):
            extra = await reader.readexactly(2 if length == 126 else 8)
            length = int.from_bytes(extra, "big")
        return head + extra + await reader.readexactly(length)

    async def slowly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            answer = await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(pace)
            writer.write(answer)
            while answer.startswith(b"HTTP/1.1 101"):
                data = await frame(reader)
                await asyncio.sleep(pace)
                writer.write(data)
                await writer.drain()
            await forward(reader, writer)
        writer.close()

    async def accept(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(forward(client_reader, server_writer), slowly(server_reader, client_writer))

    return await asyncio.start_server(accept, "127.0.0.1", 0)


async def test_a_refusal_that_comes_late_is_still_a_refusal(hyperpod_cluster, connection, tmp_path):
    """The probe waits for the port-forward's port headers, then for the node's answer, however slowly the API
    server relays them: a closed pod port is refused, an open one opens (before, 0.5 s of silence meant "open")."""
    import yaml
    from urllib.parse import urlsplit

    target = await find_space(connection, SPACE, "default")
    document = yaml.safe_load(hyperpod_cluster.kubeconfig_path.read_text())
    server = document["clusters"][0]["cluster"]["server"]
    assert server.startswith("http://"), "the slow link reads the WebSocket frames"
    proxy = await slow_link(urlsplit(server).port, 0.6)
    document["clusters"][0]["cluster"]["server"] = server.replace(
        f":{urlsplit(server).port}", f":{proxy.sockets[0].getsockname()[1]}")
    far = tmp_path / "far-kubeconfig"
    far.write_text(yaml.safe_dump(document))
    slow = ClusterConnection([far], None)
    try:
        closed = Tunnel("closed", target.text, PortForwardRoute(slow, target.namespace, target.pod, 9))
        with pytest.raises(RouteError, match="connection refused"):
            await closed.start()
        with socket.socket() as again:  # nothing listens for a target that refused
            again.bind(("127.0.0.1", closed.local_port))
        tunnel = Tunnel("open", target.text, PortForwardRoute(slow, target.namespace, target.pod, 8888))
        await tunnel.start()
        try:
            assert tunnel.state == "open"
            status, page = await fetch(tunnel.url)
            assert status == 200 and "Demo JupyterLab" in page
        finally:
            await tunnel.close()
    finally:
        await slow.close()
        proxy.close()


async def test_two_tunnels_of_the_same_name_are_both_kept_and_both_closed(connection):
    """`ns1/lab` and `ns2/lab` connecting at once both ask for the name `lab`: the manager names the second one
    `lab#2` as it adds it, so neither is replaced, both are listed and closing all closes both."""
    target = await find_space(connection, SPACE, "default")
    manager = TunnelManager()
    tunnels = [Tunnel("lab", target.text, PortForwardRoute(connection, target.namespace, target.pod, 8888))
               for _ in range(2)]
    await asyncio.gather(*(t.start() for t in tunnels))
    for tunnel in tunnels:
        manager.add(tunnel)
    assert manager.names() == ["lab", "lab#2"] and len(manager) == 2
    await manager.close_all()
    assert [t.state for t in tunnels] == ["closed", "closed"]
    for tunnel in tunnels:
        with socket.socket() as again:  # its local port was released
            again.bind(("127.0.0.1", tunnel.local_port))


async def test_a_new_route_that_cannot_reach_the_pod_keeps_the_open_tunnel(connection, asyncssh_server, ssh_keys,
                                                                          isolated_home, monkeypatch):
    """`r` in the connect dialog: the login node answers, but cannot reach the pod's IP. The tunnel on the API route
    stays open on its port, says why the new route failed, and the session's route is still the API's."""
    import shutil
    from dataclasses import replace

    from app.tunnels.placement import Placement
    from app.tunnels.session import ConnectSession

    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    (isolated_home / "home" / ".ssh").mkdir(parents=True)
    shutil.copy(ssh_keys.private, isolated_home / "home" / ".ssh" / "id_ed25519")
    target = replace(await find_space(connection, SPACE, "default"), pod_ip="127.31.41.59")  # nothing listens
    manager = TunnelManager()
    session = ConnectSession(target, Placement(False, "", ""), local_port=0)
    await session.open(manager, connection)
    assert session.state == "open" and session.tunnel is not None
    kept, port = session.tunnel, session.tunnel.local_port
    try:
        await session.open(manager, connection, ssh_keys.known_hosts, via=f"root@127.0.0.1:{asyncssh_server.port}")
        assert "could not connect to 127.31.41.59:8888" in session.error
        assert session.tunnel is kept and kept.state == "open" and kept.local_port == port
        assert session.via == "" and session.view().route.startswith("api portforward (kept: ssh via")
        status, page = await fetch(kept.url)
        assert status == 200 and "Demo JupyterLab" in page
        assert manager.names() == [target.space]
    finally:
        await manager.close_all()


async def test_a_reroute_cancelled_while_the_old_tunnel_closes_leaves_no_ssh_connection(
        connection, asyncssh_server, ssh_keys, isolated_home, monkeypatch):
    """`r`+Enter twice: the first re-route is cancelled after its login node answered, while the old tunnel closes.
    The SSH connection it dialled is closed too, not left open until the app exits."""
    import shutil
    from dataclasses import replace

    import psutil

    from app.tunnels.placement import Placement
    from app.tunnels.session import ConnectSession

    class SlowToClose(TunnelManager):
        """Holds each close until the test lets it go: the moment the cancel lands in."""

        def __init__(self) -> None:
            super().__init__()
            self.closing, self.release = asyncio.Event(), asyncio.Event()

        async def close(self, name: str) -> None:
            self.closing.set()
            await self.release.wait()
            await super().close(name)

    def ssh_connections() -> int:
        return sum(1 for c in psutil.Process().net_connections("tcp")
                   if c.raddr and c.raddr.port == asyncssh_server.port and c.status == psutil.CONN_ESTABLISHED)

    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    (isolated_home / "home" / ".ssh").mkdir(parents=True)
    shutil.copy(ssh_keys.private, isolated_home / "home" / ".ssh" / "id_ed25519")
    pod = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)  # what the login node reaches
    manager = SlowToClose()
    target = await find_space(connection, SPACE, "default")
    session = ConnectSession(target, Placement(False, "", ""), local_port=0)
    manager.release.set()
    await session.open(manager, connection)
    assert session.state == "open"
    manager.release.clear()
    session.target = replace(target, pod_ip="127.0.0.1", port=pod.sockets[0].getsockname()[1])
    try:
        reroute = asyncio.ensure_future(session.open(manager, connection, ssh_keys.known_hosts,
                                                     via=f"root@127.0.0.1:{asyncssh_server.port}"))
        await asyncio.wait_for(manager.closing.wait(), 20)
        assert ssh_connections() == 1
        reroute.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reroute
        manager.release.set()
        await wait_for(lambda: ssh_connections() == 0 and len(manager) == 0, 10)  # the old tunnel's close completes
        assert session.via == "" and session.tunnel is None
    finally:
        manager.release.set()
        await manager.close_all()
        pod.close()


async def test_a_login_node_from_the_users_ssh_config_is_trusted_where_the_config_says(
        connection, asyncssh_server, ssh_keys, isolated_home, monkeypatch):
    """The user's own ~/.ssh/config (no config passed in, as the TUI and the CLI run) names the login node `login`:
    its HostName, Port and UserKnownHostsFile. The refusal names that host and port, accepting writes that file, and
    the route then opens."""
    from app.tunnels.placement import Placement
    from app.tunnels.session import ConnectSession

    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    ssh_dir = isolated_home / "home" / ".ssh"
    ssh_dir.mkdir(parents=True)
    known = isolated_home / "login_known_hosts"
    (ssh_dir / "config").write_text(
        f"Host login\n  HostName 127.0.0.1\n  Port {asyncssh_server.port}\n  User root\n"
        f"  IdentityFile {ssh_keys.private}\n  UserKnownHostsFile {known}\n")
    target = await find_space(connection, SPACE, "default")
    session = ConnectSession(target, Placement(False, "", ""), via="login", local_port=0)
    route = session.route(connection)
    try:
        with pytest.raises(HostKeyError) as refused:
            await route.ensure()
        assert f"127.0.0.1 port {asyncssh_server.port} (login) is not known" in str(refused.value)
        session.fingerprint = refused.value.fingerprint
        assert await session.accept_key() == known
        assert f"[127.0.0.1]:{asyncssh_server.port} ssh-ed25519 " in known.read_text()
        await route.ensure()  # trusted now
    finally:
        await route.close()
