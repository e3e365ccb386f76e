"""Tunnel throughput: bytes per second through each route, against a plain loopback copy in the same process.

    .venv/bin/python benchmarks/tunnels.py [--mib 64] [--rounds 3]

A source server on 127.0.0.1 sends N MiB and closes. The peer is a plain read of that stream over loopback. Then
the same read through a hyperdesk tunnel (127.0.0.1 listener) over:
- the embedded API server's `pods/portforward` (WebSocket, v4.channel.k8s.io; the simulated cluster's pod port is
  backed by the source server);
- asyncssh's own server on 127.0.0.1 (direct-tcpip);
- Debian's OpenSSH sshd on 127.0.0.1 (direct-tcpip), when `sshd` is installed;
- `hyperdesk proxy` (the SSH ProxyCommand: stdin/stdout of a child process, over pods/portforward), timed from its
  first byte so the child's start-up is not counted.
Best of `--rounds` each; the ratio is route / plain loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.cluster.connection import ClusterConnection  # noqa: E402
from app.demo.sim import DemoCluster  # noqa: E402
from app.tunnels.manager import Tunnel  # noqa: E402
from app.tunnels.routes import PortForwardRoute, SshOptions, SshRoute  # noqa: E402
from app.tunnels.targets import find_space  # noqa: E402

CHUNK = 256 * 1024


async def source_server(size: int) -> tuple[asyncio.base_events.Server, int]:
    block = b"x" * CHUNK

    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        left = size
        try:
            while left > 0:
                writer.write(block[:min(left, CHUNK)])
                left -= CHUNK
                await writer.drain()
        except ConnectionError:
            pass  # a tunnel's reachability probe, which hangs up at once
        writer.close()

    server = await asyncio.start_server(send, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def read_all(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    total = 0
    while data := await reader.read(CHUNK):
        total += len(data)
    writer.close()
    return total


async def best(port: int, size: int, rounds: int) -> float:
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        got = await read_all(port)
        elapsed = time.perf_counter() - start
        if got != size:
            raise RuntimeError(f"read {got} bytes, expected {size}")
        rates.append(size / elapsed)
    return max(rates)


async def through(route, size: int, rounds: int) -> float:
    tunnel = Tunnel("bench", "bench", route)
    await tunnel.start()
    try:
        return await best(tunnel.local_port, size, rounds)
    finally:
        await tunnel.close()


async def through_proxy(kubeconfig: Path, namespace: str, pod: str, port: int, size: int, rounds: int) -> float:
    """`hyperdesk proxy pod/POD --port PORT` as ssh runs it: its stdout is the stream, its stdin stays open."""
    rates = []
    for _ in range(rounds):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", "proxy", f"pod/{pod}", "-n", namespace, "--port", str(port),
            "--kubeconfig", str(kubeconfig), cwd=str(Path(__file__).resolve().parents[1]),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert process.stdout is not None and process.stdin is not None
        first = await process.stdout.read(CHUNK)
        start, total = time.perf_counter(), 0
        while data := await process.stdout.read(CHUNK):
            total += len(data)
        elapsed = time.perf_counter() - start
        process.stdin.close()
        await process.wait()
        if len(first) + total != size:
            raise RuntimeError(f"read {len(first) + total} bytes through hyperdesk proxy, expected {size}")
        rates.append(total / elapsed)
    return max(rates)


def keygen(path: Path) -> Path:
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    server, port = await source_server(size)
    results: dict[str, float] = {"plain loopback": await best(port, size, args.rounds)}

    import asyncssh

    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        user_key, host_key = keygen(tmp / "id"), keygen(tmp / "host")
        (tmp / "config").touch()

        class Server(asyncssh.SSHServer):
            def connection_requested(self, *args: object) -> bool:
                return True

        ssh_server = await asyncssh.create_server(Server, "127.0.0.1", 0, server_host_keys=[str(host_key)],
                                                  authorized_client_keys=str(user_key) + ".pub")
        ssh_port = ssh_server.sockets[0].getsockname()[1]
        known = tmp / "known_hosts"
        known.write_text(f"[127.0.0.1]:{ssh_port} {(tmp / 'host.pub').read_text().split()[0]} "
                         f"{(tmp / 'host.pub').read_text().split()[1]}\n")
        options = SshOptions("127.0.0.1", port=ssh_port, username="bench", known_hosts=known,
                             client_keys=(user_key,), config=(tmp / "config",))
        results["ssh (asyncssh server)"] = await through(SshRoute(options, "127.0.0.1", port), size, args.rounds)
        ssh_server.close()

        if shutil.which("sshd") or Path("/usr/sbin/sshd").exists():
            from tests.plugins.ssh import SshKeys, Sshd

            keys = SshKeys(tmp, user_key, tmp / "id.pub", tmp / "known_openssh", tmp / "config")
            (tmp / "sshd").mkdir()
            sshd = Sshd(tmp / "sshd", keys)
            sshd.start()  # first: its port may move if another process took it
            keys.trust(sshd.port, sshd.host_key.with_suffix(".pub"))
            try:
                options = SshOptions("127.0.0.1", port=sshd.port, username="root", known_hosts=keys.known_hosts,
                                     client_keys=(user_key,), config=(tmp / "config",))
                results["ssh (OpenSSH sshd)"] = await through(SshRoute(options, "127.0.0.1", port), size,
                                                              args.rounds)
            finally:
                sshd.kill()

    demo = DemoCluster.start_in_thread(scenario="hyperpod", seed=7, speed=0, mlflow=False)
    try:
        connection = ClusterConnection([demo.kubeconfig_path], None)
        target = await find_space(connection, "hyperpod-ns-nlp/alice-notebook", "default")
        demo.call(demo.cluster.server.port_forwards.register, target.namespace, target.pod, 9999, port)
        results["api pods/portforward"] = await through(
            PortForwardRoute(connection, target.namespace, target.pod, 9999), size, args.rounds)
        results["hyperdesk proxy (api)"] = await through_proxy(demo.kubeconfig_path, target.namespace, target.pod,
                                                               9999, size, args.rounds)
        await connection.close()
    finally:
        demo.stop()
    server.close()

    plain = results["plain loopback"]
    print(f"{args.mib} MiB per transfer, best of {args.rounds}")
    for name, rate in results.items():
        print(f"  {name:<24} {rate / 2**20:9.1f} MiB/s   ratio {rate / plain:6.3f}")


if __name__ == "__main__":
    asyncio.run(main())
