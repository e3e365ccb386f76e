"""Built-in job templates: the submit form's parameters in, a manifest out. Pure functions, no I/O.

    problems = validate_params("ddp", params, queues=choices.queues, priorities=[p.name for p in choices.priorities])
    manifest = render("ddp", params, serves_hyperpod=choices.serves_hyperpod)   # a dict, ready for actions.submit
    text = to_yaml(manifest)                                                    # what the form shows before submitting

Templates:

- `fine-tune`: a single-node fine-tune, a `batch/v1` Job with one pod (restarts in place on failure).
- `ddp`: multi-node PyTorch DDP: a `sagemaker.amazonaws.com/v1` HyperPodPyTorchJob where the cluster serves it (one
  replica group `pod`, container `pytorch-job-container`, as the HyperPod CLI writes it), else a Kubeflow
  `PyTorchJob` (a Master and `nodes - 1` Workers, container `pytorch`, as the training operator requires).

Parameters (see `FIELDS`): name, namespace, image, command, nodes, gpus (per node) or mig (a MIG profile such as
`1g.10gb`, with mig_count slices per node), queue, priority, env, volume, cpu, memory, max_retries. Queue and
priority become the `kueue.x-k8s.io/queue-name` / `kueue.x-k8s.io/priority-class` labels.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any, Iterable

import yaml

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"

TEMPLATES: dict[str, str] = {
    "fine-tune": "Single-node fine-tune: a batch/v1 Job with one pod",
    "ddp": "Multi-node PyTorch DDP: a HyperPodPyTorchJob where the cluster serves it, else a Kubeflow PyTorchJob",
}


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str
    """`text`, `int`, `command` (a shell-like line or a list), `env` (KEY=VALUE lines or a mapping), `volume`
    (`CLAIM:/mount/path` for a PersistentVolumeClaim, `/host/path:/mount/path` for a hostPath, or a mapping),
    `queue`, `priority` (choices the cluster offers)."""
    default: Any = None
    required: bool = False
    help: str = ""


_COMMON_HEAD = (
    Field("name", "Name", "text", required=True, help="lower-case letters, digits and '-', at most 63"),
    Field("namespace", "Namespace", "text", help="empty: the current namespace"),
    Field("image", "Image", "text", required=True),
)
_COMMON_TAIL = (
    Field("queue", "Queue", "queue", help="a LocalQueue of the namespace"),
    Field("priority", "Priority", "priority", help="a WorkloadPriorityClass"),
    Field("env", "Environment", "env", default={}, help="KEY=VALUE, one per line"),
    Field("volume", "Volume", "volume", help="CLAIM:/mount/path (PVC) or /host/path:/mount/path"),
    Field("cpu", "CPU per node", "text", help="e.g. 16 or 500m; empty: not requested"),
    Field("memory", "Memory per node", "text", help="e.g. 64Gi; empty: not requested"),
    Field("max_retries", "Retries", "int", default=3, help="restarts of a failed job before it fails"),
)

FIELDS: dict[str, tuple[Field, ...]] = {
    "fine-tune": _COMMON_HEAD + (
        Field("command", "Command", "command", default="python /workspace/finetune.py", required=True),
        Field("gpus", "GPUs", "int", default=1, help="whole GPUs (0 with a MIG profile)"),
        Field("mig", "MIG profile", "text", default="", help="e.g. 1g.10gb or 3g.40gb; instead of whole GPUs"),
        Field("mig_count", "MIG slices", "int", default=1),
    ) + _COMMON_TAIL,
    "ddp": _COMMON_HEAD + (
        Field("command", "Command", "command", default="torchrun /workspace/train.py", required=True),
        Field("nodes", "Nodes", "int", default=2, help="pods, one per node"),
        Field("gpus", "GPUs per node", "int", default=8, help="whole GPUs per node (0 with a MIG profile)"),
        Field("mig", "MIG profile", "text", default="", help="e.g. 1g.10gb; instead of whole GPUs"),
        Field("mig_count", "MIG slices per node", "int", default=1),
    ) + _COMMON_TAIL,
}

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_MIG = re.compile(r"^[1-7]g\.[0-9]+gb$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


class TemplateError(ValueError):
    """Parameters a template cannot render; `problems` lists them, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def defaults(template: str) -> dict[str, Any]:
    return {f.name: f.default for f in _fields(template)}


def _fields(template: str) -> tuple[Field, ...]:
    if template not in FIELDS:
        raise TemplateError([f"unknown template {template!r} (one of {', '.join(TEMPLATES)})"])
    return FIELDS[template]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _merged(template: str, params: dict[str, Any]) -> dict[str, Any]:
    merged = defaults(template)
    merged.update({k: v for k, v in params.items() if not _blank(v)})
    if not _blank(merged.get("mig")) and _blank(params.get("gpus")):
        merged["gpus"] = 0  # a MIG profile replaces the default of whole GPUs
    return merged


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def parse_command(value: Any) -> list[str] | None:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError:
            return None
    return None


