"""What the IDE needs once a tunnel is open: a browser on the local URL, VS Code's "existing Jupyter server" URL,
or, for a space whose image runs sshd, a managed `Host hyperdesk-<space>` block in `~/.ssh/config` whose
`ProxyCommand` is `hyperdesk proxy` (a stdio bridge over the same routes) and `code --remote ssh-remote+...`.

The block sits between marker comments; the rest of the file is never touched, and it is written atomically with the
file's own permissions (0600 for a new file). Every command runs from an argv list, never through a shell.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from app.tunnels.targets import TargetError, check_name

BEGIN = "# >>> hyperdesk managed: {alias} >>> (written by hyperdesk; edits inside are replaced)"
END = "# <<< hyperdesk managed: {alias} <<<"
SAFE_WORD = re.compile(r"^[A-Za-z0-9._/:@=+-]+$")


def host_alias(namespace: str, space: str) -> str:
    return f"hyperdesk-{check_name(namespace, 'namespace')}-{check_name(space, 'space name')}"


def proxy_command(namespace: str, space: str, port: int, extra: list[str] | None = None, *,
                  context: str | None = None, kubeconfig_paths: list[Path] | tuple[Path, ...] = (),
                  via: str | None = None, kind: str = "Workspace") -> list[str]:
    """The argv of `hyperdesk proxy` for this space, as an SSH ProxyCommand runs it: with the cluster context, the
    kubeconfig file(s) and the login node this hyperdesk uses, since VS Code's ssh runs it in another environment."""
    prefix: list[str] = []
    options: list[str] = []
    paths = [str(Path(p).expanduser().resolve()) for p in kubeconfig_paths]
    if len(paths) == 1:
        options += ["--kubeconfig", paths[0]]
    elif paths:  # `--kubeconfig` takes one file: the merged list goes in KUBECONFIG, as kubectl reads it
        prefix = ["/usr/bin/env", f"KUBECONFIG={os.pathsep.join(paths)}"]
    if context:
        options += ["--context", context]
    if via:
        options += ["--via", via]
    if kind in ("Pod", "Service"):  # `hyperdesk connect pod/NAME` or `svc/NAME`: the same target again
        ref = [f"{'pod' if kind == 'Pod' else 'svc'}/{space}", "-n", namespace]
    else:
        ref = [f"{namespace}/{space}"]
    argv = [*prefix, *hyperdesk_argv(), "proxy", *ref, "--port", str(port), *options,
            *(extra or [])]
    for word in argv:
        if not SAFE_WORD.match(word):
            raise TargetError(f"cannot put {word!r} in an SSH ProxyCommand safely", 2)
    return argv


def hyperdesk_argv() -> list[str]:
    """The hyperdesk that is running now (not whichever one PATH finds first): its `hyperdesk` script, or this
    interpreter with `-m app`; PATH's `hyperdesk` only when neither can be told."""
    entry = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    if entry is not None and entry.name == "hyperdesk" and entry.is_file() and os.access(entry, os.X_OK):
        return [str(entry)]
    if entry is not None and entry.name == "__main__.py" and entry.parent.name == "app":
        return [sys.executable, "-m", "app"]
    found = shutil.which("hyperdesk")
    return [found] if found else [sys.executable, "-m", "app"]


SPACE_USER = "sagemaker-user"
"""The user a space's sshd is reached as, from the CLI and the TUI alike (SageMaker images run as it)."""


def space_known_hosts() -> Path:
    """hyperdesk's own known_hosts for spaces' sshd keys (each under HostKeyAlias hyperdesk-<ns>-<space>), named in
    the managed blocks: the user's ~/.ssh/known_hosts stays theirs."""
    from app.config import data_dir

    return data_dir() / "ssh_known_hosts"


