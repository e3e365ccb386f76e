"""The `hyperdesk` command: the TUI by default, and headless subcommands that share its core.

Exit codes: 0 success, 1 a runtime failure (cluster unreachable, server error), 2 bad usage or bad input.
Heavy imports (Textual, the kubernetes client) happen only on the paths that need them: `--version` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any

from app import __version__

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

AREAS = ("spaces", "connect", "gpus", "training", "endpoints")
"""Each area's headless verbs live in `app/cli_<area>.py`: `add_parsers(sub, common)` adds its subcommands (each
sets `handler=fn(args, settings, kubeconfig) -> exit code`) and any options of `get` for its kinds (default None,
read from GetContext.options); `register_kinds()` registers its `hyperdesk get` kinds when `get` looks one up.
Those modules import only argparse at the top, so `--version` stays fast."""


def _common_options() -> argparse.ArgumentParser:
    """Options accepted before or after a subcommand, as kubectl does; SUPPRESS keeps one from erasing the other."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--context", help="kubeconfig context to use")
    common.add_argument("-n", "--namespace", help="namespace to show")
    common.add_argument("-A", "--all-namespaces", action="store_true", help="show every namespace")
    common.add_argument("--kubeconfig", help="path to the kubeconfig file")
    common.add_argument("--readonly", action="store_true", help="refuse every change to the cluster")
    common.add_argument("--theme", help="colour theme (hyperdesk-dark, hyperdesk-light, hyperdesk-ansi, ...)")
    common.add_argument("--log-file", help="write hyperdesk's log to this file")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="hyperdesk",
        description="A keyboard-driven terminal workstation for ML work on Kubernetes GPU clusters.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"hyperdesk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    get = sub.add_parser("get", parents=[common], help="list resources (contexts, jobs, queues)")
    get.add_argument("kind", help="what to list: contexts, jobs, queues")
    get.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    _job_parsers(sub, common)
    own = {action.dest for action in get._actions}
    for area in AREAS:
        importlib.import_module(f"app.cli_{area}").add_parsers(sub, common)
    # Options areas added to `get` for their kinds (default None); get.run refuses one its kind does not read.
    get.set_defaults(area_options=tuple(a.dest for a in get._actions if a.dest not in own))

    demo = sub.add_parser("demo", parents=[common], help="run hyperdesk against an embedded simulated cluster")
    demo.add_argument("demo_args", nargs=argparse.REMAINDER, help="`serve ...` runs the cluster headless")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # `hyperdesk demo --speed 5`: argparse's REMAINDER does not take options that come first; `_demo` parses them.
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "demo":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    options: dict[str, Any] = {
        key: getattr(args, key, None)
        for key in ("context", "namespace", "all_namespaces", "kubeconfig", "readonly", "theme", "log_file")
    }
    if args.command == "demo":
        return _demo(unknown + args.demo_args, options)

    from app.config import ConfigError, Settings, load_settings

    config_errors: list[str] = []
    try:
        settings = load_settings(overrides=options)
    except ConfigError as exc:
        if args.command is not None:
            return _fail(str(exc), EXIT_USAGE)
        config_errors.append(f"{exc} — starting with defaults")
        settings = Settings(**{k: v for k, v in options.items() if v is not None})

    if settings.log_file:
        unusable = _start_log(settings.log_file, args.command)
        if unusable:
            return _fail(unusable, EXIT_USAGE)

    from app.cluster.kubeconfig import KubeconfigError, load_kubeconfig

    try:
        kubeconfig = load_kubeconfig(settings.kubeconfig)
    except KubeconfigError as exc:
        if args.command is not None:
            return _fail(str(exc), EXIT_USAGE)
        config_errors.append(str(exc))
        kubeconfig = None

    if args.command == "get":
        return _get(args, settings, kubeconfig)
    if args.command in JOB_COMMANDS:
        return _job_command(args, settings, kubeconfig)
    handler = getattr(args, "handler", None)
    if handler is not None:
        return handler(args, settings, kubeconfig)
    return run_tui(settings, kubeconfig, config_errors)


def run_tui(settings: Any, kubeconfig: Any, startup_errors: list[str]) -> int:
    from app.tui import HyperdeskApp

    app = HyperdeskApp(settings, kubeconfig=kubeconfig, startup_errors=startup_errors)
    app.run()
    return app.return_code or EXIT_OK