def parse_env(value: Any) -> dict[str, str] | None:
    """A mapping, or `KEY=VALUE` lines (blank lines and `#` comments skipped); None when malformed."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    lines: Iterable[str] = value.splitlines() if isinstance(value, str) else value
    env: dict[str, str] = {}
    for line in lines:
        line = str(line).strip()
        if not line or line.startswith("#"):
            continue
        key, eq, val = line.partition("=")
        if not eq:
            return None
        env[key.strip()] = val
    return env


def parse_volume(value: Any) -> dict[str, Any] | None:
    """`{name, mount_path, claim_name | host_path, read_only}` from a mapping or `SOURCE:/mount[:ro]`; None if
    malformed, `{}` when empty."""
    if _blank(value):
        return {}
    if isinstance(value, dict):
        volume = dict(value)
    elif isinstance(value, str):
        parts = value.strip().split(":")
        read_only = len(parts) == 3 and parts[2] == "ro"
        if len(parts) not in (2, 3) or (len(parts) == 3 and not read_only):
            return None
        source, mount = parts[0], parts[1]
        volume = {"mount_path": mount, "read_only": read_only}
        volume["host_path" if source.startswith("/") else "claim_name"] = source
    else:
        return None
    volume.setdefault("name", "data")
    return volume


def validate_params(template: str, params: dict[str, Any], *, queues: Iterable[str] | None = None,
                    priorities: Iterable[str] | None = None) -> list[str]:
    """What is wrong with these parameters, one line per problem (`field: why`); empty when they render.

    `queues`/`priorities`: what the cluster offers (from `queues.submit_choices`); None skips those checks.
    """
    try:
        p = _merged(template, params)
    except TemplateError as exc:
        return exc.problems
    problems: list[str] = []
    for field in _fields(template):
        if field.required and _blank(p.get(field.name)):
            problems.append(f"{field.name}: required")
    name = p.get("name")
    if not _blank(name) and (not isinstance(name, str) or len(name) > 63 or not _LABEL.match(name)):
        problems.append("name: lower-case letters, digits and '-', starting and ending with a letter or digit, "
                        "at most 63 characters")
    namespace = p.get("namespace")
    if not _blank(namespace) and (not isinstance(namespace, str) or len(namespace) > 63 or not _LABEL.match(namespace)):
        problems.append("namespace: not a valid namespace name")
    image = p.get("image")
    if not _blank(image) and (not isinstance(image, str) or any(c.isspace() for c in image.strip())):
        problems.append("image: an image reference has no spaces")
    if not _blank(p.get("command")):
        command = parse_command(p.get("command"))
        if command is None:
            problems.append("command: unbalanced quotes")
        elif not command:
            problems.append("command: required")
    ints = {}
    for key, low in (("nodes", 1), ("gpus", 0), ("mig_count", 1), ("max_retries", 0)):
        if key in p and p[key] is not None:
            value = _int(p[key])
            if value is None or value < low:
                problems.append(f"{key}: a whole number, at least {low}")
            else:
                ints[key] = value
    if template == "fine-tune" and ints.get("nodes", 1) != 1:
        problems.append("nodes: a fine-tune runs on one node; use the ddp template for several")
    if ints.get("gpus", 0) > 64:
        problems.append("gpus: at most 64 per node")
    mig = p.get("mig")
    if not _blank(mig):
        if not isinstance(mig, str) or not _MIG.match(mig.strip().removeprefix("nvidia.com/mig-")):
            problems.append("mig: a MIG profile such as 1g.10gb, 2g.20gb, 3g.40gb")
        if ints.get("gpus", 0) > 0:
            problems.append("gpus: choose whole GPUs or a MIG profile, not both")
    for key in ("cpu", "memory"):
        value = p.get(key)
        if not _blank(value) and not _QUANTITY.match(str(value).strip()):
            problems.append(f"{key}: a quantity such as {'16 or 500m' if key == 'cpu' else '64Gi'}")
    for key, offered in (("queue", queues), ("priority", priorities)):
        value = p.get(key)
        if _blank(value):
            continue
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.append(f"{key}: not a valid name")
        elif offered is not None:
            offered = list(offered)
            if value not in offered:
                problems.append(f"{key}: {value} is not offered here ({', '.join(offered) or 'none'})")
    env = parse_env(p.get("env"))
    if env is None:
        problems.append("env: one KEY=VALUE per line")
    else:
        bad = [k for k in env if not _ENV_NAME.match(k)]
        if bad:
            problems.append(f"env: not a variable name: {', '.join(bad)}")
    volume = parse_volume(p.get("volume"))
    if volume is None:
        problems.append("volume: CLAIM:/mount/path or /host/path:/mount/path (add :ro for read-only)")
    elif volume:
        mount = str(volume.get("mount_path") or "")
        if not mount.startswith("/"):
            problems.append("volume: the mount path must be absolute")
        claim, host = volume.get("claim_name"), volume.get("host_path")
        if bool(claim) == bool(host):
            problems.append("volume: a PersistentVolumeClaim name or a host path")
        elif claim and (len(str(claim)) > 253 or not _LABEL.match(str(claim).replace(".", "-"))):
            problems.append("volume: not a valid PersistentVolumeClaim name")
        if not _LABEL.match(str(volume.get("name", ""))):
            problems.append("volume: not a valid volume name")
    return problems


# -------------------------------------------------------------------------------------------------- render

def _resources(p: dict[str, Any]) -> dict[str, Any]:
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    mig = str(p.get("mig") or "").strip().removeprefix("nvidia.com/mig-")
    if mig:  # quantities as strings, their JSON type
        requests[f"nvidia.com/mig-{mig}"] = limits[f"nvidia.com/mig-{mig}"] = str(_int(p.get("mig_count")) or 1)
    elif _int(p.get("gpus")):
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(_int(p["gpus"]))
    for key in ("cpu", "memory"):
        if not _blank(p.get(key)):
            requests[key] = str(p[key]).strip()
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def _container(name: str, p: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": str(p["image"]).strip(), "command": parse_command(p["command"])}
    env = parse_env(p.get("env")) or {}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    resources = _resources(p)
    if resources:
        container["resources"] = resources
    volume = parse_volume(p.get("volume")) or {}
    if volume:
        mount: dict[str, Any] = {"name": volume["name"], "mountPath": volume["mount_path"]}
        if volume.get("read_only"):
            mount["readOnly"] = True
        container["volumeMounts"] = [mount]
    return container


def _pod_spec(container_name: str, p: dict[str, Any], restart_policy: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    spec["containers"] = [_container(container_name, p)]
    volume = parse_volume(p.get("volume")) or {}
    if volume:
        entry: dict[str, Any] = {"name": volume["name"]}
        if volume.get("claim_name"):
            entry["persistentVolumeClaim"] = {"claimName": volume["claim_name"]}
            if volume.get("read_only"):
                entry["persistentVolumeClaim"]["readOnly"] = True
        else:
            entry["hostPath"] = {"path": volume["host_path"], "type": "Directory"}
        spec["volumes"] = [entry]
    return spec


def _metadata(p: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": p["name"]}
    if not _blank(p.get("namespace")):
        meta["namespace"] = p["namespace"]
    labels = {}
    if not _blank(p.get("queue")):
        labels[QUEUE_LABEL] = p["queue"]
    if not _blank(p.get("priority")):
        labels[PRIORITY_LABEL] = p["priority"]
    if labels:
        meta["labels"] = labels
    return meta


def render(template: str, params: dict[str, Any], *, serves_hyperpod: bool) -> dict[str, Any]:
    """The manifest for these parameters (TemplateError listing every problem when they do not validate)."""
    problems = validate_params(template, params)
    if problems:
        raise TemplateError(problems)
    p = _merged(template, params)
    retries = _int(p.get("max_retries"))
    if template == "fine-tune":
        spec: dict[str, Any] = {"parallelism": 1, "completions": 1}
        if retries is not None:
            spec["backoffLimit"] = retries
        spec["template"] = {"spec": _pod_spec("trainer", p, "OnFailure")}
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _metadata(p), "spec": spec}

    nodes = _int(p.get("nodes")) or 1
    if _blank(p.get("mig")):
        nproc = _int(p.get("gpus")) or 1
    else:
        nproc = _int(p.get("mig_count")) or 1
    if serves_hyperpod:
        run_policy: dict[str, Any] = {}
        if retries is not None:
            run_policy["jobMaxRetryCount"] = retries
        return {
            "apiVersion": "sagemaker.amazonaws.com/v1",
            "kind": "HyperPodPyTorchJob",
            "metadata": _metadata(p),
            "spec": {
                "nprocPerNode": str(nproc),
                "replicaSpecs": [{"name": "pod", "replicas": nodes,
                                  "template": {"spec": _pod_spec("pytorch-job-container", p, None)}}],
                **({"runPolicy": run_policy} if run_policy else {}),
            },
        }

    def replica(count: int) -> dict[str, Any]:
        return {"replicas": count, "restartPolicy": "OnFailure", "template": {"spec": _pod_spec("pytorch", p, None)}}

    replicas = {"Master": replica(1)}
    if nodes > 1:
        replicas["Worker"] = replica(nodes - 1)
    run_policy = {"cleanPodPolicy": "None"}
    if retries is not None:
        run_policy["backoffLimit"] = retries
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": _metadata(p),
        "spec": {"nprocPerNode": str(nproc), "runPolicy": run_policy, "pytorchReplicaSpecs": replicas},
    }


def to_yaml(manifest: dict[str, Any]) -> str:
    """The manifest as the form shows it (and as `actions.parse_manifest` reads it back)."""
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False)
