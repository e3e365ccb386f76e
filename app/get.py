"""`hyperdesk get KIND`: the headless listing framework the panes' issues extend with their kinds.

A kind is a name, its aliases, table columns and a fetch function returning plain dicts (the same objects
`-o json` prints). Fetch functions use the same core as the panes, never a separate code path.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TextIO

import yaml

from app.cluster.kubeconfig import Kubeconfig
from app.config import Settings


class GetError(Exception):
    """A failure to report in one line, with a non-zero exit: 2 for bad usage, 1 for a runtime failure."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class GetContext:
    settings: Settings
    kubeconfig: Kubeconfig | None
    namespace: str | None
    """None: all namespaces."""
    options: dict[str, Any] = field(default_factory=dict)
    """The `get` options an area adds for its kinds (`--idle`, `--experiment`...), by argparse dest; None when unset."""
    kind: str = ""
    """The kind being listed (`run` sets it): what a failure's message names."""


Fetch = Callable[[GetContext], "list[dict[str, Any]] | Awaitable[list[dict[str, Any]]]"]


@dataclass(frozen=True)
class Kind:
    name: str
    fetch: Fetch
    columns: tuple[tuple[str, str], ...]
    """(header, field of the fetched dict)"""
    aliases: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    display: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """For the table only: the fetched dict -> the values its columns show (human ages, GPU text...)."""
    options: tuple[str, ...] = ()
    """The `get` options (argparse dests) this kind reads from GetContext.options; any other one set is an error."""


REGISTRY: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    for name in (kind.name, *kind.aliases):
        REGISTRY[name] = kind
    return kind


def lookup(name: str) -> Kind:
    from app.cli import AREAS

    for area in AREAS:  # registering is not done on import: the parser imports these modules on `--version`'s path
        importlib.import_module(f"app.cli_{area}").register_kinds()
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        known = ", ".join(sorted({k.name for k in REGISTRY.values()}))
        raise GetError(f'unknown kind "{name}" (known: {known})', exit_code=2) from None


def run(name: str, output: str, ctx: GetContext, out: TextIO = sys.stdout) -> None:
    kind = lookup(name)
    for dest, value in ctx.options.items():
        if value is not None and dest not in kind.options:
            raise GetError(f"--{dest.replace('_', '-')} does not apply to {kind.name}", exit_code=2)
    ctx.kind = kind.name
    result = kind.fetch(ctx)
    if hasattr(result, "__await__"):
        import asyncio

        result = asyncio.run(result)  # type: ignore[arg-type]
    items: list[dict[str, Any]] = list(result)  # type: ignore[arg-type]
    if output == "json":
        json.dump(items, out, indent=2, default=str)
        out.write("\n")
    elif output == "yaml":
        yaml.safe_dump(items, out, sort_keys=False, default_flow_style=False)
    elif not items:
        scope = "" if ctx.namespace is None else f" in {ctx.namespace} namespace"
        print(f"No {kind.name} found{scope}.", file=sys.stderr)
    else:
        shown = [kind.display(item) for item in items] if kind.display else items
        out.write(format_table(kind.columns, shown))