def _get(args: argparse.Namespace, settings: Any, kubeconfig: Any) -> int:
    from app import get

    context = kubeconfig.context(settings.context) if kubeconfig else None
    namespace = None if settings.all_namespaces else (settings.namespace or (context.namespace if context else None))
    if namespace is None and not settings.all_namespaces and args.kind.lower() not in ("contexts", "context", "ctx"):
        namespace = "default"  # as kubectl: a context without a namespace means `default`, not every namespace
    try:
        options = {dest: getattr(args, dest, None) for dest in args.area_options}
        get.run(args.kind, args.output, get.GetContext(settings, kubeconfig, namespace, options))
    except get.GetError as exc:
        return _fail(str(exc), exc.exit_code)
    return EXIT_OK


def _demo(demo_args: list[str], options: dict[str, Any]) -> int:
    """`hyperdesk demo`: the TUI on a simulated cluster started in this process; `hyperdesk demo serve`: headless.

    The cluster (API server, simulator, MLflow store) runs on a background thread and the TUI reaches it exactly as
    it reaches a real one: through the written kubeconfig, the MLflow tracking URI and the API server's proxy.
    Quitting, SIGINT and SIGTERM stop all of it; nothing is left listening.
    """
    if demo_args[:1] == ["serve"]:
        from app.demo.serve import serve_main

        return serve_main(demo_args[1:])
    from app.demo.sim.scenario import SCENARIOS

    parser = argparse.ArgumentParser(prog="hyperdesk demo", description="Run hyperdesk against an embedded simulated cluster.")
    parser.add_argument("--scenario", choices=SCENARIOS, default="hyperpod", help="what the cluster contains")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenario's random choices (default: 0)")
    args = parser.parse_args(demo_args)
    if args.speed < 0:
        return _fail("--speed must not be negative", EXIT_USAGE)

    import os
    import signal

    from app.cluster.kubeconfig import KubeconfigError, load_kubeconfig
    from app.config import ConfigError, Settings, load_settings
    from app.demo.sim.cluster import DemoCluster

    startup_errors: list[str] = []
    try:
        settings = load_settings(overrides=options)
    except ConfigError as exc:
        startup_errors.append(f"{exc} — starting with defaults")
        settings = Settings(**{k: v for k, v in options.items() if v is not None})
    if settings.log_file:
        unusable = _start_log(settings.log_file, "demo")
        if unusable:
            return _fail(unusable, EXIT_USAGE)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, terminate)
    previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
    print(f"hyperdesk: starting the simulated cluster (scenario {args.scenario})...", file=sys.stderr, flush=True)
    handle = None
    try:
        handle = DemoCluster.start_in_thread(scenario=args.scenario, seed=args.seed, speed=args.speed)
        settings.kubeconfig = str(handle.kubeconfig_path)
        settings.context = None
        if not options.get("namespace"):
            settings.all_namespaces = True
        if handle.mlflow_uri:
            settings.mlflow.tracking_uri = handle.mlflow_uri
            os.environ["MLFLOW_TRACKING_URI"] = handle.mlflow_uri
        try:
            kubeconfig = load_kubeconfig(settings.kubeconfig)
        except KubeconfigError as exc:
            return _fail(str(exc), EXIT_FAILURE)
        return run_tui(settings, kubeconfig, startup_errors)
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        return _fail(f"the simulated cluster could not start: {exc}", EXIT_FAILURE)
    finally:
        if handle is not None:
            handle.stop()
        if previous_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_uri
        signal.signal(signal.SIGTERM, previous_term)