def ssh_block(alias: str, proxy: list[str], user: str = SPACE_USER, known_hosts: Path | None = None) -> str:
    """The managed block for `alias`. OpenSSH splits ProxyCommand on spaces and runs it via the user's shell: every
    word was checked against SAFE_WORD, so nothing in it is special to a shell. The space's host key is checked
    (StrictHostKeyChecking) under the alias in hyperdesk's known_hosts, where the explicit accept step puts it."""
    known = known_hosts or space_known_hosts()
    if '"' in str(known) or "\n" in str(known):
        raise TargetError(f"cannot name {str(known)!r} in ~/.ssh/config safely", 1)
    return "\n".join([
        BEGIN.format(alias=alias),
        f"Host {alias}",
        f"    User {user}",
        f"    ProxyCommand {' '.join(proxy)}",
        f"    HostKeyAlias {alias}",
        f'    UserKnownHostsFile "{known}"',
        "    StrictHostKeyChecking yes",
        "    ServerAliveInterval 15",
        END.format(alias=alias),
    ]) + "\n"


def write_ssh_block(config: Path, alias: str, block: str, readonly: bool) -> bool:
    """Insert or replace `alias`'s managed block in `config`; True when the file changed."""
    if readonly:
        raise TargetError(f"hyperdesk is read-only (--readonly): not writing {config}", 2)
    # a ~/.ssh/config that links into a dotfiles repository stays a link: the file it names is the one rewritten
    config = config.resolve()
    text = config.read_text(encoding="utf-8") if config.exists() else ""
    begin, end = BEGIN.format(alias=alias), END.format(alias=alias)
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == begin), None)
    if start is not None:
        stop = next((i for i in range(start, len(lines)) if lines[i].rstrip("\n") == end), None)
        if stop is None:
            raise TargetError(f"{config}: the hyperdesk block for {alias} has no end marker; fix the file by hand", 1)
        new = "".join(lines[:start]) + block + "".join(lines[stop + 1:])
    else:
        new = _insert_block(lines, block)
    if new == text:
        return False
    config.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = config.stat().st_mode & 0o777 if config.exists() else 0o600
    # a temporary file of its own in the same directory: two writers at once never share one
    fd, temporary = tempfile.mkstemp(prefix=f".{config.name}.", suffix=".hyperdesk-tmp", dir=config.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new)
        os.replace(temporary, config)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return True


def _insert_block(lines: list[str], block: str) -> str:
    """OpenSSH takes the first value it meets for each option, so a block after the user's `Host *` would lose
    (its User, for one): the block goes before the first Host or Match line, after the leading comments, Includes
    and global options; at the end of a file that has none."""
    first = next((i for i, line in enumerate(lines)
                  if re.match(r"\s*(host|match)\b", line, re.IGNORECASE)), None)
    if first is None:
        text = "".join(lines)
        separator = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return text + separator + block
    before = "".join(lines[:first])
    if before and not before.endswith("\n"):
        before += "\n"
    if before and not before.endswith("\n\n"):
        before += "\n"
    return before + block + "\n" + "".join(lines[first:])


def vscode_argv(alias: str, path: str) -> list[str] | None:
    """`code --remote ssh-remote+<alias> <path>`, or None when VS Code's `code` is not on PATH."""
    code = shutil.which("code")
    if code is None:
        return None
    if not path.startswith("/") or not SAFE_WORD.match(path):
        raise TargetError(f"{path!r} is not a plain absolute path", 2)
    return [code, "--remote", f"ssh-remote+{alias}", path]


def launch(argv: list[str]) -> None:
    """Start a program detached from the terminal, without a shell."""
    subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


def has_graphical_browser(environ: dict[str, str] | None = None, platform: str = sys.platform) -> bool:
    """Only a graphical browser may be started: a console one (lynx, w3m) would fight the TUI for the terminal."""
    env = os.environ if environ is None else environ
    return platform in ("darwin", "win32") or bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def open_browser(url: str) -> bool:
    """The user's browser on `url`; False when there is no graphical one to start."""
    import webbrowser

    if not has_graphical_browser():
        return False
    return webbrowser.open(url)
