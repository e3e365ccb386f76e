"""A real Jupyter Server (jupyter_server, the dev extra) behind the tunnel answers `/api/status`, through the API
server's pods/portforward and through a real sshd."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from app.cluster.connection import ClusterConnection
from app.tunnels.manager import Tunnel
from app.tunnels.routes import PortForwardRoute, SshOptions, SshRoute
from app.tunnels.targets import find_space
from tests.plugins.ssh import free_port, wait_listening

SPACE = "hyperpod-ns-nlp/alice-notebook"
POD_PORT = 8899


@pytest.fixture
def jupyter(tmp_path: Path):
    port, token = free_port(), secrets.token_hex(16)
    home = tmp_path / "jupyter-home"
    (home / "work").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
         f"--ServerApp.root_dir={home / 'work'}", "--ServerApp.allow_root=True"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_listening(port, timeout=60)
        yield port, token
    finally:
        process.terminate()
        process.wait(timeout=30)


async def status_through(url: str, token: str) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}api/status", headers={"Authorization": f"token {token}"},
                               timeout=aiohttp.ClientTimeout(total=30)) as response:
            assert response.status == 200
            return await response.json()


async def test_a_real_jupyter_server_answers_through_both_routes(hyperpod_cluster, jupyter, sshd, ssh_keys):
    port, token = jupyter
    connection = ClusterConnection([hyperpod_cluster.kubeconfig_path], None)
    target = (await find_space(connection, SPACE, "default")).on_port(POD_PORT)
    forwards = hyperpod_cluster.cluster.server.port_forwards
    hyperpod_cluster.call(forwards.register, target.namespace, target.pod, POD_PORT, port)
    ssh = SshOptions("127.0.0.1", port=sshd.port, username="root", known_hosts=ssh_keys.known_hosts,
                     client_keys=(ssh_keys.private,), config=(ssh_keys.config,))
    try:
        for route in (PortForwardRoute(connection, target.namespace, target.pod, POD_PORT),
                      SshRoute(ssh, "127.0.0.1", port)):
            tunnel = Tunnel("jupyter", target.text, route)
            await tunnel.start()
            try:
                status = await status_through(tunnel.url, token)
                assert {"started", "last_activity", "kernels", "connections"} <= set(status), route.description
                assert status["started"] != "demo"  # the real server, not the simulator's stand-in
            finally:
                await tunnel.close()
    finally:
        hyperpod_cluster.call(forwards.unregister, target.namespace, target.pod, POD_PORT)
        await connection.close()
