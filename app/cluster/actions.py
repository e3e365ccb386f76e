"""What a user may do to jobs, headless: submit manifests, cancel, suspend, resume, change priority, edit and apply.

The Jobs pane and the CLI call the same functions. Every mutation checks the read-only guard before anything
else (nothing is sent), validates what it can locally, and turns the server's refusals into one line for the user
(`ActionError`, with the exit code the CLI uses: 2 for input the user can fix, 1 for a failure). Nothing here
updates a screen: the watch brings the new state back.

Kueue semantics followed here (see shared/reference/cluster-apis.md and the Kueue docs):

- Kueue owns the `suspend` field of the jobs it queues (it unsuspends an admitted job itself), so suspending and
  resuming a queued job sets its Workload's `spec.active` (false evicts it and releases its quota, as
  `kueuectl stop workload` does). A job without a Workload is suspended through its own field
  (`spec.runPolicy.suspend` for HyperPodPyTorchJob and PyTorchJob, `spec.suspend` for Job and JobSet).
- The `kueue.x-k8s.io/priority-class` label of a job is mutable, but Kueue versions before 0.12 never copy a new
  value to the Workload, and later ones only while it is pending. The Workload's `spec.priority` is always
  mutable and is what queueing and preemption read: `set_priority` sets the label, then the Workload's
  `priority`, and its class name (`priorityClassName` in v1beta1, `priorityClassRef` in v1beta2) while Kueue
  still allows changing it (before `QuotaReserved`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable

import yaml

from app.cluster.connection import ApiError, ClusterConnection
from app.cluster.resources import KINDS, ResourceKind, kubectl_names, split_kind_ref
from app.config import SAFE_LOADER
from app.model.jobs import JOB_KINDS, PRIORITY_LABEL, QUEUE_LABEL, job_condition_state

EXIT_FAILURE, EXIT_BAD_INPUT = 1, 2

JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
KUEUE_GROUP = "kueue.x-k8s.io"

# Kinds Kueue queues through the queue-name label (group, kind): the labels `--queue`/`--priority` go on these.
QUEUEABLE_KINDS = frozenset({
    ("batch", "Job"),
    ("jobset.x-k8s.io", "JobSet"),
    ("sagemaker.amazonaws.com", "HyperPodPyTorchJob"),
    ("kubeflow.org", "PyTorchJob"), ("kubeflow.org", "TFJob"), ("kubeflow.org", "MPIJob"),
    ("kubeflow.org", "XGBoostJob"), ("kubeflow.org", "PaddleJob"), ("kubeflow.org", "JAXJob"),
    ("trainer.kubeflow.org", "TrainJob"),
    ("ray.io", "RayJob"), ("ray.io", "RayCluster"),
})


class ActionError(Exception):
    """A failed action, phrased for the user in one line; `exit_code` 2 for bad input, 1 for a failure."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(" ".join(message.split()) if "\n" in message else message)
        self.exit_code = exit_code


class ReadOnlyError(ActionError):
    """The session is read-only: nothing was sent."""

    def __init__(self, doing: str) -> None:
        super().__init__(f"hyperdesk is read-only (--readonly): not {doing}", EXIT_BAD_INPUT)


def refuse_if_readonly(readonly: bool, doing: str) -> None:
    if readonly:
        raise ReadOnlyError(doing)


def exit_code(exc: ApiError) -> int:
    """A refusal of what the user asked for (invalid, forbidden, missing, duplicate) is bad input; the rest fails."""
    return EXIT_BAD_INPUT if exc.status in (400, 403, 404, 409, 422) else EXIT_FAILURE


def _refused(exc: ApiError, prefix: str = "") -> ActionError:
    return ActionError(f"{prefix}{exc}", exit_code(exc))


# ------------------------------------------------------------------------------------------------- manifests

