"""The Spaces pane: JupyterLab and Code Editor spaces (jupyter-k8s Workspaces or Kubeflow Notebooks).

Rows come from the watch stores through `app.model.spaces`; actions run in this pane's workers through
`app.cluster.spaces` (the same core as `hyperdesk space ...`), and the watch brings their result back.
"Mine" shows the spaces created by the user the cluster says this is (a SelfSubjectReview), when that user owns any.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime
from typing import Any, Callable, Mapping

from rich.text import Text
from textual.binding import Binding

from app.model.jobs import human_duration, utcnow
from app.model.spaces import (
    NAME_LABEL, STATUSES, SpaceRow, notebook_row, offered_gpu_resources, space_detail, space_rows, template_info,
    workspace_row,
)
from app.screens.pane import Pane, sort_bindings
from widgets.resource_table import Row

ACTIVITY_SECONDS = 30.0
IDENTITY_RETRY_SECONDS = 30.0
"""After the cluster could not be reached to ask who the user is, ask again at the next change this late."""
STATUS_STYLES = {"Running": "green", "Starting": "cyan", "Stopping": "cyan", "Stopped": "dim", "Degraded": "red",
                 "Preempted": "yellow"}


class SpacesPane(Pane):
    pane_id = "spaces"
    title = "Spaces"
    key = "1"
    columns = ("NAME", "NAMESPACE", "DISPLAY NAME", "OWNER", "APP", "STATUS", "COMPUTE", "GPUS", "STORAGE", "IDLE",
               "AGE", "CONNECTION", "QUEUE", "PRIORITY", "TEMPLATE", "IMAGE")
    purpose = "Your JupyterLab and Code Editor spaces on the cluster."
    kinds = ("workspaces", "workspacetemplates", "notebooks", "pods", "events", "nodes")
    BINDINGS = [
        Binding("d", "detail", "Describe", id="spaces.detail"),
        Binding("y", "yaml", "YAML", id="spaces.yaml"),
        Binding("n", "new", "New space", id="spaces.new"),
        Binding("s", "start_stop", "Start/stop", id="spaces.start_stop"),
        Binding("ctrl+d", "delete", "Delete", id="spaces.delete"),
        Binding("e", "edit", "Edit resources", id="spaces.edit"),
        Binding("t", "templates", "Templates", id="spaces.templates"),
        Binding("m", "mine", "Mine/all", id="spaces.mine"),
        Binding("c", "connect", "Connect", id="spaces.connect"),
        *sort_bindings({"N": "NAME", "O": "OWNER", "S": "STATUS", "G": "GPUS", "A": "AGE", "T": "TEMPLATE"}, "spaces"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.connections: dict[str, str] = {}
        """Space key `namespace/name` -> its active connection (`127.0.0.1:18888 ssh`), kept by the Connect issue."""
        self.user: str | None = None
        """Who the cluster says the user is; None until known (or when it cannot say)."""
        self.mine = True
        """Show only the user's spaces, when the user is known and owns any."""
        self.now: Callable[[], datetime] = utcnow
        self.templates: dict[str, dict] = {}
        """WorkspaceTemplates fetched once (they live in jupyter-k8s-system, outside a namespaced view)."""
        self.activity: dict[str, datetime] = {}
        """Space key -> its JupyterLab's last activity (polled from `/api/status` while the pane is shown)."""
        self._scope_of: tuple[Any, str | None] | None = None
        """(engine, namespace) that the user, the templates and the activity were learnt for."""
        self._identity_retry: float | None = None
        self._activity_forbidden = False
        self._poll_rows: list[SpaceRow] = []
        self._polled: frozenset[str] = frozenset()
        self._scope = ""
        self._stores: Mapping[str, Mapping[str, dict]] = {}

    # --- rows ---------------------------------------------------------------------------------------------------

    def filtering_mine(self, rows: list[SpaceRow]) -> bool:
        return self.mine and self.user is not None and any(r.owner == self.user for r in rows)

    def rows(self, stores: Mapping[str, Mapping[str, dict]]) -> list[Row]:
        stores = self._with_templates(stores)
        self._stores = stores
        self._ask_identity()
        every = space_rows(stores, activity=self.activity)
        shown = [r for r in every if r.owner == self.user] if self.filtering_mine(every) else every
        self._watch_activity(shown)
        if self.filtering_mine(every):
            self._scope = f"Mine ({self.user}): {len(shown)} of {len(every)} spaces — m shows all"
        elif self.user is not None and not self.mine:
            self._scope = f"All {len(every)} spaces — m shows only yours ({self.user})"
        elif self.user is not None:
            self._scope = f"{self.user} owns none of these {len(every)} spaces: showing all"
        else:
            self._scope = ""
        now = self.now()
        return [self._row(r, now) for r in shown]

    def _row(self, r: SpaceRow, now: datetime) -> Row:
        connection = self.connections.get(r.space_key, "")
        cells = (
            (r.name, r.name),
            (r.namespace, r.namespace),
            (r.display_name, r.display_name),
            (r.owner, r.owner),
            (r.app_type, r.app_type),
            (Text(r.status, style=STATUS_STYLES.get(r.status, "")), STATUSES.index(r.status) if r.status in STATUSES else 99),
            (" ".join(p for p in (r.cpu and f"{r.cpu} CPU", r.memory) if p), r.compute_text),
            (r.gpu_text, r.gpus + r.mig_count),
            (r.storage, r.storage),
            (r.idle_text(now), r.idle_seconds(now)),
            (human_duration(r.age_seconds(now)), -(r.age_seconds(now) or 0)),
            (connection, connection),
            (r.queue.removesuffix("-localqueue") if r.queue else "", r.queue),
            (r.priority or "", r.priority),
            (r.template, r.template),
            (r.image.rsplit("/", 1)[-1], r.image),
        )
        return Row(r.key, tuple(c for c, _ in cells), sort=tuple(v for _, v in cells))

    def show_notice(self, text: str) -> None:
        super().show_notice(f"{self._scope}\n{text}" if self._scope and text else (self._scope or text))

    def _ask_identity(self) -> None:
        """Who the user is and the templates, asked once per cluster connection and namespace (a `:ctx` or `:ns`
        asks again, forgetting what was learnt of the old one); asked again after a failure to reach the cluster."""
        engine = getattr(self.app, "engine", None)
        if engine is None:
            return
        scope = (engine, getattr(self.app, "namespace", None))
        if self._scope_of is not None and self._scope_of[0] is engine and self._scope_of[1] == scope[1]:
            if self._identity_retry is None or time.monotonic() < self._identity_retry:
                return
        else:
            if self._scope_of is None or self._scope_of[0] is not engine:
                self.user, self.activity, self._activity_forbidden = None, {}, False
            self.templates, self._polled = {}, frozenset()
        self._scope_of, self._identity_retry = scope, None
        self.run_worker(self._whoami(engine.connection, scope), group="spaces-identity", exclusive=True,
                        exit_on_error=False)

    def _watch_activity(self, shown: list[SpaceRow]) -> None:
        """(Re)start the activity poll when the set of shown running spaces changes, so a space that starts gets
        its idle time at once rather than at the next round. Only the rows shown are asked about; none after the
        server refused the first (the user may not use the service proxy)."""
        self._poll_rows = [r for r in shown if r.status == "Running" and r.kind == "Workspace"]
        running = frozenset(r.space_key for r in self._poll_rows)
        if self._activity_forbidden or running == self._polled or getattr(self.app, "engine", None) is None:
            return
        self._polled = running
        if running:
            self.run_worker(self._poll_activity(), group="spaces-activity", exclusive=True, exit_on_error=False)
        else:
            self.workers.cancel_group(self, "spaces-activity")

    async def _poll_activity(self) -> None:
        """How long each shown running space is idle, from its JupyterLab, every ACTIVITY_SECONDS while the pane is
        shown. Self-rescheduling: one round at a time; a round that cannot ask leaves the idle time unknown."""
        from app.cluster.connection import ApiError
        from app.cluster.spaces import ActivityForbidden, activities

        while True:
            engine = getattr(self.app, "engine", None)
            if engine is not None and self.display and self._poll_rows:
                try:
                    found = await activities(engine.connection, self._poll_rows, budget=ACTIVITY_SECONDS)
                except ActivityForbidden as exc:
                    self._activity_forbidden = True
                    self.notify(f"idle times are not shown: {exc}", severity="warning")
                    return
                except ApiError:
                    found = self.activity  # the cluster is not reachable: the engine says so; keep what was known
                if found != self.activity:
                    self.activity = found
                    self._refresh()
            await asyncio.sleep(ACTIVITY_SECONDS)

    async def _whoami(self, connection: Any, scope: tuple[Any, str | None]) -> None:
        from app.cluster.connection import ApiError
        from app.cluster.spaces import template_objects, whoami

        try:
            user = await whoami(connection)
        except ApiError:
            self._identity_retry = time.monotonic() + IDENTITY_RETRY_SECONDS
            return
        try:
            templates = await template_objects(connection, scope[1])
        except ApiError:
            templates = {}
        if self._scope_of != scope:
            return  # the context or namespace changed while asking: the new scope asks for itself
        self.user, self.templates = user, templates
        self._refresh()

    def _with_templates(self, stores: Mapping[str, Mapping[str, dict]]) -> Mapping[str, Mapping[str, dict]]:
        """The stores, with the templates fetched outside a namespaced view added (the store's own copies win)."""
        if not self.templates:
            return stores
        return {**stores, "workspacetemplates": {**self.templates, **(stores.get("workspacetemplates") or {})}}

    def _refresh(self) -> None:
        show = getattr(self.app, "_show_pane_state", None)
        if show is not None:
            show(self)

    def space(self, key: str) -> SpaceRow | None:
        """The row of one space, built from its own object (and its pods), not from every space's."""
        store, _, space_key = key.partition("/")
        return self._space_of(store, space_key, self._current_stores((store, "pods", "workspacetemplates")))

    def _space_of(self, store: str, space_key: str, stores: Mapping[str, Mapping[str, dict]]) -> SpaceRow | None:
        obj = (stores.get(store) or {}).get(space_key)
        if obj is None:
            return None
        namespace, _, name = space_key.partition("/")
        label = NAME_LABEL if store == "workspaces" else "notebook-name"
        pods = {k: p for k, p in (stores.get("pods") or {}).items()
                if k.startswith(f"{namespace}/") and ((p.get("metadata") or {}).get("labels") or {}).get(label) == name}
        row = workspace_row(obj, stores.get("workspacetemplates") or {}, pods) if store == "workspaces" \
            else notebook_row(obj, pods)
        when = self.activity.get(row.space_key)
        return replace(row, idle_since=when) if when is not None else row

    def _current_stores(self, kinds: tuple[str, ...] | None = None) -> Mapping[str, Mapping[str, dict]]:
        engine = getattr(self.app, "engine", None)
        if engine is None:
            return self._stores
        return self._with_templates({k: engine.stores[k].snapshot() for k in kinds or self.kinds
                                     if k in engine.stores})

    def _selected(self) -> list[SpaceRow]:
        rows = {r.key: r for r in space_rows(self._current_stores(), activity=self.activity)}
        return [rows[k] for k in self.table.selection() if k in rows]

    def _refused(self, doing: str) -> bool:
        if getattr(self.app, "readonly", False):
            self.notify(f"hyperdesk is read-only (--readonly): not {doing}", severity="error")
            return True
        return False

    # --- views --------------------------------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: Any) -> None:
        event.stop()
        self.action_detail()

    def action_detail(self) -> None:
        from app.screens.space_views import SpaceDetailScreen

        key = self.table.cursor_key
        if key is None or self.space(key) is None:
            return

        store, _, space_key = key.partition("/")

        def load() -> Any:
            stores = self._current_stores((store, "pods", "workspacetemplates", "events"))
            row = self._space_of(store, space_key, stores)
            return space_detail(row, stores) if row is not None else None

        self.app.push_screen(SpaceDetailScreen(load, now=self.now, yaml_view=self._open_yaml))

    def action_yaml(self) -> None:
        key = self.table.cursor_key
        if key is not None:
            self._open_yaml(key)

    def _open_yaml(self, key: str) -> None:
        from app.screens.yaml_view import YamlScreen

        engine = getattr(self.app, "engine", None)
        row = self.space(key)
        if engine is None or row is None:
            return
        store = key.split("/", 1)[0]
        self.app.push_screen(YamlScreen(f"{row.kind} {row.namespace}/{row.name}",
                                        lambda: engine.get_object(store, row.namespace, row.name)))

    def action_templates(self) -> None:
        engine = getattr(self.app, "engine", None)
        if engine is not None:
            self.run_worker(self._open_templates(engine), group="spaces-form", exclusive=True, exit_on_error=False)

    async def _open_templates(self, engine: Any) -> None:
        from app.cluster.connection import ApiError
        from app.cluster.spaces import fetch_templates
        from app.screens.space_views import TemplatesScreen

        try:
            templates = await fetch_templates(engine.connection, getattr(self.app, "namespace", None))
        except ApiError as exc:
            self.notify(f"cannot read the WorkspaceTemplates: {exc}", severity="error")
            return
        self.app.push_screen(TemplatesScreen(lambda: templates))

    def action_mine(self) -> None:
        self.mine = not self.mine
        if self.user is None:
            self.notify("the cluster did not say who you are: every space is shown", severity="warning")
        self._refresh()

    def action_connect(self) -> None:
        key = self.table.cursor_key
        row = self.space(key) if key is not None else None
        if row is None:
            return
        connect = getattr(self.app, "connect_space", None)
        if connect is None:
            self.notify("connecting to spaces is not available in this build", severity="warning")
        else:
            connect(row.space_key)

    # --- actions ------------------------------------------------------------------------------------------------

    def action_new(self) -> None:
        engine = getattr(self.app, "engine", None)
        if engine is None or self._refused("creating a space"):
            return
        self.run_worker(self._open_form(engine), group="spaces-form", exclusive=True, exit_on_error=False)

    async def _open_form(self, engine: Any) -> None:
        """Templates are fetched (they live in jupyter-k8s-system, outside a namespaced view), then the form opens."""
        from app.cluster.spaces import fetch_templates
        from app.cluster.connection import ApiError
        from app.screens.space_views import SpaceFormScreen

        try:
            templates = await fetch_templates(engine.connection, getattr(self.app, "namespace", None))
        except ApiError as exc:
            self.notify(f"cannot read the WorkspaceTemplates: {exc}", severity="error")
            return
        stores = self._current_stores()
        namespace = getattr(self.app, "namespace", None)
        all_stores = engine.stores
        queues: dict[str, list[str]] = {}
        if "localqueues" in all_stores:
            for lq in all_stores["localqueues"].snapshot().values():
                queues.setdefault(lq["metadata"].get("namespace", ""), []).append(lq["metadata"]["name"])
        known = set(all_stores["namespaces"].keys()) if "namespaces" in all_stores else set()
        known |= {k.split("/", 1)[0] for k in stores.get("workspaces") or {}} | set(queues)
        namespaces = sorted(known | ({namespace} if namespace else set()))
        namespace = namespace or (next((n for n in namespaces if n in queues), "") if queues else "")
        priorities = [c["metadata"]["name"] for c in sorted(
            all_stores["workloadpriorityclasses"].snapshot().values(), key=lambda c: -int(c.get("value") or 0))
        ] if "workloadpriorityclasses" in all_stores else []
        nodes = stores.get("nodes")
        form = SpaceFormScreen(templates, namespace=namespace or "", namespaces=namespaces,
                               gpu_offer=offered_gpu_resources(nodes.values()) if nodes else None,
                               queues=queues, priorities=priorities, owner=self.user or "",
                               submit=self._submit_create)
        self.app.push_screen(form, self._created)

    def _created(self, manifest: dict | None) -> None:
        if manifest is not None:
            meta = manifest["metadata"]
            self.notify(f"space {meta['namespace']}/{meta['name']} created; it starts now")

    async def _submit_create(self, manifest: dict) -> str | None:
        """The form's create: the server's checks (may the user create there, is the name free), then the POST.
        None when created, else why not (the form shows it and stays open)."""
        from app.cluster import spaces
        from app.cluster.actions import ActionError
        from app.cluster.connection import ApiError

        engine = getattr(self.app, "engine", None)
        if engine is None:
            return "not connected to a cluster"
        meta = manifest["metadata"]
        try:
            problems = await spaces.check_create(engine.connection, meta["namespace"], meta["name"])
            if problems:
                return "; ".join(problems) + " (nothing was created)"
            await spaces.create_manifest(engine.connection, manifest, readonly=self.app.readonly)  # type: ignore[attr-defined]
        except ActionError as exc:
            return str(exc)
        except ApiError as exc:
            return f"{exc} (nothing was created)"
        return None

    def action_start_stop(self) -> None:
        rows = self._selected()
        if not rows or self._refused(f"starting or stopping {len(rows)} space(s)"):
            return
        self.run_worker(self._start_stop_worker(rows), group="spaces-actions", exit_on_error=False)

    async def _start_stop_worker(self, rows: list[SpaceRow]) -> None:
        from app.cluster import spaces
        from app.cluster.actions import ActionError

        engine = getattr(self.app, "engine", None)
        if engine is None:
            return
        for row in rows:
            start = row.status in ("Stopped", "Preempted", "Stopping")
            change = spaces.set_running if row.kind == "Workspace" else spaces.set_notebook_running
            try:
                await change(engine.connection, row.namespace, row.name, start,
                             readonly=self.app.readonly)  # type: ignore[attr-defined]
            except ActionError as exc:
                self.notify(str(exc), severity="error", timeout=10)
            else:
                self.notify(f"{'starting' if start else 'stopping'} {row.name}")

    def action_delete(self) -> None:
        from app.cluster.spaces import storage_note
        from app.screens.dialogs import ConfirmScreen

        rows = self._selected()
        if not rows or self._refused(f"deleting {len(rows)} space(s)"):
            return
        if len(rows) == 1:
            note = storage_note(rows[0])
            question = f"Delete space {rows[0].namespace}/{rows[0].name}? {note[:1].upper()}{note[1:]}."
        else:
            notes = dict.fromkeys(f"{r.name}: {storage_note(r)}" for r in rows[:5])
            more = f"\n…and {len(rows) - 5} more" if len(rows) > 5 else ""
            question = f"Delete {len(rows)} spaces?\n" + "\n".join(notes) + more

        def confirmed(answer: bool | None) -> None:
            if answer:
                self.run_worker(self._delete_worker(rows), group="spaces-actions", exit_on_error=False)

        self.app.push_screen(ConfirmScreen(question), confirmed)

    async def _delete_worker(self, rows: list[SpaceRow]) -> None:
        from app.cluster import spaces
        from app.cluster.actions import ActionError

        engine = getattr(self.app, "engine", None)
        if engine is None:
            return
        for row in rows:
            try:
                await spaces.delete(engine.connection, row.namespace, row.name, store=row.key.split("/", 1)[0],
                                    readonly=self.app.readonly)  # type: ignore[attr-defined]
            except ActionError as exc:
                self.notify(str(exc), severity="error", timeout=10)
            else:
                self.notify(f"deleted {row.name}")

    def action_edit(self) -> None:
        from app.screens.space_views import EditResourcesScreen

        key = self.table.cursor_key
        row = self.space(key) if key is not None else None
        if row is None or self._refused(f"editing {row.name if row else ''}"):
            return
        if row.status not in ("Stopped", "Preempted"):
            self.notify(f"{row.name} is {row.status}: stop it (s) before changing its resources", severity="warning")
            return
        stores = self._current_stores(("nodes", "workspacetemplates"))
        nodes = stores.get("nodes")
        template_obj = (stores.get("workspacetemplates") or {}).get(f"{row.template_namespace}/{row.template}")

        async def submit(values: dict) -> str | None:
            return await self._submit_edit(row, values)

        def saved(values: dict | None) -> None:
            if values is not None:
                self.notify(f"{row.name}'s resources changed; start it (s) to use them")

        self.app.push_screen(EditResourcesScreen(
            f"Resources of {row.namespace}/{row.name}", cpu=row.cpu, memory=row.memory, gpus=row.gpus,
            mig_profile=row.mig_profile, template=template_info(template_obj) if template_obj else None,
            gpu_offer=offered_gpu_resources(nodes.values()) if nodes else None, submit=submit), saved)

    async def _submit_edit(self, row: SpaceRow, values: dict) -> str | None:
        from app.cluster import spaces
        from app.cluster.actions import ActionError
        from app.cluster.connection import ApiError

        engine = getattr(self.app, "engine", None)
        if engine is None:
            return "not connected to a cluster"
        try:
            await spaces.edit_resources(engine.connection, row.namespace, row.name,
                                        cpu=values["cpu"] if values["cpu"] != row.cpu else "",
                                        memory=values["memory"] if values["memory"] != row.memory else "",
                                        gpus=values["gpus"], mig_profile=values["mig_profile"],
                                        store=row.key.split("/", 1)[0],
                                        readonly=self.app.readonly)  # type: ignore[attr-defined]
        except ActionError as exc:
            return str(exc)
        except ApiError as exc:
            return f"{exc} (nothing was changed)"
        return None
