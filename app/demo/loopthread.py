"""`LoopThread`: an async object with `start()`/`stop()` run on a private event loop in a daemon thread.

    handle = LoopThread(lambda: Thing()).start()   # returns once `Thing().start()` finished, or raises its error
    handle.call(handle.running.method, 1)          # run on the loop from this thread; awaited there if async
    handle.stop()                                  # `Thing.stop()`, then the loop's leftover tasks are cancelled

`ServerThread` (the embedded API server) and `DemoThread` (the simulated cluster) are the two subclasses: they set
the thread's name and timeouts and add properties of the object they run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar


class Startable(Protocol):
    def start(self) -> Awaitable[None]: ...

    def stop(self) -> Awaitable[None]: ...


S = TypeVar("S", bound=Startable)
R = TypeVar("R")


class LoopThread(Generic[S]):
    """Runs the object `factory()` makes (in the thread, on the thread's loop) from `start()` until `stop()`."""

    thread_name = "hyperdesk-loop"
    start_timeout: float = 30
    call_timeout: float = 60
    stop_timeout: float = 30

    def __init__(self, factory: Callable[[], S]) -> None:
        self._factory = factory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._ready: concurrent.futures.Future[S] = concurrent.futures.Future()
        self._running: S | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            running = self._factory()
            self._loop.run_until_complete(running.start())
        except BaseException as exc:  # report startup failures to the starting thread
            self._ready.set_exception(exc)
            self._close()
            return
        self._running = running
        self._ready.set_result(running)
        try:
            self._loop.run_forever()
        finally:
            try:
                self._loop.run_until_complete(running.stop())
            finally:
                self._close()

    def _close(self) -> None:
        """Cancel the tasks still pending, close async generators, then the loop."""
        pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def start(self, timeout: float | None = None) -> Self:
        """Start the thread and wait (`start_timeout` seconds by default) until the object has started."""
        self._thread.start()
        self._ready.result(timeout=self.start_timeout if timeout is None else timeout)
        return self

    @property
    def running(self) -> S:
        """The started object (use it on the loop: through `call`)."""
        assert self._running is not None, "not started"
        return self._running

    def call(self, fn: Callable[..., R], *args: Any, timeout: float | None = None, **kwargs: Any) -> R:
        """Run `fn(*args, **kwargs)` on the loop and return its result (awaiting it there if it is awaitable).

        Waits `call_timeout` seconds by default; `timeout` is never passed to `fn` (use `functools.partial` for a
        function that takes one)."""

        async def run() -> R:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                return await result
            return result

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(timeout=self.call_timeout if timeout is None else timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the loop, which stops the object; wait for the thread (`stop_timeout` seconds by default)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=self.stop_timeout if timeout is None else timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
