"""Where the MLflow tracking server is: the config, then `MLFLOW_TRACKING_URI`, then the cluster.

On the cluster a platform team publishes it once for everyone: a ConfigMap (`mlflow.configmap`, NAMESPACE/NAME,
key `tracking_uri`; default `kube-system/hyperdesk-mlflow`), or an annotation on the user's namespace
(`mlflow.annotation`, default `hyperdesk.dev/mlflow-tracking-uri`), which wins because it is the more specific.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

DEFAULT_CONFIGMAP = "kube-system/hyperdesk-mlflow"
DEFAULT_ANNOTATION = "hyperdesk.dev/mlflow-tracking-uri"
CONFIGMAP_KEY = "tracking_uri"


@dataclass(frozen=True)
class Resolved:
    uri: str | None
    source: str
    """Where it came from, for the pane's status line: config, MLFLOW_TRACKING_URI, configmap NS/NAME..."""


def local_uri(configured: str | None, environ: Mapping[str, str] | None = None) -> Resolved:
    """The URI from the config or the environment, without asking the cluster."""
    env = os.environ if environ is None else environ
    if configured and configured.strip():
        return Resolved(configured.strip(), "config")
    if env.get("MLFLOW_TRACKING_URI", "").strip():
        return Resolved(env["MLFLOW_TRACKING_URI"].strip(), "MLFLOW_TRACKING_URI")
    return Resolved(None, "")


async def cluster_uri(connection: Any, namespace: str | None, configmap: str | None = DEFAULT_CONFIGMAP,
                      annotation: str | None = DEFAULT_ANNOTATION) -> Resolved:
    """The URI the cluster publishes: the namespace's annotation, else the ConfigMap. Missing or forbidden objects
    are not errors (most clusters publish neither); Resolved(None, why) then."""
    from app.cluster.connection import ApiError

    tried: list[str] = []
    if annotation and namespace:
        try:
            ns = await connection.request("GET", f"/api/v1/namespaces/{namespace}")
            value = (((ns or {}).get("metadata") or {}).get("annotations") or {}).get(annotation, "")
            if value.strip():
                return Resolved(value.strip(), f"namespace {namespace} annotation {annotation}")
        except ApiError:
            pass
        tried.append(f"annotation {annotation} on namespace {namespace}")
    if configmap:
        cm_namespace, _, name = configmap.rpartition("/")
        cm_namespace = cm_namespace or namespace or "default"
        try:
            cm = await connection.request("GET", f"/api/v1/namespaces/{cm_namespace}/configmaps/{name}")
            value = ((cm or {}).get("data") or {}).get(CONFIGMAP_KEY, "")
            if value.strip():
                return Resolved(value.strip(), f"configmap {cm_namespace}/{name}")
        except ApiError:
            pass
        tried.append(f"configmap {cm_namespace}/{name} key {CONFIGMAP_KEY}")
    return Resolved(None, "; ".join(tried))


def redact(uri: str) -> str:
    """The URI to show: a password in it (`https://user:secret@host`) replaced by `***`."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def missing_uri_message(tried: str = "") -> str:
    where = f" (the cluster publishes none: looked for {tried})" if tried else ""
    return ("No MLflow tracking server configured: set mlflow.tracking_uri in the config, or MLFLOW_TRACKING_URI"
            f"{where}.")
