"""HyperdeskApp: the panes, their navigation, command mode, filter, help, split mode and themes.

The App holds UI state only. Cluster access happens in workers (`app/cluster`), whose results come back as
state the top bar and the panes show; the screen never waits on the network.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Footer, Tab, Tabs

from app import commands
from app.cluster.connection import ApiError, ClusterConnection, Health
from app.model.status import describe_stores
from app.cluster.kubeconfig import Kubeconfig
from app.config import Settings, data_dir
from app.screens.dialogs import ChoiceScreen, ConfirmScreen, HelpScreen
from app.model.jobs import JobDetail, JobRow, job_detail, job_rows
from app.cluster import actions
from app.cluster.queues import ClusterQueueRow, queue_positions, quota_rows
from app.model.templates import TEMPLATES
from app.screens.job_detail import JobDetailScreen
from app.screens.job_form import JobFormScreen
from app.screens.logs import LogsScreen
from app.screens.panes import PANE_CLASSES, PANE_IDS, JobsPane, Pane
from app.screens.quotas import QuotaScreen
from app.screens.yaml_view import YamlScreen
from app.tunnels.manager import TunnelManager, runtime_dir
from themes import BUILTIN, DEFAULT, STYLESHEET, load_user_themes
from widgets.prompt import Prompt
from widgets.topbar import TopBar, TopBarState

if TYPE_CHECKING:
    from app.cluster.engine import ClusterEngine

log = logging.getLogger(__name__)

# Which pane opens beside which when split mode is toggled with `v`.
SPLIT_PARTNER = {"jobs": "training", "training": "jobs", "spaces": "gpus", "gpus": "spaces", "endpoints": "gpus"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
PROBE_SECONDS = 15.0
POSITIONS_SECONDS = 5.0
TERMINAL_CHECK_SECONDS = 1.0


class StoresChanged(Message):
    """A store changed (coalesced by the engine: at most one per store per tick)."""

    def __init__(self, store: str) -> None:
        super().__init__()
        self.store = store


class PaneCommands(Provider):
    """hyperdesk's own entries in the ctrl+p command palette."""

    async def search(self, query: str) -> Hits:
        app = self.app
        assert isinstance(app, HyperdeskApp)
        matcher = self.matcher(query)
        entries = [(f"Show the {cls.title} pane", partial(app.action_show_pane, cls.pane_id)) for cls in PANE_CLASSES]
        entries.append(("Toggle split view", app.action_toggle_split))
        entries.append(("Show keys for the focused pane", app.action_help))
        for text, callback in entries:
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=None)


