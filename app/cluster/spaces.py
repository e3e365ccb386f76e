"""What a user may do to spaces, headless: list, create from a template, start, stop, delete, edit resources.

The Spaces pane and `hyperdesk space ...` call the same functions. Each mutation refuses under `--readonly` before
anything is sent, checks what it can locally (the template's bounds, the MIG profiles the nodes offer, the queue
and priority names, the user's right to create in the namespace), and turns the server's refusals into one line
(`ActionError`, exit code 2 for input the user can fix, 1 for a failure). A create is one POST: it succeeds whole
or leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timezone
from typing import Any

from app.cluster.actions import EXIT_BAD_INPUT, ActionError, refuse_if_readonly
from app.cluster.actions import exit_code
from app.cluster.connection import ApiError, ClusterConnection
from app.cluster.resources import KINDS
from app.model.jobs import parse_time
from app.model.spaces import (
    COMPUTE_FIELDS, CREATED_BY, GPU, MIG_PREFIX, NAME_LABEL, NOTEBOOK_STOPPED, PORT, SpaceRequest, SpaceRow,
    TemplateInfo, notebook_row, offered_gpu_resources, requested_resources, resolve, resource_block, space_rows,
    template_info, validate_request, workspace_manifest, workspace_status,
)

TEMPLATE_NAMESPACE = "jupyter-k8s-system"
"""Where HyperPod's Spaces add-on keeps its WorkspaceTemplates."""
MERGE = {"Content-Type": "application/merge-patch+json"}
SSR_VERSIONS = ("v1", "v1beta1", "v1alpha1")
"""SelfSubjectReview is GA in 1.28, beta in 1.27, alpha before: the first the server serves answers."""
STRICT = {"fieldValidation": "Strict"}
MIG_STRATEGY = "nvidia.com/mig.strategy"


def _path(store: str, namespace: str | None = None, name: str | None = None) -> str:
    kind = KINDS[store]
    return kind.path(kind.versions[0], namespace, name)


async def _items(conn: ClusterConnection, store: str, namespace: str | None = None) -> list[dict[str, Any]]:
    try:
        return list(((await conn.request("GET", _path(store, namespace))) or {}).get("items") or [])
    except ApiError as exc:
        if exc.status in (403, 404):
            return []  # not served (no such CRD) or not ours to read: nothing to show from it
        raise


async def whoami(conn: ClusterConnection) -> str | None:
    """The user's name from a SelfSubjectReview (`kubectl auth whoami`); None when the server cannot say, or says
    anonymous."""
    review = None
    for version in SSR_VERSIONS:
        try:
            review = await conn.request("POST", f"/apis/authentication.k8s.io/{version}/selfsubjectreviews",
                                        body={"apiVersion": f"authentication.k8s.io/{version}",
                                              "kind": "SelfSubjectReview"})
            break
        except ApiError as exc:
            if exc.status == 0:
                raise  # the cluster cannot be reached: say so rather than "unknown user"
            if exc.status != 404:
                return None
    name = (((review or {}).get("status") or {}).get("userInfo") or {}).get("username")
    return None if not name or name == "system:anonymous" else str(name)


