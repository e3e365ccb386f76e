"""Settings: file, then HYPERDESK_* environment, then flags; every mistake named by file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, Settings, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "absent.yaml", environ={})
    assert settings == Settings()


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "theme: hyperdesk-light\nreadonly: true\nmlflow:\n  tracking_uri: http://127.0.0.1:5000\n")
    settings = load_settings(path, environ={})
    assert (settings.theme, settings.readonly, settings.mlflow.tracking_uri) == (
        "hyperdesk-light", True, "http://127.0.0.1:5000")

    env = {"HYPERDESK_THEME": "hyperdesk-ansi", "HYPERDESK_MLFLOW__TRACKING_URI": "http://mlflow:80",
           "HYPERDESK_GPUS__IDLE_MINUTES": "10", "HYPERDESK_READONLY": "false"}
    settings = load_settings(path, environ=env)
    assert (settings.theme, settings.readonly, settings.mlflow.tracking_uri, settings.gpus.idle_minutes) == (
        "hyperdesk-ansi", False, "http://mlflow:80", 10.0)

    settings = load_settings(path, environ=env, overrides={"theme": "hyperdesk-dark", "readonly": None})
    assert settings.theme == "hyperdesk-dark"
    assert settings.readonly is False, "an unset flag leaves the environment's value"


def test_keymap_overrides_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, "keys:\n  app.split: ctrl+s\n")
    assert load_settings(path, environ={}).keys == {"app.split": "ctrl+s"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("theme: [unclosed\n", ":2: not valid YAML"),
        ("theme: dark\nreadonly: maybe\n", ":2: readonly: expected true or false, got 'maybe'"),
        ("theme: dark\n\ncolour: blue\n", ":3: colour: unknown setting"),
        ("gpus:\n  idle_minutes: soon\n", ":2: gpus.idle_minutes: expected a number, got 'soon'"),
        ("gpus: 3\n", ":1: gpus: expected a mapping"),
        ("- a\n- b\n", ":1: the file must be a mapping"),
        ("keys:\n  app.split: [1]\n", ":2: keys: expected a mapping of strings to strings"),
        ("mlflow:\n  poll_seconds: 0\n", ":2: mlflow.poll_seconds: must be above 0, got 0.0"),
        ("mlflow:\n  timeout_seconds: -1\n", ":2: mlflow.timeout_seconds: must be above 0, got -1.0"),
    ],
)
def test_malformed_file_names_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    message = str(err.value)
    assert message.startswith(str(path))
    assert expected in message
    assert "\n" not in message


def test_bad_environment_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HYPERDESK_COLOUR: unknown setting"):
        load_settings(tmp_path / "absent.yaml", environ={"HYPERDESK_COLOUR": "blue"})
    with pytest.raises(ConfigError, match="HYPERDESK_READONLY: expected true or false"):
        load_settings(tmp_path / "absent.yaml", environ={"HYPERDESK_READONLY": "perhaps"})
    with pytest.raises(ConfigError, match="HYPERDESK_MLFLOW__POLL_SECONDS: must be above 0"):
        load_settings(tmp_path / "absent.yaml", environ={"HYPERDESK_MLFLOW__POLL_SECONDS": "0"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpus:\n  idle_minutes: -5\n", ":2: gpus.idle_minutes: must be 0 or more, got -5.0"),
        ("gpus:\n  idle_threshold_percent: 120\n", ":2: gpus.idle_threshold_percent: must be from 0 to 100, got 120.0"),
        ("gpus:\n  idle_threshold_percent: -1\n", ":2: gpus.idle_threshold_percent: must be from 0 to 100, got -1.0"),
        ("gpus:\n  idle_threshold_percent: .nan\n", ":2: gpus.idle_threshold_percent: must be from 0 to 100, got nan"),
        ("gpus:\n\n  poll_seconds: 0\n", ":3: gpus.poll_seconds: must be above 0, got 0.0"),
    ],
)
def test_gpu_settings_out_of_range_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value) == f"{path}{expected}"


def test_gpu_settings_at_their_bounds_and_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "gpus:\n  idle_minutes: 0\n  idle_threshold_percent: 100\n"), environ={})
    assert (settings.gpus.idle_minutes, settings.gpus.idle_threshold_percent) == (0.0, 100.0)
    with pytest.raises(ConfigError, match="HYPERDESK_GPUS__POLL_SECONDS: must be above 0, got -2.0"):
        load_settings(tmp_path / "absent.yaml", environ={"HYPERDESK_GPUS__POLL_SECONDS": "-2"})
