"""What the Endpoints pane's keys do: the glue between the app (its engine, stores, notifications) and the endpoint
screens and actions. Network work runs in the app's workers; mutations are refused under `--readonly` before anything
is sent, and never update the screen themselves: the watch brings the new state back."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from app.model.endpoints import EndpointDetail, EndpointRow, endpoint_detail, endpoint_row_of
from app.screens.endpoints import EndpointsPane

KINDS = (*EndpointsPane.kinds, "events")
"""The pane's kinds, and the events its detail view lists."""


def stores(app: Any) -> dict[str, dict]:
    engine = app.engine
    if engine is None:
        return {}
    return {k: engine.stores[k].snapshot() for k in KINDS if k in engine.stores}


def row_for(app: Any, key: str, snapshot: dict[str, dict] | None = None) -> EndpointRow | None:
    """The row of one endpoint, computed from its own object (not the whole list's)."""
    store, _, ref = key.partition("/")
    snapshot = stores(app) if snapshot is None else snapshot
    obj = (snapshot.get(store) or {}).get(ref)
    return endpoint_row_of(store, obj, snapshot) if obj is not None else None


def _refused(app: Any, doing: str) -> bool:
    return bool(app._refuse_if_readonly(doing))  # noqa: SLF001 - the app's one read-only refusal


def open_detail(app: Any, key: str) -> None:
    from app.cluster.endpoints import EndpointFigures, read_figures
    from app.screens.endpoint_detail import EndpointDetailScreen

    def load() -> EndpointDetail | None:
        snapshot = stores(app)
        row = row_for(app, key, snapshot)
        return endpoint_detail(row, snapshot) if row is not None else None

    previous: list[EndpointFigures] = []

    async def metrics() -> str:
        engine, row = app.engine, row_for(app, key)
        if engine is None:
            return "not connected"
        if row is None:
            return "the endpoint no longer exists"
        pods_store = stores(app).get("pods") or {}
        pods = [pods_store[p] for p in row.pods if p in pods_store]
        figures = await read_figures(engine.connection, pods)
        line = figures.line(previous[-1] if previous else None)
        previous[:] = [figures]
        return line

    if load() is not None:
        app.push_screen(EndpointDetailScreen(load, metrics))


def open_invoke(app: Any, key: str) -> None:
    from app.cluster import endpoints as ep
    from app.screens.endpoint_invoke import InvokeScreen

    row = row_for(app, key)
    if row is None or app.engine is None:
        return

    def current() -> EndpointRow:
        if app.engine is None:
            raise ep.EndpointError("not connected to a cluster (see the top bar): nothing was sent")
        latest = row_for(app, key)
        if latest is None:
            raise ep.EndpointError(f"{row.kind} {row.namespace}/{row.name} no longer exists")
        return latest

    async def send(body: Any, path: str, on_chunk: Any) -> Any:
        row = current()
        return await ep.invoke(app.engine.connection, row, body, path, on_chunk=on_chunk, readonly=app.readonly)

    async def load(body: Any, path: str, requests: int, concurrency: int, on_progress: Any) -> Any:
        row = current()
        return await ep.load_test(app.engine.connection, row, body, path, requests, concurrency,
                                  on_progress=on_progress, readonly=app.readonly)

    app.push_screen(InvokeScreen(row, send, load))
    if not row.serving:
        app.notify(f"{row.name} is not ready ({row.state}, {row.ready_text} ready): requests will be refused",
                   severity="warning")


def open_logs(app: Any, key: str) -> None:
    from app.screens.logs import LogsScreen

    row = row_for(app, key)
    if row is None:
        return
    if not row.pods:
        app.notify(f"{row.name} has no model server pods yet: nothing has logged", severity="warning")
        return
    app.push_screen(LogsScreen(f"{row.kind} {row.namespace}/{row.name}", list(row.pods),
                               lambda: app.engine.connection if app.engine else None))


def open_yaml(app: Any, key: str) -> None:
    from app.screens.yaml_view import YamlScreen

    row, engine = row_for(app, key), app.engine
    if row is None or engine is None:
        return
    app.push_screen(YamlScreen(f"{row.kind} {row.namespace}/{row.name}",
                               lambda: engine.get_object(row.store, row.namespace, row.name)))