async def fetch_stores(conn: ClusterConnection, namespace: str | None,
                       pods: bool = True) -> dict[str, dict[str, dict[str, Any]]]:
    """The same stores the pane reads, fetched once: workspaces, notebooks, templates (every namespace), and the
    spaces' pods unless `pods` is False (a listing does not show them)."""
    def keyed(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {f"{i['metadata'].get('namespace')}/{i['metadata']['name']}": i for i in items}

    async def no_pods() -> list[dict[str, Any]]:
        return []

    workspaces, notebooks, templates, pod_items = await asyncio.gather(
        _items(conn, "workspaces", namespace), _items(conn, "notebooks", namespace),
        _items(conn, "workspacetemplates"), _pods(conn, namespace) if pods else no_pods())
    pods_by_key = keyed(pod_items)
    return {"workspaces": keyed(workspaces), "notebooks": keyed(notebooks), "workspacetemplates": keyed(templates),
            "pods": pods_by_key}


async def _pods(conn: ClusterConnection, namespace: str | None) -> list[dict[str, Any]]:
    path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
    try:
        return list(((await conn.request("GET", path, query={"labelSelector": NAME_LABEL})) or {}).get("items") or [])
    except ApiError as exc:
        if exc.status == 403:
            return []
        raise


ACTIVITY_BUDGET = 10.0
"""Seconds a listing spends at most asking running spaces how long they have been idle, all of them together."""


async def fetch_spaces(conn: ClusterConnection, namespace: str | None, pods: bool = True) -> list[SpaceRow]:
    stores = await fetch_stores(conn, namespace, pods=pods)
    rows = space_rows(stores)
    if any(r.status == "Running" for r in rows):
        rows = space_rows(stores, activity=await activities(conn, rows, budget=ACTIVITY_BUDGET))
    return rows


async def last_activity(conn: ClusterConnection, row: SpaceRow) -> datetime | None:
    """The last activity its JupyterLab reports (`/api/status`, through the API server's service proxy); None when
    it cannot be asked (not running, no proxy rights, not a Jupyter server) or does not say."""
    try:
        return await last_activity_or_forbidden(conn, row)
    except ActivityForbidden:
        return None


class ActivityForbidden(Exception):
    """The user may not use the service proxy: asking again will not help."""


async def last_activity_or_forbidden(conn: ClusterConnection, row: SpaceRow,
                                     may_proxy: dict[str, bool] | None = None) -> datetime | None:
    """`last_activity`, raising ActivityForbidden when the user may not use the service proxy. A 403 through the
    proxy may also be the Jupyter server's own (its token auth refuses `/api/status`): a SelfSubjectAccessReview
    for `get services/proxy` tells them apart, once per namespace in `may_proxy` when given."""
    path = (f"/api/v1/namespaces/{row.namespace}/services/workspace-{row.name}-service:{PORT}/proxy/api/status")
    try:
        answer = await conn.request("GET", path, timeout=5)
    except ApiError as exc:
        if exc.status == 403:
            allowed = (may_proxy or {}).get(row.namespace)
            if allowed is None:
                allowed = await can(conn, "get", "services", row.namespace, group="", subresource="proxy")
                if may_proxy is not None:
                    may_proxy[row.namespace] = allowed
            if not allowed:
                raise ActivityForbidden(str(exc)) from None
        return None  # the space did not say (a Jupyter server that wants its token, not running, not Jupyter)
    return parse_time((answer or {}).get("last_activity")) if isinstance(answer, dict) else None


async def activities(conn: ClusterConnection, rows: list[SpaceRow], parallel: int = 8,
                     budget: float | None = None) -> dict[str, datetime]:
    """Last activity of every running Workspace among `rows`, a few requests at a time; what is known when
    `budget` seconds have passed (a hanging pod does not hold the rest up). Raises ActivityForbidden at the first
    403 that is RBAC's (the proxy is not the user's to use, so the others would be refused too); a Jupyter server's
    own 403 leaves only that space's idle time unknown."""
    gate = asyncio.Semaphore(parallel)
    found: dict[str, datetime] = {}
    may_proxy: dict[str, bool] = {}

    async def one(row: SpaceRow) -> None:
        async with gate:
            when = await last_activity_or_forbidden(conn, row, may_proxy)
            if when is not None:
                found[row.space_key] = when

    tasks = [asyncio.ensure_future(one(r)) for r in rows if r.status == "Running" and r.kind == "Workspace"]
    if not tasks:
        return found
    try:
        for done in asyncio.as_completed(tasks, timeout=budget):
            await done
    except asyncio.TimeoutError:
        pass
    except ActivityForbidden:
        if budget is not None:
            return found  # a listing: the idle time is unknown, the rest is shown
        raise
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return found


async def template_objects(conn: ClusterConnection, namespace: str | None = None) -> dict[str, dict[str, Any]]:
    """Every WorkspaceTemplate the user may read (key `namespace/name`): cluster-wide, else those in
    jupyter-k8s-system and `namespace`. Templates live outside a namespaced view, so the pane asks for them."""
    items = await _items(conn, "workspacetemplates")
    if not items:
        for ns in dict.fromkeys(n for n in (TEMPLATE_NAMESPACE, namespace) if n):
            items += await _items(conn, "workspacetemplates", ns)
    return {f"{t['metadata'].get('namespace')}/{t['metadata']['name']}": t for t in items}


async def fetch_templates(conn: ClusterConnection, namespace: str | None = None) -> list[TemplateInfo]:
    return sorted((template_info(t) for t in (await template_objects(conn, namespace)).values()), key=lambda t: t.key)


async def find_template(conn: ClusterConnection, ref: str, namespace: str) -> TemplateInfo | None:
    """`ns/name`, or `name` looked up in the space's namespace and then in jupyter-k8s-system."""
    if "/" in ref:
        candidates = [tuple(ref.split("/", 1))]
    else:
        candidates = [(namespace, ref), (TEMPLATE_NAMESPACE, ref)]
    for ns, name in candidates:
        try:
            return template_info(await conn.request("GET", _path("workspacetemplates", ns, name)))
        except ApiError as exc:
            if exc.status not in (403, 404):
                raise ActionError(f"cannot read template {ns}/{name}: {exc}", exit_code(exc)) from None
    return None


async def can(conn: ClusterConnection, verb: str, resource: str, namespace: str, group: str = "workspace.jupyter.org",
              subresource: str = "") -> bool:
    """A SelfSubjectAccessReview; True when the server cannot answer (the request itself will then say)."""
    attributes = {"verb": verb, "group": group, "resource": resource, "namespace": namespace}
    if subresource:
        attributes["subresource"] = subresource
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes}}
    try:
        review = await conn.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=body)
    except ApiError as exc:
        if exc.status == 0:
            raise
        return True
    return bool(((review or {}).get("status") or {}).get("allowed"))