def format_table(columns: tuple[tuple[str, str], ...], items: list[dict[str, Any]]) -> str:
    """kubectl's layout: upper-case headers, columns padded to the widest cell plus three spaces."""
    rows = [[header for header, _ in columns]]
    rows += [[_cell(item.get(key)) for _, key in columns] for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "<none>"
    if isinstance(value, bool):
        return "*" if value else ""
    return str(value)


def _contexts(ctx: GetContext) -> list[dict[str, Any]]:
    if ctx.kubeconfig is None:
        raise GetError(NO_KUBECONFIG)
    current = ctx.kubeconfig.current_context
    return [
        {"current": c.name == current, "name": c.name, "cluster": c.cluster, "user": c.user,
         "namespace": c.namespace, "server": c.server}
        for c in ctx.kubeconfig.contexts
    ]


register(Kind(
    name="contexts",
    aliases=("context", "ctx"),
    fetch=_contexts,
    columns=(("CURRENT", "current"), ("NAME", "name"), ("CLUSTER", "cluster"), ("AUTHINFO", "user"),
             ("NAMESPACE", "namespace")),
    description="the kubeconfig's contexts",
))


# --- jobs and queues: the Jobs pane's core, fetched once ------------------------------------------------------------

async def _with_cluster(ctx: GetContext, work: Callable[[Any, Any], Awaitable[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Run `work(connection, discovery)` against the context's cluster; failures become one-line GetErrors."""
    if ctx.kubeconfig is None:
        raise GetError(NO_KUBECONFIG)
    from app.cluster.connection import ApiError, ClusterConnection, first_line
    from app.cluster.discovery import discover

    if ctx.kubeconfig.context(ctx.settings.context) is None:
        raise GetError(missing_context(ctx.kubeconfig, ctx.settings.context), exit_code=2)
    connection = ClusterConnection(list(ctx.kubeconfig.paths) or None, ctx.settings.context)
    try:
        try:
            await connection.open()  # credentials once, before the concurrent discovery requests
            discovery = await discover(connection)
        except ApiError as exc:
            raise GetError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - a kubeconfig the client cannot use, say: one line, not a traceback
            raise GetError(f"kubeconfig: {first_line(exc)}") from None
        try:
            return await work(connection, discovery)
        except ApiError as exc:
            raise GetError(str(exc)) from None
        except GetError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug, not the kubeconfig: one line, the traceback in the log
            doing = f"get {ctx.kind}" if ctx.kind else "get"
            logging.getLogger("hyperdesk").exception("%s failed", doing)
            raise GetError(f"{doing} failed: {type(exc).__name__}: {first_line(exc)}") from None
    finally:
        await connection.close()


NO_KUBECONFIG = "no kubeconfig found ($KUBECONFIG or ~/.kube/config); try `hyperdesk demo`"


def cluster_problem(kubeconfig: Kubeconfig | None, wanted: str | None) -> tuple[str, int] | None:
    """Why a headless verb cannot reach a cluster, known before it tries: (one line, exit code 1 without a
    kubeconfig, 2 for a context it does not have), or None."""
    if kubeconfig is None:
        return NO_KUBECONFIG, 1
    if kubeconfig.context(wanted) is None:
        return missing_context(kubeconfig, wanted), 2
    return None


def missing_context(kubeconfig: Kubeconfig, wanted: str | None) -> str:
    contexts = ", ".join(kubeconfig.context_names) or "none"
    if wanted is None and kubeconfig.current_context is None:
        return f"the kubeconfig sets no current-context; pass --context (contexts: {contexts})"
    return f"no context {wanted or kubeconfig.current_context!r} in the kubeconfig (contexts: {contexts})"


def job_dict(row: Any, now: Any) -> dict[str, Any]:
    """One job as `get jobs -o json|yaml` prints it."""
    return {
        "name": row.name,
        "namespace": row.namespace,
        "kind": row.kind,
        "queue": row.queue,
        "priority": row.priority,
        "state": row.state,
        "position": row.position,
        "gpus": row.gpus,
        "mig": dict(sorted(row.mig.items())),
        "pods": [p.rpartition("/")[2] for p in row.pods],
        "restarts": row.restarts,
        "age_seconds": row.age_seconds(now),
        "run_seconds": row.run_seconds(now),
        "nodes": row.nodes,
        "team": row.team,
        "reason": row.hint,
        "workload": row.workload.rpartition("/")[2] if row.workload else None,
    }


async def _jobs(ctx: GetContext) -> list[dict[str, Any]]:
    from app.cluster.queues import fetch_jobs
    from app.model.jobs import utcnow

    async def work(connection: Any, discovery: Any) -> list[dict[str, Any]]:
        rows = await fetch_jobs(connection, discovery, ctx.namespace)
        now = utcnow()
        return [job_dict(row, now) for row in rows]

    return await _with_cluster(ctx, work)


def _job_cells(item: dict[str, Any]) -> dict[str, Any]:
    from app.model.jobs import human_duration

    gpus = [str(item["gpus"])] if item["gpus"] or not item["mig"] else []
    gpus += [f"{count}x{profile}" for profile, count in item["mig"].items()]
    reason = item.get("reason") or ""
    return {**item, "gpus": "+".join(gpus), "pods": len(item["pods"]), "age": human_duration(item["age_seconds"]),
            "reason": reason if len(reason) <= 70 else reason[:69] + "…"}


register(Kind(
    name="jobs",
    aliases=("job",),
    fetch=_jobs,
    columns=(("NAMESPACE", "namespace"), ("NAME", "name"), ("KIND", "kind"), ("QUEUE", "queue"),
             ("PRIORITY", "priority"), ("STATE", "state"), ("POS", "position"), ("GPUS", "gpus"), ("PODS", "pods"),
             ("RESTARTS", "restarts"), ("AGE", "age"), ("REASON", "reason")),
    description="training jobs of every kind the cluster serves, with Kueue's view of them",
    display=_job_cells,
))


async def _queues(ctx: GetContext) -> list[dict[str, Any]]:
    from app.cluster.queues import quota_rows
    from app.cluster.resources import KINDS

    async def work(connection: Any, discovery: Any) -> list[dict[str, Any]]:
        version = discovery.version("clusterqueues")
        if not version:
            raise GetError("this cluster does not serve Kueue (no kueue.x-k8s.io ClusterQueues)")
        cqs = await connection.request("GET", KINDS["clusterqueues"].path(version))
        lqs = await connection.request("GET", KINDS["localqueues"].path(discovery.version("localqueues") or version,
                                                                        ctx.namespace))
        rows = quota_rows((cqs or {}).get("items") or [], (lqs or {}).get("items") or [])
        if ctx.namespace is not None:
            rows = [r for r in rows if r.local_queues]
        return [queue_dict(row) for row in rows]

    return await _with_cluster(ctx, work)


def queue_dict(row: Any) -> dict[str, Any]:
    from app.cluster.queues import number

    used, nominal = row.total("nvidia.com/gpu")
    return {
        "name": row.name,
        "cohort": row.cohort,
        "pending": row.pending,
        "admitted": row.admitted,
        "reserving": row.reserving,
        "stopped": row.stopped,
        "gpus_used": number(used),
        "gpus_nominal": number(nominal),
        "local_queues": [{"namespace": lq.namespace, "name": lq.name, "pending": lq.pending, "admitted": lq.admitted}
                         for lq in row.local_queues],
        "quota": [q.as_dict() for q in row.quota],
    }


def _queue_cells(item: dict[str, Any]) -> dict[str, Any]:
    local = ",".join(f"{lq['namespace']}/{lq['name']}" for lq in item["local_queues"])
    return {**item, "local": local, "gpus": f"{item['gpus_used']}/{item['gpus_nominal']}",
            "stopped": "Stopped" if item["stopped"] else "Active"}


register(Kind(
    name="queues",
    aliases=("queue", "clusterqueues", "cq"),
    fetch=_queues,
    columns=(("NAME", "name"), ("COHORT", "cohort"), ("STATUS", "stopped"), ("PENDING", "pending"),
             ("ADMITTED", "admitted"), ("GPUS", "gpus"), ("LOCALQUEUES", "local")),
    description="Kueue ClusterQueues: their quota, usage and LocalQueues",
    display=_queue_cells,
))
