"""Conversion between the served versions of a kind, for the kinds whose versions spell fields differently.

An object is stored at its kind's storage version. A write at another version is converted into that shape before
it is stored, and a read at another version converts the stored object back, as the real server does through a
CRD's conversion webhook. Only Kueue's kinds differ between their versions, by the renames of Kueue's own
conversion functions (`apis/kueue/v1beta1/*_conversion.go`), which the CRDs confirm:

- ClusterQueue `spec.cohort` (v1beta1) is `spec.cohortName` (v1beta2); `status.flavorsUsage` is the same in both.
- LocalQueue `status.flavorUsage` (v1beta1) is `status.flavorsUsage` (v1beta2).
- Workload `spec.priorityClassName` with `spec.priorityClassSource` (v1beta1) is `spec.priorityClassRef{group, kind,
  name}` (v1beta2); a name whose source is neither WorkloadPriorityClass nor PriorityClass has no v1beta2 form.
  Status `accumulatedPastExexcutionTimeSeconds` (sic, v1beta1) is `accumulatedPastExecutionTimeSeconds`.

An object may carry both spellings (a writer unsure which version it talks to): the field of the version being
written wins, the other is dropped, so what is stored is always in the storage version's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Converter = Callable[[dict[str, Any], str, str], None]  # (object copy, source version, target version)

_KUEUE = "kueue.x-k8s.io"
_PRIORITY_SOURCES = {
    "kueue.x-k8s.io/workloadpriorityclass": (_KUEUE, "WorkloadPriorityClass"),
    "scheduling.k8s.io/priorityclass": ("scheduling.k8s.io", "PriorityClass"),
}


def _rename(section: str, names: dict[str, str]) -> Converter:
    """A field of `section` that each version (`names`: version -> field name) spells its own way."""
    spellings = set(names.values())

    def convert(obj: dict[str, Any], source: str, target: str) -> None:
        fields = obj.get(section)
        if not isinstance(fields, dict) or source not in names or target not in names or spellings.isdisjoint(fields):
            return
        preferred = [names[source], *(name for name in spellings if name != names[source])]
        value = next(fields[name] for name in preferred if name in fields)
        obj[section] = {k: v for k, v in fields.items() if k not in spellings}
        obj[section][names[target]] = value

    return convert


def _priority_class(obj: dict[str, Any], source: str, target: str) -> None:
    spec = obj.get("spec")
    fields = ("priorityClassName", "priorityClassSource", "priorityClassRef")
    if not isinstance(spec, dict) or not any(field in spec for field in fields):
        return
    by_source = None
    if spec.get("priorityClassName") and spec.get("priorityClassSource") in _PRIORITY_SOURCES:
        group, kind = _PRIORITY_SOURCES[spec["priorityClassSource"]]
        by_source = {"group": group, "kind": kind, "name": spec["priorityClassName"]}
    ref = spec.get("priorityClassRef") if isinstance(spec.get("priorityClassRef"), dict) else None
    chosen = (by_source or ref) if source == "v1beta1" else (ref or by_source)
    spec = obj["spec"] = {k: v for k, v in spec.items() if k not in fields}
    if chosen is None:
        return
    if target != "v1beta1":
        spec["priorityClassRef"] = chosen
        return
    origin = next((s for s, gk in _PRIORITY_SOURCES.items() if gk == (chosen.get("group"), chosen.get("kind"))), None)
    if origin is not None and chosen.get("name"):
        spec["priorityClassName"] = chosen["name"]
        spec["priorityClassSource"] = origin


_CONVERTERS: dict[tuple[str, str], tuple[Converter, ...]] = {
    (_KUEUE, "ClusterQueue"): (_rename("spec", {"v1beta1": "cohort", "v1beta2": "cohortName"}),),
    (_KUEUE, "LocalQueue"): (_rename("status", {"v1beta1": "flavorUsage", "v1beta2": "flavorsUsage"}),),
    (_KUEUE, "Workload"): (
        _priority_class,
        _rename(
            "status",
            {"v1beta1": "accumulatedPastExexcutionTimeSeconds", "v1beta2": "accumulatedPastExecutionTimeSeconds"},
        ),
    ),
}


def convert(obj: dict[str, Any], api_version: str) -> dict[str, Any]:
    """`obj` (in the shape of the version its `apiVersion` names) in the shape of `api_version`.

    Returns `obj` itself when nothing changes, else a copy that shares what it does not change.
    """
    source_api = obj.get("apiVersion", "")
    group, _, source = source_api.rpartition("/")
    converters = _CONVERTERS.get((group, obj.get("kind", "")), ())
    if source_api == api_version and not converters:
        return obj
    converted = dict(obj)
    converted["apiVersion"] = api_version
    target = api_version.rpartition("/")[2]
    for converter in converters:
        converter(converted, source, target)
    return converted