class HyperdeskApp(App[None]):
    CSS_PATH = STYLESHEET
    TITLE = "hyperdesk"
    COMMANDS = App.COMMANDS | {PaneCommands}

    BINDINGS = [
        *(
            Binding(cls.key, f"show_pane('{cls.pane_id}')", cls.title, show=False, id=f"app.pane.{cls.pane_id}")
            for cls in PANE_CLASSES
        ),
        Binding("colon", "command", "Command", id="app.command"),
        Binding("slash", "filter", "Filter", id="app.filter"),
        Binding("v", "toggle_split", "Split", id="app.split"),
        Binding("ctrl+t", "tunnels", "Tunnels", show=False, id="app.tunnels"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("escape", "back", "Back", show=False, id="app.back"),
        Binding("q", "quit_app", "Quit", id="app.quit"),
    ]

    active_pane: reactive[str] = reactive("jobs", init=False)
    split_pane: reactive[str | None] = reactive(None, init=False)

    def __init__(
        self,
        settings: Settings,
        kubeconfig: Kubeconfig | None = None,
        startup_errors: list[str] | None = None,
        tunnels: TunnelManager | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.kubeconfig = kubeconfig
        self.startup_errors = list(startup_errors or [])
        self.tunnels = tunnels or TunnelManager(publish_dir=runtime_dir())
        self.connect_sessions: dict = {}
        """(context, space key) -> its ConnectSession (app/tunnels/session.py), kept while the app runs and its
        context is the current one."""
        self.readonly = settings.readonly
        context = kubeconfig.context(settings.context) if kubeconfig else None
        self.context_name: str | None = context.name if context else settings.context
        self.namespace: str | None = None if settings.all_namespaces else (
            settings.namespace or (context.namespace if context else None)
        )
        if kubeconfig is None:
            self.health = Health("no-config", "no kubeconfig")
        elif context is None:
            known = ", ".join(kubeconfig.context_names) or "none"
            self.health = Health("error", (
                f"no context {settings.context!r} in the kubeconfig (known: {known})" if settings.context else
                f"the kubeconfig has no current-context: pick one with --context or :ctx (known: {known})"))
        else:
            self.health = Health("connecting")
        self.engine: ClusterEngine | None = None
        self._filter_pane: Pane
        self._command_pane: Pane
        self._engines: set[ClusterEngine] = set()
        self._stale_panes: set[str] = set()
        self._mounted = False
        self.probe_seconds = PROBE_SECONDS
        self._register_themes()
        if settings.keys:
            self._apply_keymap(settings.keys)

    # ----------------------------------------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield TopBar(id="topbar")
        yield Tabs(
            *(Tab(f"{self._pane_key(cls)} {cls.title}", id=cls.pane_id) for cls in PANE_CLASSES),
            active=self.active_pane,
            id="pane-tabs",
        )
        with Horizontal(id="panes"):
            for cls in PANE_CLASSES:
                yield cls()
        yield Prompt(self._complete, id="prompt")
        yield Footer()

    def _pane_key(self, cls: type[Pane]) -> str:
        """The key that shows a pane, after the user's keymap."""
        return self.settings.keys.get(f"app.pane.{cls.pane_id}", cls.key)

    def on_mount(self) -> None:
        self._mounted = True
        for cls in PANE_CLASSES:
            self.pane(cls.pane_id).border_title = f"{self._pane_key(cls)} {cls.title}"
        self._filter_pane = self._command_pane = self.pane(self.active_pane)
        self.query_one(Prompt).close()
        self._layout_panes()
        self._show_state()
        for message in self.startup_errors:
            self.notify(message, title="Configuration", severity="error", timeout=20)
        if self.health.state == "connecting":
            self.connect_cluster()
        self.set_interval(1.0, self._tick_stale_ages)
        if not self.is_headless:
            self._watch_terminal()

    def pane(self, pane_id: str) -> Pane:
        return self.query_one(f"#{pane_id}", Pane)

    @property
    def _live(self) -> bool:
        """Mounted and not shutting down: while Textual closes the app it removes the panes one by one, and a
        message or a timer that arrives then finds some panes gone."""
        return self._mounted and self.is_running

    def focused_pane(self) -> Pane:
        node: Widget | None = self.focused
        while node is not None and not isinstance(node, Pane):
            node = node.parent if isinstance(node.parent, Widget) else None
        return node if isinstance(node, Pane) else self.pane(self.active_pane)

    def _layout_panes(self) -> None:
        container = self.query_one("#panes")
        visible = [self.active_pane] + ([self.split_pane] if self.split_pane else [])
        if self.split_pane:
            container.move_child(self.pane(self.split_pane), after=self.pane(self.active_pane))
        for pane_id in PANE_IDS:
            self.pane(pane_id).display = pane_id in visible
            if pane_id in visible and pane_id in self._stale_panes:
                self._show_pane_state(self.pane(pane_id))
        container.set_class(self.split_pane is not None, "split")
        tabs = self.query_one(Tabs)
        if tabs.active != self.active_pane:
            tabs.active = self.active_pane
        self.pane(self.active_pane).focus()

    def watch_active_pane(self) -> None:
        self._layout_panes()

    def watch_split_pane(self) -> None:
        self._layout_panes()

    @on(Tabs.TabActivated, "#pane-tabs")
    def _tab_clicked(self, event: Tabs.TabActivated) -> None:
        if self._mounted and event.tab.id and event.tab.id != self.active_pane:
            self.action_show_pane(event.tab.id)

    # ---------------------------------------------------------------------------------------------- actions

    def action_show_pane(self, pane_id: str) -> None:
        if self.split_pane == pane_id:
            self.split_pane = self.active_pane
        self.active_pane = pane_id
        self.pane(pane_id).focus()

    def action_toggle_split(self) -> None:
        self.split_pane = None if self.split_pane else SPLIT_PARTNER[self.active_pane]

    def action_command(self) -> None:
        self._command_pane = self.focused_pane()
        self.query_one(Prompt).open("command")

    def focused_pane_before_prompt(self) -> Pane:
        pane = self._command_pane
        return pane if pane.display else self.pane(self.active_pane)

    def action_filter(self) -> None:
        self._filter_pane = self.focused_pane()
        self.query_one(Prompt).open("filter", self._filter_pane.table.filter_text)

    def action_help(self) -> None:
        pane = self.focused_pane()
        rows: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        # hyperdesk's own keys first, then the pane's, then the generic table and focus keys.
        ordered = sorted(self.active_bindings.values(), key=lambda a: (a.node is not self, not a.binding.id))
        for active in ordered:
            binding = active.binding
            if binding.description and binding.action not in seen:
                seen.add(binding.action)
                rows.append((self.get_key_display(binding), binding.description, binding.id or ""))
        verbs = [spec for spec in commands.VERBS.values() if not spec.startswith("quit")]
        panes = "|".join(commands.PRIMARY)
        self.push_screen(HelpScreen(f"{pane.title} pane", rows, [f"{panes} — go to a pane", *verbs]))

    def action_back(self) -> None:
        """esc: close what is open, innermost first — filter, then split view."""
        table = self.focused_pane().table
        if table.filter_text:
            table.set_filter("")
            self._show_state()
        elif self.split_pane:
            self.split_pane = None

    async def action_quit(self) -> None:
        """ctrl+q and the palette's Quit ask first too while tunnels are open."""
        self.action_quit_app()

    def action_quit_app(self) -> None:
        if len(self.tunnels):
            count = len(self.tunnels)
            question = f"{count} tunnel{'s' if count > 1 else ''} open ({', '.join(self.tunnels.names())}). Quit and close {'them' if count > 1 else 'it'}?"
            self.push_screen(ConfirmScreen(question), self._quit_if_confirmed)
        else:
            self.exit()

    async def _quit_if_confirmed(self, confirmed: bool | None) -> None:
        if confirmed:
            await self.tunnels.close_all()
            self.exit()

    # ------------------------------------------------------------------ connect (app/screens/connecting.py)

    def connect_space(self, key: str) -> None:
        """The Spaces pane's `c` and `:connect NAMESPACE/NAME`: the connect dialog, opening the space's tunnel."""
        from app.screens.connecting import connect_space

        connect_space(self, key)

    def action_tunnels(self) -> None:
        self.open_tunnels()

    def open_tunnels(self) -> None:
        from app.screens.connecting import open_tunnels

        open_tunnels(self)

    def sync_space_connections(self) -> None:
        """The Spaces pane shows which spaces have a tunnel (its `connections` attribute)."""
        from app.screens.connecting import connections

        for pane in self.query("#spaces"):
            if hasattr(pane, "connections") and isinstance(pane, Pane):
                pane.connections = connections(self)
                if pane.display:
                    self._show_pane_state(pane)

    # ----------------------------------------------------------------------------------------- job views

    def _job_stores(self) -> dict[str, dict]:
        if self.engine is None:
            return {}
        return {k: self.engine.stores[k].snapshot() for k in JobsPane.kinds if k in self.engine.stores}

    def job_row(self, key: str) -> JobRow | None:
        return next((row for row in job_rows(self._job_stores()) if row.key == key), None)

    def open_job_detail(self, key: str) -> None:
        def load() -> JobDetail | None:
            row = self.job_row(key)
            return job_detail(row, self._job_stores()) if row is not None else None

        if load() is not None:
            self.push_screen(JobDetailScreen(load))

    def open_job_yaml(self, key: str) -> None:
        row = self.job_row(key)
        if row is None or self.engine is None:
            return
        engine, store_name = self.engine, key.split("/", 1)[0]
        self.push_screen(YamlScreen(f"{row.kind} {row.namespace}/{row.name}",
                                    lambda: engine.get_object(store_name, row.namespace, row.name)))

    def open_yaml(self, row: JobRow) -> None:
        self.open_job_yaml(row.key)

    def open_logs(self, row: JobRow) -> None:
        if not row.pods:
            self.notify(f"{row.name} has no pods yet: nothing has logged", severity="warning")
            return
        self.push_screen(LogsScreen(f"{row.kind} {row.namespace}/{row.name}", list(row.pods),
                                    lambda: self.engine.connection if self.engine else None))

    def open_job_logs(self, key: str) -> None:
        row = self.job_row(key)
        if row is not None:
            self.open_logs(row)

    def open_job_training(self, key: str) -> None:
        """The Jobs pane's `t`: the Training pane, charting the job's MLflow run."""
        row = self.job_row(key)
        if row is not None:
            self.action_show_pane("training")
            self.pane("training").show_job_runs(row.namespace, row.name)  # type: ignore[attr-defined]

    def show_job(self, key: str) -> None:
        """The Training pane's `j`: the Jobs pane with the cursor on the run's job."""
        self.action_show_pane("jobs")
        table = self.pane("jobs").table
        if key in table.rows:
            table.move_cursor(row=table.get_row_index(key), animate=False)

    def open_quotas(self) -> None:
        def load() -> list[ClusterQueueRow]:
            if self.engine is None:
                return []
            stores = self.engine.stores
            return quota_rows(stores["clusterqueues"].snapshot() if "clusterqueues" in stores else {},
                              stores["localqueues"].snapshot() if "localqueues" in stores else {})

        self.push_screen(QuotaScreen(load))

    @work(exclusive=True, group="positions", exit_on_error=False)
    async def poll_positions(self) -> None:
        """Queue positions from Kueue's visibility API, every POSITIONS_SECONDS while the Jobs pane is shown.
        Self-rescheduling: one request round at a time, never overlapping."""
        while True:
            pane = self.pane("jobs")
            engine = self.engine
            if engine is not None and pane.display and "clusterqueues" in engine.stores:
                positions = await queue_positions(engine.connection, engine.discovery,
                                                  engine.stores["clusterqueues"].keys())
                if isinstance(pane, JobsPane) and positions != pane.positions:
                    pane.positions = positions
                    self._show_pane_state(pane)
            await asyncio.sleep(POSITIONS_SECONDS)

    def _jobs_for(self, keys: list[str]) -> list[JobRow]:
        rows = {row.key: row for row in job_rows(self._job_stores())}
        return [rows[key] for key in keys if key in rows]

    def _refuse_if_readonly(self, doing: str) -> bool:
        if self.readonly:
            self.notify(f"hyperdesk is read-only (--readonly): not {doing}", severity="error")
        return self.readonly

    def cancel_jobs(self, keys: list[str]) -> None:
        jobs = self._jobs_for(keys)
        if not jobs or self._refuse_if_readonly(f"cancelling {len(jobs)} job(s)"):
            return
        names = ", ".join(f"{j.namespace}/{j.name}" for j in jobs[:5]) + (" …" if len(jobs) > 5 else "")
        question = f"Cancel (delete) {len(jobs)} job{'s' if len(jobs) > 1 else ''}: {names}? Their pods go too."

        def confirmed(answer: bool | None) -> None:
            if answer:
                self._run_job_action("cancel", jobs)

        self.push_screen(ConfirmScreen(question), confirmed)

    def toggle_suspend_jobs(self, keys: list[str]) -> None:
        jobs = self._jobs_for(keys)
        if jobs and not self._refuse_if_readonly(f"suspending or resuming {len(jobs)} job(s)"):
            self._run_job_action("suspend", jobs)

    def change_job_priority(self, keys: list[str]) -> None:
        jobs = self._jobs_for(keys)
        if not jobs or self.engine is None or self._refuse_if_readonly("changing priorities"):
            return
        classes = sorted(self.engine.stores["workloadpriorityclasses"].snapshot().values(),
                         key=lambda c: -int(c.get("value") or 0)) if "workloadpriorityclasses" in self.engine.stores else []
        if not classes:
            self.notify("this cluster has no WorkloadPriorityClasses to choose from", severity="warning")
            return
        choices = [(c["metadata"]["name"], int(c.get("value") or 0)) for c in classes]

        def chosen(name: str | None) -> None:
            if name:
                self._run_job_action("priority", jobs, name)

        self.push_screen(ChoiceScreen(f"Priority for {len(jobs)} job(s)",
                                      [(name, f"{name} ({value})") for name, value in choices]), chosen)

    @work(group="job-actions", exit_on_error=False)
    async def _run_job_action(self, action: str, jobs: list[JobRow], argument: str | None = None) -> None:
        engine = self.engine
        if engine is None:
            return
        done = 0
        for job in jobs:
            store_name = job.key.split("/", 1)[0]
            try:
                if action == "cancel":
                    await actions.cancel(engine.connection, store_name, job.namespace, job.name,
                                         readonly=self.readonly, discovery=engine.discovery)
                elif action == "suspend":
                    await actions.set_suspended(engine.connection, store_name, job.namespace, job.name,
                                                job.state != "Suspended", readonly=self.readonly,
                                                discovery=engine.discovery)
                elif action == "priority" and argument:
                    await actions.set_priority(engine.connection, store_name, job.namespace, job.name, argument,
                                               readonly=self.readonly, discovery=engine.discovery)
                done += 1
            except (actions.ActionError, ApiError) as exc:
                self.notify(f"{job.name}: {exc}", severity="error", timeout=10)
        verb = {"cancel": "cancelled", "suspend": "suspended/resumed", "priority": f"moved to {argument}"}[action]
        if done:
            self.notify(f"{done} job{'s' if done > 1 else ''} {verb}; the list follows the cluster")

    def submit_file(self, path: str) -> None:
        if not self._refuse_if_readonly(f"submitting {path}"):
            self._submit_file(path)

    def _submit_file(self, path: str) -> None:
        from app.cluster.files import read_text_file

        try:
            documents = actions.parse_manifest(read_text_file(path), path)
        except actions.ActionError as exc:
            self.notify(str(exc), title="Not submitted", severity="error", timeout=15)
        else:
            self._submit_documents(documents, path)

    @work(exclusive=True, group="submit", exit_on_error=False)
    async def _submit_documents(self, documents: list[dict], source: str) -> None:
        """Checked, dry-run on the server, then created — all or nothing; the watch shows the result."""
        if self.engine is None:
            self.notify("not connected to a cluster", severity="error")
            return
        try:
            created = await actions.submit(self.engine.connection, documents, readonly=self.readonly,
                                           discovery=self.engine.discovery, namespace=self.namespace)
        except (actions.ActionError, ApiError) as exc:
            self.notify(f"{source}: {exc}", title="Not submitted", severity="error", timeout=15)
        else:
            self.notify("submitted " + ", ".join(created), timeout=10)

    def new_job(self) -> None:
        """n: a template, then its form; the rendered manifest goes through the same submit as a file."""
        if self.engine is None or self._refuse_if_readonly("submitting a job"):
            return
        choices = [(name, f"{name} — {description}") for name, description in TEMPLATES.items()]
        self.push_screen(ChoiceScreen("New job from a template", choices), self._open_job_form)

    def _open_job_form(self, template: str | None) -> None:
        engine = self.engine
        if not template or engine is None:
            return
        stores = engine.stores
        namespace = self.namespace
        queues = sorted({lq["metadata"]["name"] for lq in stores["localqueues"].snapshot().values()
                         if namespace is None or lq["metadata"].get("namespace") == namespace}
                        ) if "localqueues" in stores else []
        priorities = [c["metadata"]["name"] for c in sorted(
            stores["workloadpriorityclasses"].snapshot().values(), key=lambda c: -int(c.get("value") or 0))
        ] if "workloadpriorityclasses" in stores else []
        serves_hyperpod = bool(engine.discovery and engine.discovery.serves("hyperpodpytorchjobs"))
        form = JobFormScreen(template, namespace=namespace, queues=queues, priorities=priorities,
                             serves_hyperpod=serves_hyperpod)
        self.push_screen(form, self._submit_manifest)

    def _submit_manifest(self, manifest: dict | None) -> None:
        if manifest is not None:
            self._submit_documents([manifest], "the form")

    def edit_job(self, key: str) -> None:
        """$EDITOR on the job's full YAML; saving applies it (guarded by its resourceVersion)."""
        row = self.job_row(key)
        if row is None or self.engine is None or self._refuse_if_readonly(f"editing {row.name if row else key}"):
            return
        self._edit_job(row)

    @work(exclusive=True, group="edit", exit_on_error=False)
    async def _edit_job(self, row: JobRow) -> None:
        engine = self.engine
        assert engine is not None
        store_name = row.key.split("/", 1)[0]
        try:
            original = await actions.job_yaml(engine.connection, store_name, row.namespace, row.name, engine.discovery)
        except (actions.ActionError, ApiError) as exc:
            self.notify(f"cannot open {row.name}: {exc}", severity="error")
            return
        edited = await self._run_editor(original, f"{row.name}.yaml")
        if edited is None or edited == original:
            self.notify("not changed")
            return
        try:
            result = await actions.apply_yaml(engine.connection, edited, readonly=self.readonly,
                                              source=f"{row.name}.yaml")
        except (actions.ActionError, ApiError) as exc:
            self.notify(str(exc), severity="error", timeout=15)
            return
        self.notify(f"applied {result}")

    async def _run_editor(self, text: str, name: str) -> str | None:
        """Suspend the app, run $EDITOR (or vi) on a private temporary file, read it back. The editor runs in a
        thread: the loop keeps serving the app's tunnels, watches and probe while the user edits."""
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        with tempfile.TemporaryDirectory(prefix="hyperdesk-edit-") as directory:
            path = Path(directory) / name
            path.write_text(text, encoding="utf-8")
            try:
                with self.suspend():
                    await asyncio.to_thread(subprocess.run, [*shlex.split(editor), str(path)], check=False)
            except (OSError, SuspendNotSupported) as exc:
                self.notify(f"cannot run the editor {editor!r}: {exc}", severity="error")
                return None
            return path.read_text(encoding="utf-8")

    # ------------------------------------------------------------------------------------ prompt: : and /

    def _complete(self, text: str) -> list[str]:
        if self.query_one(Prompt).mode != "command":
            return []
        names = {
            "ctx": self.kubeconfig.context_names if self.kubeconfig else [],
            "theme": sorted(self.available_themes),
            "ns": ["all", *sorted(self.engine.stores["namespaces"].keys())]
            if self.engine is not None and "namespaces" in self.engine.stores else ["all"],
        }
        return commands.completions(text, names)

    @on(Prompt.FilterChanged)
    def _filter_changed(self, event: Prompt.FilterChanged) -> None:
        self._filter_pane.table.set_filter(event.value)
        self._show_pane_state(self._filter_pane)

    @on(Prompt.Cancelled)
    def _prompt_cancelled(self, event: Prompt.Cancelled) -> None:
        self.query_one(Prompt).close()
        pane = self._filter_pane if event.mode == "filter" else self.focused_pane_before_prompt()
        if event.mode == "filter":
            pane.table.set_filter("")
            self._show_pane_state(pane)
        pane.focus()

    @on(Prompt.Entered)
    def _prompt_submitted(self, event: Prompt.Entered) -> None:
        self.query_one(Prompt).close()
        (self._filter_pane if event.mode == "filter" else self.focused_pane_before_prompt()).focus()
        if event.mode == "command":
            self.run_command(event.value)

    def run_command(self, text: str) -> None:
        try:
            command = commands.parse(text)
        except commands.CommandError as exc:
            self.notify(str(exc), severity="error")
            return
        if command.verb == "pane":
            self.action_show_pane(command.args[0])
        elif command.verb == "split":
            self._split(command.args)
        elif command.verb == "ns":
            self._set_namespace(command.args[0])
        elif command.verb == "ctx":
            self._set_context(command.args[0])
        elif command.verb == "theme":
            self._set_theme(command.args[0])
        elif command.verb == "help":
            self.action_help()
        elif command.verb == "queues":
            self.open_quotas()
        elif command.verb == "submit":
            self.submit_file(command.args[0])
        elif command.verb == "tunnels":
            self.open_tunnels()
        elif command.verb == "connect":
            self.connect_space(command.args[0])
        elif command.verb == "q":
            self.action_quit_app()

    def _split(self, panes: tuple[str, ...]) -> None:
        if not panes:
            self.action_toggle_split()
            return
        left, right = (panes + (SPLIT_PARTNER[panes[0]],))[:2]
        if left == right:
            self.notify("split needs two different panes", severity="error")
            return
        self.split_pane = None
        self.active_pane = left
        self.split_pane = right

    def _set_namespace(self, name: str) -> None:
        if name in ("all", "*", "-A"):
            self.namespace = None
        elif DNS_LABEL.match(name):
            self.namespace = name
        else:
            self.notify(f"{name!r} is not a valid namespace name", severity="error")
            return
        self._show_state()
        self.rescope()

    def _set_context(self, name: str) -> None:
        if self.kubeconfig is None:
            self.notify("no kubeconfig loaded: there are no contexts to switch to", severity="error")
            return
        context = self.kubeconfig.context(name)
        if context is None:
            known = ", ".join(self.kubeconfig.context_names) or "none"
            self.notify(f"no context {name!r} in the kubeconfig (known: {known})", severity="error")
            return
        self.workers.cancel_group(self, "scope")
        from app.screens.connecting import end_context

        end_context(self, self.context_name)  # the switch closes the connection its tunnels' routes use
        self.context_name = context.name
        self.namespace = context.namespace
        self.health = Health("connecting")
        self._show_state()
        self.connect_cluster()

    def _set_theme(self, name: str) -> None:
        if name not in self.available_themes:
            self.notify(f"unknown theme {name!r} (known: {', '.join(sorted(self.available_themes))})",
                        severity="error")
            return
        self.theme = name

    # ------------------------------------------------------------------------------------ themes, keymap

    def _register_themes(self) -> None:
        for theme in BUILTIN.values():
            self.register_theme(theme)
        user_themes, errors = load_user_themes(data_dir() / "themes")
        for theme in user_themes:
            self.register_theme(theme)
        self.startup_errors.extend(errors)
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        else:
            self.startup_errors.append(
                f"unknown theme {self.settings.theme!r} (known: {', '.join(sorted(self.available_themes))})"
            )
            self.theme = DEFAULT

    def _apply_keymap(self, keys: dict[str, str]) -> None:
        known = {b.id for b in self._all_bindings() if b.id}
        unknown = sorted(set(keys) - known)
        if unknown:
            self.startup_errors.append(f"keys: unknown binding id {unknown[0]!r} (press ? to see the ids)")
        self.set_keymap({k: v for k, v in keys.items() if k in known})

    @staticmethod
    def _all_bindings() -> list[Binding]:
        """Every binding of the app and of each pane, screen and widget in app/screens and widgets: the ids a keymap
        may name. Found by walking the classes, so a new screen's keys are remappable without being listed here."""
        import pkgutil

        import app.screens

        for module in pkgutil.iter_modules(app.screens.__path__):
            importlib.import_module(f"app.screens.{module.name}")
        found = [b for b in HyperdeskApp.BINDINGS if isinstance(b, Binding)]
        pending: list[type] = [Widget]
        while pending:
            cls = pending.pop()
            pending.extend(cls.__subclasses__())
            if cls.__module__.startswith(("app.", "widgets.")):
                found.extend(b for b in cls.__dict__.get("BINDINGS", ()) if isinstance(b, Binding))
        return found

    # ------------------------------------------------------------------------------- cluster and state

    def _show_state(self) -> None:
        self.query_one(TopBar).show(
            TopBarState(
                context=self.context_name,
                namespace=self.namespace,
                health=self.health.state,
                health_detail=self.health.detail or (self.health.server_version or ""),
                readonly=self.readonly,
            )
        )
        for pane_id in PANE_IDS:
            pane = self.pane(pane_id)
            if pane.display:
                self._show_pane_state(pane)
            else:
                self._stale_panes.add(pane_id)

    def _tick_stale_ages(self) -> None:
        """A stale store's age counts up on screen, though nothing new arrives to say so."""
        if self.engine is None or not self._live:
            return
        for pane_id in PANE_IDS:
            pane = self.pane(pane_id)
            if pane.display and any(
                self.engine.stores[k].status.state == "stale" for k in pane.kinds if k in self.engine.stores
            ):
                self._show_pane_state(pane)

    def refresh_pane(self, pane_id: str) -> None:
        """A pane with data of its own (GPU metrics) has news: redraw it now if shown, else when shown."""
        pane = self.pane(pane_id)
        if pane.display:
            self._show_pane_state(pane)
        else:
            self._stale_panes.add(pane_id)

    def _show_pane_state(self, pane: Pane) -> None:
        """The pane's rows from its stores, and the line under them: cluster trouble, the filter, or what the
        pane's stores are doing."""
        self._stale_panes.discard(pane.pane_id)
        table = pane.table
        notice = self._cluster_notice()
        if self.engine is not None and pane.kinds:
            stores = [self.engine.stores[k] for k in pane.kinds if k in self.engine.stores]
            rows = pane.rows({store.name: store.snapshot() for store in stores})
            if rows is not None:
                table.set_rows(rows)
            notice = notice or f"{pane.purpose}\nWatching: {describe_stores(stores)}"
        if table.filter_text and table.total_rows:
            notice = f"filter {table.filter_text!r}: {table.row_count} of {table.total_rows} rows"
        pane.show_notice(notice)

    def _cluster_notice(self) -> str:
        state = self.health.state
        if state == "no-config":
            return (
                "No cluster configured: no kubeconfig found ($KUBECONFIG or ~/.kube/config). "
                "Pass --kubeconfig PATH, or try `hyperdesk demo` for a simulated cluster."
            )
        if state == "unreachable":
            return f"Cannot reach the cluster of context {self.context_name}: {self.health.detail}. Retrying."
        if state == "error":
            return f"Cluster error: {self.health.detail}"
        return ""

    @work(exclusive=True, group="cluster", exit_on_error=False)
    async def connect_cluster(self) -> None:
        """Connect to the current context and keep its stores; check the route every PROBE_SECONDS.

        Exclusive: a context switch cancels this worker, whose `finally` ends every watch of the old context.
        """
        assert self.kubeconfig is not None
        # The client's import takes half a second: do it in a thread so the screen keeps drawing.
        await asyncio.to_thread(importlib.import_module, "kubernetes.aio.client")
        from app.cluster.engine import ClusterEngine

        context = self.kubeconfig.context(self.context_name)
        connection = ClusterConnection(list(self.kubeconfig.paths), self.context_name)
        engine = ClusterEngine(connection, namespace=self.namespace,
                               fallback_namespace=(context.namespace if context else None) or "default")
        engine.subscribe(lambda name, changes, store: self.post_message(StoresChanged(name)))
        self._engines.add(engine)
        try:
            while True:
                self.health = await connection.probe()
                if self.health.state == "connected":
                    try:
                        if self.engine is not engine:
                            engine.namespace = self.namespace  # `:ns` may have changed it while connecting
                            await engine.start(sorted({k for cls in PANE_CLASSES for k in cls.kinds}))
                            self.engine = engine
                            self.poll_positions()
                        else:
                            await engine.retry_unavailable()
                    except ApiError as exc:
                        self.health = Health("error", f"cluster discovery failed: {exc}")
                    except Exception as exc:  # noqa: BLE001 - a bug here must not take the app down
                        log.exception("starting the cluster engine failed")
                        self.health = Health("error", f"{type(exc).__name__}: {exc}")
                self._show_state()
                await asyncio.sleep(self.probe_seconds)
        finally:
            if self.engine is engine:
                self.engine = None
            await engine.close()
            self._engines.discard(engine)

    async def on_unmount(self) -> None:
        """Close what may still be open however the app ends (quit, SIGHUP, lost terminal): tunnels and the
        cluster connections the workers had no chance to close."""
        self._mounted = False
        await self.tunnels.close_all()
        for engine in list(self._engines):
            await engine.close()

    @work(exclusive=True, group="scope", exit_on_error=False)
    async def rescope(self) -> None:
        if self.engine is not None:
            await self.engine.set_scope(self.namespace)

    @on(StoresChanged)
    def _stores_changed(self, message: StoresChanged) -> None:
        """Visible panes catch up now; hidden ones only note that they must when shown."""
        if not self._live:
            return  # a message that was in flight when the app began to close
        for pane_id in PANE_IDS:
            pane = self.pane(pane_id)
            if message.store in pane.kinds:
                if pane.display:
                    self._show_pane_state(pane)
                else:
                    self._stale_panes.add(pane_id)

    # ------------------------------------------------------------------------------------- terminal loss

    def _watch_terminal(self) -> None:
        """Leave when the terminal does: SIGHUP, or stdin no longer a TTY (an SSH session that dropped)."""
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._terminal_lost)
        except (NotImplementedError, RuntimeError):
            pass
        self.set_interval(TERMINAL_CHECK_SECONDS, self._check_terminal)

    def _check_terminal(self) -> None:
        try:
            alive = os.isatty(sys.__stdin__.fileno())
        except (AttributeError, ValueError, OSError):
            alive = False
        if not alive:
            self._terminal_lost()

    def _terminal_lost(self) -> None:
        self.exit(return_code=0)
