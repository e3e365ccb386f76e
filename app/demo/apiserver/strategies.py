"""Kind-specific behaviour of the real server's registries, for the kinds where users would notice its absence.

- Namespace: `spec.finalizers: [kubernetes]`, phase `Active`, the `kubernetes.io/metadata.name` label; deleting one
  turns it `Terminating`, deletes its contents and removes it once empty (what the namespace controller does);
  `default`, `kube-system` and `kube-public` may not be deleted.
- Pod: defaults, `status.phase: Pending` on create, required containers, and the famous spec immutability.
- Service: type and port defaults, a cluster IP from 10.96.0.0/12 that never changes.
- Secret: `stringData` folded into base64 `data`.
- Job, Deployment: the defaults and generated selector the real registries set (a Job keeps its selector).

Defaults apply to every write, as the real server's decoding applies them, so that replacing an object with the
manifest it was created from changes nothing.
- CustomResourceDefinition: validation, status, and (un)registration of the kind it defines.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import TYPE_CHECKING, Any

from . import errors
from .catalog import CRD_KIND, NAMESPACE_KIND
from .crds import crd_status, kind_from_crd, validate_crd
from .errors import FieldError, forbidden, invalid, required
from .store import ADDED, DELETED, MODIFIED

if TYPE_CHECKING:
    from .kinds import Kind
    from .resources import ResourceStorage
    from .store import Event, Store

__all__ = ["NAMESPACE_KIND", "Strategy", "namespace_content_removed", "strategy_for"]


class Strategy:
    """Hooks of one kind's registry. The defaults do nothing, which is right for most kinds."""

    def default(self, obj: dict[str, Any]) -> None:
        """Fill the defaults of unset fields, on create and update (replacing sections, never changing them)."""

    def prepare_for_create(self, storage: ResourceStorage, obj: dict[str, Any]) -> None:
        """Set defaults and server-owned fields on a new object (before validation)."""

    def prepare_for_update(self, storage: ResourceStorage, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Carry over or default fields on an update (before validation)."""

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        """Rules that only apply to changes (immutability); skipped for controller writes."""
        return []

    def check_delete(self, obj: dict[str, Any]) -> None:
        """Raise to refuse deleting `obj` (admission), dry runs included."""

    def prepare_for_delete(self, storage: ResourceStorage, obj: dict[str, Any]) -> None:
        """Adjust an object that just received its `deletionTimestamp`."""

    def validate(self, storage: ResourceStorage, obj: dict[str, Any]) -> list[FieldError]:
        return []

    def finalized(self, obj: dict[str, Any]) -> bool:
        """Whether nothing but `metadata.finalizers` holds the object back from removal."""
        return True

    def after_commit(self, storage: ResourceStorage, event: Event) -> None:
        """React to a committed change of this kind."""


def _with_defaults(section: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`section` with `defaults` for its unset (missing or null) fields: a copy when one is unset, else itself."""
    unset = {key: value for key, value in defaults.items() if section.get(key) is None}
    return {**section, **unset} if unset else section


# --- Namespace -----------------------------------------------------------------------------------------------


_IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")


class NamespaceStrategy(Strategy):
    def check_delete(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name in _IMMORTAL_NAMESPACES:  # the NamespaceLifecycle admission plugin's rule
            raise errors.forbidden_error(
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )

    def prepare_for_create(self, storage: ResourceStorage, obj: dict[str, Any]) -> None:
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
        self._label(obj)

    def prepare_for_update(self, storage: ResourceStorage, new: dict[str, Any], old: dict[str, Any]) -> None:
        new["spec"] = old.get("spec") or {}  # spec.finalizers only change through the namespace controller
        self._label(new)

    @staticmethod
    def _label(obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), "kubernetes.io/metadata.name": meta.get("name", "")}

    def prepare_for_delete(self, storage: ResourceStorage, obj: dict[str, Any]) -> None:
        obj["status"] = {**(obj.get("status") or {}), "phase": "Terminating"}

    def finalized(self, obj: dict[str, Any]) -> bool:
        return not (obj.get("spec") or {}).get("finalizers")

    def after_commit(self, storage: ResourceStorage, event: Event) -> None:
        if event.type != MODIFIED or event.old is None:
            return
        if event.object["metadata"].get("deletionTimestamp") and not event.old.obj["metadata"].get("deletionTimestamp"):
            namespace = event.object["metadata"]["name"]
            store = storage.store
            for kind, stored in store.objects_in_namespace(namespace):
                if store.lookup(kind, namespace, stored.key[1]) is not None:
                    store.resource(kind).delete(namespace, stored.key[1])
            namespace_content_removed(store, namespace)


def namespace_content_removed(store: Store, namespace: str) -> None:
    """Remove a terminating namespace once its last object is gone (the namespace controller's final step)."""
    ns = store.lookup(NAMESPACE_KIND, "", namespace)
    if ns is None or not ns.obj["metadata"].get("deletionTimestamp") or not store.namespace_is_empty(namespace):
        return
    if ns.obj["metadata"].get("finalizers"):
        return
    final = {**ns.obj, "metadata": dict(ns.obj["metadata"]), "spec": {}}
    store.resource(NAMESPACE_KIND).remove(ns, final)


# --- Pod --------------------------------------------------------------------------------------------------------

# Fields of a pod spec that an update may change (everything else is immutable once created).
_MUTABLE_POD_FIELDS = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates")


def _qos_class(spec: dict[str, Any]) -> str:
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    requests_any = limits_all = False
    guaranteed = bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        requests_any = requests_any or bool(requests) or bool(limits)
        for resource in ("cpu", "memory"):
            if resource not in limits or requests.get(resource, limits[resource]) != limits[resource]:
                guaranteed = False
        limits_all = limits_all or bool(limits)
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests_any or limits_all else "BestEffort"


def _container_defaults(container: dict[str, Any]) -> dict[str, Any]:
    image = str(container.get("image") or "")
    tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
    latest = not tagged or image.endswith(":latest")
    return _with_defaults(
        container,
        {
            "imagePullPolicy": "Always" if latest else "IfNotPresent",
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        },
    )


_POD_DEFAULTS = {
    "restartPolicy": "Always",
    "schedulerName": "default-scheduler",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "serviceAccountName": "default",
}


class PodStrategy(Strategy):
    def default(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec = _with_defaults(spec, _POD_DEFAULTS)
        for field in ("containers", "initContainers"):
            containers = spec.get(field) or []
            defaulted = [_container_defaults(c) if isinstance(c, dict) else c for c in containers]
            if any(new is not old for new, old in zip(defaulted, containers, strict=True)):
                spec = {**spec, field: defaulted}
        obj["spec"] = spec

    def prepare_for_create(self, storage: ResourceStorage, obj: dict[str, Any]) -> None:
        if "status" not in obj:
            obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj.get("spec") or {})}

    def validate(self, storage: ResourceStorage, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict) or not spec.get("containers"):
            return [required("spec.containers")]
        problems = []
        names: set[str] = set()
        for index, container in enumerate(spec["containers"]):
            if not isinstance(container, dict):
                problems.append(invalid(f"spec.containers[{index}]", container, "must be an object"))
                continue
            if not container.get("name"):
                problems.append(required(f"spec.containers[{index}].name"))
            elif container["name"] in names:
                problems.append(
                    FieldError("FieldValueDuplicate", f"spec.containers[{index}].name", "", container["name"], True)
                )
            names.add(container.get("name", ""))
            if not container.get("image"):
                problems.append(required(f"spec.containers[{index}].image"))
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        if new.get("spec") is old.get("spec"):
            return []

        def frozen(spec: dict[str, Any]) -> dict[str, Any]:
            spec = {k: v for k, v in (spec or {}).items() if k not in _MUTABLE_POD_FIELDS}
            for field in ("containers", "initContainers"):
                if field in spec:
                    spec[field] = [{k: v for k, v in c.items() if k != "image"} for c in spec[field]]
            return spec

        if frozen(new.get("spec") or {}) != frozen(old.get("spec") or {}):
            return [
                forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,"
                    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
                    "to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
                    "was previously negative)",
                )
            ]
        return []