async def create_choices(conn: ClusterConnection, namespace: str) -> tuple[dict[str, int] | None, list[str] | None,
                                                                           list[str] | None]:
    """(GPU resources the nodes offer, LocalQueues in the namespace, WorkloadPriorityClasses); None where the
    cluster does not say (not served or not readable), so that check is skipped rather than guessed."""
    try:
        nodes = ((await conn.request("GET", "/api/v1/nodes")) or {}).get("items")
        offer = offered_gpu_resources(nodes or [])
    except ApiError as exc:
        if exc.status == 0:
            raise
        offer = None
    queues = await _names(conn, "localqueues", namespace)
    priorities = await _names(conn, "workloadpriorityclasses")
    return offer, queues, priorities


async def _names(conn: ClusterConnection, store: str, namespace: str | None = None) -> list[str] | None:
    """Names of a Kueue kind, in the first version served; None when none is served or readable."""
    kind = KINDS[store]
    for version in kind.versions:
        try:
            items = ((await conn.request("GET", kind.path(version, namespace))) or {}).get("items") or []
            return [i["metadata"]["name"] for i in items]
        except ApiError as exc:
            if exc.status == 0:
                raise
            if exc.status == 403:
                return None
    return None


async def prepare(conn: ClusterConnection, request: SpaceRequest) -> tuple[dict[str, Any], list[str]]:
    """The manifest for `request` and the problems that keep it from being created (checked against the template,
    the nodes and the queues). The manifest is only meant to be sent when the problems are none."""
    template = await find_template(conn, request.template, request.namespace) if request.template else None
    resolved = resolve(request, template)
    if not resolved.display_name:
        resolved.display_name = resolved.name
    offer, queues, priorities = await create_choices(conn, request.namespace)
    problems = validate_request(resolved, template, gpu_offer=offer, queues=queues, priorities=priorities)
    if request.template and template is None:
        problems = [f"template {request.template!r} not found in {request.namespace} or {TEMPLATE_NAMESPACE}",
                    *[p for p in problems if not p.startswith("template ")]]
    return workspace_manifest(resolved, template), problems


async def check_create(conn: ClusterConnection, namespace: str, name: str) -> list[str]:
    """What the server would refuse before a create: the right to create workspaces in `namespace`, and a space
    of that name already there."""
    if not await can(conn, "create", "workspaces", namespace):
        return [f"you may not create workspaces in namespace {namespace}"]
    try:
        await conn.request("GET", _path("workspaces", namespace, name))
    except ApiError as exc:
        if exc.status in (403, 404):
            return []
        raise
    return [f"a space named {name!r} already exists in {namespace}"]


