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
    args = parser.parse_args(argv)
    options: dict[str, Any] = {
        key: getattr(args, key, None)
        for key in ("context", "namespace", "all_namespaces", "kubeconfig", "readonly", "theme", "log_file")
    }
    if args.command == "demo":
        return _demo(args.demo_args, options)

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
    if demo_args[:1] == ["serve"]:
        from app.demo.serve import serve_main

        return serve_main(demo_args[1:])
    return _fail("`hyperdesk demo` needs the embedded cluster, which is not built yet; see `hyperdesk demo serve`",
                 EXIT_FAILURE)


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
