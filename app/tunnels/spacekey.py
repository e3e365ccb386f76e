"""A space's own sshd host key, for VS Code's Remote-SSH through `hyperdesk proxy`: read through the same route as
the tunnel (a short-lived local tunnel to the pod's port 22), shown as a fingerprint, and trusted only by the user's
explicit accept step, under HostKeyAlias `hyperdesk-<ns>-<space>` in hyperdesk's own known_hosts file that the managed
`~/.ssh/config` block names."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from app.tunnels.manager import Tunnel
from app.tunnels.routes import HostKeyPlace, Route, RouteError


def space_key_place(alias: str, make_route: Callable[[], Route], known_hosts: Path) -> HostKeyPlace:
    """Where `alias`'s key is trusted; fetching it dials a fresh route from `make_route` to the pod's port 22."""

    async def fetch() -> Any:
        import asyncssh

        tunnel = Tunnel(f"{alias} host key", alias, make_route())
        await tunnel.start()
        try:
            return await asyncssh.get_server_host_key("127.0.0.1", tunnel.local_port, config=[])
        except (asyncssh.Error, OSError) as exc:
            raise RouteError(f"cannot read the SSH host key of {alias}: {exc or type(exc).__name__}") from None
        finally:
            await tunnel.close()

    return HostKeyPlace(alias, {}, alias, 22, (known_hosts,), fetch)


async def unknown_fingerprint(place: HostKeyPlace) -> str | None:
    """None when `place` already trusts a key for the space; else the fingerprint its sshd offers now (RouteError
    when it cannot be read). Compare it with the space's, then accept it with `place.accept`."""
    if place.trusted():
        return None
    key = await place.server_key()
    if key is None:
        raise RouteError(f"the sshd of {place.name} offered no host key")
    return key.get_fingerprint("sha256")