async def create(conn: ClusterConnection, request: SpaceRequest, *, readonly: bool, dry_run: bool = False) -> dict[str, Any]:
    """Check, then create the Workspace; returns what the server stored. Nothing is sent when a check fails."""
    if not dry_run:
        refuse_if_readonly(readonly, f"creating space {request.namespace}/{request.name}")
    if not request.owner:
        request.owner = await whoami(conn) or ""
    manifest, problems = await prepare(conn, request)
    if problems:
        raise ActionError("; ".join(problems) + " (nothing was created)", EXIT_BAD_INPUT)
    if not await can(conn, "create", "workspaces", request.namespace):
        raise ActionError(f"you may not create workspaces in namespace {request.namespace} (nothing was created)",
                          EXIT_BAD_INPUT)
    try:
        return await conn.request("POST", _path("workspaces", request.namespace), body=manifest,
                                  query={**STRICT, "dryRun": "All"} if dry_run else STRICT)
    except ApiError as exc:
        raise _create_error(exc, f"{request.namespace}/{request.name}") from None


async def create_manifest(conn: ClusterConnection, manifest: dict[str, Any], *, readonly: bool) -> dict[str, Any]:
    """Create a Workspace the form built and checked (the pane's path: the form has already shown its YAML)."""
    meta = manifest.get("metadata") or {}
    refuse_if_readonly(readonly, f"creating space {meta.get('namespace')}/{meta.get('name')}")
    if not await can(conn, "create", "workspaces", meta.get("namespace") or ""):
        raise ActionError(f"you may not create workspaces in namespace {meta.get('namespace')} (nothing was created)",
                          EXIT_BAD_INPUT)
    try:
        return await conn.request("POST", _path("workspaces", meta.get("namespace")), body=manifest, query=STRICT)
    except ApiError as exc:
        raise _create_error(exc, f"{meta.get('namespace')}/{meta.get('name')}") from None


def _create_error(exc: ApiError, name: str) -> ActionError:
    if exc.status == 0:
        return ActionError(f"{exc} (space {name} was not created)")
    return ActionError(f"the server rejected space {name}: {exc} (nothing was created)", exit_code(exc))


async def get(conn: ClusterConnection, namespace: str, name: str, store: str = "workspaces") -> dict[str, Any]:
    try:
        return await conn.request("GET", _path(store, namespace, name))
    except ApiError as exc:
        if exc.status == 404:
            raise ActionError(f"no space {name!r} in namespace {namespace}", EXIT_BAD_INPUT) from None
        raise ActionError(f"cannot read space {namespace}/{name}: {exc}", exit_code(exc)) from None


async def set_running(conn: ClusterConnection, namespace: str, name: str, running: bool, *, readonly: bool) -> str:
    """Patch `spec.desiredStatus` (the controller keeps its own annotations, the preemption note among them).
    Returns the status it had before."""
    refuse_if_readonly(readonly, f"{'starting' if running else 'stopping'} space {namespace}/{name}")
    current = await get(conn, namespace, name)
    before, _ = workspace_status(current)
    patch: dict[str, Any] = {"spec": {"desiredStatus": "Running" if running else "Stopped"}}
    await _patch(conn, "workspaces", namespace, name, patch, running)
    return before


async def set_notebook_running(conn: ClusterConnection, namespace: str, name: str, running: bool, *,
                               readonly: bool) -> str:
    """A Kubeflow Notebook stops while it carries the `kubeflow-resource-stopped` annotation (its controller
    scales it to zero) and starts when the annotation goes. Returns the status it had before."""
    refuse_if_readonly(readonly, f"{'starting' if running else 'stopping'} notebook {namespace}/{name}")
    current = await get(conn, namespace, name, "notebooks")
    before = notebook_row(current).status
    stamp = None if running else datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    await _patch(conn, "notebooks", namespace, name, {"metadata": {"annotations": {NOTEBOOK_STOPPED: stamp}}},
                 running)
    return before


async def _patch(conn: ClusterConnection, store: str, namespace: str, name: str, patch: dict[str, Any],
                 running: bool) -> None:
    try:
        await conn.request("PATCH", _path(store, namespace, name), body=patch, headers=MERGE)
    except ApiError as exc:
        raise ActionError(f"cannot {'start' if running else 'stop'} space {namespace}/{name}: {exc}", exit_code(exc)) from None


