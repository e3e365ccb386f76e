"""Spaces: `hyperdesk space create|start|stop|delete|edit` and the `get spaces|templates` kinds (issue #8).

Imports only argparse at module level: `hyperdesk --version` imports this module.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """This area's subcommands; each sets `handler=fn(args, settings, kubeconfig) -> exit code`."""
    space = sub.add_parser("space", parents=[common], help="create, start, stop, delete or resize an IDE space")
    verbs = space.add_subparsers(dest="space_verb", metavar="VERB")
    space.set_defaults(handler=_handle)
    create = verbs.add_parser("create", parents=[common], help="create a space from a WorkspaceTemplate")
    create.add_argument("name", help="the space's name (a DNS label)")
    create.add_argument("--template", default="", help="WorkspaceTemplate: NAME or NAMESPACE/NAME "
                        "(NAME is looked for in the namespace, then in jupyter-k8s-system)")
    create.add_argument("--display-name", default="", help="the name shown in the pane (default: NAME)")
    create.add_argument("--image", default="", help="container image (default: the template's)")
    create.add_argument("--cpu", default="", help="CPU request, e.g. 2 or 500m (default: the template's)")
    create.add_argument("--memory", default="", help="memory request, e.g. 16Gi (default: the template's)")
    create.add_argument("--gpus", type=int, default=None,
                        help="whole GPUs (nvidia.com/gpu); 0 for none (default: the template's)")
    create.add_argument("--mig", default="", help="one MIG slice of this profile instead, e.g. 1g.10gb")
    create.add_argument("--storage", default="", help="home volume size, e.g. 50Gi (default: the template's)")
    create.add_argument("--idle-minutes", type=int, default=None,
                        help="stop after this many idle minutes; 0 turns idle shutdown off (default: the template's)")
    create.add_argument("--queue", default="", help="Kueue LocalQueue (task governance)")
    create.add_argument("--priority", default="", help="Kueue WorkloadPriorityClass (task governance)")
    create.add_argument("--dry-run", action="store_true", help="check everything and print the YAML; create nothing")
    for name, text in (("start", "start a stopped space"), ("stop", "stop a space (its storage is kept)"),
                       ("delete", "delete a space (a Workspace's home volume goes with it; a Notebook's claims stay)")):
        parser = verbs.add_parser(name, parents=[common], help=text)
        parser.add_argument("name", help="the space's name")
        if name == "delete":
            parser.add_argument("--yes", "-y", action="store_true",
                                help="delete without asking (needed when stdin is not a terminal)")
    edit = verbs.add_parser("edit", parents=[common], help="change the compute of a stopped space (a jupyter-k8s "
                            "Workspace, else the Kubeflow Notebook of that name)")
    edit.add_argument("name", help="the space's name")
    edit.add_argument("--cpu", default="")
    edit.add_argument("--memory", default="")
    edit.add_argument("--gpus", type=int, default=None)
    edit.add_argument("--mig", default=None, help="a MIG profile, or '' for none")


def _fail(message: str, code: int) -> int:
    print(f"hyperdesk: error: {message}", file=sys.stderr)
    return code


def _confirmed(question: str) -> bool:
    """Ask `question [y/N]` on the terminal (stderr, so a redirected stdout keeps only results); only y or yes
    agrees. Blocks the caller's event loop on purpose: nothing else runs while the user decides."""
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _handle(args: argparse.Namespace, settings: Any, kubeconfig: Any) -> int:
    from app.cli import run_headless
    from app.cluster.connection import ClusterConnection

    verb = getattr(args, "space_verb", None)
    if verb is None:
        return _fail("space needs a verb: create, start, stop, delete or edit", EXIT_USAGE)
    if settings.readonly and not (verb == "create" and args.dry_run):
        doing = {"create": "creating", "start": "starting", "stop": "stopping", "delete": "deleting",
                 "edit": "editing"}[verb]
        return _fail(f"hyperdesk is read-only (--readonly): not {doing} space {args.name}", EXIT_USAGE)
    if verb == "delete" and not args.yes and not sys.stdin.isatty():
        return _fail("refusing to delete without --yes when not on a terminal", EXIT_USAGE)
    from app.get import cluster_problem

    if problem := cluster_problem(kubeconfig, settings.context):
        return _fail(*problem)
    context = kubeconfig.context(settings.context)
    namespace = settings.namespace or context.namespace or "default"

    async def main() -> int:
        from app.cluster import spaces

        connection = ClusterConnection(list(kubeconfig.paths) or None, settings.context)
        try:
            await connection.open()
            if verb == "create":
                from app.model.spaces import SpaceRequest

                request = SpaceRequest(
                    name=args.name, namespace=namespace, template=args.template, display_name=args.display_name,
                    image=args.image, cpu=args.cpu, memory=args.memory, gpus=args.gpus, mig_profile=args.mig,
                    storage=args.storage, idle_minutes=args.idle_minutes, queue=args.queue, priority=args.priority)
                created = await spaces.create(connection, request, readonly=settings.readonly, dry_run=args.dry_run)
                if args.dry_run:
                    import yaml

                    created.get("metadata", {}).pop("managedFields", None)
                    sys.stdout.write(yaml.safe_dump(created, sort_keys=False))
                    print(f"space {namespace}/{args.name} checked (dry run): nothing was created", file=sys.stderr)
                else:
                    print(f"space {namespace}/{args.name} created")
            elif verb in ("start", "stop"):
                store, _ = await spaces.find_space(connection, namespace, args.name)
                change = spaces.set_notebook_running if store == "notebooks" else spaces.set_running
                before = await change(connection, namespace, args.name, verb == "start", readonly=settings.readonly)
                print(f"space {namespace}/{args.name} {'starting' if verb == 'start' else 'stopping'} (was {before})")
            elif verb == "delete":
                store, current = await spaces.find_space(connection, namespace, args.name)
                if not args.yes and not _confirmed(f"delete space {namespace}/{args.name}? "
                                                   f"{spaces.storage_note(current)}"):
                    print(f"space {namespace}/{args.name} not deleted", file=sys.stderr)
                    return EXIT_FAILURE
                await spaces.delete(connection, namespace, args.name, readonly=settings.readonly, store=store)
                print(f"space {namespace}/{args.name} deleted: {spaces.storage_note(current)}")
            elif verb == "edit":
                store, _ = await spaces.find_space(connection, namespace, args.name)
                await spaces.edit_resources(connection, namespace, args.name, cpu=args.cpu, memory=args.memory,
                                            gpus=args.gpus, mig_profile=args.mig, readonly=settings.readonly,
                                            store=store)
                print(f"space {namespace}/{args.name} resources changed; start it to use them")
            return EXIT_OK
        finally:
            await connection.close()

    return run_headless(main, f"space {verb}")