def parse_manifest(text: str, source: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML manifest (`kind: List` documents are flattened, empty ones skipped).

    Raises ActionError (exit 2) naming `source:line` for YAML syntax errors and for documents that are not
    Kubernetes objects (not a mapping, no apiVersion, no kind, no metadata.name or generateName).
    """
    documents: list[tuple[int, Any]] = []
    loader = SAFE_LOADER(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            documents.append((node.start_mark.line + 1, loader.construct_document(node)))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        detail = f"{problem} ({context})" if context else problem
        raise ActionError(f"{where}: invalid YAML: {detail}", EXIT_BAD_INPUT) from None
    finally:
        loader.dispose()

    objects: list[dict[str, Any]] = []
    for line, doc in documents:
        if doc is None:
            continue
        where = f"{source}:{line}"
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            items = doc["items"]
        else:
            items = [doc]
        for item in items:
            _check_object(item, where)
            objects.append(item)
    if not objects:
        raise ActionError(f"{source}: no objects to submit", EXIT_BAD_INPUT)
    return objects


def _check_object(doc: Any, where: str) -> None:
    if not isinstance(doc, dict):
        raise ActionError(f"{where}: a document must be a mapping (an object with apiVersion and kind), "
                          f"not {type(doc).__name__}", EXIT_BAD_INPUT)
    for field in ("apiVersion", "kind"):
        value = doc.get(field)
        if not isinstance(value, str) or not value.strip():
            raise ActionError(f"{where}: missing {field}", EXIT_BAD_INPUT)
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict) or not (metadata.get("name") or metadata.get("generateName")):
        raise ActionError(f"{where}: {doc['kind']} has no metadata.name (or metadata.generateName)", EXIT_BAD_INPUT)
    for field in ("labels", "annotations"):
        if metadata.get(field) is not None and not isinstance(metadata[field], dict):
            raise ActionError(f"{where}: metadata.{field} must be a mapping", EXIT_BAD_INPUT)


def describe(doc: dict[str, Any]) -> str:
    """`Kind namespace/name` (or `name-*` for a generateName), for messages."""
    meta = doc.get("metadata") or {}
    name = meta.get("name") or f"{meta.get('generateName', '')}*"
    namespace = meta.get("namespace")
    return f"{doc.get('kind')} {namespace}/{name}" if namespace else f"{doc.get('kind')} {name}"


def reference(doc: dict[str, Any], namespaced: bool) -> str:
    """`Kind/namespace/name`, or `Kind/name` for a cluster-scoped object: what `submit` returns."""
    meta = doc.get("metadata") or {}
    if namespaced:
        return f"{doc.get('kind')}/{meta.get('namespace')}/{meta.get('name')}"
    return f"{doc.get('kind')}/{meta.get('name')}"


# ---------------------------------------------------------------------------------------- resolving kinds

@dataclass(frozen=True)
class ApiResource:
    """A kind as the server's discovery describes it."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


class KindResolver:
    """Looks kinds up in the server's discovery documents, one request per group version."""

    def __init__(self, conn: ClusterConnection) -> None:
        self.conn = conn
        self._documents: dict[str, dict[str, Any] | None] = {}

    async def resolve(self, api_version: str, kind: str) -> ApiResource:
        if api_version not in self._documents:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}" if "/" in api_version else None
            document = None
            if path is not None:
                try:
                    document = await self.conn.request("GET", path)
                except ApiError as exc:
                    if exc.status != 404:
                        raise ActionError(f"cannot look up {api_version} on the cluster: {exc}", exit_code(exc)) from None
            self._documents[api_version] = document
        document = self._documents[api_version]
        if document is None:
            raise ActionError(f"unknown kind {kind}: the cluster does not serve the API {api_version}", EXIT_BAD_INPUT)
        for resource in document.get("resources") or ():
            if resource.get("kind") == kind and "/" not in resource.get("name", ""):
                return ApiResource(api_version, kind, resource["name"], bool(resource.get("namespaced")))
        raise ActionError(f"unknown kind {kind}: the cluster serves {api_version} but no kind {kind} in it",
                          EXIT_BAD_INPUT)


# ------------------------------------------------------------------------------------------------- submit

@dataclass
class _Planned:
    doc: dict[str, Any]
    resource: ApiResource
    skip_dry_run: bool = False


