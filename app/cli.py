"""The `hyperdesk` command: the TUI by default, and headless subcommands that share its core.

Exit codes: 0 success, 1 a runtime failure (cluster unreachable, server error), 2 bad usage or bad input.
Heavy imports (Textual, the kubernetes client) happen only on the paths that need them: `--version` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from app import __version__

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


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

    get = sub.add_parser("get", parents=[common], help="list resources (contexts, ...)")
    get.add_argument("kind", help="what to list, e.g. contexts")
    get.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")

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
        _start_log(settings.log_file, args.command)

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
    try:
        get.run(args.kind, args.output, get.GetContext(settings, kubeconfig, namespace))
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
        _start_log(settings.log_file, "demo")

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


def _start_log(path: str, command: str | None) -> None:
    """The log file (flag, HYPERDESK_LOG_FILE or config), readable by its owner only."""
    import os

    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    logging.basicConfig(filename=path, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("hyperdesk").info("hyperdesk %s: %s", __version__, command or "tui")


def _fail(message: str, code: int) -> int:
    print(f"hyperdesk: error: {message}", file=sys.stderr)
    return code
