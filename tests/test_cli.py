"""The `hyperdesk` command run as a user runs it: a subprocess, its output and its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.plugins.tui import write_kubeconfig

pytestmark = pytest.mark.usefixtures("isolated_home")


def hyperdesk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )


def test_version() -> None:
    result = hyperdesk("--version")
    assert result.returncode == 0
    assert result.stdout.strip().startswith("hyperdesk 0.")


def test_get_contexts_merges_the_kubeconfig_list(tmp_path: Path) -> None:
    first = write_kubeconfig(tmp_path / "a", {"prod": "https://10.0.0.1", "shared": "https://first"}, current="prod",
                             namespaces={"prod": "hyperpod-ns-team-a"})
    second = write_kubeconfig(tmp_path / "b", {"dev": "https://10.0.0.2", "shared": "https://second"}, current="dev")
    env = {"KUBECONFIG": f"{first}{os.pathsep}{second}"}

    table = hyperdesk("get", "contexts", env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]
    assert lines[1].split() == ["*", "prod", "prod-cluster", "prod-user", "hyperpod-ns-team-a"]
    assert "not-a-real-token" not in table.stdout

    as_json = json.loads(hyperdesk("get", "contexts", "-o", "json", env=env).stdout)
    assert [c["name"] for c in as_json] == ["prod", "shared", "dev"]
    assert next(c for c in as_json if c["name"] == "shared")["server"] == "https://first", "the first file wins"
    assert [c["current"] for c in as_json] == [True, False, False]

    as_yaml = yaml.safe_load(hyperdesk("get", "ctx", "-o", "yaml", env=env).stdout)
    assert as_yaml == as_json


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("get", "contexts"), 1, "no kubeconfig found"),
        (("get", "frobs"), 2, 'unknown kind "frobs"'),
        (("--kubeconfig", "/nonexistent/kubeconfig", "get", "contexts"), 2, "/nonexistent/kubeconfig does not exist"),
        (("get",), 2, "the following arguments are required: kind"),
    ],
)
def test_errors_are_one_clear_line_and_a_nonzero_exit(args: tuple[str, ...], code: int, message: str) -> None:
    result = hyperdesk(*args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_file_fails_headless_commands_with_its_line(isolated_home: Path) -> None:
    config = isolated_home / "xdg_config_home" / "hyperdesk" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("theme: dark\nreadonly: sometimes\n")
    result = hyperdesk("get", "contexts")
    assert result.returncode == 2
    assert f"{config}:2: readonly: expected true or false" in result.stderr
    assert "Traceback" not in result.stderr


def test_log_file_from_flag_or_environment_is_private(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"prod": "https://10.0.0.1"}, current="prod")
    flag_log, env_log = tmp_path / "flag.log", tmp_path / "env.log"
    assert hyperdesk("--log-file", str(flag_log), "--kubeconfig", str(kubeconfig), "get", "contexts").returncode == 0
    assert hyperdesk("--kubeconfig", str(kubeconfig), "get", "contexts",
                     env={"HYPERDESK_LOG_FILE": str(env_log)}).returncode == 0
    for log in (flag_log, env_log):
        assert "hyperdesk 0." in log.read_text() and ": get" in log.read_text()
        assert log.stat().st_mode & 0o077 == 0, "only its owner may read the log"


def test_an_existing_log_file_is_made_private_and_an_unusable_one_is_one_line(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"prod": "https://10.0.0.1"}, current="prod")
    existing = tmp_path / "existing.log"
    existing.write_text("an earlier run\n")
    existing.chmod(0o644)
    assert hyperdesk("--log-file", str(existing), "--kubeconfig", str(kubeconfig), "get", "contexts").returncode == 0
    assert existing.stat().st_mode & 0o777 == 0o600
    assert existing.read_text().startswith("an earlier run\n"), "appended to, not replaced"

    for args in (("get", "contexts"), ("demo",)):  # the demo fails before its cluster starts
        result = hyperdesk("--log-file", "/nonexistent/dir/x.log", "--kubeconfig", str(kubeconfig), *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == ("hyperdesk: error: cannot open the log file /nonexistent/dir/x.log: "
                                         "No such file or directory"), args


@pytest.fixture
def unreadable_files(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """name -> (path, what the one-line refusal says) for files that are not a manifest or body to read: a binary,
    a FIFO nobody writes to (reading it would block), /dev/zero (endless, and of size 0), a directory, too large."""
    binary = tmp_path / "binary"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe" * 100)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    large = tmp_path / "large.yaml"
    with large.open("wb") as file:
        file.truncate(16 * 1024 * 1024 + 1)
    return {"binary": (str(binary), f"{binary} is not UTF-8 text"),
            "fifo": (str(fifo), f"cannot read {fifo}: not a regular file"),
            "zero": ("/dev/zero", "cannot read /dev/zero: not a regular file"),
            "directory": (str(tmp_path), f"cannot read {tmp_path}: "),
            "large": (str(large), f"{large} is larger than 16 MiB")}


@pytest.mark.parametrize("verb", ["submit", "deploy", "invoke"])
def test_manifests_and_bodies_that_are_not_text_files_are_refused_in_one_line(
        unreadable_files: dict[str, tuple[str, str]], verb: str, tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"prod": "https://127.0.0.1:9"}, current="prod")
    for name, (path, message) in unreadable_files.items():
        args = ("invoke", "some-model", "--body", f"@{path}") if verb == "invoke" else (verb, path)
        result = hyperdesk("--kubeconfig", str(kubeconfig), *args)
        assert result.returncode == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"hyperdesk: error: {message}"), (name, lines)


async def test_a_failure_while_listing_is_not_called_a_kubeconfig_error(bare_cluster, caplog) -> None:
    """Only opening the connection and discovery are the kubeconfig's fault; a bug in a kind's listing is named as
    the listing's failure and its traceback goes to the log."""
    import logging

    from app.cluster.kubeconfig import load_kubeconfig
    from app.config import Settings
    from app.get import GetContext, GetError, _with_cluster

    ctx = GetContext(Settings(), load_kubeconfig(str(bare_cluster.kubeconfig_path)), None, kind="endpoints")

    async def work(connection, discovery) -> list:
        assert discovery.serves("pods")
        return [{}["metadata"]]  # an object of an unexpected shape

    with caplog.at_level(logging.ERROR, logger="hyperdesk"), pytest.raises(GetError) as failed:
        await _with_cluster(ctx, work)
    assert str(failed.value) == "get endpoints failed: KeyError: 'metadata'"
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [KeyError]
