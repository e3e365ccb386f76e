"""Where hyperdesk runs: on the user's laptop, or on a login node the user reached with `ssh -t`.

On a login node the tunnel's loopback port is on that node, so the user needs one more hop on the laptop: the exact
`ssh -N -L` line to run there, with the login node's address taken from the SSH session (`SSH_CONNECTION` names the
server address the user's client reached) or, failing that, the host name.
"""

from __future__ import annotations

import getpass
import re
import socket
from dataclasses import dataclass
from typing import Mapping

SAFE_HOST = re.compile(r"^[A-Za-z0-9.:_-]+$")
SAFE_USER = re.compile(r"^[A-Za-z0-9._-]+$")
SHARED_NODE_WARNING = ("a login node is shared: every user on it can reach its 127.0.0.1 ports, this tunnel "
                       "included; close it when done")


@dataclass(frozen=True)
class Placement:
    login_node: bool
    host: str
    """The login node's address as the laptop reaches it (only meaningful when `login_node`)."""
    user: str

    def laptop_command(self, local_port: int, remote_port: int) -> str:
        """The one line to run on the laptop: its `local_port` to this node's loopback `remote_port`. An IPv6 address
        goes bare after `user@` (OpenSSH does not resolve `user@[addr]`; brackets belong in -L and known_hosts)."""
        return f"ssh -N -L {local_port}:127.0.0.1:{remote_port} {self.user}@{self.host}"


def detect(environ: Mapping[str, str]) -> Placement:
    """Laptop or login node, from the SSH session variables of `environ`."""
    user = environ.get("USER") or environ.get("LOGNAME") or _user()
    if not SAFE_USER.match(user):
        user = "USER"
    session = (environ.get("SSH_CONNECTION") or "").split()
    client = (environ.get("SSH_CLIENT") or "").split()
    if len(session) == 4:
        host = session[2]
    elif client:
        host = _hostname()
    else:
        return Placement(False, "", user)
    if not SAFE_HOST.match(host):
        host = _hostname()
    return Placement(True, host, user)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "USER"


def _hostname() -> str:
    name = socket.getfqdn() or socket.gethostname()
    return name if SAFE_HOST.match(name) else "LOGIN-NODE"
