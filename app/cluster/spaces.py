"""What a user may do to spaces, headless: list, create from a template, start, stop, delete, edit resources.

The Spaces pane and `hyperdesk space ...` call the same functions. Each mutation refuses under `--readonly` before
anything is sent, checks what it can locally (the template's bounds, the MIG profiles the nodes offer, the queue
and priority names, the user's right to create in the namespace), and turns the server's refusals into one line
(`ActionError`, exit code 2 for input the user can fix, 1 for a failure). A create is one POST: it succeeds whole
or leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from app.cluster.actions import EXIT_BAD_INPUT, ActionError, refuse_if_readonly
from app.cluster.connection import ApiError, ClusterConnection
from app.cluster.resources import KINDS
from app.model.jobs import parse_time
from app.model.spaces import (
    CREATED_BY, GPU, MIG_PREFIX, NAME_LABEL, PORT, PREEMPTION_ANNOTATION, SpaceRequest, SpaceRow, TemplateInfo,
    offered_gpu_resources, resolve, resource_block, space_rows, template_info, validate_request, workspace_manifest, workspace_status,
)

TEMPLATE_NAMESPACE = "jupyter-k8s-system"
"""Where HyperPod's Spaces add-on keeps its WorkspaceTemplates."""
MERGE = {"Content-Type": "application/merge-patch+json"}
SSR_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


def _code(exc: ApiError) -> int:
    return EXIT_BAD_INPUT if exc.status in (400, 403, 404, 409, 422) else 1


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
    try:
        review = await conn.request("POST", SSR_PATH, body={"apiVersion": "authentication.k8s.io/v1",
                                                            "kind": "SelfSubjectReview"})
    except ApiError:
        return None
    name = (((review or {}).get("status") or {}).get("userInfo") or {}).get("username")
    return None if not name or name == "system:anonymous" else str(name)


