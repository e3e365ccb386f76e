"""Endpoints: `hyperdesk invoke`, `hyperdesk scale`, `hyperdesk deploy`, `hyperdesk undeploy` and the
`get endpoints` kind (issue #12).

    hyperdesk get endpoints -A -o json
    hyperdesk invoke llama3-8b-instruct --body '{"inputs": "hi"}' --path /invocations
    hyperdesk invoke isvc/clip-vit-l --protocol kserve-v2 --requests 200 --concurrency 20
    hyperdesk scale deepseek-r1-distill --replicas 2

`-n` stays the namespace, as in every other verb (and kubectl): the number of requests is `--requests`/`-N`.
Imports only argparse at module level: `hyperdesk --version` imports this module.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """This area's subcommands; each sets `handler=fn(args, settings, kubeconfig) -> exit code`."""
    invoke = sub.add_parser("invoke", parents=[common],
                            help="send a request to an inference endpoint through the API server (or load-test it)")
    invoke.add_argument("endpoint", help="NAME or KIND/NAME (jumpstartmodel/, inferenceendpointconfig/, isvc/)")
    invoke.add_argument("--body", help="the JSON body, @FILE, or @- for stdin (default: the protocol's template)")
    invoke.add_argument("--protocol", help="request shape: openai-chat, sagemaker, kserve-v1, kserve-v2 "
                                           "(default: the kind's first; see --list-protocols)")
    invoke.add_argument("--path", help="path on the model server (default: the protocol's)")
    invoke.add_argument("--list-protocols", action="store_true", help="print the endpoint's protocols and exit")
    invoke.add_argument("-N", "--requests", type=int, default=None,
                        help="send the body this many times and print latency percentiles (a load test)")
    invoke.add_argument("-c", "--concurrency", type=int, default=None, help="requests in flight at once (default 10)")
    invoke.add_argument("--timeout", type=float, default=120.0,
                        help="seconds of silence tolerated: the wait for an answer and between a stream's chunks")
    invoke.add_argument("-o", "--output", choices=("text", "json"), default="text")
    invoke.set_defaults(handler=_invoke)

    scale = sub.add_parser("scale", parents=[common], help="set an inference endpoint's replicas")
    scale.add_argument("endpoint", help="NAME or KIND/NAME")
    scale.add_argument("--replicas", type=int, required=True)
    scale.set_defaults(handler=_scale)

    deploy = sub.add_parser("deploy", parents=[common],
                            help="deploy inference endpoints from a manifest (checked, dry-run, then created)")
    deploy.add_argument("file", help="YAML manifest, or - for stdin")
    deploy.add_argument("--dry-run", action="store_true", help="validate on the server only")
    deploy.set_defaults(handler=_deploy)

    undeploy = sub.add_parser("undeploy", parents=[common], help="delete an inference endpoint (and its pods)")
    undeploy.add_argument("endpoint", help="NAME or KIND/NAME")
    undeploy.set_defaults(handler=_undeploy)


def _fail(message: str, code: int) -> int:
    from app.cli import _fail as fail

    return fail(message, code)


def _namespaces(settings: Any, kubeconfig: Any) -> tuple[str, str | None]:
    from app.cli import _namespaces as namespaces

    return namespaces(settings, kubeconfig)


def _warn(lines: list[str]) -> None:
    for line in dict.fromkeys(lines):
        print(f"hyperdesk: warning: {line}", file=sys.stderr)


def _run(settings: Any, kubeconfig: Any, work: Any, doing: str) -> int:
    """`work(connection, discovery)` against the context's cluster; failures become one line and an exit code."""
    from app.cli import run_headless
    from app.cluster.connection import ClusterConnection

    from app.get import cluster_problem

    if problem := cluster_problem(kubeconfig, settings.context):
        return _fail(*problem)

    async def main() -> int:
        from app.cluster.discovery import discover

        connection = ClusterConnection(list(kubeconfig.paths) or None, settings.context)
        try:
            await connection.open()
            return await work(connection, await discover(connection))
        finally:
            await connection.close()

    return run_headless(main, doing)


async def _find(connection: Any, discovery: Any, ref: str, lookup: str | None, services: bool = False) -> Any:
    from app.cluster.endpoints import find_endpoint

    return await find_endpoint(connection, discovery, ref, lookup, services=services)


