"""Pure parts of the tunnel core: the managed ~/.ssh/config block, placement detection, space resolution."""

from __future__ import annotations

import os
import stat

import pytest

from app.tunnels import ide
from app.tunnels.placement import detect
from app.tunnels.routes import split_host
from app.tunnels.targets import TargetError, space_target

ALIAS = "hyperdesk-team-a-alice"
PROXY = ["/usr/bin/hyperdesk", "proxy", "team-a/alice", "--port", "22"]


def test_the_managed_block_is_added_replaced_and_leaves_the_rest_alone(tmp_path):
    config = tmp_path / ".ssh" / "config"
    config.parent.mkdir()
    mine = "Host bastion\n    HostName 203.0.113.5\n    User me\n"
    config.write_text(mine)
    os.chmod(config, 0o640)
    assert ide.write_ssh_block(config, ALIAS, ide.ssh_block(ALIAS, PROXY), readonly=False)
    first = config.read_text()
    assert first.startswith("# >>> hyperdesk managed: hyperdesk-team-a-alice >>>")  # before the first Host
    assert first.endswith("<<<\n\n" + mine)
    assert "    ProxyCommand /usr/bin/hyperdesk proxy team-a/alice --port 22\n" in first
    assert stat.S_IMODE(config.stat().st_mode) == 0o640  # the file keeps its permissions
    # the same block again changes nothing; a new one replaces it in place; the user's lines after it stay
    assert not ide.write_ssh_block(config, ALIAS, ide.ssh_block(ALIAS, PROXY), readonly=False)
    config.write_text(config.read_text() + "Host later\n    User x\n")
    assert ide.write_ssh_block(config, ALIAS, ide.ssh_block(ALIAS, [*PROXY[:-1], "2222"]), readonly=False)
    text = config.read_text()
    assert text.count("hyperdesk managed: hyperdesk-team-a-alice >>>") == 1 and "--port 2222" in text
    assert text.endswith(mine + "Host later\n    User x\n")