async def fetch_stores(conn: ClusterConnection, namespace: str | None) -> dict[str, dict[str, dict[str, Any]]]:
    """The same stores the pane reads, fetched once: workspaces, notebooks, templates (every namespace), pods."""
    def keyed(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {f"{i['metadata'].get('namespace')}/{i['metadata']['name']}": i for i in items}

    workspaces, notebooks, templates, pods = await asyncio.gather(
        _items(conn, "workspaces", namespace), _items(conn, "notebooks", namespace),
        _items(conn, "workspacetemplates"), _pods(conn, namespace))
    return {"workspaces": keyed(workspaces), "notebooks": keyed(notebooks), "workspacetemplates": keyed(templates),
            "pods": keyed(pods)}


async def _pods(conn: ClusterConnection, namespace: str | None) -> list[dict[str, Any]]:
    path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
    try:
        return list(((await conn.request("GET", path, query={"labelSelector": NAME_LABEL})) or {}).get("items") or [])
    except ApiError as exc:
        if exc.status == 403:
            return []
        raise


async def fetch_spaces(conn: ClusterConnection, namespace: str | None) -> list[SpaceRow]:
    stores = await fetch_stores(conn, namespace)
    rows = space_rows(stores)
    if any(r.status == "Running" for r in rows):
        rows = space_rows(stores, activity=await activities(conn, rows))
    return rows


async def last_activity(conn: ClusterConnection, row: SpaceRow) -> datetime | None:
    """The last activity its JupyterLab reports (`/api/status`, through the API server's service proxy); None when
    it cannot be asked (not running, no proxy rights, not a Jupyter server) or does not say."""
    path = (f"/api/v1/namespaces/{row.namespace}/services/workspace-{row.name}-service:{PORT}/proxy/api/status")
    try:
        answer = await conn.request("GET", path, timeout=5)
    except ApiError:
        return None
    return parse_time((answer or {}).get("last_activity")) if isinstance(answer, dict) else None


async def activities(conn: ClusterConnection, rows: list[SpaceRow], parallel: int = 8) -> dict[str, datetime]:
    """Last activity of every running Workspace among `rows`, a few requests at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one(row: SpaceRow) -> tuple[str, datetime | None]:
        async with gate:
            return row.space_key, await last_activity(conn, row)

    found = await asyncio.gather(*(one(r) for r in rows if r.status == "Running" and r.kind == "Workspace"))
    return {key: when for key, when in found if when is not None}


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
                raise ActionError(f"cannot read template {ns}/{name}: {exc}", _code(exc)) from None
    return None


async def can(conn: ClusterConnection, verb: str, resource: str, namespace: str, group: str = "workspace.jupyter.org") -> bool:
    """A SelfSubjectAccessReview; True when the server cannot answer (the request itself will then say)."""
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "group": group, "resource": resource, "namespace": namespace}}}
    try:
        review = await conn.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=body)
    except ApiError:
        return True
    return bool(((review or {}).get("status") or {}).get("allowed"))


async def create_choices(conn: ClusterConnection, namespace: str) -> tuple[dict[str, int] | None, list[str] | None,
                                                                           list[str] | None]:
    """(GPU resources the nodes offer, LocalQueues in the namespace, WorkloadPriorityClasses); None where the
    cluster does not say (not served or not readable), so that check is skipped rather than guessed."""
    try:
        nodes = ((await conn.request("GET", "/api/v1/nodes")) or {}).get("items")
        offer = offered_gpu_resources(nodes or [])
    except ApiError:
        offer = None
    queues = priorities = None
    for version in KINDS["localqueues"].versions:
        try:
            queues = [q["metadata"]["name"] for q in ((await conn.request(
                "GET", KINDS["localqueues"].path(version, namespace))) or {}).get("items") or []]
            priorities = [p["metadata"]["name"] for p in ((await conn.request(
                "GET", KINDS["workloadpriorityclasses"].path(version))) or {}).get("items") or []]
            break
        except ApiError:
            continue
    return offer, queues, priorities


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
                                  query={"dryRun": "All"} if dry_run else None)
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
        return await conn.request("POST", _path("workspaces", meta.get("namespace")), body=manifest)
    except ApiError as exc:
        raise _create_error(exc, f"{meta.get('namespace')}/{meta.get('name')}") from None


def _create_error(exc: ApiError, name: str) -> ActionError:
    if exc.status == 0:
        return ActionError(f"{exc} (space {name} was not created)")
    return ActionError(f"the server rejected space {name}: {exc} (nothing was created)", _code(exc))


async def get(conn: ClusterConnection, namespace: str, name: str) -> dict[str, Any]:
    try:
        return await conn.request("GET", _path("workspaces", namespace, name))
    except ApiError as exc:
        if exc.status == 404:
            raise ActionError(f"no space {name!r} in namespace {namespace}", EXIT_BAD_INPUT) from None
        raise ActionError(f"cannot read space {namespace}/{name}: {exc}", _code(exc)) from None


async def set_running(conn: ClusterConnection, namespace: str, name: str, running: bool, *, readonly: bool) -> str:
    """Patch `spec.desiredStatus`; starting a preempted space also clears the controller's preemption note.
    Returns the status it had before."""
    refuse_if_readonly(readonly, f"{'starting' if running else 'stopping'} space {namespace}/{name}")
    current = await get(conn, namespace, name)
    before, _ = workspace_status(current)
    patch: dict[str, Any] = {"spec": {"desiredStatus": "Running" if running else "Stopped"}}
    if running and PREEMPTION_ANNOTATION in ((current.get("metadata") or {}).get("annotations") or {}):
        patch["metadata"] = {"annotations": {PREEMPTION_ANNOTATION: None}}
    try:
        await conn.request("PATCH", _path("workspaces", namespace, name), body=patch, headers=MERGE)
    except ApiError as exc:
        raise ActionError(f"cannot {'start' if running else 'stop'} space {namespace}/{name}: {exc}", _code(exc)) from None
    return before


async def delete(conn: ClusterConnection, namespace: str, name: str, *, readonly: bool) -> None:
    refuse_if_readonly(readonly, f"deleting space {namespace}/{name}")
    try:
        await conn.request("DELETE", _path("workspaces", namespace, name))
    except ApiError as exc:
        if exc.status == 404:
            raise ActionError(f"no space {name!r} in namespace {namespace}", EXIT_BAD_INPUT) from None
        raise ActionError(f"cannot delete space {namespace}/{name}: {exc}", _code(exc)) from None


def storage_note(row_or_obj: SpaceRow | dict[str, Any]) -> str:
    """What deleting does to the space's home volume: jupyter-k8s owns it and deletes it with the Workspace."""
    size = row_or_obj.storage if isinstance(row_or_obj, SpaceRow) else \
        (((row_or_obj.get("spec") or {}).get("storage") or {}).get("size") or "")
    volume = f"its {size} home volume" if size else "its home volume"
    return f"{volume} is deleted with it and its files are lost (stop keeps them)"


async def edit_resources(conn: ClusterConnection, namespace: str, name: str, *, cpu: str = "", memory: str = "",
                         gpus: int | None = None, mig_profile: str | None = None, readonly: bool) -> dict[str, Any]:
    """New compute for a stopped space, checked against its template's bounds and the nodes' offer; the update
    carries the resourceVersion read, so a concurrent change is a conflict, not a silent overwrite."""
    refuse_if_readonly(readonly, f"editing space {namespace}/{name}")
    current = await get(conn, namespace, name)
    status, _ = workspace_status(current)
    if status not in ("Stopped", "Preempted"):
        raise ActionError(f"space {namespace}/{name} is {status}: stop it before changing its resources",
                          EXIT_BAD_INPUT)
    spec = current.get("spec") or {}
    old = dict((spec.get("resources") or {}).get("requests") or {})
    old_mig = next((k.removeprefix(MIG_PREFIX) for k in old if k.startswith(MIG_PREFIX)), "")
    ref = spec.get("templateRef") or {}
    template = await find_template(conn, f"{ref.get('namespace') or namespace}/{ref['name']}", namespace) \
        if ref.get("name") else None
    request = SpaceRequest(
        name=name, namespace=namespace, display_name=str(spec.get("displayName") or name),
        image=str(spec.get("image") or ""), cpu=cpu or str(old.get("cpu") or ""),
        memory=memory or str(old.get("memory") or ""),
        gpus=int(gpus if gpus is not None else (0 if mig_profile else int(float(old.get(GPU) or 0)))),
        mig_profile=mig_profile if mig_profile is not None else ("" if gpus else old_mig),
    )
    offer, _, _ = await create_choices(conn, namespace)
    problems = [p for p in validate_request(request, template, gpu_offer=offer)
                if not p.startswith(("name", "namespace", "display name", "image"))]
    if problems:
        raise ActionError("; ".join(problems) + " (nothing was changed)", EXIT_BAD_INPUT)
    updated = dict(current)
    updated["spec"] = {**spec, "resources": resource_block(request.cpu, request.memory, request.gpus,
                                                           request.mig_profile)}
    if request.mig_profile:
        updated["spec"]["nodeSelector"] = {**(spec.get("nodeSelector") or {}), "nvidia.com/mig.strategy": "mixed"}
    try:
        return await conn.request("PUT", _path("workspaces", namespace, name), body=updated)
    except ApiError as exc:
        raise ActionError(f"cannot change space {namespace}/{name}: {exc}", _code(exc)) from None


__all__ = ["CREATED_BY", "create", "create_manifest", "delete", "edit_resources", "fetch_spaces", "fetch_templates",
           "find_template", "prepare", "set_running", "storage_note", "whoami", "create_choices"]