async def submit(conn: ClusterConnection, documents: list[dict[str, Any]], *, readonly: bool,
                 queue: str | None = None, priority: str | None = None, dry_run: bool = False,
                 discovery: Any = None, namespace: str | None = None) -> list[str]:
    """Create `documents` (from `parse_manifest`), all or nothing. Returns `Kind/namespace/name` of each object
    created (or that would be, with `dry_run`), in order.

    Objects without a namespace go to `namespace` (default `default`). `queue`/`priority` become the Kueue labels
    of every job-like object. Checked before anything is created: every kind is served; the queue exists in the
    object's namespace (and a job going to a namespace whose LocalQueues Kueue uses has one); the priority class
    exists; then a server dry-run of every object (strict field validation). Only then are the objects created, in
    order; if one create still fails, the ones this call created are deleted again and the message says so.

    A server dry-run changes nothing, so `dry_run=True` is allowed in a read-only session.
    """
    count = len(documents)
    if not dry_run:
        refuse_if_readonly(readonly, f"submitting {count} object{'s' if count != 1 else ''}")
    if not documents:
        raise ActionError("nothing to submit", EXIT_BAD_INPUT)
    docs = [copy.deepcopy(doc) for doc in documents]
    for index, doc in enumerate(docs):
        _check_object(doc, f"document {index + 1}")
    default_namespace = namespace or "default"
    resolver = KindResolver(conn)
    plan: list[_Planned] = []
    for doc in docs:
        resource = await resolver.resolve(doc["apiVersion"], doc["kind"])
        meta = doc["metadata"]
        if resource.namespaced:
            meta.setdefault("namespace", default_namespace)
            if not meta["namespace"]:
                meta["namespace"] = default_namespace
        else:
            meta.pop("namespace", None)
        plan.append(_Planned(doc, resource))

    queueable = [p for p in plan if (p.resource.group, p.resource.kind) in QUEUEABLE_KINDS]
    if (queue or priority) and not queueable:
        flag = "--queue" if queue else "--priority"
        raise ActionError(f"{flag} applies to jobs, and none of the {count} objects is one", EXIT_BAD_INPUT)
    for planned in queueable:
        labels = planned.doc["metadata"].setdefault("labels", {}) or {}
        planned.doc["metadata"]["labels"] = labels
        if queue:
            labels[QUEUE_LABEL] = queue
        if priority:
            labels[PRIORITY_LABEL] = priority
    await _check_queueing(conn, discovery, plan, queueable)

    created_namespaces = {p.doc["metadata"]["name"] for p in plan if p.resource.kind == "Namespace" and p.resource.api_version == "v1"}
    for planned in plan:
        if planned.resource.namespaced and planned.doc["metadata"].get("namespace") in created_namespaces:
            planned.skip_dry_run = True  # its namespace does not exist before this submission creates it

    rejected: list[str] = []
    previews: list[str] = []
    codes: list[int] = []
    for planned in plan:
        if planned.skip_dry_run:
            previews.append(reference(planned.doc, planned.resource.namespaced))
            continue
        try:
            answer = await conn.request("POST", planned.resource.path(planned.doc["metadata"].get("namespace")),
                                        query={"dryRun": "All", "fieldValidation": "Strict"}, body=planned.doc)
        except ApiError as exc:
            rejected.append(f"{describe(planned.doc)}: {exc}")
            codes.append(exit_code(exc))
            continue
        previews.append(reference(answer if isinstance(answer, dict) else planned.doc, planned.resource.namespaced))
    if rejected:
        code = EXIT_FAILURE if EXIT_FAILURE in codes else EXIT_BAD_INPUT
        if len(rejected) == 1:
            raise ActionError(f"the server rejected {rejected[0]} (nothing was created)", code)
        raise ActionError(f"the server rejected {len(rejected)} of {count} objects (nothing was created): "
                          + "; ".join(rejected), code)
    if dry_run:
        return previews

    created: list[tuple[_Planned, dict[str, Any]]] = []
    for planned in plan:
        try:
            answer = await conn.request("POST", planned.resource.path(planned.doc["metadata"].get("namespace")),
                                        query={"fieldValidation": "Strict"}, body=planned.doc)
        except ApiError as exc:
            undone = await _rollback(conn, created)
            raise ActionError(f"creating {describe(planned.doc)} failed: {exc}; {undone}", exit_code(exc)) from None
        created.append((planned, answer if isinstance(answer, dict) else planned.doc))
    return [reference(obj, planned.resource.namespaced) for planned, obj in created]