async def delete(conn: ClusterConnection, namespace: str, name: str, *, readonly: bool,
                 store: str = "workspaces") -> None:
    refuse_if_readonly(readonly, f"deleting space {namespace}/{name}")
    try:
        await conn.request("DELETE", _path(store, namespace, name))
    except ApiError as exc:
        if exc.status == 404:
            raise ActionError(f"no space {name!r} in namespace {namespace}", EXIT_BAD_INPUT) from None
        raise ActionError(f"cannot delete space {namespace}/{name}: {exc}", exit_code(exc)) from None


def storage_note(row_or_obj: SpaceRow | dict[str, Any]) -> str:
    """What deleting does to the space's home volume: jupyter-k8s owns it and deletes it with the Workspace.
    A space without `spec.storage` has no volume (its files live in the pod and go when it stops)."""
    kind = row_or_obj.kind if isinstance(row_or_obj, SpaceRow) else row_or_obj.get("kind")
    if kind == "Notebook":
        return "its volumes are the Notebook's own claims: deleting the Notebook does not delete them"
    if isinstance(row_or_obj, SpaceRow):
        size, has = row_or_obj.storage, row_or_obj.has_storage
    else:
        storage = (row_or_obj.get("spec") or {}).get("storage")
        size, has = str((storage or {}).get("size") or ""), bool(storage)
    if not has:
        return "it has no home volume: its files live in its pod and are lost (stopping loses them too)"
    volume = f"its {size} home volume" if size else "its home volume"
    return f"{volume} is deleted with it and its files are lost (stop keeps them)"


async def find_space(conn: ClusterConnection, namespace: str, name: str) -> tuple[str, dict[str, Any]]:
    """(store, object) of the space NAME in `namespace`: its jupyter-k8s Workspace, else its Kubeflow Notebook. A
    kind the server does not serve, or the user may not read (a server refuses an unserved group with 403 to whom
    may not read it), is passed over; when neither has it, "no space", or the refusal when both refused."""
    refusal: ApiError | None = None
    missing = False
    for store in ("workspaces", "notebooks"):
        try:
            return store, await conn.request("GET", _path(store, namespace, name))
        except ApiError as exc:
            if exc.status not in (403, 404):
                raise ActionError(f"cannot read space {namespace}/{name}: {exc}", exit_code(exc)) from None
            missing = missing or exc.status == 404
            refusal = refusal or (exc if exc.status == 403 else None)
    if refusal is not None and not missing:
        raise ActionError(f"cannot read space {namespace}/{name}: {refusal}", exit_code(refusal))
    raise ActionError(f"no space {name!r} in namespace {namespace}", EXIT_BAD_INPUT)


async def edit_resources(conn: ClusterConnection, namespace: str, name: str, *, cpu: str = "", memory: str = "",
                         gpus: int | None = None, mig_profile: str | None = None, readonly: bool,
                         store: str = "workspaces") -> dict[str, Any]:
    """New compute for a stopped space, checked against its template's bounds (a Kubeflow Notebook, `store`
    "notebooks", has none) and the nodes' offer; the update carries the resourceVersion read, so a concurrent
    change is a conflict, not a silent overwrite."""
    refuse_if_readonly(readonly, f"editing space {namespace}/{name}")
    current = await get(conn, namespace, name, store)
    if store == "notebooks":
        return await _edit_notebook(conn, current, cpu=cpu, memory=memory, gpus=gpus, mig_profile=mig_profile)
    status, _ = workspace_status(current)
    if status not in ("Stopped", "Preempted"):
        raise ActionError(f"space {namespace}/{name} is {status}: stop it before changing its resources",
                          EXIT_BAD_INPUT)
    spec = current.get("spec") or {}
    ref = spec.get("templateRef") or {}
    template = await find_template(conn, f"{ref.get('namespace') or namespace}/{ref['name']}", namespace) \
        if ref.get("name") else None
    base = spec.get("resources") or (template.default_resources if template is not None else {})
    request = await _checked_compute(conn, namespace, name, base, template, cpu=cpu, memory=memory, gpus=gpus,
                                     mig_profile=mig_profile)
    updated = dict(current)
    updated["spec"] = {**spec, "resources": resource_block(cpu, memory, request.gpus or 0, request.mig_profile,
                                                           base)}
    _set_mig_selector(updated["spec"], bool(request.mig_profile))
    return await _put(conn, "workspaces", namespace, name, updated)