def test_the_block_wins_over_the_users_host_star(tmp_path):
    """OpenSSH keeps the first value of each option: the block goes before `Host *`, after leading comments and
    Includes, so `ssh -G` resolves the block's own User and ProxyCommand."""
    import subprocess

    config = tmp_path / "config"
    head = "# my settings\nInclude ~/.ssh/config.d/*\n\n"
    config.write_text(head + "Host *\n  User me\n")
    ide.write_ssh_block(config, ALIAS, ide.ssh_block(ALIAS, PROXY, user="sagemaker-user"), readonly=False)
    text = config.read_text()
    assert text.startswith(head + "# >>> hyperdesk managed") and text.endswith("<<<\n\nHost *\n  User me\n")
    resolved = subprocess.run(["ssh", "-G", "-F", str(config), ALIAS], capture_output=True, text=True,
                              check=True).stdout.splitlines()
    assert "user sagemaker-user" in resolved
    assert "proxycommand /usr/bin/hyperdesk proxy team-a/alice --port 22" in resolved
    other = subprocess.run(["ssh", "-G", "-F", str(config), "elsewhere"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert "user me" in other


def test_a_symlinked_config_stays_a_link(tmp_path):
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "ssh_config"
    real.write_text("Host bastion\n    User me\n")
    os.chmod(real, 0o644)
    link = tmp_path / ".ssh" / "config"
    link.parent.mkdir()
    link.symlink_to(real)
    assert ide.write_ssh_block(link, ALIAS, ide.ssh_block(ALIAS, PROXY), readonly=False)
    assert link.is_symlink() and link.resolve() == real
    assert "Host hyperdesk-team-a-alice" in real.read_text() and stat.S_IMODE(real.stat().st_mode) == 0o644
    assert sorted(p.name for p in dotfiles.iterdir()) == ["ssh_config"]  # no temporary file left behind


def test_a_new_config_is_private_and_readonly_refuses(tmp_path):
    config = tmp_path / ".ssh" / "config"
    with pytest.raises(TargetError, match="read-only"):
        ide.write_ssh_block(config, ALIAS, ide.ssh_block(ALIAS, PROXY), readonly=True)
    assert not config.exists()
    ide.write_ssh_block(config, ALIAS, ide.ssh_block(ALIAS, PROXY), readonly=False)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_a_broken_block_is_not_guessed_at(tmp_path):
    config = tmp_path / "config"
    config.write_text("# >>> hyperdesk managed: hyperdesk-team-a-alice >>> (written by hyperdesk; edits inside are "
                      "replaced)\nHost hyperdesk-team-a-alice\n")
    before = config.read_text()
    with pytest.raises(TargetError, match="no end marker"):
        ide.write_ssh_block(config, ALIAS, ide.ssh_block(ALIAS, PROXY), readonly=False)
    assert config.read_text() == before


def test_names_are_validated_before_a_command_line():
    with pytest.raises(TargetError):
        ide.host_alias("team-a", "alice;rm -rf ~")
    with pytest.raises(TargetError):
        ide.proxy_command("team-a", "alice", 22, ["--kubeconfig", "/tmp/a b"])


def test_vscode_is_launched_by_argv_only_when_code_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ide.vscode_argv(ALIAS, "/home/sagemaker-user") is None
    code = tmp_path / "code"
    code.write_text("#!/bin/sh\n")
    code.chmod(0o755)
    assert ide.vscode_argv(ALIAS, "/home/sagemaker-user") == \
        [str(code), "--remote", f"ssh-remote+{ALIAS}", "/home/sagemaker-user"]
    for bad in ("relative/dir", "/home/$(reboot)", "/home/a b"):
        with pytest.raises(TargetError):
            ide.vscode_argv(ALIAS, bad)


@pytest.mark.parametrize(("environ", "expected", "command"), [
    ({}, (False, ""), None),
    ({"SSH_CONNECTION": "203.0.113.9 50022 198.51.100.7 22", "USER": "alice"}, (True, "198.51.100.7"),
     "ssh -N -L 18888:127.0.0.1:8888 alice@198.51.100.7"),
    # OpenSSH takes a bare IPv6 address after user@ ("alice@[2001:db8::7]" fails: "Could not resolve hostname")
    ({"SSH_CONNECTION": "2001:db8::9 50022 2001:db8::7 22", "USER": "alice"}, (True, "2001:db8::7"),
     "ssh -N -L 18888:127.0.0.1:8888 alice@2001:db8::7"),
])
def test_placement_comes_from_the_ssh_session(environ, expected, command):
    placement = detect(environ)
    assert (placement.login_node, placement.host) == expected
    if placement.login_node:
        assert placement.laptop_command(18888, 8888) == command


def test_the_laptop_command_for_an_ipv6_login_node_is_one_openssh_parses():
    """`ssh -G` prints the options ssh would use without connecting: the host must come out as the bare address."""
    import shutil
    import subprocess

    argv = detect({"SSH_CONNECTION": "::1 50022 ::1 22", "USER": "alice"}).laptop_command(18888, 8888).split()
    assert argv[:4] == ["ssh", "-N", "-L", "18888:127.0.0.1:8888"]
    shown = subprocess.run([shutil.which("ssh") or "ssh", "-G", "-F", "/dev/null", *argv[1:]],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert "hostname ::1" in shown and "user alice" in shown


def test_a_login_node_without_ssh_connection_uses_its_hostname():
    placement = detect({"SSH_CLIENT": "203.0.113.9 50022 22", "USER": "bob"})
    assert placement.login_node and placement.host and " " not in placement.host


def test_split_host():
    assert split_host("me@login.example.com:2222") == ("me", "login.example.com", 2222)
    assert split_host("bastion") == (None, "bastion", None)
    for bad in ("host:ssh", "a b", "-oProxyCommand=x", "-host", "me@host:99999", "me;x@host"):
        with pytest.raises(ValueError):
            split_host(bad)


def pod(name: str, labels: dict, ready: bool = True, ip: str = "10.1.2.3", ports=()) -> dict:
    return {"metadata": {"name": name, "namespace": "team-a", "labels": labels},
            "spec": {"containers": [{"name": "main", "ports": list(ports)}]},
            "status": {"phase": "Running" if ready else "Pending", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_space_resolution_for_workspaces_and_notebooks():
    stores = {
        "workspaces": {"team-a/alice": {"metadata": {"name": "alice"}, "spec": {"desiredStatus": "Running"}}},
        "notebooks": {"team-a/nb": {"metadata": {"name": "nb"}}},
        "pods": {"team-a/w-1": pod("w-1", {"workspace.jupyter.org/workspace-name": "alice"},
                                   ports=[{"containerPort": 22, "name": "ssh"}]),
                 "team-a/nb-0": pod("nb-0", {"notebook-name": "nb"}),
                 "team-a/other": pod("other", {"workspace.jupyter.org/workspace-name": "bob"})},
    }
    target = space_target(stores, "team-a/alice")
    assert (target.kind, target.pod, target.port, target.pod_ip, target.runs_sshd) == \
        ("Workspace", "w-1", 8888, "10.1.2.3", True)
    notebook = space_target(stores, "team-a/nb")
    assert (notebook.kind, notebook.pod, notebook.path) == ("Notebook", "nb-0", "/notebook/team-a/nb/")
    stores["pods"]["team-a/w-1"] = pod("w-1", {"workspace.jupyter.org/workspace-name": "alice"}, ready=False)
    with pytest.raises(TargetError, match="its pod is starting"):
        space_target(stores, "team-a/alice")
    stores["workspaces"]["team-a/alice"]["spec"]["desiredStatus"] = "Stopped"
    with pytest.raises(TargetError, match="stopped"):
        space_target(stores, "team-a/alice")
    with pytest.raises(TargetError, match="not a valid namespace"):
        space_target(stores, "Team_A/alice")


def test_only_a_graphical_browser_is_started():
    assert not ide.has_graphical_browser({}, "linux")  # a console browser would take the TUI's terminal
    assert ide.has_graphical_browser({"DISPLAY": ":0"}, "linux")
    assert ide.has_graphical_browser({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert ide.has_graphical_browser({}, "darwin")


def test_a_service_port_maps_to_its_target_port_by_number_or_name():
    from app.tunnels.targets import service_pod_port

    backend = pod("b-1", {}, ports=[{"containerPort": 8080, "name": "http"}])
    service = {"metadata": {"name": "ep"}, "spec": {"ports": [{"port": 80, "targetPort": "http"},
                                                              {"port": 9000, "targetPort": 9090}]}}
    assert service_pod_port(service, backend, 80) == 8080
    assert service_pod_port(service, backend, 9000) == 9090
    with pytest.raises(TargetError, match="several ports"):
        service_pod_port(service, backend, None)
    single = {"metadata": {"name": "one"}, "spec": {"ports": [{"port": 8888}]}}
    assert service_pod_port(single, backend, None) == 8888
    named = {"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80, "targetPort": "grpc"}]}}
    with pytest.raises(TargetError, match="no port named 'grpc'"):
        service_pod_port(named, backend, 80)


def test_the_port_forward_tls_context_never_silently_skips_verification():
    """A client without `rest_client.ssl_context` gets a verifying context built from its Configuration."""
    import ssl
    from types import SimpleNamespace

    from kubernetes.aio.client import Configuration

    from app.tunnels.routes import tls_context

    configuration = Configuration()
    context = tls_context(SimpleNamespace(rest_client=SimpleNamespace(), configuration=configuration))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    configuration.verify_ssl = False  # only the kubeconfig's insecure-skip-tls-verify turns it off
    context = tls_context(SimpleNamespace(rest_client=SimpleNamespace(), configuration=configuration))
    assert context.verify_mode == ssl.CERT_NONE
    own = ssl.create_default_context()
    assert tls_context(SimpleNamespace(rest_client=SimpleNamespace(ssl_context=own), configuration=None)) is own


def test_the_sshd_fixture_moves_off_a_port_another_process_took_and_checks_its_banner(tmp_path, ssh_keys):
    """free_port() frees its port before sshd binds it: when another process takes it meanwhile, sshd's first start
    retries on another port, and waiting for it reads the OpenSSH banner rather than trusting any listener."""
    import socket
    import threading

    from tests.plugins.ssh import Sshd, wait_listening

    directory = tmp_path / "sshd"
    directory.mkdir()
    server = Sshd(directory, ssh_keys)
    taken = server.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        server.start()
        try:
            assert server.port != taken and server.process is not None and server.process.poll() is None
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
                assert client.makefile("rb").readline().startswith(b"SSH-2.0-OpenSSH")
        finally:
            server.kill()
        with socket.socket() as other:  # a server that is not sshd, on a port the test expects sshd on
            other.bind(("127.0.0.1", 0))
            other.listen()
            accepted: list[socket.socket] = []

            def greet() -> None:
                conn, _ = other.accept()
                accepted.append(conn)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n")

            thread = threading.Thread(target=greet, daemon=True)
            thread.start()
            with pytest.raises(RuntimeError, match="another process's server holds the port"):
                wait_listening(other.getsockname()[1], timeout=10, banner=b"SSH-2.0-OpenSSH")
            thread.join(timeout=10)
            for conn in accepted:
                conn.close()


async def test_ssh_keepalives_come_from_the_ssh_config_where_it_sets_them(ssh_keys):
    from app.tunnels.routes import KEEPALIVE_COUNT, KEEPALIVE_SECONDS, SshOptions, SshRoute

    def route() -> SshRoute:
        return SshRoute(SshOptions("127.0.0.1", port=22, username="root", known_hosts=ssh_keys.known_hosts,
                                   client_keys=(ssh_keys.private,), config=(ssh_keys.config,)), "10.0.0.1", 8888)

    assert await route().keepalive() == (KEEPALIVE_SECONDS, KEEPALIVE_COUNT)  # an empty config: hyperdesk's
    ssh_keys.config.write_text("Host *\n    ServerAliveInterval 1\n")
    assert await route().keepalive() == (1.0, KEEPALIVE_COUNT)
    ssh_keys.config.write_text("Host *\n    ServerAliveInterval 1\n    ServerAliveCountMax 3\n")
    assert await route().keepalive() == (1.0, 3)
