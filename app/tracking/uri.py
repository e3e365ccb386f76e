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


SECRET_QUERY_KEYS = ("token", "access_token", "id_token", "refresh_token", "sig", "signature", "password", "secret",
                     "key", "api_key", "apikey", "x-amz-signature", "x-amz-security-token", "x-amz-credential", "auth",
                     "authorization", "client_secret")
"""Query parameters that carry credentials (OAuth tokens, SAS and pre-signed URL signatures)."""


def redact(uri: str) -> str:
    """The URI to show: any user info (`https://user:secret@host`, a bare token as user) becomes `***`, and the
    values of query parameters that carry credentials (`token`, `sig`, `X-Amz-Signature`...) become `***`."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]  # the host part keeps its IPv6 brackets and port
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def secrets_of(uri: str) -> list[str]:
    """The secret pieces of a URI (its user info and secret query values), to scrub from error messages that quote
    the URI in another form (with an API path appended, its query re-ordered)."""
    from urllib.parse import parse_qsl, quote, urlsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return []
    found = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        found += [userinfo] + [p for p in userinfo.split(":") if p]
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in SECRET_QUERY_KEYS and v]
    found += [quote(v, safe="") for v in list(found)]
    return sorted({f for f in found if len(f) >= 3}, key=len, reverse=True)


def missing_uri_message(tried: str = "") -> str:
    where = f" (the cluster publishes none: looked for {tried})" if tried else ""
    return ("No MLflow tracking server configured: set mlflow.tracking_uri in the config, or MLFLOW_TRACKING_URI"
            f"{where}.")