def _set_mig_selector(pod_spec: dict[str, Any], mig: bool) -> None:
    """A MIG slice schedules only on mixed-MIG nodes; whole GPUs (or none) must not stay held to them."""
    selector = {k: v for k, v in (pod_spec.get("nodeSelector") or {}).items() if k != MIG_STRATEGY}
    if mig:
        selector[MIG_STRATEGY] = "mixed"
    if selector:
        pod_spec["nodeSelector"] = selector
    else:
        pod_spec.pop("nodeSelector", None)


async def _edit_notebook(conn: ClusterConnection, current: dict[str, Any], *, cpu: str, memory: str,
                         gpus: int | None, mig_profile: str | None) -> dict[str, Any]:
    """A stopped Notebook's compute is its first container's resources (`spec.template.spec.containers[0]`): those
    change, the container's other fields and the other containers stay as they are."""
    meta = current.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    status = notebook_row(current).status
    if status != "Stopped":
        raise ActionError(f"space {namespace}/{name} is {status}: stop it before changing its resources",
                          EXIT_BAD_INPUT)
    updated = copy.deepcopy(current)
    pod_spec = ((updated.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = pod_spec.get("containers") or []
    if not containers or not isinstance(containers[0], dict):
        raise ActionError(f"notebook {namespace}/{name} has no container to change (nothing was changed)",
                          EXIT_BAD_INPUT)
    base = containers[0].get("resources") or {}
    request = await _checked_compute(conn, namespace, name, base, None, cpu=cpu, memory=memory, gpus=gpus,
                                     mig_profile=mig_profile)
    containers[0]["resources"] = resource_block(cpu, memory, request.gpus or 0, request.mig_profile, base)
    _set_mig_selector(pod_spec, bool(request.mig_profile))
    return await _put(conn, "notebooks", namespace, name, updated)


async def _checked_compute(conn: ClusterConnection, namespace: str, name: str, base: dict[str, Any],
                           template: TemplateInfo | None, *, cpu: str, memory: str, gpus: int | None,
                           mig_profile: str | None) -> SpaceRequest:
    """The compute asked for, what is not asked for kept from `base`, checked against the template's bounds (when
    there is a template) and the nodes' offer. Raises ActionError, before anything is sent, when it does not pass."""
    old = requested_resources(base)  # requests, limits filling in: a limits-only GPU still counts
    old_mig = next((k.removeprefix(MIG_PREFIX) for k in old if k.startswith(MIG_PREFIX)), "")
    request = SpaceRequest(
        name=name, namespace=namespace, display_name=name, cpu=cpu or str(old.get("cpu") or ""),
        memory=memory or str(old.get("memory") or ""),
        gpus=int(gpus if gpus is not None else (0 if mig_profile else int(float(old.get(GPU) or 0)))),
        mig_profile=mig_profile if mig_profile is not None else ("" if gpus is not None else old_mig),
    )
    offer, _, _ = await create_choices(conn, namespace)
    problems = validate_request(request, template, gpu_offer=offer, fields=COMPUTE_FIELDS)
    if problems:
        raise ActionError("; ".join(problems) + " (nothing was changed)", EXIT_BAD_INPUT)
    return request


async def _put(conn: ClusterConnection, store: str, namespace: str, name: str, updated: dict[str, Any]) -> dict[str, Any]:
    try:
        return await conn.request("PUT", _path(store, namespace, name), body=updated)
    except ApiError as exc:
        if exc.status == 409:
            raise ActionError(f"space {namespace}/{name} changed since it was read: {exc} (nothing was changed; "
                              "try again)", exit_code(exc)) from None
        raise ActionError(f"cannot change space {namespace}/{name}: {exc}", exit_code(exc)) from None


__all__ = ["CREATED_BY", "check_create", "create", "set_notebook_running", "create_manifest", "delete", "edit_resources",
           "fetch_spaces", "fetch_templates", "find_space",
           "find_template", "prepare", "set_running", "storage_note", "whoami", "create_choices"]
