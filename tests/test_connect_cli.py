"""`hyperdesk connect`, `hyperdesk proxy` and `hyperdesk get tunnels` as a user runs them: real processes against the
simulated cluster, the real OpenSSH client and sshd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app.tunnels import ide

ROOT = Path(__file__).resolve().parents[1]
SPACE = "hyperpod-ns-nlp/alice-notebook"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("HYPERDESK_", "SSH_"))}
    environ.update(HOME=str(home), XDG_RUNTIME_DIR=str(tmp_path / "run"), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
                   XDG_DATA_HOME=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    return environ


def hyperdesk(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def no_process_left():
    """Every `hyperdesk connect` a test started is gone after it, whatever failed or timed out."""
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
        process.communicate()


def start_connect(*args: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-m", "app", "connect", *args], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    STARTED.append(process)
    assert process.stdout is not None
    first = process.stdout.readline()
    if not first.startswith("tunnel open: "):
        process.kill()
        process.wait()
        raise AssertionError(f"connect said {first!r}: {process.stderr.read() if process.stderr else ''}")
    return process, first


def test_connect_serves_the_space_until_ctrl_c(hyperpod_cluster, env):
    kubeconfig = str(hyperpod_cluster.kubeconfig_path)
    process, first = start_connect(SPACE, "--open", "print", "--local-port", "0", "--kubeconfig", kubeconfig,
                                   env=env)
    try:
        url = first.split()[2]
        assert url.startswith("http://127.0.0.1:") and "workspace hyperpod-ns-nlp/alice-notebook:8888" in first
        assert "api portforward" in first
        page = urllib.request.urlopen(url, timeout=20).read().decode()
        assert "Demo JupyterLab" in page
        deadline = time.monotonic() + 10
        while True:  # the process publishes its tunnels about once a second
            listed = json.loads(hyperdesk("get", "tunnels", "-o", "json", env=env).stdout)
            if listed and listed[0]["bytes_in"] >= len(page) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [(t["name"], t["state"], t["url"]) for t in listed] == [("alice-notebook", "open", url)]
        table = hyperdesk("get", "tunnels", env=env).stdout
        assert table.splitlines()[0].split()[:5] == ["NAME", "TARGET", "LOCAL", "ROUTE", "STATE"]
        assert "alice-notebook" in table and "api portforward" in table
        header, line = table.splitlines()[:2]
        uptime = line[header.index("UPTIME"):].split()[0]
        assert uptime[:-1].isdigit() and uptime[-1] in "smhd", uptime  # kubectl's compact age: 3s, 2m
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "tunnel closed" in err and "Traceback" not in err
    assert json.loads(hyperdesk("get", "tunnels", "-o", "json", env=env).stdout) == []


def test_connect_on_a_login_node_prints_the_laptop_command(hyperpod_cluster, env):
    env = {**env, "SSH_CONNECTION": "203.0.113.9 50022 198.51.100.7 22", "USER": "alice"}
    process, first = start_connect(SPACE, "--local-port", "0", "--kubeconfig", str(hyperpod_cluster.kubeconfig_path),
                                   env=env)
    try:
        port = first.split()[2].rsplit(":", 1)[1].rstrip("/")
        lines = [process.stdout.readline() for _ in range(3)]
        assert lines[1].strip() == f"ssh -N -L {port}:127.0.0.1:{port} alice@198.51.100.7"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "warning: a login node is shared: every user on it can reach its 127.0.0.1 ports" in stderr


def test_connect_errors_are_one_line_with_the_right_exit_code(hyperpod_cluster, env):
    kubeconfig = str(hyperpod_cluster.kubeconfig_path)
    missing = hyperdesk("connect", "hyperpod-ns-nlp/nope", "--open", "print", "--kubeconfig", kubeconfig, env=env)
    assert missing.returncode == 2 and "no space hyperpod-ns-nlp/nope" in missing.stderr
    bad = hyperdesk("connect", "hyperpod-ns-nlp/Bad;name", "--kubeconfig", kubeconfig, env=env)
    assert bad.returncode == 2 and "not a valid space name" in bad.stderr
    port = hyperdesk("connect", SPACE, "--local-port", "70000", "--kubeconfig", kubeconfig, env=env)
    assert port.returncode == 2 and "--local-port" in port.stderr
    down = hyperdesk("connect", SPACE, "--kubeconfig", str(Path(env["HOME"]) / "none.yaml"), env=env)
    assert down.returncode == 2 and "Traceback" not in down.stderr
    no_via = hyperdesk("connect", SPACE, "--accept-host-key", "SHA256:x", "--kubeconfig", kubeconfig, env=env)
    assert no_via.returncode == 2 and "--accept-host-key needs --via" in no_via.stderr
    closed = hyperdesk("connect", SPACE, "--port", "2222", "--open", "print", "--local-port", "0", "--kubeconfig",
                       kubeconfig, env=env)
    assert closed.returncode == 1 and "connection refused" in closed.stderr and "tunnel open" not in closed.stdout
    for result in (missing, bad, port, down, no_via, closed):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def read_until(process: subprocess.Popen[str], needle: str) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    while needle not in "".join(lines):
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"connect ended before {needle!r}: {''.join(lines)}")
        lines.append(line)
    return lines


def sshd_pod(kubeconfig: str, namespace: str, pod: str) -> None:
    """A pod whose image runs sshd (it declares container port 22; the test sshd stands behind it), once ready."""
    import asyncio

    from app.cluster.connection import ClusterConnection

    async def create() -> None:
        connection = ClusterConnection([Path(kubeconfig)], None)
        try:
            await connection.request("POST", f"/api/v1/namespaces/{namespace}/pods", body={
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": namespace},
                "spec": {"containers": [{"name": "space", "image": "example/space-with-sshd",
                                         "ports": [{"name": "ssh", "containerPort": 22}]}]}})
            # no kubelet runs it here: report it running and ready, as a kubelet would
            path = f"/api/v1/namespaces/{namespace}/pods/{pod}"
            found = await connection.request("GET", path)
            found["status"] = {"phase": "Running", "podIP": "10.1.2.3",
                               "conditions": [{"type": "Ready", "status": "True"}]}
            await connection.request("PUT", f"{path}/status", body=found)
        finally:
            await connection.close()

    asyncio.run(create())


def test_vscode_setup_then_openssh_through_hyperdesk_proxy(hyperpod_cluster, env, sshd, ssh_keys):
    """The space's image runs sshd on pod port 22 (here: the test sshd behind that pod port). `connect --open
    vscode` writes the managed block (ProxyCommand with this kubeconfig and context), refuses the unknown space key
    with its fingerprint, trusts it only with --accept-space-key, and then the real `ssh` client reaches the space
    through `hyperdesk proxy` with StrictHostKeyChecking on."""
    namespace, name = "hyperpod-ns-nlp", "ssh-space"
    pod = name
    kubeconfig = str(hyperpod_cluster.kubeconfig_path)
    sshd_pod(kubeconfig, namespace, pod)
    forwards = hyperpod_cluster.cluster.server.port_forwards
    hyperpod_cluster.call(forwards.register, namespace, pod, 22, sshd.port)
    env = {**env, "PATH": "/usr/bin:/bin"}  # no `code`
    config = Path(env["HOME"]) / ".ssh" / "config"
    config.write_text("# my own settings\nHost *\n    ServerAliveInterval 30\n    User me\n")
    try:
        process, _ = start_connect(f"pod/{pod}", "-n", namespace, "--port", "22", "--open", "vscode",
                                   "--local-port", "0", "--kubeconfig", kubeconfig, env=env)
        try:
            said = "".join(read_until(process, "VS Code is not started"))
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)
        fingerprint = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f",
                                      str(sshd.host_key.with_suffix(".pub"))],
                                     capture_output=True, text=True, check=True).stdout.split()[1]
        alias = ide.host_alias(namespace, name)
        assert f"the SSH host key of {alias} is not known (its sshd offers {fingerprint})" in said
        text = config.read_text()  # the block goes before the user's `Host *`, which stays as it was
        assert text.startswith("# my own settings\n\n# >>> hyperdesk managed")
        assert text.endswith("<<<\n\nHost *\n    ServerAliveInterval 30\n    User me\n")
        assert f"proxy pod/{pod} -n {namespace} --port 22 --kubeconfig {Path(kubeconfig).resolve()} --context " in text
        known = Path(env["XDG_DATA_HOME"]) / "hyperdesk" / "ssh_known_hosts"
        assert not known.exists()  # nothing trusted on the user's behalf

        def ssh() -> subprocess.CompletedProcess[str]:
            return subprocess.run(["ssh", "-F", str(config), "-i", str(ssh_keys.private), "-l", "root", "-o",
                                   "BatchMode=yes", "-o", "IdentitiesOnly=yes", alias, "echo", "through-proxy"],
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

        refused = ssh()
        assert refused.returncode != 0 and "Host key verification failed" in refused.stderr
        process, _ = start_connect(f"pod/{pod}", "-n", namespace, "--port", "22", "--open", "vscode",
                                   "--local-port", "0", "--accept-space-key", fingerprint, "--kubeconfig",
                                   kubeconfig, env=env)
        try:
            said = "".join(read_until(process, "`code` is not on PATH"))
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)
        assert f"trusted {fingerprint} for {alias} in {known}" in said
        assert known.read_text().startswith(f"{alias} ssh-ed25519 ")
        result = ssh()
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "through-proxy"
    finally:
        hyperpod_cluster.call(forwards.unregister, namespace, pod, 22)


def test_readonly_refuses_vscode_only_where_it_would_write_the_ssh_config(hyperpod_cluster, env):
    """--readonly blocks writing ~/.ssh/config (a space that runs sshd), not connecting: for a JupyterLab space,
    --open vscode only prints the URL to give VS Code's Jupyter extension."""
    kubeconfig = str(hyperpod_cluster.kubeconfig_path)
    config = Path(env["HOME"]) / ".ssh" / "config"
    process, first = start_connect(SPACE, "--open", "vscode", "--readonly", "--local-port", "0", "--kubeconfig",
                                   kubeconfig, env=env)
    try:
        url = first.split()[2]
        said = "".join(read_until(process, "Existing Jupyter Server"))
        assert f"Existing Jupyter Server > {url}" in said
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "Traceback" not in err
    namespace, pod = "hyperpod-ns-nlp", "ssh-readonly"
    sshd_pod(kubeconfig, namespace, pod)
    refused = hyperdesk("connect", f"pod/{pod}", "-n", namespace, "--port", "22", "--open", "vscode", "--readonly",
                        "--local-port", "0", "--kubeconfig", kubeconfig, env=env)
    assert refused.returncode == 2 and "--open vscode would write ~/.ssh/config" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "tunnel open" not in refused.stdout
    assert not config.exists()


def test_proxy_to_a_closed_port_fails_cleanly(hyperpod_cluster, env):
    result = subprocess.run([sys.executable, "-m", "app", "proxy", SPACE, "--port", "2222", "--kubeconfig",
                             str(hyperpod_cluster.kubeconfig_path)], cwd=ROOT, env=env, input="",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "connection refused" in result.stderr and result.stdout == ""


def test_connect_via_an_unknown_login_node_refuses_until_the_key_is_accepted(hyperpod_cluster, env, sshd, ssh_keys):
    """Through the real sshd as login node, with the user's own ~/.ssh (key, empty known_hosts, no config)."""
    import shutil

    ssh_dir = Path(env["HOME"]) / ".ssh"
    shutil.copy(ssh_keys.private, ssh_dir / "id_ed25519")
    (ssh_dir / "known_hosts").write_text("")
    kubeconfig = str(hyperpod_cluster.kubeconfig_path)
    via = f"root@127.0.0.1:{sshd.port}"
    refused = hyperdesk("connect", SPACE, "--via", via, "--open", "print", "--local-port", "0", "--kubeconfig",
                        kubeconfig, env=env)
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(sshd.host_key.with_suffix(".pub"))],
                                 capture_output=True, text=True, check=True).stdout.split()[1]
    assert refused.returncode == 1 and "is not known" in refused.stderr and fingerprint in refused.stderr
    assert (ssh_dir / "known_hosts").read_text() == ""
    wrong = hyperdesk("connect", SPACE, "--via", via, "--accept-host-key", "SHA256:not-the-key", "--kubeconfig",
                      kubeconfig, env=env)
    assert wrong.returncode == 1 and "not accepted" in wrong.stderr
    process, first = start_connect(SPACE, "--via", via, "--accept-host-key", fingerprint, "--open", "print",
                                   "--local-port", "0", "--kubeconfig", kubeconfig, env=env)
    try:
        assert "ssh via 127.0.0.1" in first
        assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in (ssh_dir / "known_hosts").read_text()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_connect_to_a_service_and_to_a_pod_port(hyperpod_cluster, env):
    """Any pod or service port, as kubectl port-forward names them: an endpoint's service resolves to a ready pod
    behind it and the service port's targetPort."""
    kubeconfig = str(hyperpod_cluster.kubeconfig_path)
    args = ("-n", "hyperpod-ns-nlp", "--open", "print", "--local-port", "0", "--kubeconfig", kubeconfig)
    process, first = start_connect("svc/workspace-alice-notebook-service", *args, env=env)
    try:
        assert "service hyperpod-ns-nlp/workspace-alice-notebook-service:8888" in first
        assert "Demo JupyterLab" in urllib.request.urlopen(first.split()[2], timeout=20).read().decode()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    pod = json.loads(subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "get", "pods", "-n", "hyperpod-ns-nlp", "-l",
         "workspace.jupyter.org/workspace-name=alice-notebook", "-o", "json"],
        capture_output=True, text=True, check=True).stdout)["items"][0]["metadata"]["name"]
    process, first = start_connect(f"pod/{pod}", "--port", "8888", *args, env=env)
    try:
        assert f"pod hyperpod-ns-nlp/{pod}:8888" in first
        assert "Demo JupyterLab" in urllib.request.urlopen(first.split()[2], timeout=20).read().decode()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    no_port = hyperdesk("connect", f"pod/{pod}", *args, env=env)
    assert no_port.returncode == 2 and "needs --port" in no_port.stderr
    wrong = hyperdesk("connect", "svc/workspace-alice-notebook-service", "--port", "9999", *args, env=env)
    assert wrong.returncode == 2 and "has no port 9999 (ports: 8888)" in wrong.stderr
    missing = hyperdesk("connect", "svc/nope", *args, env=env)
    assert missing.returncode == 2 and "no service hyperpod-ns-nlp/nope" in missing.stderr


def test_proxy_exits_when_the_route_fails_while_stdin_stays_open(hyperpod_cluster, env):
    """ssh keeps the ProxyCommand's stdin open: a failed route must still end the proxy, or ssh hangs forever."""
    process = subprocess.Popen([sys.executable, "-m", "app", "proxy", SPACE, "--port", "2222", "--kubeconfig",
                                str(hyperpod_cluster.kubeconfig_path)], cwd=ROOT, env=env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        process.wait(timeout=30)  # stdin is still open here
        assert process.stdout is not None and process.stderr is not None
        stdout, stderr = process.stdout.read(), process.stderr.read()
        assert process.returncode == 1 and "connection refused" in stderr and stdout == ""
    finally:
        process.kill()
        process.wait()
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def test_ctrl_c_while_connecting_gives_up_at_once(hyperpod_cluster, env):
    """A login node that accepts TCP and never answers: Ctrl-C during the dial ends `connect` without waiting."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        silent.settimeout(30)
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "connect", SPACE, "--via", f"root@127.0.0.1:{silent.getsockname()[1]}",
             "--open", "print", "--local-port", "0", "--kubeconfig", str(hyperpod_cluster.kubeconfig_path)],
            cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            peer, _ = silent.accept()  # hyperdesk is dialling the login node now
            with peer:
                process.send_signal(signal.SIGINT)
                _, stderr = process.communicate(timeout=5)  # well before asyncssh's own 10 s connect timeout
            assert process.returncode == 130 and "connect cancelled" in stderr and "Traceback" not in stderr
        finally:
            process.kill()
            process.communicate()


async def test_the_proxy_bridge_copies_both_ways_with_one_thread_per_direction():
    """Many small packets (as VS Code Remote-SSH sends them) through `hyperdesk proxy`'s stdio bridge: every byte
    comes back in order, and the whole transfer uses two long-lived threads, not one per read or write."""
    import asyncio
    import threading

    from app.cli_connect import _bridge

    class Echo:
        """A stream whose answer is what it was sent (the far end of the tunnel, here in memory)."""

        def __init__(self) -> None:
            self.queue: asyncio.Queue[bytes] = asyncio.Queue()

        async def write(self, data: bytes) -> None:
            await self.queue.put(data)

        async def write_eof(self) -> None:
            await self.queue.put(b"")

        async def read(self, n: int = -1) -> bytes:
            return await self.queue.get()

        async def close(self) -> None:
            pass

    packets = [f"packet {i:05d};".encode() * 3 for i in range(2000)]
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    received = bytearray()

    def type_in() -> None:
        for packet in packets:
            os.write(stdin_w, packet)
        os.close(stdin_w)

    def read_out() -> None:
        while data := os.read(stdout_r, 65536):
            received.extend(data)

    threads = [threading.Thread(target=type_in), threading.Thread(target=read_out)]
    for thread in threads:
        thread.start()
    started: list[str] = []  # the name of every thread started meanwhile

    def first_call(frame, event, arg) -> None:  # threading.setprofile runs it first thing in each new thread
        started.append(threading.current_thread().name)
        sys.setprofile(None)

    threading.setprofile(first_call)
    try:
        await asyncio.wait_for(_bridge(Echo(), stdin_r, stdout_w), 60)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
        os.close(stdout_w)
        for thread in threads:
            thread.join(timeout=30)
        os.close(stdin_r)
        os.close(stdout_r)
    assert bytes(received) == b"".join(packets)
    assert sorted(started) == ["hyperdesk-proxy-stdin", "hyperdesk-proxy-stdout"], started


def test_connect_follows_the_space_to_its_new_pod_on_the_same_port(hyperpod_cluster, env):
    """The space is stopped and started while `hyperdesk connect` runs: the simulator gives it a pod with a new name,
    and the same local URL reaches it."""
    kubeconfig = str(hyperpod_cluster.kubeconfig_path)
    namespace, name = "hyperpod-ns-research", "dan-eda"

    def pods() -> set[str]:
        listed = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "get", "pods", "-n", namespace, "-o", "name"],
                                capture_output=True, text=True, timeout=30, check=True).stdout.split()
        return {pod for pod in listed if name in pod}

    def page(url: str) -> str | None:
        try:
            return urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            return None

    def advance_until(condition) -> None:
        for _ in range(180):
            if condition():
                return
            hyperpod_cluster.advance(1)
            time.sleep(0.05)
        raise AssertionError(f"{namespace}/{name} never got there: pods {pods()}")

    first_pods = pods()
    assert first_pods
    process, first = start_connect(f"{namespace}/{name}", "--open", "print", "--local-port", "0",
                                   "--kubeconfig", kubeconfig, env=env)
    try:
        url = first.split()[2]
        assert f"{namespace}/{name}" in (page(url) or "")
        stop = hyperdesk("space", "stop", name, "-n", namespace, "--kubeconfig", kubeconfig, env=env)
        assert stop.returncode == 0, stop.stderr
        advance_until(lambda: not pods())
        assert page(url) is None  # no pod behind the tunnel now
        start = hyperdesk("space", "start", name, "-n", namespace, "--kubeconfig", kubeconfig, env=env)
        assert start.returncode == 0, start.stderr
        advance_until(lambda: (text := page(url)) is not None and f"{namespace}/{name}" in text)
        assert pods() and not pods() & first_pods
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "Traceback" not in err, err
