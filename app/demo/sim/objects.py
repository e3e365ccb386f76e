"""Small helpers for building and changing Kubernetes objects as plain dicts."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")

GPU = "nvidia.com/gpu"
MIG_PREFIX = "nvidia.com/mig-"


def copy(obj: Any) -> Any:
    """A private deep copy of JSON data (cached objects are shared and read-only)."""
    return json.loads(json.dumps(obj))


def milli(value: Any) -> int:
    """A Kubernetes quantity in thousandths of its unit (cpu "500m" -> 500, memory "1Gi" -> 1073741824000)."""
    if value is None:
        return 0
    if isinstance(value, (int, float)):
        return int(Decimal(str(value)) * 1000)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"quantities must match the regular expression {_QUANTITY.pattern!r}: {value!r}")
    number = Decimal(match.group(1))
    if match.group(2):
        number *= Decimal(10) ** int(match.group(2)[1:])
    return int(number * Decimal(_SUFFIXES[match.group(3) or ""]) * 1000)


def format_quantity(resource: str, amount_milli: int) -> str:
    """A quantity as Kueue and kubectl print it: whole numbers plain, cpu in millicores, memory in binary units."""
    if amount_milli % 1000 == 0:
        whole = amount_milli // 1000
        if resource == "memory" or resource.endswith("storage"):
            for suffix, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
                if whole and whole % size == 0:
                    return f"{whole // size}{suffix}"
        return str(whole)
    return f"{amount_milli}m"


def requests_of(container: dict[str, Any]) -> dict[str, int]:
    """A container's requests in milli-units; limits stand in for missing requests, as the API server defaults."""
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = {**limits, **(resources.get("requests") or {})}
    return {name: milli(value) for name, value in requests.items()}


def pod_requests(spec: dict[str, Any]) -> dict[str, int]:
    """What a pod asks the scheduler for: the sum of its containers, or the largest init container if larger."""
    total: dict[str, int] = {}
    for container in spec.get("containers") or []:
        for name, value in requests_of(container).items():
            total[name] = total.get(name, 0) + value
    for container in spec.get("initContainers") or []:
        for name, value in requests_of(container).items():
            total[name] = max(total.get(name, 0), value)
    return total


def gpu_resources(requests: dict[str, int]) -> dict[str, int]:
    """Whole GPUs and MIG slices among `requests`, as counts."""
    return {
        name: value // 1000
        for name, value in requests.items()
        if (name == GPU or name.startswith(MIG_PREFIX)) and value > 0
    }


def owner_reference(owner: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: dict[str, Any], owner_uid: str) -> bool:
    return any(ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or [])


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def labels(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def is_true(obj: dict[str, Any], type_: str) -> bool:
    cond = condition(obj, type_)
    return bool(cond and cond.get("status") == "True")


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: str,
    *,
    style: str = "meta",
    generation: int | None = None,
    move_to_end: bool = False,
) -> bool:
    """Set one condition in place; `lastTransitionTime` changes only when the status does. Returns whether anything
    changed.

    `style` picks the condition shape: "meta" (metav1.Condition: Kueue, jupyter-k8s, HyperPod inference), "job"
    (batch/v1 JobCondition), "kubeflow" (Kubeflow's JobCondition with `lastUpdateTime`), "pod" (PodCondition).
    `move_to_end` appends the condition after the others, as Kubeflow and HyperPod do for the current state, so that
    `.status.conditions[-1:]` names it.
    """
    existing = next((c for c in conditions if c.get("type") == type_), None)
    if existing is not None:
        same = (existing.get("status"), existing.get("reason"), existing.get("message")) == (status, reason, message)
        if same and not move_to_end:
            return False
        if same and conditions[-1] is existing:
            return False
    entry: dict[str, Any] = {"type": type_, "status": status}
    if style == "pod":
        entry["lastProbeTime"] = None
    if style == "job":
        entry["lastProbeTime"] = now
    if style == "kubeflow":
        entry["lastUpdateTime"] = now
    transition = existing.get("lastTransitionTime") if existing and existing.get("status") == status else now
    entry["lastTransitionTime"] = transition
    if reason:
        entry["reason"] = reason
    if style == "meta":
        entry["message"] = message
        if generation is not None:
            entry["observedGeneration"] = generation
    elif message:
        entry["message"] = message
    if existing is not None:
        index = conditions.index(existing)
        if move_to_end:
            del conditions[index]
            conditions.append(entry)
        else:
            conditions[index] = entry
    else:
        conditions.append(entry)
    return True
