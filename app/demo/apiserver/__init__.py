"""An in-memory Kubernetes API server, faithful enough for the official client and kubectl.

`hyperdesk demo` runs on it and every integration test of the project uses it. Module map:

- `kinds`, `catalog`, `crds`, `conversion`: what is served (compact kind definitions; CRDs registered at runtime;
  the renamed fields of Kueue's versions)
- `store`, `resources`, `strategies`, `watch`: objects, revisions, history, verbs and their rules, watchers
- `selectors`, `patch`, `validation`, `jsonpath`: pure functions the verbs use; `schemas`: the types of built-in kinds
- `tables`, `printers`, `discovery`, `openapi`: what kubectl reads besides objects
- `requestinfo`, `server`: the aiohttp application
- `access`, `logs`, `proxy`, `portforward`, `visibility`, `faults`: users and RBAC, pod logs, proxies,
  port-forwarding, Kueue's visibility API, fault injection
- `protobuf`: the request bodies kubectl's typed clients send
- `local`: `LocalApiServer` and `ServerThread`, the ways to run it
"""

from .access import AccessControl, Rule, User
from .errors import ApiError
from .kinds import Kind, KindRegistry
from .local import LocalApiServer, OnLoop, ServerThread
from .server import ApiServer, ServerOptions
from .store import Event, Store

__all__ = [
    "AccessControl",
    "ApiError",
    "ApiServer",
    "Event",
    "Kind",
    "KindRegistry",
    "LocalApiServer",
    "OnLoop",
    "Rule",
    "ServerOptions",
    "ServerThread",
    "Store",
    "User",
]
