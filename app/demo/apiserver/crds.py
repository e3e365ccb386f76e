"""CustomResourceDefinitions created at runtime: their validation, their status, and the `Kind` they define.

Applying an upstream CRD (`kubectl apply -f kueue.x-k8s.io_workloads.yaml`) registers its kind, or refines a
catalogued one: from then on the kind is served exactly as the CRD says (versions, names, printer columns,
subresources) and objects are validated against its openAPIV3Schema. Deleting the CRD removes a runtime kind with
all its objects, as the real server does; a catalogued kind falls back to its catalogue definition and keeps its
objects, so the demo cluster never loses a kind hyperdesk relies on.
"""

from __future__ import annotations

from typing import Any

from .errors import FieldError, invalid, not_supported, required
from .kinds import Kind, KindVersion, PrinterColumn, ScaleSpec
from .store import now_timestamp

_SCOPES = ["Cluster", "Namespaced"]


def validate_crd(crd: dict[str, Any]) -> list[FieldError]:
    """Field errors of a CRD's spec, with the messages the apiextensions server uses for them (changes nothing)."""
    errors: list[FieldError] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    if not group:
        errors.append(required("spec.group"))
    elif "." not in group:
        errors.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    if not names.get("plural"):
        errors.append(required("spec.names.plural"))
    if not names.get("kind"):
        errors.append(required("spec.names.kind"))
    expected = f"{names.get('plural', '')}.{group}"
    name = (crd.get("metadata") or {}).get("name", "")
    if names.get("plural") and group and name != expected:
        errors.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    scope = spec.get("scope")
    if scope not in _SCOPES:
        errors.append(not_supported("spec.scope", scope, _SCOPES) if scope else required("spec.scope"))
    versions = spec.get("versions") or []
    if not versions:
        errors.append(required("spec.versions", "must have exactly one version marked as storage version"))
    else:
        storage = [v for v in versions if v.get("storage")]
        if len(storage) != 1:
            errors.append(invalid("spec.versions", "array", "must have exactly one version marked as storage version"))
        for index, version in enumerate(versions):
            if not version.get("name"):
                errors.append(required(f"spec.versions[{index}].name"))
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is not None and not isinstance(schema, dict):
                errors.append(invalid(f"spec.versions[{index}].schema.openAPIV3Schema", schema, "must be an object"))
    return errors


def crd_status(crd: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """The status the apiextensions controllers would write: names accepted, Established, stored versions.

    Safe to compute for an invalid CRD too (validation then rejects it)."""
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind") or "").lower())
    stamp = now_timestamp()
    old_status = (previous or {}).get("status") or {}
    stored = list(old_status.get("storedVersions") or [])
    storage = next((v.get("name") for v in spec.get("versions") or [] if v and v.get("storage")), None)
    if storage and storage not in stored:
        stored.append(storage)
    old_conditions = {c.get("type"): c for c in old_status.get("conditions") or []}
    conditions = [
        {
            "type": "NamesAccepted",
            "status": "True",
            "reason": "NoConflicts",
            "message": "no conflicts found",
            "lastTransitionTime": old_conditions.get("NamesAccepted", {}).get("lastTransitionTime", stamp),
        },
        {
            "type": "Established",
            "status": "True",
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
            "lastTransitionTime": old_conditions.get("Established", {}).get("lastTransitionTime", stamp),
        },
    ]
    return {"acceptedNames": names, "conditions": conditions, "storedVersions": stored}


def _columns(version: dict[str, Any]) -> tuple[PrinterColumn, ...]:
    columns = tuple(
        PrinterColumn(
            name=c["name"],
            type=c.get("type", "string"),
            json_path=c["jsonPath"],
            format=c.get("format", ""),
            description=c.get("description", ""),
            priority=int(c.get("priority", 0)),
        )
        for c in version.get("additionalPrinterColumns") or []
    )
    return columns or (PrinterColumn("Age", type="date", json_path=".metadata.creationTimestamp"),)


def kind_from_crd(crd: dict[str, Any]) -> Kind:
    """The `Kind` a (validated) CRD defines."""
    spec = crd["spec"]
    names = spec["names"]
    versions = spec["versions"]
    status = any("status" in (v.get("subresources") or {}) for v in versions)
    scale_specs = [(v.get("subresources") or {}).get("scale") for v in versions]
    scale_spec = next((spec for spec in scale_specs if spec), None)
    scale = (
        ScaleSpec(
            scale_spec.get("specReplicasPath", ".spec.replicas"),
            scale_spec.get("statusReplicasPath", ".status.replicas"),
            scale_spec.get("labelSelectorPath", ""),
        )
        if scale_spec
        else None
    )
    return Kind(
        group=spec["group"],
        kind=names["kind"],
        plural=names["plural"],
        singular=names.get("singular", "") or names["kind"].lower(),
        namespaced=spec.get("scope") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        versions=tuple(
            KindVersion(
                name=v["name"],
                served=bool(v.get("served", True)),
                storage=bool(v.get("storage")),
                schema=(v.get("schema") or {}).get("openAPIV3Schema"),
                columns=_columns(v),
            )
            for v in versions
        ),
        status_subresource=status,
        scale=scale,
        field_labels=_selectable_fields(versions),
    )


def _selectable_fields(versions: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """Field selector labels from `selectableFields` (`.status.x` is selected as `status.x`)."""
    paths = {f["jsonPath"] for v in versions for f in v.get("selectableFields") or [] if f.get("jsonPath")}
    return tuple((path.lstrip("."), path) for path in sorted(paths))
