"""An in-memory Kubernetes API server, faithful enough for the official client and kubectl.

`hyperdesk demo` runs on it and every integration test of the project uses it. Module map:

- `kinds`, `catalog`, `crds`: what is served (compact kind definitions; CRDs registered at runtime)
- `store`, `resources`, `strategies`, `watch`: objects, revisions, history, verbs and their rules, watchers
- `selectors`, `patch`, `validation`, `jsonpath`: pure functions the verbs use
- `tables`, `printers`, `discovery`, `openapi`: what kubectl reads besides objects
- `requestinfo`, `server`: the aiohttp application
- `local`: `LocalApiServer` and `ServerThread`, the ways to run it
"""

from .errors import ApiError
from .kinds import Kind, KindRegistry
from .local import LocalApiServer, ServerThread, ThreadedStore
from .server import ApiServer, ServerOptions
from .store import Event, Store

__all__ = [
    "ApiError",
    "ApiServer",
    "Event",
    "Kind",
    "KindRegistry",
    "LocalApiServer",
    "ServerOptions",
    "ServerThread",
    "Store",
    "ThreadedStore",
]
