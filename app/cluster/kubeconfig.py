"""Reading kubeconfig files the way kubectl does, without importing the kubernetes client.

Only names are read here (contexts, their cluster, user and namespace, the current context): enough for the top
bar, `:ctx` completion and `hyperdesk get contexts` before the first frame. Credentials are never read or kept.
The client connection itself (exec plugins, certificates) is built by the connection layer from the same files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml

from app.config import SAFE_LOADER


class KubeconfigError(Exception):
    """A kubeconfig that cannot be used, phrased for the user."""


@dataclass(frozen=True)
class Context:
    name: str
    cluster: str
    user: str
    namespace: str | None
    server: str | None


@dataclass(frozen=True)
class Kubeconfig:
    paths: tuple[Path, ...]
    contexts: tuple[Context, ...]
    current_context: str | None

    def context(self, name: str | None = None) -> Context | None:
        wanted = name or self.current_context
        return next((c for c in self.contexts if c.name == wanted), None)

    @property
    def context_names(self) -> list[str]:
        return [c.name for c in self.contexts]


def kubeconfig_paths(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> list[Path]:
    """The files kubectl would read: `--kubeconfig`, else the `KUBECONFIG` list, else `~/.kube/config`."""
    env = os.environ if environ is None else environ
    if explicit:
        return [Path(explicit).expanduser()]
    listed = env.get("KUBECONFIG")
    if listed:
        return [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def load_kubeconfig(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Kubeconfig | None:
    """Merge the kubeconfig files as kubectl does (the first file to define a name wins).

    Returns None when no file exists. Raises KubeconfigError for an explicit file that is missing or for a file
    that is not a kubeconfig.
    """
    env = os.environ if environ is None else environ
    paths = kubeconfig_paths(explicit, env)
    existing = [p for p in paths if p.is_file()]
    if explicit and not existing:
        raise KubeconfigError(f"kubeconfig {paths[0]} does not exist")
    if not existing:
        return in_cluster(env)
    contexts: dict[str, dict] = {}
    clusters: dict[str, dict] = {}
    current: str | None = None
    for path in existing:
        try:
            doc = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise KubeconfigError(f"kubeconfig {path} cannot be read: {str(exc).splitlines()[0]}") from None
        if not isinstance(doc, dict):
            raise KubeconfigError(f"kubeconfig {path} is not a mapping")
        for entry in doc.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") and entry["name"] not in contexts:
                contexts[entry["name"]] = entry.get("context") or {}
        for entry in doc.get("clusters") or []:
            if isinstance(entry, dict) and entry.get("name") and entry["name"] not in clusters:
                clusters[entry["name"]] = entry.get("cluster") or {}
        if current is None and doc.get("current-context"):
            current = str(doc["current-context"])
    parsed = tuple(
        Context(
            name=name,
            cluster=str(ctx.get("cluster", "")),
            user=str(ctx.get("user", "")),
            namespace=ctx.get("namespace"),
            server=(clusters.get(str(ctx.get("cluster", ""))) or {}).get("server"),
        )
        for name, ctx in contexts.items()
    )
    return Kubeconfig(paths=tuple(existing), contexts=parsed, current_context=current)


SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def in_cluster(environ: Mapping[str, str]) -> Kubeconfig | None:
    """Inside a pod with a service account and no kubeconfig: one context, `in-cluster`, with no file behind it
    (the connection then loads the service account's credentials)."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not (host and port and SERVICE_ACCOUNT_TOKEN.is_file()):
        return None
    namespace_file = SERVICE_ACCOUNT_TOKEN.with_name("namespace")
    namespace = namespace_file.read_text().strip() if namespace_file.is_file() else None
    context = Context(name="in-cluster", cluster="in-cluster", user="service-account", namespace=namespace,
                      server=f"https://{host}:{port}")
    return Kubeconfig(paths=(), contexts=(context,), current_context="in-cluster")
