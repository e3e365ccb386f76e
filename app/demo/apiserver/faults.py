"""Fault injection for tests: the failures a real control plane produces, on demand, never active by default.

    server.faults.fail(0.5, status=429, retry_after=2)   # half the requests: 429 with Retry-After: 2
    server.faults.fail(1.0, times=1)                    # only the next request: 500
    server.faults.delay(0.2)                            # every request waits 200 ms first
    server.faults.drop_watches()                        # open watch connections are cut (like a network fault)
    server.faults.stall_watches()                       # open watches stay connected but receive nothing
    server.faults.compact()                             # history gone: older resourceVersions get 410
    await server.faults.restart(downtime=0.5)           # stop listening, then listen again on the same port
    server.faults.clear()

`delay` and `fail` take an optional `match(info) -> bool` to affect only some requests (for example only LISTs of
pods); health checks are never affected.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from . import errors
from .requestinfo import RequestInfo
from .store import Store

Matcher = Callable[[RequestInfo], bool]
_HEALTH = ("/healthz", "/livez", "/readyz")


@dataclass
class _Rule:
    match: Matcher | None

    def applies(self, info: RequestInfo) -> bool:
        return self.match is None or self.match(info)


@dataclass
class _Delay(_Rule):
    seconds: float


@dataclass
class _Failure(_Rule):
    fraction: float
    status: int
    retry_after: int
    remaining: int | None  # how many more failures to inject; None: no limit


class Faults:
    def __init__(self, store: Store, restart: Callable[[float], Awaitable[None]], *, seed: int | None = None) -> None:
        self._store = store
        self._restart = restart
        self._random = random.Random(seed)
        self._delay: _Delay | None = None
        self._failure: _Failure | None = None
        self.failed_requests = 0

    async def before_request(self, request: web.Request, info: RequestInfo) -> None:
        """The request hook: wait and/or fail as configured."""
        if info.path in _HEALTH:
            return
        if self._delay is not None and self._delay.applies(info):
            await asyncio.sleep(self._delay.seconds)
        failure = self._failure
        if failure is not None and failure.applies(info) and self._random.random() < failure.fraction:
            self.failed_requests += 1
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failure = None
            if failure.status == 429:
                raise errors.ApiError(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                    {"retryAfterSeconds": failure.retry_after},
                    headers={"Retry-After": str(failure.retry_after)},
                )
            if failure.status == 503:
                raise errors.ApiError(
                    503, "ServiceUnavailable", "the server is currently unable to handle the request (injected fault)"
                )
            raise errors.ApiError(
                failure.status,
                "InternalError",
                "Internal error occurred: injected fault",
                {"causes": [{"message": "injected fault"}]},
            )

    def delay(self, seconds: float, *, match: Matcher | None = None) -> None:
        """Delay every (matching) request by `seconds` before it is handled."""
        self._delay = _Delay(match, seconds)

    def fail(
        self,
        fraction: float,
        *,
        status: int = 500,
        retry_after: int = 1,
        times: int | None = None,
        match: Matcher | None = None,
    ) -> None:
        """Answer a random `fraction` of (matching) requests with `status`: 500, or 429 with Retry-After.

        `times` stops injecting after that many failures (e.g. `fail(1.0, times=1)` fails the next request only).
        """
        if status not in (429, 500, 503):
            raise ValueError("status must be 429, 500 or 503")
        self._failure = _Failure(match, fraction, status, retry_after, times)

    def drop_watches(self) -> int:
        """Abort every open watch connection, as a network failure would; returns how many were open."""
        watchers = self._store.watchers()
        for watcher in watchers:
            watcher.drop("dropped by fault injection")
        return len(watchers)

    def stall_watches(self) -> int:
        """Keep every open watch connected but send it nothing more; returns how many were stalled."""
        watchers = self._store.watchers()
        for watcher in watchers:
            watcher.stalled = True
        return len(watchers)

    def compact(self) -> None:
        """Compact the event history: watches and continues from older resourceVersions get 410 Gone."""
        self._store.compact()

    async def restart(self, downtime: float = 0.0) -> None:
        """Stop listening (closing every connection), wait `downtime` seconds, listen again on the same port."""
        await self._restart(downtime)

    def clear(self) -> None:
        """Remove delays and failures (stalled watches stay stalled; they end when their clients give up)."""
        self._delay = None
        self._failure = None