async def _rollback(conn: ClusterConnection, created: list[tuple[_Planned, dict[str, Any]]]) -> str:
    """Delete what this submission created, newest first; a sentence saying what happened."""
    if not created:
        return "nothing was created"
    deleted, failed = [], []
    for planned, obj in reversed(created):
        meta = obj.get("metadata") or {}
        ref = reference(obj, planned.resource.namespaced)
        try:
            await conn.request("DELETE", planned.resource.path(meta.get("namespace"), meta.get("name")),
                               body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
            deleted.append(ref)
        except ApiError as exc:
            if exc.status == 404:
                deleted.append(ref)
            else:
                failed.append(f"{ref} ({exc})")
    text = f"deleted the {len(deleted)} object{'s' if len(deleted) != 1 else ''} it had created ({', '.join(reversed(deleted))})"
    if failed:
        text += f"; could NOT delete {', '.join(failed)}: delete them by hand"
    return text


async def _kueue_version(conn: ClusterConnection, discovery: Any) -> str | None:
    if discovery is not None:
        return discovery.version("localqueues")
    from app.cluster.discovery import discover

    try:
        found = await discover(conn, {"localqueues": KINDS["localqueues"]})
    except ApiError:
        return None
    return found.version("localqueues")


async def _list_names(conn: ClusterConnection, path: str) -> dict[str, dict[str, Any]] | None:
    """name -> object of a list, or None when the list may not be read (then the check is the server's)."""
    try:
        answer = await conn.request("GET", path)
    except ApiError as exc:
        if exc.status in (401, 403, 404):
            return None
        raise ActionError(f"cannot read {path}: {exc}", EXIT_FAILURE) from None
    return {item["metadata"]["name"]: item for item in (answer or {}).get("items") or ()}


async def _check_queueing(conn: ClusterConnection, discovery: Any, plan: list[_Planned],
                          queueable: list[_Planned]) -> None:
    """Queue and priority labels name things that exist; a job bound for a Kueue namespace has a queue."""
    if not queueable:
        return
    version = await _kueue_version(conn, discovery)
    if version is None:
        return  # no Kueue here: the labels mean nothing to the cluster, and nothing requires them
    batch_queues = {(p.doc["metadata"].get("namespace"), p.doc["metadata"].get("name"))
                    for p in plan if p.resource.group == KUEUE_GROUP and p.resource.kind == "LocalQueue"}
    batch_priorities = {p.doc["metadata"].get("name") for p in plan
                        if p.resource.group == KUEUE_GROUP and p.resource.kind == "WorkloadPriorityClass"}
    queues_by_namespace: dict[str, dict[str, Any] | None] = {}
    priorities: dict[str, dict[str, Any]] | None | bool = False
    for planned in queueable:
        meta = planned.doc["metadata"]
        namespace = meta.get("namespace") or ""
        labels = meta.get("labels") or {}
        if namespace not in queues_by_namespace:
            queues_by_namespace[namespace] = await _list_names(
                conn, KINDS["localqueues"].path(version, namespace))
        queues = queues_by_namespace[namespace]
        wanted = labels.get(QUEUE_LABEL)
        in_batch = {name for ns, name in batch_queues if ns == namespace}
        if queues is not None:
            known = sorted(set(queues) | in_batch)
            if wanted and wanted not in known:
                offer = f"it has {', '.join(known)}" if known else "it has none"
                raise ActionError(f"{describe(planned.doc)}: namespace {namespace} has no LocalQueue {wanted} ({offer})",
                                  EXIT_BAD_INPUT)
            if not wanted and known and "default" not in known:
                # Kueue's LocalQueue defaulting sends unlabelled jobs to a LocalQueue named `default`; without one,
                # a job here would run outside the team's quota (or never be admitted).
                raise ActionError(f"{describe(planned.doc)} has no {QUEUE_LABEL} label, and namespace {namespace} "
                                  f"queues its jobs through Kueue: pass --queue {known[0]} (LocalQueues here: "
                                  f"{', '.join(known)})", EXIT_BAD_INPUT)
        wanted_priority = labels.get(PRIORITY_LABEL)
        if wanted_priority:
            if priorities is False:
                priorities = await _list_names(conn, KINDS["workloadpriorityclasses"].path(version))
            if isinstance(priorities, dict):
                known_priorities = set(priorities) | batch_priorities
                if wanted_priority not in known_priorities:
                    offer = ", ".join(f"{name} ({priorities[name].get('value')})" for name in sorted(
                        priorities, key=lambda n: -int(priorities[n].get("value") or 0))) or "none"
                    raise ActionError(f"{describe(planned.doc)}: no WorkloadPriorityClass {wanted_priority} "
                                      f"(the cluster offers {offer})", EXIT_BAD_INPUT)


# ------------------------------------------------------------------------------------------- job actions

def job_kind(store_name: str) -> ResourceKind:
    if store_name not in JOB_KINDS:
        raise ActionError(f"not a job kind: {store_name} (one of {', '.join(JOB_KINDS)})", EXIT_BAD_INPUT)
    return KINDS[store_name]


def _version(kind: ResourceKind, discovery: Any = None) -> str:
    if discovery is not None and discovery.version(kind.name):
        return discovery.version(kind.name)
    return kind.versions[0]


def _label(store_name: str, namespace: str, name: str) -> str:
    return f"{JOB_KINDS.get(store_name, store_name)} {namespace}/{name}"


async def get_job(conn: ClusterConnection, store_name: str, namespace: str, name: str,
                  discovery: Any = None) -> dict[str, Any]:
    """The full job object (ActionError 2 when it does not exist)."""
    kind = job_kind(store_name)
    try:
        return await conn.request("GET", kind.path(_version(kind, discovery), namespace, name))
    except ApiError as exc:
        if exc.status == 404:
            raise ActionError(f"{_label(store_name, namespace, name)} not found", EXIT_BAD_INPUT) from None
        raise _refused(exc) from None


async def find_workload(conn: ClusterConnection, job: dict[str, Any], discovery: Any = None) -> tuple[str, dict[str, Any]] | None:
    """(Kueue API version, the Workload) that Kueue made for `job`, or None (no Kueue, no Workload, or unreadable)."""
    version = discovery.version("workloads") if discovery is not None else await _workload_version(conn)
    if not version:
        return None
    meta = job.get("metadata") or {}
    path = KINDS["workloads"].path(version, meta.get("namespace"))
    try:
        answer = await conn.request("GET", path, query={"labelSelector": f"{JOB_UID_LABEL}={meta.get('uid')}"})
        items = (answer or {}).get("items") or []
        if not items:  # Workloads made before Kueue labelled them: match the owner reference instead
            answer = await conn.request("GET", path)
            items = [w for w in (answer or {}).get("items") or ()
                     if any(r.get("uid") == meta.get("uid") for r in (w.get("metadata") or {}).get("ownerReferences") or ())]
    except ApiError as exc:
        if exc.status in (403, 404):
            return None
        raise _refused(exc) from None
    return (version, items[0]) if items else None


async def _workload_version(conn: ClusterConnection) -> str | None:
    from app.cluster.discovery import discover

    try:
        return (await discover(conn, {"workloads": KINDS["workloads"]})).version("workloads")
    except ApiError:
        return None


async def cancel(conn: ClusterConnection, store_name: str, namespace: str, name: str, *, readonly: bool,
                 discovery: Any = None) -> None:
    """Delete the job; its pods and Workload go with it (background propagation, as `kubectl delete`)."""
    refuse_if_readonly(readonly, f"cancelling {_label(store_name, namespace, name)}")
    kind = job_kind(store_name)
    try:
        await conn.request("DELETE", kind.path(_version(kind, discovery), namespace, name),
                           body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
    except ApiError as exc:
        if exc.status == 404:
            raise ActionError(f"{_label(store_name, namespace, name)} not found (already deleted?)", EXIT_BAD_INPUT) from None
        raise _refused(exc, f"cannot cancel {_label(store_name, namespace, name)}: ") from None


def _suspend_patch(store_name: str, suspended: bool) -> dict[str, Any]:
    if store_name in ("jobs", "jobsets"):
        return {"spec": {"suspend": suspended}}
    return {"spec": {"runPolicy": {"suspend": suspended}}}


async def set_suspended(conn: ClusterConnection, store_name: str, namespace: str, name: str, suspended: bool, *,
                        readonly: bool, discovery: Any = None) -> str:
    """Suspend or resume a job. Returns what was changed: `Workload <ns>/<name> spec.active` for a job Kueue queues
    (Kueue owns the job's own suspend field), else the job's suspend field."""
    refuse_if_readonly(readonly, f"{'suspending' if suspended else 'resuming'} {_label(store_name, namespace, name)}")
    kind = job_kind(store_name)
    job = await get_job(conn, store_name, namespace, name, discovery)
    finished = job_condition_state(JOB_KINDS[store_name], job)
    if finished in ("Succeeded", "Failed"):
        raise ActionError(f"{_label(store_name, namespace, name)} has {finished.lower()}: there is nothing to "
                          f"{'suspend' if suspended else 'resume'}", EXIT_BAD_INPUT)
    merge = {"Content-Type": "application/merge-patch+json"}
    found = await find_workload(conn, job, discovery)
    if found is not None:
        version, workload = found
        path = KINDS["workloads"].path(version, namespace, workload["metadata"]["name"])
        try:
            await conn.request("PATCH", path, body={"spec": {"active": not suspended}}, headers=merge)
        except ApiError as exc:
            raise _refused(exc, f"cannot {'suspend' if suspended else 'resume'} {_label(store_name, namespace, name)} "
                                f"(its Workload {workload['metadata']['name']}): ") from None
        return f"Workload {namespace}/{workload['metadata']['name']} spec.active={'false' if suspended else 'true'}"
    try:
        await conn.request("PATCH", kind.path(_version(kind, discovery), namespace, name),
                           body=_suspend_patch(store_name, suspended), headers=merge)
    except ApiError as exc:
        raise _refused(exc, f"cannot {'suspend' if suspended else 'resume'} {_label(store_name, namespace, name)}: ") from None
    field = "spec.suspend" if store_name in ("jobs", "jobsets") else "spec.runPolicy.suspend"
    return f"{JOB_KINDS[store_name]} {namespace}/{name} {field}={'true' if suspended else 'false'}"


async def set_priority(conn: ClusterConnection, store_name: str, namespace: str, name: str, priority_class: str, *,
                       readonly: bool, discovery: Any = None) -> int:
    """Give the job another WorkloadPriorityClass: its label, and its Workload's priority (see the module
    docstring for Kueue's rules). Returns the class's value."""
    refuse_if_readonly(readonly, f"changing the priority of {_label(store_name, namespace, name)}")
    kind = job_kind(store_name)
    version = discovery.version("workloadpriorityclasses") if discovery is not None else await _workload_version(conn)
    if not version:
        raise ActionError("this cluster does not serve Kueue's WorkloadPriorityClass: there is no priority to change",
                          EXIT_BAD_INPUT)
    try:
        wpc = await conn.request("GET", KINDS["workloadpriorityclasses"].path(version, None, priority_class))
    except ApiError as exc:
        if exc.status != 404:
            raise _refused(exc, f"cannot read WorkloadPriorityClass {priority_class}: ") from None
        offered = await _list_names(conn, KINDS["workloadpriorityclasses"].path(version))
        offer = ", ".join(sorted(offered or ())) or "none"
        raise ActionError(f"no WorkloadPriorityClass {priority_class} (the cluster offers {offer})", EXIT_BAD_INPUT) from None
    value = int(wpc.get("value") or 0)
    job = await get_job(conn, store_name, namespace, name, discovery)
    merge = {"Content-Type": "application/merge-patch+json"}
    try:
        await conn.request("PATCH", kind.path(_version(kind, discovery), namespace, name),
                           body={"metadata": {"labels": {PRIORITY_LABEL: priority_class}}}, headers=merge)
    except ApiError as exc:
        raise _refused(exc, f"cannot change the priority of {_label(store_name, namespace, name)}: ") from None
    found = await find_workload(conn, job, discovery)
    if found is None:
        return value
    wl_version, workload = found
    path = KINDS["workloads"].path(wl_version, namespace, workload["metadata"]["name"])
    spec: dict[str, Any] = {"priority": value}
    reserved = any(c.get("type") == "QuotaReserved" and c.get("status") == "True"
                   for c in (workload.get("status") or {}).get("conditions") or ())
    if not reserved:
        if wl_version == "v1beta1":
            spec["priorityClassName"] = priority_class
            spec["priorityClassSource"] = "kueue.x-k8s.io/workloadpriorityclass"
        else:
            spec["priorityClassRef"] = {"group": KUEUE_GROUP, "kind": "WorkloadPriorityClass", "name": priority_class}
    try:
        await conn.request("PATCH", path, body={"spec": spec}, headers=merge)
    except ApiError as exc:
        if exc.status != 422 or len(spec) == 1:
            raise _refused(exc, "the label changed, but the Workload's priority could not: ") from None
        # The class name is frozen once quota is reserved; the number never is.
        try:
            await conn.request("PATCH", path, body={"spec": {"priority": value}}, headers=merge)
        except ApiError as again:
            raise _refused(again, "the label changed, but the Workload's priority could not: ") from None
    return value


# ---------------------------------------------------------------------------------------------- YAML, edit

def object_yaml(obj: dict[str, Any]) -> str:
    """An object as the YAML view and `$EDITOR` show it: without managedFields."""
    shown = copy.deepcopy(obj)
    (shown.get("metadata") or {}).pop("managedFields", None)
    return yaml.safe_dump(shown, sort_keys=False, default_flow_style=False, allow_unicode=True)


async def job_yaml(conn: ClusterConnection, store_name: str, namespace: str, name: str, discovery: Any = None) -> str:
    """The whole job object as YAML (the stores keep trimmed copies; this asks the server)."""
    return object_yaml(await get_job(conn, store_name, namespace, name, discovery))


async def apply_yaml(conn: ClusterConnection, text: str, *, readonly: bool, source: str = "edited YAML") -> str:
    """Replace an object with its edited YAML (one document), guarded by its resourceVersion.

    Returns `Kind/namespace/name`. A 409 (someone changed it since it was opened) is a clear failure, never a
    silent overwrite.
    """
    refuse_if_readonly(readonly, "applying the edited YAML")
    documents = parse_manifest(text, source)
    if len(documents) != 1:
        raise ActionError(f"{source}: expected one object, found {len(documents)}", EXIT_BAD_INPUT)
    doc = documents[0]
    meta = doc["metadata"]
    if not meta.get("name"):
        raise ActionError(f"{source}: metadata.name is required to replace an object", EXIT_BAD_INPUT)
    if not meta.get("resourceVersion"):
        raise ActionError(f"{source}: metadata.resourceVersion is missing; it guards against overwriting a "
                          "change made since the object was opened", EXIT_BAD_INPUT)
    resource = await KindResolver(conn).resolve(doc["apiVersion"], doc["kind"])
    namespace = meta.get("namespace") if resource.namespaced else None
    if resource.namespaced and not namespace:
        raise ActionError(f"{source}: metadata.namespace is required", EXIT_BAD_INPUT)
    try:
        answer = await conn.request("PUT", resource.path(namespace, meta["name"]), query={"fieldValidation": "Strict"},
                                    body=doc)
    except ApiError as exc:
        if exc.status == 409:
            raise ActionError(f"{describe(doc)} was changed on the cluster after it was opened (409 Conflict); "
                              "nothing was applied: open it again and redo the edit", EXIT_FAILURE) from None
        raise _refused(exc, f"the server rejected {describe(doc)}: ") from None
    return reference(answer if isinstance(answer, dict) else doc, resource.namespaced)


# ---------------------------------------------------------------------------------------- finding a job

@dataclass(frozen=True)
class JobRef:
    store_name: str
    namespace: str
    name: str

    @property
    def kind(self) -> str:
        return JOB_KINDS[self.store_name]

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


_KIND_NAMES = kubectl_names(JOB_KINDS, {"hpjob": "hyperpodpytorchjobs"})


def split_job_ref(ref: str) -> tuple[str | None, str]:
    """`KIND/NAME` or `NAME` -> (store name or None, name); kinds as kubectl spells them (`pytorchjob/x`)."""
    try:
        return split_kind_ref(ref, _KIND_NAMES)
    except KeyError as exc:
        raise ActionError(f"unknown job kind {exc.args[0]!r} in {ref!r} (use one of: hyperpodpytorchjob, pytorchjob, "
                          "job, jobset)", EXIT_BAD_INPUT) from None


def match_job(ref: str, candidates: Iterable[tuple[str, str, str]], namespace: str | None) -> JobRef:
    """Pick the job `ref` names among (store name, namespace, name) candidates; ActionError when none or several."""
    store, name = split_job_ref(ref)
    found = [JobRef(s, ns, n) for s, ns, n in candidates
             if n == name and (store is None or s == store) and (namespace is None or ns == namespace)]
    where = f" in namespace {namespace}" if namespace else ""
    if not found:
        raise ActionError(f"no job {ref!r}{where}", EXIT_BAD_INPUT)
    if len(found) > 1:
        options = ", ".join(f"{JOB_KINDS[j.store_name].lower()}/{j.name}" + ("" if namespace else f" (-n {j.namespace})")
                            for j in found)
        raise ActionError(f"{ref!r} names several jobs{where}: {options}; say which", EXIT_BAD_INPUT)
    return found[0]

