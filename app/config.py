"""One typed settings model: config file, then `HYPERDESK_*` environment variables, then flags.

The file is `$XDG_CONFIG_HOME/hyperdesk/config.yaml` (`~/.config/hyperdesk/config.yaml`). Every field can be
overridden by an environment variable named after its path: `HYPERDESK_THEME`, `HYPERDESK_READONLY`,
`HYPERDESK_MLFLOW__TRACKING_URI` (double underscore between sections). A malformed file raises `ConfigError`
whose message names the file, the line and the field, so the CLI can print one line instead of a traceback.

This module imports only the standard library and PyYAML: it runs before the first frame.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# libyaml's parser where it is installed: several times faster than the pure-Python one, same safety.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

ENV_PREFIX = "HYPERDESK_"


class ConfigError(Exception):
    """A configuration problem, phrased for the user: `file:line: field: what is wrong`."""


@dataclass
class MlflowSettings:
    tracking_uri: str | None = None
    """Tracking URI; when unset, `MLFLOW_TRACKING_URI` and then the cluster are asked."""
    configmap: str | None = "kube-system/hyperdesk-mlflow"
    """NAMESPACE/NAME of a ConfigMap whose `tracking_uri` key names the server (asked when no URI is set)."""
    annotation: str | None = "hyperdesk.dev/mlflow-tracking-uri"
    """An annotation on the user's namespace naming the server (wins over the ConfigMap)."""
    job_tag: str = "hyperdesk.job"
    """The run tag naming its job (`NAME` or `NAMESPACE/NAME`); without it a run belongs to the job of its name."""
    poll_seconds: float = 5.0
    """How often a visible Training pane asks for new points."""
    timeout_seconds: float = 10.0
    """How long one MLflow request may take before the server counts as slow."""

    POSITIVE = ("poll_seconds", "timeout_seconds")
    """Settings that must be above 0 (0 would poll in a busy loop)."""


@dataclass
class GpuSettings:
    idle_threshold_percent: float = 5.0
    """A GPU whose activity stays under this is idle."""
    idle_minutes: float = 30.0
    """How long a held GPU must stay idle before the waste view lists it."""
    poll_seconds: float = 2.0
    prometheus_url: str | None = None
    """A Prometheus HTTP API with the dcgm-exporter series (e.g. HyperPod's observability add-on); when set, the
    GPUs pane and `get gpus` read the figures from it instead of scraping the exporters through the API server."""
    prometheus_token_file: str | None = None
    """A file holding a bearer token sent to `prometheus_url` (read at each connection, never shown)."""

    POSITIVE = ("poll_seconds",)
    RANGES = {"idle_threshold_percent": (0.0, 100.0), "idle_minutes": (0.0, None)}
    """Settings bounded below and above (None: no bound), bounds included."""


@dataclass
class Settings:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    readonly: bool = False
    theme: str = "hyperdesk-dark"
    log_file: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    """Keymap overrides: binding id (as `?` shows it) -> keys, e.g. `{app.split: "ctrl+v"}`."""
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)
    gpus: GpuSettings = field(default_factory=GpuSettings)


def config_path(environ: typing.Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hyperdesk" / "config.yaml"


def data_dir(environ: typing.Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hyperdesk"


def load_settings(
    path: Path | None = None,
    environ: typing.Mapping[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Build the settings from the file (if it exists), the environment, then `overrides` (flags; None = unset)."""
    env = os.environ if environ is None else environ
    path = config_path(env) if path is None else path
    settings = Settings()
    if path.exists():
        _apply_file(settings, path)
    _apply_env(settings, env)
    for name, value in (overrides or {}).items():
        if value is not None:
            setattr(settings, name, value)
    return settings


def _apply_file(settings: Settings, path: Path) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        node = yaml.compose(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if node is None:
        return
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}:{node.start_mark.line + 1}: the file must be a mapping of settings")
    _merge_mapping(settings, node, path, prefix="")


def _merge_mapping(target: Any, node: yaml.MappingNode, path: Path, prefix: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(target)}
    hints = typing.get_type_hints(type(target))
    for key_node, value_node in node.value:
        key = key_node.value
        name = f"{prefix}{key}"
        line = key_node.start_mark.line + 1
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{path}:{line}: {name}: unknown setting (known here: {known})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value_node, yaml.MappingNode):
                raise ConfigError(f"{path}:{line}: {name}: expected a mapping")
            _merge_mapping(getattr(target, key), value_node, path, prefix=f"{name}.")
            continue
        value = yaml.safe_load(yaml.serialize(value_node))
        try:
            setattr(target, key, _positive(target, key, _coerce(hint, value)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}:{value_node.start_mark.line + 1}: {name}: {exc}") from None


def _apply_env(settings: Settings, env: typing.Mapping[str, str]) -> None:
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        parts = var[len(ENV_PREFIX):].lower().split("__")
        target: Any = settings
        for part in parts[:-1]:
            if not dataclasses.is_dataclass(target) or part not in {f.name for f in dataclasses.fields(target)}:
                target = None
                break
            target = getattr(target, part)
        leaf = parts[-1]
        if target is None or leaf not in {f.name for f in dataclasses.fields(target)}:
            raise ConfigError(f"environment variable {var}: unknown setting")
        hint = typing.get_type_hints(type(target))[leaf]
        if dataclasses.is_dataclass(hint):
            raise ConfigError(f"environment variable {var}: names a section, not a setting")
        try:
            value: Any = raw if hint in (str, str | None) else yaml.safe_load(raw)
            setattr(target, leaf, _positive(target, leaf, _coerce(hint, value)))
        except (TypeError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"environment variable {var}: {exc}") from None


def _positive(target: Any, name: str, value: Any) -> Any:
    if name in getattr(type(target), "POSITIVE", ()) and value is not None and not value > 0:
        raise ValueError(f"must be above 0, got {value!r}")
    low, high = getattr(type(target), "RANGES", {}).get(name, (None, None))
    if value is not None and ((low is not None and not value >= low) or (high is not None and not value <= high)):
        bounds = f"from {low:g} to {high:g}" if high is not None else f"{low:g} or more"
        raise ValueError(f"must be {bounds}, got {value!r}")
    return value


def _coerce(hint: Any, value: Any) -> Any:
    """Check `value` against a field's type hint; the few types settings use, with messages for people."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true or false, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError(f"expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError(f"expected a string, got {value!r}")
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise TypeError("expected a mapping of strings to strings")
        return dict(value)
    raise TypeError(f"unsupported setting type {hint!r}")