def _start_log(path: str, command: str | None) -> str | None:
    """The log file (flag, HYPERDESK_LOG_FILE or config), readable by its owner only (an existing file's mode is
    narrowed too); or the one line saying why it cannot be opened."""
    import os
    import stat

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):  # not /dev/null's or a terminal's mode
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    except OSError as exc:
        return f"cannot open the log file {path}: {exc.strerror or exc}"
    logging.basicConfig(filename=path, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("hyperdesk").info("hyperdesk %s: %s", __version__, command or "tui")
    return None


def run_headless(main: Any, doing: str) -> int:
    """Run a headless command's coroutine function `main()`: its exit code, or, for any failure, one line on stderr
    and a non-zero exit (the traceback goes to the log file only)."""
    import asyncio

    from app.cluster.actions import ActionError
    from app.cluster.connection import ApiError, first_line

    try:
        return asyncio.run(main())
    except ActionError as exc:
        return _fail(str(exc), exc.exit_code)
    except ApiError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - one line for the user, the traceback in the log file
        logging.getLogger("hyperdesk").exception("%s failed", doing)
        return _fail(first_line(exc), EXIT_FAILURE)


def _fail(message: str, code: int) -> int:
    print(f"hyperdesk: error: {message}", file=sys.stderr)
    return code


# --- jobs: submit, cancel, suspend, resume, priority, edit, logs, template ------------------------------------------

JOB_COMMANDS = ("submit", "cancel", "suspend", "resume", "priority", "edit", "logs", "template")


def _job_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    submit = sub.add_parser("submit", parents=[common], help="submit a manifest: validated, dry-run, then created")
    submit.add_argument("file", help="YAML manifest (several documents allowed); - reads standard input")
    submit.add_argument("--queue", help="LocalQueue for the jobs (the kueue.x-k8s.io/queue-name label)")
    submit.add_argument("--priority", help="WorkloadPriorityClass (the kueue.x-k8s.io/priority-class label)")
    submit.add_argument("--dry-run", action="store_true", help="validate on the server, create nothing")
    for name, text in (("cancel", "delete a job, its pods and its Workload"),
                       ("suspend", "suspend a job (its Workload is deactivated when Kueue queues it)"),
                       ("resume", "resume a suspended job"),
                       ("edit", "edit a job's YAML in $EDITOR and apply it")):
        parser = sub.add_parser(name, parents=[common], help=text)
        parser.add_argument("job", help="job name, or KIND/NAME (pytorchjob/x, hyperpodpytorchjob/x, job/x, jobset/x)")
    priority = sub.add_parser("priority", parents=[common], help="give a job another WorkloadPriorityClass")
    priority.add_argument("job", help="job name, or KIND/NAME")
    priority.add_argument("priority_class", help="the WorkloadPriorityClass")
    logs = sub.add_parser("logs", parents=[common], help="logs of a job's pods")
    logs.add_argument("job", help="job name, or KIND/NAME")
    logs.add_argument("-f", "--follow", action="store_true", help="keep streaming new lines")
    logs.add_argument("--pod", help="only this pod (its name, or the end of it: master-0, worker-1, pod-0)")
    logs.add_argument("-c", "--container", help="container (default: the pod's default container)")
    logs.add_argument("--tail", type=int, help="lines from the end of each log")
    logs.add_argument("--timestamps", action="store_true", help="start each line with its timestamp")
    logs.add_argument("-p", "--previous", action="store_true", help="the previous (crashed) container's log")
    logs.add_argument("--prefix", action=argparse.BooleanOptionalAction, default=None,
                      help="start each line with its pod's name (default: when there are several pods)")
    template = sub.add_parser("template", parents=[common], help="render a built-in job template as YAML")
    template.add_argument("template", nargs="?", help="fine-tune or ddp; without it, list the templates")
    template.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="a parameter (name, image, command, nodes, gpus, mig, queue, priority, env, volume...)")
    template.add_argument("--hyperpod", action=argparse.BooleanOptionalAction, default=None,
                          help="render ddp as a HyperPodPyTorchJob (default: when the cluster serves it)")


def _namespaces(settings: Any, kubeconfig: Any) -> tuple[str, str | None]:
    """(namespace for new objects, namespace to look jobs up in: None with -A)."""
    context = kubeconfig.context(settings.context) if kubeconfig else None
    namespace = settings.namespace or (context.namespace if context else None) or "default"
    return namespace, None if settings.all_namespaces else namespace


def _job_command(args: argparse.Namespace, settings: Any, kubeconfig: Any) -> int:
    from app.cluster.actions import ActionError, refuse_if_readonly

    if args.command == "template":
        return _template(args, kubeconfig=kubeconfig, settings=settings)
    if args.command == "submit":
        try:
            documents = _read_manifest(args.file)
        except ActionError as exc:
            return _fail(str(exc), exc.exit_code)
    try:
        if args.command in ("cancel", "suspend", "resume", "priority", "edit"):
            doing = {"cancel": "cancelling", "suspend": "suspending", "resume": "resuming",
                     "priority": "changing the priority of", "edit": "editing"}[args.command]
            refuse_if_readonly(settings.readonly, f"{doing} {args.job}")
        if args.command == "submit" and not args.dry_run:
            refuse_if_readonly(settings.readonly, f"submitting {args.file}")
    except ActionError as exc:
        return _fail(str(exc), exc.exit_code)
    from app.get import cluster_problem

    if problem := cluster_problem(kubeconfig, settings.context):
        return _fail(*problem)

    async def main() -> int:
        from app.cluster.connection import ClusterConnection

        connection = ClusterConnection(list(kubeconfig.paths) or None, settings.context)
        try:
            await connection.open()  # credentials once, before any concurrent request
            if args.command == "submit":
                return await _submit(connection, args, settings, kubeconfig, documents)
            return await _on_job(connection, args, settings, kubeconfig)
        finally:
            await connection.close()

    return run_headless(main, args.command)


