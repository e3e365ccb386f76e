"""The embedded API server and the simulated cluster on their background loops (`ServerThread`, `DemoThread`, both
`LoopThread`s): startup failures reach the caller at once, `call` runs on the loop, `stop` leaves nothing running."""

from __future__ import annotations

import asyncio
import errno
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.demo.apiserver import LocalApiServer, OnLoop
from app.demo.loopthread import LoopThread
from app.demo.sim import DemoCluster

STARTERS: dict[str, Callable[..., LoopThread[Any]]] = {
    "apiserver": LocalApiServer.start_in_thread,
    "demo": lambda **kwargs: DemoCluster.start_in_thread(scenario="bare", speed=0, mlflow=False, **kwargs),
}


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("kind", STARTERS)
def test_stop_closes_the_port_and_ends_what_was_left_running_on_the_loop(kind: str) -> None:
    handle = STARTERS[kind]()
    port = int(handle.url.rsplit(":", 1)[1])
    cleaned: list[str] = []

    async def worker() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append("task")

    async def lines() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(3600)
        finally:
            cleaned.append("generator")

    async def leave_running() -> Any:
        task = asyncio.ensure_future(worker())
        generator = lines()
        await generator.__anext__()
        await asyncio.sleep(0)  # let the task reach its sleep
        return task, generator

    task, generator = handle.call(leave_running)
    loop_thread = handle.call(threading.current_thread)
    assert not refused(port)
    handle.stop()
    assert not loop_thread.is_alive()
    assert refused(port)
    assert task.cancelled()
    assert sorted(cleaned) == ["generator", "task"]


def test_a_demo_cluster_that_cannot_be_built_says_why_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        DemoCluster.start_in_thread(scenario="bare", speed=0, mlflow=False, access=tmp_path / "missing.yaml")
    assert time.monotonic() - started < 10, "not after the 120 s startup timeout"


@pytest.mark.parametrize("kind", STARTERS)
def test_a_port_in_use_is_an_os_error_in_the_starting_thread(kind: str, busy_port: int) -> None:
    before = set(Path(tempfile.gettempdir()).glob("hyperdesk-apiserver-*"))
    with pytest.raises(OSError) as raised:
        STARTERS[kind](port=busy_port)
    assert raised.value.errno == errno.EADDRINUSE
    assert set(Path(tempfile.gettempdir()).glob("hyperdesk-apiserver-*")) <= before, "its temporary directory stays"


@pytest.mark.parametrize("kind", STARTERS)
def test_call_runs_on_the_loop_awaits_raises_and_times_out(kind: str) -> None:
    with STARTERS[kind]() as handle:
        assert handle.call(threading.current_thread) is not threading.current_thread()
        assert handle.call(asyncio.get_running_loop).is_running()
        assert handle.call(asyncio.sleep, 0, "awaited") == "awaited"
        with pytest.raises(KeyError):
            handle.call({}.__getitem__, "absent")
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            handle.call(asyncio.sleep, 5, timeout=0.2)
        assert time.monotonic() - started < 2
        assert handle.call(lambda: "still serving") == "still serving"


def test_a_timeout_keyword_reaches_the_method_of_an_on_loop_view() -> None:
    with LocalApiServer.start_in_thread() as handle:
        event = threading.Event()
        view = OnLoop(handle, lambda: event)
        started = time.monotonic()
        assert view.wait(timeout=0.05) is False
        assert time.monotonic() - started < 2
        assert view.is_set() is False