# --- Service ----------------------------------------------------------------------------------------------------

_SERVICE_RANGE = ipaddress.ip_network("10.96.0.0/12")


class ServiceStrategy(Strategy):
    def __init__(self) -> None:
        self._next = 1

    def _allocate(self, storage: ResourceStorage) -> str:
        used = {s.obj.get("spec", {}).get("clusterIP") for s in storage.store.table(storage.kind).objects.values()}
        while True:
            address = str(_SERVICE_RANGE[self._next])
            self._next += 1
            if address not in used:
                return address

    def default(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec = _with_defaults(spec, {"type": "ClusterIP", "sessionAffinity": "None"})
        if spec["type"] != "ExternalName":
            spec = _with_defaults(spec, {"internalTrafficPolicy": "Cluster"})
        ports = spec.get("ports") or []
        defaulted = [
            _with_defaults(p, {"protocol": "TCP", "targetPort": p.get("port")}) if isinstance(p, dict) else p
            for p in ports
        ]
        if any(new is not old for new, old in zip(defaulted, ports, strict=True)):
            spec = {**spec, "ports": defaulted}
        obj["spec"] = spec

    def prepare_for_create(self, storage: ResourceStorage, obj: dict[str, Any]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if spec["type"] != "ExternalName":
            if not spec.get("clusterIP"):
                spec["clusterIP"] = self._allocate(storage)
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        obj.setdefault("status", {"loadBalancer": {}})

    def prepare_for_update(self, storage: ResourceStorage, new: dict[str, Any], old: dict[str, Any]) -> None:
        spec, old_spec = new.get("spec"), old.get("spec") or {}
        if isinstance(spec, dict):
            spec = new["spec"] = dict(spec)
            for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if field in old_spec and not spec.get(field):
                    spec[field] = old_spec[field]

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        before, after = (old.get("spec") or {}).get("clusterIP"), (new.get("spec") or {}).get("clusterIP")
        if before and after != before:
            return [invalid("spec.clusterIPs[0]", after, "may not change once set")]
        return []

    def validate(self, storage: ResourceStorage, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        if spec.get("type") != "ExternalName" and not spec.get("ports") and spec.get("clusterIP") != "None":
            return [required("spec.ports")]
        return []


# --- Secret ------------------------------------------------------------------------------------------------------


class SecretStrategy(Strategy):
    @staticmethod
    def _fold(obj: dict[str, Any]) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj["data"] = dict(obj.get("data") or {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()

    def prepare_for_create(self, storage: ResourceStorage, obj: dict[str, Any]) -> None:
        self._fold(obj)

    def prepare_for_update(self, storage: ResourceStorage, new: dict[str, Any], old: dict[str, Any]) -> None:
        self._fold(new)

    def validate(self, storage: ResourceStorage, obj: dict[str, Any]) -> list[FieldError]:
        problems = []
        for key, value in (obj.get("data") or {}).items():
            try:
                base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                problems.append(invalid(f"data[{key}]", "<secret contents redacted>", "illegal base64 data"))
        return problems


# --- Job, Deployment -----------------------------------------------------------------------------------------------


_JOB_LABELS = ("batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name", "controller-uid", "job-name")


def _template_labels(spec: dict[str, Any]) -> dict[str, Any]:
    template = spec.get("template")
    meta = (template.get("metadata") if isinstance(template, dict) else None) or {}
    return meta.get("labels") or {}


def _with_template_labels(spec: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    template = spec.get("template")
    if not isinstance(template, dict):
        return spec
    meta = template.get("metadata") or {}
    merged = {**(meta.get("labels") or {}), **labels}
    return {**spec, "template": {**template, "metadata": {**meta, "labels": merged}}}


class JobStrategy(Strategy):
    def default(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec = {**spec, "completions": 1, "parallelism": 1}
        obj["spec"] = _with_defaults(
            spec, {"parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False}
        )

    def prepare_for_create(self, storage: ResourceStorage, obj: dict[str, Any]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict) or spec.get("manualSelector"):
            return
        uid, name = obj["metadata"]["uid"], obj["metadata"].get("name", "")
        spec = {**spec, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}}
        obj["spec"] = _with_template_labels(spec, dict(zip(_JOB_LABELS, (uid, name, uid, name), strict=True)))

    def prepare_for_update(self, storage: ResourceStorage, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Keep the generated selector and pod labels when an update (`kubectl replace -f job.yaml`) omits them."""
        spec, old_spec = new.get("spec"), old.get("spec") or {}
        if not isinstance(spec, dict) or spec.get("manualSelector") or old_spec.get("manualSelector"):
            return
        if spec.get("selector") is None and old_spec.get("selector") is not None:
            spec = {**spec, "selector": old_spec["selector"]}
        labels = _template_labels(spec)
        kept = {k: v for k, v in _template_labels(old_spec).items() if k in _JOB_LABELS and k not in labels}
        new["spec"] = _with_template_labels(spec, kept) if kept else spec

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        after = (new.get("spec") or {}).get("selector")
        if after != (old.get("spec") or {}).get("selector"):
            return [invalid("spec.selector", after, "field is immutable")]
        return []

    def validate(self, storage: ResourceStorage, obj: dict[str, Any]) -> list[FieldError]:
        template = (obj.get("spec") or {}).get("template") or {}
        if not (template.get("spec") or {}).get("containers"):
            return [required("spec.template.spec.containers")]
        restart = (template.get("spec") or {}).get("restartPolicy")
        if restart not in ("Never", "OnFailure"):
            return [
                errors.not_supported("spec.template.spec.restartPolicy", restart or "Always", ["OnFailure", "Never"])
            ]
        return []


class DeploymentStrategy(Strategy):
    def default(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
        defaults = {"replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600, "strategy": rolling}
        obj["spec"] = _with_defaults(spec, defaults)

    def validate(self, storage: ResourceStorage, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        selector = spec.get("selector")
        if not selector:
            return [required("spec.selector")]
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        wanted = selector.get("matchLabels") or {}
        if any(labels.get(k) != v for k, v in wanted.items()):
            rendered = "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"
            return [invalid("spec.template.metadata.labels", rendered, "`selector` does not match template `labels`")]
        return []


# --- CustomResourceDefinition ------------------------------------------------------------------------------------


class CustomResourceDefinitionStrategy(Strategy):
    def default(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec")
        names = spec.get("names") if isinstance(spec, dict) else None
        if isinstance(names, dict) and names.get("kind") and not names.get("listKind"):
            obj["spec"] = {**spec, "names": {**names, "listKind": names["kind"] + "List"}}

    def validate(self, storage: ResourceStorage, obj: dict[str, Any]) -> list[FieldError]:
        return validate_crd(obj)

    def prepare_for_create(self, storage: ResourceStorage, obj: dict[str, Any]) -> None:
        obj["status"] = crd_status(obj, None)

    def prepare_for_update(self, storage: ResourceStorage, new: dict[str, Any], old: dict[str, Any]) -> None:
        new["status"] = crd_status(new, old)

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        before, after = (old.get("spec") or {}).get("group"), (new.get("spec") or {}).get("group")
        if before != after:
            return [invalid("spec.group", after, "field is immutable")]
        return []

    def after_commit(self, storage: ResourceStorage, event: Event) -> None:
        registry = storage.store.registry
        if event.type in (ADDED, MODIFIED) and not event.object["metadata"].get("deletionTimestamp"):
            registry.register(kind_from_crd(event.object))
        elif event.type == DELETED:
            spec = event.object["spec"]
            gone = registry.lookup_any(spec["group"], spec["names"]["plural"])
            if registry.unregister(spec["group"], spec["names"]["plural"]) is None and gone is not None:
                storage.store.drop_kind(gone)


def strategy_for(kind: Kind) -> Strategy:
    """The strategy of a kind: specific ones for the built-in kinds listed above, the default otherwise."""
    if not kind.builtin:
        return Strategy()
    specific: dict[tuple[str, str], type[Strategy]] = {
        ("", "namespaces"): NamespaceStrategy,
        ("", "pods"): PodStrategy,
        ("", "services"): ServiceStrategy,
        ("", "secrets"): SecretStrategy,
        ("batch", "jobs"): JobStrategy,
        ("apps", "deployments"): DeploymentStrategy,
        (CRD_KIND.group, CRD_KIND.plural): CustomResourceDefinitionStrategy,
    }
    return specific.get((kind.group, kind.plural), Strategy)()