def _read_body(spec: str) -> str:
    """`spec` itself, or the text of the file `@PATH` (`@-`: standard input), through the shared file reader."""
    from app.cluster.actions import EXIT_BAD_INPUT, ActionError
    from app.cluster.files import read_text_file

    if not spec.startswith("@"):
        try:
            spec.encode("utf-8")  # an argument of non-UTF-8 bytes arrives with lone surrogates
        except UnicodeEncodeError:
            raise ActionError("--body is not UTF-8 text; nothing was sent", EXIT_BAD_INPUT) from None
        return spec
    try:
        return read_text_file(spec[1:], stdin=True)
    except ActionError as exc:
        raise ActionError(f"{exc}; nothing was sent", exc.exit_code) from None


def _invoke(args: argparse.Namespace, settings: Any, kubeconfig: Any) -> int:
    import json

    from app.cluster.actions import ActionError
    from app.model.endpoints import BodyError, parse_body

    body: str | None = None
    if args.concurrency is not None and args.requests is None:
        return _fail("--concurrency needs --requests/-N (a load run); nothing was sent", EXIT_USAGE)
    if not args.timeout > 0:
        return _fail(f"--timeout must be a positive number of seconds, not {args.timeout:g}", EXIT_USAGE)
    try:
        if args.body is not None:
            body = _read_body(args.body)
            parse_body(body)  # checked before anything is sent; sent as typed
        if args.requests is not None:
            from app.cluster.endpoints import check_load

            check_load(args.requests, args.concurrency if args.concurrency is not None else 10)
        if args.path is not None:
            from app.cluster.endpoints import check_path, check_readonly_ref_path

            check_path(args.path)
            check_readonly_ref_path(args.endpoint, args.path, settings.readonly)  # before any request
    except BodyError as exc:
        return _fail(f"--body: {exc}; nothing was sent", EXIT_USAGE)
    except ActionError as exc:
        return _fail(str(exc), exc.exit_code)
    _, lookup = _namespaces(settings, kubeconfig)

    async def work(connection: Any, discovery: Any) -> int:
        from app.cluster import endpoints as ep
        from app.model.endpoints import StreamText

        row = await _find(connection, discovery, args.endpoint, lookup, services=True)
        protocols = row.protocols()
        if args.list_protocols:
            for p in protocols:
                print(f"{p.name:12} POST {p.path}  {json.dumps(p.body)}")
            return EXIT_OK
        protocol = protocols[0]
        if args.protocol:
            protocol = next((p for p in protocols if p.name == args.protocol), None)
            if protocol is None:
                raise ep.EndpointError(f"{row.kind} {row.name} speaks {', '.join(p.name for p in protocols)}, "
                                       f"not {args.protocol!r}", EXIT_USAGE)
        path = args.path or protocol.path
        payload = protocol.body if body is None else body
        if args.requests is not None:
            concurrency = args.concurrency or 10
            summary = await ep.load_test(connection, row, payload, path, args.requests, concurrency,
                                         timeout=args.timeout, readonly=settings.readonly)
            if args.output == "json":
                print(json.dumps({"endpoint": f"{row.namespace}/{row.name}", "path": path, **summary.as_dict()},
                                 indent=2))
            else:
                print(f"{row.kind} {row.namespace}/{row.name} POST {path}")
                print("\n".join(summary.lines()))
            return EXIT_OK if not summary.errors else EXIT_FAILURE
        stream = StreamText()
        streaming = args.output == "text"

        def chunk(piece: str) -> None:
            text = stream.feed(piece)
            if text and streaming:
                sys.stdout.write(text)
                sys.stdout.flush()

        result = await ep.invoke(connection, row, payload, path, on_chunk=chunk, timeout=args.timeout,
                                 readonly=settings.readonly)
        if args.output == "json":
            try:
                answer: Any = json.loads(result.text)
            except ValueError:
                answer = result.pretty()
            print(json.dumps({"endpoint": f"{row.namespace}/{row.name}", "path": path, "status": result.status,
                              "from": "apiserver" if result.from_apiserver else "model",
                              "latency_ms": round(result.latency_ms, 1), "streamed": result.streamed,
                              "response": answer}, indent=2, ensure_ascii=False))
        else:
            if result.streamed:
                sys.stdout.write("\n")
            elif result.status:
                print(result.pretty())
            print(result.describe() + (" (--timeout)" if result.timed_out else ""), file=sys.stderr)
        return EXIT_OK if result.ok else EXIT_FAILURE

    return _run(settings, kubeconfig, work, "invoke")