# --- hyperdesk get spaces|templates ----------------------------------------------------------------------------------

def register_kinds() -> None:
    from app.get import Kind, register

    register(Kind(
        name="spaces", aliases=("space", "workspaces", "workspace", "ws", "notebooks"), fetch=_spaces,
        columns=(("NAMESPACE", "namespace"), ("NAME", "name"), ("DISPLAY NAME", "display_name"), ("OWNER", "owner"),
                 ("APP", "app_type"), ("STATUS", "status"), ("GPUS", "gpus"), ("IDLE", "idle"),
                 ("TEMPLATE", "template"), ("AGE", "age")),
        description="IDE spaces (jupyter-k8s Workspaces, Kubeflow Notebooks)", display=_space_cells,
    ))
    register(Kind(
        name="templates", aliases=("template", "workspacetemplates", "workspacetemplate"), fetch=_templates,
        columns=(("NAMESPACE", "namespace"), ("NAME", "name"), ("DISPLAY NAME", "display_name"), ("APP", "app_type"),
                 ("IMAGE", "default_image"), ("CPU", "default_cpu"), ("MEMORY", "default_memory"),
                 ("BOUNDS", "bounds")),
        description="WorkspaceTemplates: defaults, allowed images and resource bounds for new spaces",
        display=_template_cells,
    ))


async def _spaces(ctx: Any) -> list[dict[str, Any]]:
    from app.get import _with_cluster

    async def work(connection: Any, discovery: Any) -> list[dict[str, Any]]:
        from app.cluster.spaces import fetch_spaces
        from app.model.jobs import utcnow
        from app.model.spaces import space_dict

        now = utcnow()
        return [space_dict(row, now) for row in await fetch_spaces(connection, ctx.namespace, pods=False)]

    return await _with_cluster(ctx, work)


def _space_cells(item: dict[str, Any]) -> dict[str, Any]:
    from app.model.jobs import human_duration

    gpus = f"{item.get('mig_count') or 1}×{item['mig_profile']}" if item.get("mig_profile") else (str(item["gpus"]) if item["gpus"] else "")
    if not item.get("idle_shutdown"):
        idle = "off"
    elif item.get("idle_for_minutes") is not None:
        idle = f"{item['idle_for_minutes']}m/{item['idle_minutes']}m"
    else:
        idle = f"{item['idle_minutes']}m"
    return {**item, "gpus": gpus, "idle": idle, "age": human_duration(item.get("age_seconds"))}


async def _templates(ctx: Any) -> list[dict[str, Any]]:
    from app.get import _with_cluster

    async def work(connection: Any, discovery: Any) -> list[dict[str, Any]]:
        from app.cluster.spaces import fetch_templates
        from app.model.spaces import template_dict

        from app.cluster.spaces import TEMPLATE_NAMESPACE

        usable = (ctx.namespace, TEMPLATE_NAMESPACE)  # what a space in the namespace can name
        return [template_dict(t) for t in await fetch_templates(connection, ctx.namespace)
                if ctx.namespace is None or t.namespace in usable]

    return await _with_cluster(ctx, work)


def _template_cells(item: dict[str, Any]) -> dict[str, Any]:
    bounds = [f"{r.removeprefix('nvidia.com/')} {b['min'] or '0'}-{b['max'] or '*'}" for r, b in item["bounds"].items()]
    return {**item, "bounds": ", ".join(bounds)}

