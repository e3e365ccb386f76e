"""Reading a file the user names (a manifest for `:submit`, the Endpoints deploy, `hyperdesk submit`/`deploy`, or
an `@FILE` request body): one reader, so every path refuses the same things with the same one-line message.

Only regular files are read (a FIFO, a device such as /dev/zero, or a directory is refused without reading, so
nothing blocks or reads forever), at most `MAX_FILE_BYTES`, and the text must be UTF-8. Failures are ActionError
with the bad-input exit code."""

from __future__ import annotations

import os
import stat
import sys

from app.cluster.actions import EXIT_BAD_INPUT, ActionError

MAX_FILE_BYTES = 16 * 1024 * 1024
"""A manifest or request body larger than this is refused before anything is sent."""


def read_text_file(path: str, *, stdin: bool = False, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the regular file `path` (`~` expanded); with `stdin`, `-` reads standard input (a pipe
    is fine there). Raises ActionError in one line: missing, unreadable, not a regular file, too large, not UTF-8."""
    if stdin and path == "-":
        name = "<stdin>"
        try:
            data = sys.stdin.buffer.read(limit + 1)
        except OSError as exc:
            raise ActionError(f"cannot read standard input: {exc.strerror or exc}", EXIT_BAD_INPUT) from None
    else:
        name = path
        data = _read_regular(path, limit)
    if len(data) > limit:
        raise ActionError(f"{name} is larger than {_size(limit)}", EXIT_BAD_INPUT)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ActionError(f"{name} is not UTF-8 text (byte {exc.start + 1} cannot be read)", EXIT_BAD_INPUT) from None


def _read_regular(path: str, limit: int) -> bytes:
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer before the check below runs
        fd = os.open(os.path.expanduser(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ActionError(f"cannot read {path}: {exc.strerror or exc}", EXIT_BAD_INPUT) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ActionError(f"cannot read {path}: not a regular file", EXIT_BAD_INPUT)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1024 * 1024, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise ActionError(f"cannot read {path}: {exc.strerror or exc}", EXIT_BAD_INPUT) from None
    finally:
        os.close(fd)


def _size(limit: int) -> str:
    return f"{limit // 1024 // 1024} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