def _scale(args: argparse.Namespace, settings: Any, kubeconfig: Any) -> int:
    from app.cluster.actions import ActionError, refuse_if_readonly

    try:
        refuse_if_readonly(settings.readonly, f"scaling {args.endpoint}")
    except ActionError as exc:
        return _fail(str(exc), exc.exit_code)
    if args.replicas < 0:
        return _fail("--replicas must not be negative", EXIT_USAGE)
    _, lookup = _namespaces(settings, kubeconfig)

    async def work(connection: Any, discovery: Any) -> int:
        from app.cluster import endpoints as ep

        row = await _find(connection, discovery, args.endpoint, lookup)
        how = await ep.scale(connection, row, args.replicas, readonly=settings.readonly, discovery=discovery)
        print(f"{row.kind} {row.namespace}/{row.name}: {how} (was {row.ready_text} ready)")
        return EXIT_OK

    return _run(settings, kubeconfig, work, "scale")


def _deploy(args: argparse.Namespace, settings: Any, kubeconfig: Any) -> int:
    from app.cluster.actions import ActionError, parse_manifest, refuse_if_readonly
    from app.cluster.endpoints import check_endpoint_manifest
    from app.cluster.files import read_text_file

    try:
        if not args.dry_run:
            refuse_if_readonly(settings.readonly, f"deploying {args.file}")
        source = "<stdin>" if args.file == "-" else args.file
        documents = parse_manifest(read_text_file(args.file, stdin=True), source)
        check_endpoint_manifest(documents, source)
    except ActionError as exc:
        return _fail(str(exc), exc.exit_code)
    namespace, _ = _namespaces(settings, kubeconfig)

    async def work(connection: Any, discovery: Any) -> int:
        from app.cluster.actions import submit

        created = await submit(connection, documents, readonly=settings.readonly, dry_run=args.dry_run,
                               discovery=discovery, namespace=namespace)
        for ref in created:
            print(f"{ref} {'validated (server dry run)' if args.dry_run else 'created'}")
        return EXIT_OK

    return _run(settings, kubeconfig, work, "deploy")


def _undeploy(args: argparse.Namespace, settings: Any, kubeconfig: Any) -> int:
    from app.cluster.actions import ActionError, refuse_if_readonly

    try:
        refuse_if_readonly(settings.readonly, f"deleting {args.endpoint}")
    except ActionError as exc:
        return _fail(str(exc), exc.exit_code)
    _, lookup = _namespaces(settings, kubeconfig)

    async def work(connection: Any, discovery: Any) -> int:
        from app.cluster import endpoints as ep

        row = await _find(connection, discovery, args.endpoint, lookup)
        await ep.delete(connection, row, readonly=settings.readonly, discovery=discovery)
        print(f"{row.kind} {row.namespace}/{row.name} deleted (its pods and Service go with it)")
        return EXIT_OK

    return _run(settings, kubeconfig, work, "undeploy")


# --- `hyperdesk get endpoints` ----------------------------------------------------------------------------------------

async def _get_endpoints(ctx: Any) -> list[dict[str, Any]]:
    from app.get import GetError, _with_cluster

    async def work(connection: Any, discovery: Any) -> list[dict[str, Any]]:
        from app.cluster.actions import ActionError
        from app.cluster.endpoints import fetch_endpoints
        from app.model.endpoints import endpoint_dict
        from app.model.jobs import utcnow

        warnings: list[str] = []
        try:
            rows = await fetch_endpoints(connection, discovery, ctx.namespace, warnings)
        except ActionError as exc:
            raise GetError(str(exc), exc.exit_code) from None
        _warn(warnings)
        now = utcnow()
        return [endpoint_dict(row, now) for row in rows]

    return await _with_cluster(ctx, work)


def _endpoint_cells(item: dict[str, Any]) -> dict[str, Any]:
    from app.model.jobs import human_duration

    auto = item.get("autoscaling")
    return {**item, "ready": f"{item['replicas_ready']}/{item['replicas_desired']}",
            "auto": f"{auto['min']}-{auto['max']}" if auto else "", "age": human_duration(item["age_seconds"])}


def register_kinds() -> None:
    """`app.get.lookup` calls this: registering at import would import app.get on `--version`'s path."""
    from app.get import Kind, register

    register(Kind(
        name="endpoints",
        aliases=("endpoint", "inferenceendpoints"),  # not `ep`: kubectl's ep is the core Endpoints kind
        fetch=_get_endpoints,
        columns=(("NAMESPACE", "namespace"), ("NAME", "name"), ("KIND", "kind"), ("MODEL", "model"),
                 ("INSTANCE", "instance_type"), ("STATE", "state"), ("READY", "ready"), ("AUTOSCALE", "auto"),
                 ("URL", "url"), ("AGE", "age")),
        description="inference endpoints: HyperPod JumpStartModels and InferenceEndpointConfigs, KServe "
                    "InferenceServices",
        display=_endpoint_cells,
    ))

