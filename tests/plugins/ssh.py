"""SSH servers on 127.0.0.1 for the tunnel tests: Debian's OpenSSH `sshd` and asyncssh's own server.

- `ssh_keys`: a user key pair and a private known_hosts file, in tmp_path.
- `sshd`: a real `sshd -D` with a temporary config (`UsePAM no`, `StrictModes no`, forwarding allowed), as the
  login node. `sshd.kill()` and `sshd.start()` stop and start it on the same port (fault tests).
- `asyncssh_server`: asyncssh's server on the test's loop, allowing `direct-tcpip` channels.

Both servers know only `ssh_keys.public`; both host keys are written to `ssh_keys.known_hosts`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class SshKeys:
    directory: Path
    private: Path
    public: Path
    known_hosts: Path
    config: Path
    """An empty ssh config, so the developer's own ~/.ssh/config never leaks into a test."""

    def trust(self, port: int, host_public_key: Path) -> None:
        with open(self.known_hosts, "a", encoding="utf-8") as handle:
            key_type, key = host_public_key.read_text().split()[:2]
            handle.write(f"[127.0.0.1]:{port} {key_type} {key}\n")


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hyperdesk-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path


def free_port() -> int:
    """A port free now; another process may take it before the caller binds it, so servers started on it retry."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerExited(RuntimeError):
    """The server process ended before it listened (a port taken meanwhile, a bad config)."""


def wait_listening(port: int, timeout: float = 10.0, *, process: subprocess.Popen | None = None,
                   banner: bytes | None = None) -> None:
    """Until 127.0.0.1:`port` accepts. With `process`: that process must still run (else ServerExited); with
    `banner`: the listener's first line must start with it, so a test never talks to another process's server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerExited(f"the server on 127.0.0.1:{port} exited ({process.returncode}) before it listened")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                if banner is None:
                    return
                sock.settimeout(max(0.1, min(2.0, deadline - time.monotonic())))
                try:
                    first = sock.makefile("rb").readline(256)
                except OSError:
                    first = b""
                if first.startswith(banner):
                    return
                if first:
                    raise RuntimeError(f"127.0.0.1:{port} answers {first[:60]!r}, not {banner!r}: another "
                                       "process's server holds the port")
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@pytest.fixture
def ssh_keys(tmp_path: Path) -> SshKeys:
    directory = tmp_path / "ssh"
    directory.mkdir(mode=0o700)
    private = keygen(directory / "id_ed25519")
    known_hosts = directory / "known_hosts"
    known_hosts.touch()
    config = directory / "config"
    config.touch()
    return SshKeys(directory, private, private.with_suffix(".pub"), known_hosts, config)


PRIVSEP_DIR = Path("/run/sshd")
"""OpenSSH's privilege separation directory: sshd refuses to start without it."""
BIND_ATTEMPTS = 5


class Sshd:
    def __init__(self, directory: Path, keys: SshKeys) -> None:
        self.directory = directory
        self.port = free_port()
        self.host_key = keygen(directory / "ssh_host_ed25519_key")
        self.authorized = directory / "authorized_keys"
        shutil.copy(keys.public, self.authorized)
        self.config = directory / "sshd_config"
        self.log = directory / "sshd.log"
        self._write_config()
        if not PRIVSEP_DIR.is_dir():
            try:
                PRIVSEP_DIR.mkdir(mode=0o755)
            except OSError as exc:
                pytest.fail(f"sshd needs {PRIVSEP_DIR} and it is missing; create it once as root "
                            f"(mkdir -m 755 {PRIVSEP_DIR}): {exc.strerror or exc}", pytrace=False)
        subprocess.run([SSHD, "-t", "-f", str(self.config)], check=True, capture_output=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.started = False

    def _write_config(self) -> None:
        self.config.write_text("\n".join([
            "ListenAddress 127.0.0.1", f"Port {self.port}", f"HostKey {self.host_key}",
            f"PidFile {self.directory / 'sshd.pid'}", f"AuthorizedKeysFile {self.authorized}", "UsePAM no",
            "StrictModes no", "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "AllowTcpForwarding yes", "ClientAliveInterval 5", "LogLevel ERROR", "",
        ]))

    def start(self) -> None:
        """Start sshd and wait for its OpenSSH banner. The first start moves to another free port when its port was
        taken meanwhile; a restart (after `kill`) keeps the port, as the fault tests need."""
        attempts = 1 if self.started else BIND_ATTEMPTS
        for attempt in range(1, attempts + 1):
            with open(self.log, "wb") as log:
                self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
            try:
                wait_listening(self.port, process=self.process, banner=b"SSH-2.0-OpenSSH")
                self.started = True
                return
            except ServerExited:
                self.process = None
                said = self.log.read_text(errors="replace").strip()
                if "Address already in use" not in said and "Cannot bind" not in said:
                    raise ServerExited(f"sshd exited before it listened: {said}") from None
                if attempt == attempts:
                    raise ServerExited(f"sshd cannot bind 127.0.0.1:{self.port}: {said}") from None
                self.port = free_port()
                self._write_config()
            except BaseException:
                self.kill()
                raise

    def kill(self) -> None:
        """Kill sshd and every session process it forked (each session calls setsid, so by process tree)."""
        import psutil

        if self.process is not None:
            try:
                processes = [psutil.Process(self.process.pid)]
                processes += processes[0].children(recursive=True)
            except psutil.NoSuchProcess:
                processes = []
            for process in processes:
                try:
                    process.kill()
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(processes, timeout=10)
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def sshd(tmp_path: Path, ssh_keys: SshKeys) -> Iterator[Sshd]:
    directory = tmp_path / "sshd"
    directory.mkdir()
    server = Sshd(directory, ssh_keys)
    server.start()  # first: the port may move if another process took it
    ssh_keys.trust(server.port, server.host_key.with_suffix(".pub"))
    yield server
    server.kill()


@dataclass
class AsyncsshServer:
    port: int
    host_key: Path


@pytest.fixture
async def asyncssh_server(tmp_path: Path, ssh_keys: SshKeys) -> AsyncIterator[AsyncsshServer]:
    import asyncssh

    class Server(asyncssh.SSHServer):
        def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
            return True

    host_key = keygen(tmp_path / "asyncssh_host_key")
    server = await asyncssh.create_server(
        Server, "127.0.0.1", 0, server_host_keys=[str(host_key)],
        authorized_client_keys=str(ssh_keys.public), allow_scp=False)
    port = server.sockets[0].getsockname()[1]
    ssh_keys.trust(port, host_key.with_suffix(".pub"))
    yield AsyncsshServer(port, host_key)
    server.close()
    await server.wait_closed()