def scale(app: Any, key: str) -> None:
    from app.screens.dialogs import ChoiceScreen

    row = row_for(app, key)
    if row is None or app.engine is None or _refused(app, f"scaling {row.name if row else key}"):
        return
    top = max(8, row.replicas_desired + 2, row.autoscaling[1] if row.autoscaling else 0)
    choices = [(str(n), f"{n} replica{'s' if n != 1 else ''}" + ("  (now)" if n == row.replicas_desired else ""))
               for n in range(0, top + 1)]

    def chosen(value: str | None) -> None:
        if value is not None and int(value) != row.replicas_desired:
            app.run_worker(_scale(app, row, int(value)), group="endpoint-actions", exit_on_error=False)

    app.push_screen(ChoiceScreen(f"Replicas of {row.name} ({row.ready_text} ready)", choices,
                                 initial=str(row.replicas_desired)), chosen)


async def _scale(app: Any, row: EndpointRow, replicas: int) -> None:
    from app.cluster import endpoints as ep
    from app.cluster.actions import ActionError
    from app.cluster.connection import ApiError

    engine = app.engine
    if engine is None:
        return
    try:
        how = await ep.scale(engine.connection, row, replicas, readonly=app.readonly, discovery=engine.discovery)
    except (ActionError, ApiError) as exc:
        app.notify(str(exc), severity="error", timeout=10)
        return
    warning = "warning:" in how
    app.notify(f"{row.name}: {how}; the list follows the cluster", severity="warning" if warning else "information",
               timeout=10 if warning else 5)


def delete(app: Any, keys: list[str]) -> None:
    from app.screens.dialogs import ConfirmScreen

    rows = [r for r in (row_for(app, k) for k in keys) if r is not None]
    if not rows or _refused(app, f"deleting {len(rows)} endpoint(s)"):
        return
    names = ", ".join(f"{r.namespace}/{r.name}" for r in rows[:5]) + (" …" if len(rows) > 5 else "")
    question = f"Delete {len(rows)} endpoint{'s' if len(rows) > 1 else ''}: {names}? Their model servers stop."

    def confirmed(answer: bool | None) -> None:
        if answer:
            app.run_worker(_delete(app, rows), group="endpoint-actions", exit_on_error=False)

    app.push_screen(ConfirmScreen(question), confirmed)


async def _delete(app: Any, rows: list[EndpointRow]) -> None:
    from app.cluster import endpoints as ep
    from app.cluster.actions import ActionError
    from app.cluster.connection import ApiError

    engine = app.engine
    if engine is None:
        return
    done = 0
    for row in rows:
        try:
            await ep.delete(engine.connection, row, readonly=app.readonly, discovery=engine.discovery)
            done += 1
        except (ActionError, ApiError) as exc:
            app.notify(f"{row.name}: {exc}", severity="error", timeout=10)
    if done:
        app.notify(f"{done} endpoint{'s' if done > 1 else ''} deleted; the list follows the cluster")


class ManifestPathScreen(ModalScreen["str | None"]):
    """Asks for the manifest file to deploy; esc cancels."""

    DEFAULT_CSS = """
    ManifestPathScreen { align: center middle; background: $background 60%; }
    #manifest-box { width: 80; height: auto; border: round $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="deploy.cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="manifest-box") as box:
            box.border_title = "Deploy an endpoint from a manifest"
            yield Static("A YAML file with a JumpStartModel, InferenceEndpointConfig or InferenceService: it is "
                         "checked, dry-run on the server, then created.")
            yield Input(placeholder="path/to/endpoint.yaml", id="manifest-path")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def deploy(app: App) -> None:
    if _refused(app, "deploying an endpoint"):
        return

    def chosen(path: str | None) -> None:
        if path:
            deploy_file(app, path)

    app.push_screen(ManifestPathScreen(), chosen)


def deploy_file(app: Any, path: str) -> None:
    """Read and check the manifest (endpoint kinds only, as `hyperdesk deploy`), then the Jobs pane's checked,
    dry-run-first, all-or-nothing submit."""
    from app.cluster.actions import ActionError, parse_manifest
    from app.cluster.endpoints import check_endpoint_manifest
    from app.cluster.files import read_text_file

    try:
        documents = parse_manifest(read_text_file(path), path)
        check_endpoint_manifest(documents, path)
    except ActionError as exc:
        app.notify(str(exc), title="Not deployed", severity="error", timeout=15)
    else:
        app._submit_documents(documents, path)  # noqa: SLF001 - the app's submit worker
