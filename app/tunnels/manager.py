"""The registry of open tunnels. Tunnels live as long as the app; quitting asks first while any is open."""

from __future__ import annotations

from typing import Protocol


class Tunnel(Protocol):
    name: str

    async def close(self) -> None: ...


class TunnelManager:
    def __init__(self) -> None:
        self._tunnels: dict[str, Tunnel] = {}

    def __len__(self) -> int:
        return len(self._tunnels)

    def add(self, tunnel: Tunnel) -> None:
        self._tunnels[tunnel.name] = tunnel

    def names(self) -> list[str]:
        return sorted(self._tunnels)

    async def close(self, name: str) -> None:
        tunnel = self._tunnels.pop(name, None)
        if tunnel is not None:
            await tunnel.close()

    async def close_all(self) -> None:
        for name in list(self._tunnels):
            await self.close(name)