def _read_manifest(path: str) -> list[dict[str, Any]]:
    from app.cluster.actions import parse_manifest
    from app.cluster.files import read_text_file

    return parse_manifest(read_text_file(path, stdin=True), "<stdin>" if path == "-" else path)


async def _submit(connection: Any, args: argparse.Namespace, settings: Any, kubeconfig: Any,
                  documents: list[dict[str, Any]]) -> int:
    from app.cluster.actions import submit
    from app.cluster.discovery import discover

    namespace, _ = _namespaces(settings, kubeconfig)
    discovery = await discover(connection)
    created = await submit(connection, documents, readonly=settings.readonly, queue=args.queue,
                           priority=args.priority, dry_run=args.dry_run, discovery=discovery, namespace=namespace)
    for ref in created:
        print(f"{ref} {'validated (server dry run)' if args.dry_run else 'created'}")
    return EXIT_OK


async def _find_job(connection: Any, discovery: Any, ref: str, namespace: str | None) -> Any:
    """The job `ref` names: GET by name in the namespace (each served kind), or listed across namespaces (-A)."""
    import asyncio

    from app.cluster.actions import ActionError, match_job, split_job_ref
    from app.cluster.connection import ApiError
    from app.cluster.resources import KINDS
    from app.model.jobs import JOB_KINDS

    store, name = split_job_ref(ref)
    kinds = [k for k in JOB_KINDS if discovery.serves(k) and (store is None or k == store)]
    if store is not None and not kinds:
        raise ActionError(f"this cluster does not serve {JOB_KINDS[store]}", 2)
    forbidden: list[str] = []

    async def candidates(kind: str) -> list[tuple[str, str, str]]:
        path = KINDS[kind].path(discovery.version(kind), namespace, name if namespace else None)
        try:
            answer = await connection.request("GET", path)
        except ApiError as exc:
            if exc.status == 403:
                forbidden.append(str(exc))
            if exc.status in (403, 404):
                return []
            raise
        items = [answer] if namespace else (answer or {}).get("items") or []
        return [(kind, i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in items]

    found = [c for part in await asyncio.gather(*(candidates(k) for k in kinds)) for c in part]
    if not found and forbidden:
        raise ActionError(forbidden[0], 2)
    return match_job(ref, found, namespace)


async def _on_job(connection: Any, args: argparse.Namespace, settings: Any, kubeconfig: Any) -> int:
    from app.cluster import actions
    from app.cluster.discovery import discover

    _, lookup = _namespaces(settings, kubeconfig)
    discovery = await discover(connection)
    job = await _find_job(connection, discovery, args.job, lookup)
    readonly = settings.readonly
    if args.command == "cancel":
        await actions.cancel(connection, job.store_name, job.namespace, job.name, readonly=readonly, discovery=discovery)
        print(f"{job} cancelled (deleted)")
    elif args.command in ("suspend", "resume"):
        changed = await actions.set_suspended(connection, job.store_name, job.namespace, job.name,
                                              args.command == "suspend", readonly=readonly, discovery=discovery)
        print(f"{job} {'suspended' if args.command == 'suspend' else 'resumed'} ({changed})")
    elif args.command == "priority":
        value = await actions.set_priority(connection, job.store_name, job.namespace, job.name, args.priority_class,
                                           readonly=readonly, discovery=discovery)
        print(f"{job} priority is now {args.priority_class} ({value})")
    elif args.command == "edit":
        return await _edit(connection, job, readonly, discovery)
    elif args.command == "logs":
        return await _logs(connection, job, args, discovery)
    return EXIT_OK


async def _edit(connection: Any, job: Any, readonly: bool, discovery: Any) -> int:
    import os
    import shlex
    import subprocess
    import tempfile

    from app.cluster import actions

    original = await actions.job_yaml(connection, job.store_name, job.namespace, job.name, discovery)
    editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
    handle, path = tempfile.mkstemp(prefix=f"hyperdesk-edit-{job.name}-", suffix=".yaml")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(original)
    try:
        code = subprocess.call([*editor, path])
    except OSError as exc:
        os.unlink(path)
        return _fail(f"cannot run the editor {editor[0]!r}: {exc.strerror or exc}", EXIT_FAILURE)
    if code != 0:
        os.unlink(path)
        return _fail(f"the editor exited with {code}; nothing was applied", EXIT_FAILURE)
    with open(path, encoding="utf-8") as file:
        edited = file.read()
    if edited == original:
        os.unlink(path)
        print("Edit cancelled, no changes made.")
        return EXIT_OK
    try:
        ref = await actions.apply_yaml(connection, edited, readonly=readonly, source=path)
    except actions.ActionError as exc:
        return _fail(f"{exc} (your edit is kept in {path})", exc.exit_code)
    os.unlink(path)
    print(f"{ref} edited")
    return EXIT_OK


async def _logs(connection: Any, job: Any, args: argparse.Namespace, discovery: Any) -> int:
    from app.cluster.actions import ActionError
    from app.cluster.logs import job_logs
    from app.cluster.queues import fetch_stores
    from app.model.jobs import job_rows

    rows = job_rows(await fetch_stores(connection, discovery, job.namespace))
    row = next((r for r in rows if r.key == f"{job.store_name}/{job.namespace}/{job.name}"), None)
    pods = list(row.pods) if row else []
    if not pods:
        why = f" (it is {row.state}{': ' + row.hint if row and row.hint else ''})" if row else ""
        raise ActionError(f"{job} has no pods{why}: there are no logs to show", EXIT_FAILURE)
    if args.pod:
        names = [p.rpartition("/")[2] for p in pods]
        chosen = [p for p, n in zip(pods, names) if n == args.pod] or \
                 [p for p, n in zip(pods, names) if n.endswith(args.pod)]
        if len(chosen) != 1:
            which = "matches several pods" if chosen else "is not one of its pods"
            raise ActionError(f"--pod {args.pod} {which}: {', '.join(names)}", 2)
        pods = chosen
    prefix = len(pods) > 1 if args.prefix is None else args.prefix
    errors: list[str] = []

    def on_error(pod: str, message: str) -> None:
        errors.append(message)
        print(f"hyperdesk: error: {message}", file=sys.stderr, flush=True)

    stream = job_logs(connection, pods, follow=args.follow, tail_lines=args.tail, timestamps=args.timestamps,
                      previous=args.previous, prefix=prefix, container=args.container, on_error=on_error)
    try:
        async for _, line in stream:
            sys.stdout.write(line + "\n")
            if args.follow:
                sys.stdout.flush()
    finally:
        await stream.aclose()
    sys.stdout.flush()
    return EXIT_FAILURE if errors else EXIT_OK


def _template(args: argparse.Namespace, *, kubeconfig: Any = None, settings: Any = None) -> int:
    from app.model import templates

    if args.template is None:
        width = max(len(name) for name in templates.TEMPLATES)
        for name, description in templates.TEMPLATES.items():
            print(f"{name.ljust(width)}   {description}")
        return EXIT_OK
    if args.template not in templates.TEMPLATES:
        return _fail(f"unknown template {args.template!r} (one of {', '.join(templates.TEMPLATES)})", EXIT_USAGE)
    params: dict[str, Any] = {}
    env_lines: list[str] = []
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq:
            return _fail(f"--set {item}: expected KEY=VALUE", EXIT_USAGE)
        if key == "env":
            env_lines.append(value)
        else:
            params[key.strip()] = value
    if env_lines:
        params["env"] = "\n".join(env_lines)
    known = {f.name for f in templates.FIELDS[args.template]}
    unknown = sorted(set(params) - known)
    if unknown:
        return _fail(f"--set {unknown[0]}: not a parameter of {args.template} ({', '.join(sorted(known))})", EXIT_USAGE)
    hyperpod = args.hyperpod
    if hyperpod is None and kubeconfig is not None and args.template == "ddp":
        hyperpod = _serves_hyperpod(kubeconfig, settings)
    try:
        manifest = templates.render(args.template, params, serves_hyperpod=bool(hyperpod))
    except templates.TemplateError as exc:
        return _fail(f"{args.template}: {exc}", EXIT_USAGE)
    sys.stdout.write(templates.to_yaml(manifest))
    return EXIT_OK


def _serves_hyperpod(kubeconfig: Any, settings: Any) -> bool:
    """Whether the cluster serves HyperPodPyTorchJob (False when it cannot be asked)."""
    import asyncio

    from app.cluster.connection import ClusterConnection
    from app.cluster.discovery import discover
    from app.cluster.resources import KINDS

    async def ask() -> bool:
        connection = ClusterConnection(list(kubeconfig.paths) or None, settings.context, open_timeout=10)
        try:
            found = await discover(connection, {"hyperpodpytorchjobs": KINDS["hyperpodpytorchjobs"]})
            return found.serves("hyperpodpytorchjobs")
        finally:
            await connection.close()

    try:
        return asyncio.run(ask())
    except Exception:  # noqa: BLE001 - no cluster: render the portable kind
        return False
