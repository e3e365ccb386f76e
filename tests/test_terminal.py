"""The TUI in a real pseudo-terminal: it draws, reports problems on screen, and leaves when the terminal does."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("isolated_home")


class PtyApp:
    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        os.set_blocking(self.master, False)
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "40"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", *args], stdin=slave, stdout=slave, stderr=slave,
            env=env, start_new_session=True, close_fds=True,
        )
        os.close(slave)
        self.output = b""

    def read_until(self, marker: bytes, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.output and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    break
        assert marker in self.output, f"{marker!r} never appeared on screen"
        return self.output

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


def test_leaves_when_the_terminal_goes_away() -> None:
    app = PtyApp()
    try:
        app.read_until(b"Endpoints")
        os.close(app.master)  # what an SSH session that drops does to the remote pty
        started = time.monotonic()
        app.proc.wait(timeout=10)
        assert time.monotonic() - started < 5
    finally:
        app.close()


def test_starts_with_a_bad_config_file_and_says_so(isolated_home: Path) -> None:
    config = isolated_home / "xdg_config_home" / "hyperdesk" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("theme: hyperdesk-light\nkeys: [oops\n")
    app = PtyApp()
    try:
        screen = app.read_until(b"Configuration")  # the title of the toast that carries the file's error
        assert b"Traceback" not in screen
        assert app.proc.poll() is None, "the app keeps running"
    finally:
        app.close()
