"""The Spaces pane's screens: a space's detail, the new-space form and the WorkspaceTemplates list. Plain data in."""

from __future__ import annotations

from datetime import datetime
from typing import Awaitable, Callable

import yaml
from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Select, Static

from app.model.jobs import human_duration, utcnow
from app.screens.detail import EVENT_COLUMNS, ago, conditions_table, event_cells, events_table, fill, section
from app.model.spaces import (
    COMPUTE_FIELDS, MIG_PREFIX, SpaceDetail, SpaceRequest, TemplateInfo, resolve, validate_request, whole_number,
    workspace_manifest,
)

Submit = Callable[[dict], Awaitable["str | None"]]
"""Sends what a form built; returns None when it was done, else why not (shown in the form, which stays open)."""

REFRESH_SECONDS = 1.0


class SpaceDetailScreen(Screen[None]):
    """`load()` returns the space's current SpaceDetail, or None once it is gone."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="space_detail.back"),
        Binding("y", "yaml", "YAML", id="space_detail.yaml"),
    ]

    def __init__(self, load: Callable[[], SpaceDetail | None], now: Callable[[], datetime] = utcnow,
                 yaml_view: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self._load = load
        self._now = now
        self._yaml_view = yaml_view

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(id="detail-summary")
            yield section("Conditions", conditions_table())
            yield section("Pod", DataTable(id="detail-pods", cursor_type="none"))
            yield section("Events", events_table())
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail-conditions", DataTable).add_columns("AGE", "TYPE", "STATUS", "REASON", "MESSAGE")
        self.query_one("#detail-pods", DataTable).add_columns("POD", "NODE", "PHASE", "RESTARTS")
        self.query_one("#detail-events", DataTable).add_columns(*EVENT_COLUMNS)
        self.show()
        self.set_interval(REFRESH_SECONDS, self.show)

    def show(self) -> None:
        detail = self._load()
        summary = self.query_one("#detail-summary", Static)
        if detail is None:
            summary.update(Text("This space no longer exists.", style="bold"))
            return
        now, row = self._now(), detail.row
        text = Text()
        for segment, style in (
            (f"{row.kind} ", "dim"), (f"{row.name}   ", "bold"), (f"{row.namespace}   ", "dim"),
            (f"{row.display_name}\n", "italic"),
            ("Status ", "dim"), (f"{row.status}   ", "bold"), (f"{row.app_type}   ", ""), ("owner ", "dim"),
            (f"{row.owner or '—'}   ", ""), ("template ", "dim"), (f"{row.template or '—'}   ", ""), ("age ", "dim"),
            (f"{human_duration(row.age_seconds(now))}\n", ""),
            ("Image ", "dim"), (f"{row.image or '—'}\n", ""),
            ("Compute ", "dim"), (f"{row.compute_text or '—'}   ", ""), ("storage ", "dim"),
            (f"{row.storage or '—'}   ", ""), ("idle shutdown ", "dim"), (row.idle_text(now), ""),
        ):
            text.append(segment, style=style)
        if row.queue or row.priority:
            text.append("\nQueue ", style="dim")
            text.append(f"{row.queue or '—'}   ")
            text.append("priority ", style="dim")
            text.append(row.priority or "—")
        if row.access_url:
            text.append("\nAccess URL ", style="dim")
            text.append(row.access_url, style="underline")
        if row.reason:
            text.append(f"\nWhy: {row.reason}", style="bold yellow")
        if detail.template is not None:
            t = detail.template
            text.append(f"\nTemplate bounds ({t.key}): ", style="dim")
            text.append(t.bounds_text or "none")
        summary.update(text)
        fill(self.query_one("#detail-conditions", DataTable),
             [(ago(c[0], now), c[1], c[2], c[3], c[4]) for c in detail.conditions])
        fill(self.query_one("#detail-pods", DataTable), [(p[0], p[1], p[2], str(p[3])) for p in detail.pods])
        fill(self.query_one("#detail-events", DataTable),
             [event_cells(e[0], e[1], e[2], e[5], e[3], e[4], now) for e in detail.events])

    def action_yaml(self) -> None:
        detail = self._load()
        if detail is not None and self._yaml_view is not None:
            self._yaml_view(detail.row.key)


class SpaceFormScreen(Screen["dict | None"]):
    """A new space from a template: fields on the left, what will be sent on the right, checked on every key.
    `ctrl+s`, when the form has no problem, hands the Workspace manifest to `submit` (the caller's checks with the
    server, then the create) and closes with it once that succeeds; the server's refusal shows in the form."""

    AUTO_FOCUS = "#f-name"
    BINDINGS = [
        Binding("ctrl+s", "submit", "Create", id="space_form.submit"),
        Binding("escape", "cancel", "Cancel", id="space_form.cancel"),
    ]

    def __init__(self, templates: list[TemplateInfo], *, namespace: str, namespaces: list[str],
                 gpu_offer: dict[str, int] | None, queues: dict[str, list[str]], priorities: list[str],
                 owner: str = "", submit: Submit | None = None) -> None:
        super().__init__()
        self.submit = submit
        self.sending = False
        self.templates = {t.key: t for t in templates}
        self.namespace = namespace
        self.namespaces = namespaces
        self.gpu_offer = gpu_offer
        self.queues = queues
        """Namespace -> its LocalQueues; empty when task governance is off."""
        self.priorities = priorities
        self.owner = owner
        self.problems: list[str] = []
        self.manifest: dict | None = None

    def compose(self) -> ComposeResult:
        first = next(iter(self.templates.values()), None)
        migs = sorted(r.removeprefix(MIG_PREFIX) for r in (self.gpu_offer or {}) if r.startswith(MIG_PREFIX))
        with Horizontal(id="form"):
            with VerticalScroll(id="form-fields") as fields:
                fields.border_title = "New space"
                yield Label("Name *", classes="form-label")
                yield Input("", placeholder="lower-case letters, digits, -", id="f-name")
                yield Label("Display name", classes="form-label")
                yield Input("", placeholder="(the name)", id="f-display")
                yield Label("Namespace *", classes="form-label")
                yield Select([(n, n) for n in self.namespaces], value=self.namespace if self.namespace in
                             self.namespaces else Select.NULL, id="f-namespace", allow_blank=True, prompt="(choose)")
                yield Label("Template", classes="form-label")
                yield Select([(f"{t.display_name} ({t.key})", t.key) for t in self.templates.values()],
                             value=first.key if first else Select.NULL, id="f-template", allow_blank=True,
                             prompt="(none)")
                yield Label("Image", classes="form-label")
                yield Select([], id="f-image", allow_blank=True, prompt="(template default)")
                yield Input("", placeholder="custom image (when the template allows it)", id="f-custom-image")
                yield Label("CPU", classes="form-label")
                yield Input("", placeholder="(template default)", id="f-cpu")
                yield Label("Memory", classes="form-label")
                yield Input("", placeholder="(template default)", id="f-memory")
                yield Label("GPUs", classes="form-label")
                yield Input("", placeholder="(template default; 0 = none)", id="f-gpus", type="integer")
                yield Label("MIG profile (instead of GPUs)", classes="form-label")
                yield Select([(m, m) for m in migs], id="f-mig", allow_blank=True, prompt="(none)")
                yield Label("Storage", classes="form-label")
                yield Input("", placeholder="(template default)", id="f-storage")
                yield Label("Idle shutdown (minutes, 0 = off)", classes="form-label")
                yield Input("", placeholder="(template default)", id="f-idle", type="integer")
                yield Label("Queue (task governance)", classes="form-label")
                yield Select([], id="f-queue", allow_blank=True, prompt="(none)")
                yield Label("Priority (task governance)", classes="form-label")
                yield Select([(p, p) for p in self.priorities], id="f-priority", allow_blank=True, prompt="(none)")
            with VerticalScroll(id="form-preview") as preview:
                preview.border_title = "YAML to create"
                yield Static(id="form-problems")
                yield Static(id="form-yaml")
        yield Footer()

    def on_mount(self) -> None:
        self._template_changed()
        self._namespace_changed()
        self._update_preview()

    def _value(self, selector: str) -> str:
        widget = self.query_one(selector)
        if isinstance(widget, Select):
            return widget.value if isinstance(widget.value, str) else ""
        return str(widget.value).strip()  # type: ignore[attr-defined]

    def _template(self) -> TemplateInfo | None:
        return self.templates.get(self._value("#f-template"))

    def _template_changed(self) -> None:
        template = self._template()
        images = self.query_one("#f-image", Select)
        images.set_options([(i, i) for i in (template.allowed_images if template else ())])
        custom = self.query_one("#f-custom-image", Input)
        custom.display = template is None or template.allow_custom_images
        if not custom.display:
            custom.value = ""  # hidden: what was typed for another template no longer applies

    def _namespace_changed(self) -> None:
        queues = self.queues.get(self._value("#f-namespace"), [])
        self.query_one("#f-queue", Select).set_options([(q, q) for q in queues])

    def _numbers(self) -> tuple[int | None, int | None, list[str]]:
        """GPUs and idle minutes as typed (None: empty, the template's default), and what cannot be read."""
        gpus, gpus_problem = whole_number("GPUs", self._value("#f-gpus"))
        idle, idle_problem = whole_number("idle minutes", self._value("#f-idle"))
        return gpus, idle, [p for p in (gpus_problem, idle_problem) if p]

    def request(self) -> SpaceRequest:
        gpus, idle, _ = self._numbers()
        return SpaceRequest(
            name=self._value("#f-name"), namespace=self._value("#f-namespace"), template=self._value("#f-template"),
            display_name=self._value("#f-display"),
            image=(self._value("#f-custom-image") if self.query_one("#f-custom-image").display else "")
            or self._value("#f-image"), cpu=self._value("#f-cpu"),
            memory=self._value("#f-memory"), gpus=gpus,
            mig_profile=self._value("#f-mig"), storage=self._value("#f-storage"),
            idle_minutes=idle, queue=self._value("#f-queue"),
            priority=self._value("#f-priority"), owner=self.owner,
        )

    def _update_preview(self) -> None:
        template = self._template()
        resolved = resolve(self.request(), template)
        if not resolved.display_name:
            resolved.display_name = resolved.name
        queues = self.queues.get(resolved.namespace) if self.queues else None
        self.problems = self._numbers()[2] + validate_request(resolved, template, gpu_offer=self.gpu_offer,
                                                              queues=queues, priorities=self.priorities or None)
        self.manifest = workspace_manifest(resolved, template) if not self.problems else None
        problems = self.query_one("#form-problems", Static)
        problems.update("\n".join(f"✕ {p}" for p in self.problems))
        problems.display = bool(self.problems)
        shown = self.manifest or workspace_manifest(resolved, template)
        text = yaml.safe_dump(shown, sort_keys=False, default_flow_style=False)
        self.query_one("#form-yaml", Static).update(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
        if template is not None:
            self.query_one("#form-preview").border_subtitle = f"bounds: {template.bounds_text}"

    @on(Select.Changed, "#f-template")
    def _on_template(self) -> None:
        self._template_changed()
        self._update_preview()

    @on(Select.Changed, "#f-namespace")
    def _on_namespace(self) -> None:
        self._namespace_changed()
        self._update_preview()

    @on(Input.Changed)
    @on(Select.Changed, "#f-image, #f-mig, #f-queue, #f-priority")
    def _changed(self) -> None:
        self._update_preview()

    def action_submit(self) -> None:
        if self.sending:
            return
        self._update_preview()
        if self.manifest is None:
            self.notify("fix the form first: " + "; ".join(self.problems), severity="error")
        elif self.submit is None:
            self.dismiss(self.manifest)
        else:
            self.run_worker(self._send(self.manifest, self.submit), group="space-form-send", exit_on_error=False)

    async def _send(self, manifest: dict, submit: Submit) -> None:
        problems = self.query_one("#form-problems", Static)
        self.sending = True
        problems.update(Text("creating… (checking with the server)", style="italic"))
        problems.display = True
        try:
            refused = await submit(manifest)
        finally:
            self.sending = False
        if refused is None:
            self.dismiss(manifest)
        else:
            self.problems = [refused]
            problems.update(Text(f"✕ {refused}", style="bold red"))

    def action_cancel(self) -> None:
        self.dismiss(None)


class EditResourcesScreen(Screen["dict | None"]):
    """New compute for a stopped space: CPU, memory, whole GPUs or a MIG profile, checked against its template's
    bounds and the nodes' offer on every key; `ctrl+s` hands the values to `submit` (the server's checks and the
    update) and closes once that succeeds."""

    AUTO_FOCUS = "#e-cpu"
    BINDINGS = [
        Binding("ctrl+s", "submit", "Save", id="space_edit.submit"),
        Binding("escape", "cancel", "Cancel", id="space_edit.cancel"),
    ]

    def __init__(self, title: str, *, cpu: str, memory: str, gpus: int, mig_profile: str | None,
                 template: TemplateInfo | None, gpu_offer: dict[str, int] | None, submit: Submit) -> None:
        super().__init__()
        self.heading = title
        self.current = (cpu, memory, gpus, mig_profile or "")
        self.template = template
        self.gpu_offer = gpu_offer
        self.submit = submit
        self.problems: list[str] = []
        self.sending = False

    def compose(self) -> ComposeResult:
        cpu, memory, gpus, mig = self.current
        migs = sorted(r.removeprefix(MIG_PREFIX) for r in (self.gpu_offer or {}) if r.startswith(MIG_PREFIX))
        if mig and mig not in migs:
            migs.append(mig)
        with VerticalScroll(id="form-fields") as fields:
            fields.border_title = self.heading
            if self.template is not None:
                fields.border_subtitle = f"bounds: {self.template.bounds_text or 'none'}"
            yield Label("CPU", classes="form-label")
            yield Input(cpu, id="e-cpu")
            yield Label("Memory", classes="form-label")
            yield Input(memory, id="e-memory")
            yield Label("GPUs (0 = none)", classes="form-label")
            yield Input(str(gpus), id="e-gpus", type="integer")
            yield Label("MIG profile (instead of GPUs)", classes="form-label")
            yield Select([(m, m) for m in migs], value=mig or Select.NULL, id="e-mig", allow_blank=True,
                         prompt="(none)")
            yield Static(id="form-problems")
        yield Footer()

    def on_mount(self) -> None:
        self._check()

    def values(self) -> dict:
        gpus, _ = whole_number("GPUs", str(self.query_one("#e-gpus", Input).value))
        mig = self.query_one("#e-mig", Select).value
        return {"cpu": str(self.query_one("#e-cpu", Input).value).strip(),
                "memory": str(self.query_one("#e-memory", Input).value).strip(),
                "gpus": gpus or 0,  # empty: none
                "mig_profile": mig if isinstance(mig, str) else ""}

    def _check(self) -> None:
        v = self.values()
        request = SpaceRequest(name="x", namespace="x", cpu=v["cpu"], memory=v["memory"], gpus=v["gpus"],
                               mig_profile=v["mig_profile"])
        _, unreadable = whole_number("GPUs", str(self.query_one("#e-gpus", Input).value))
        self.problems = ([unreadable] if unreadable else []) + validate_request(
            request, self.template, gpu_offer=self.gpu_offer, fields=COMPUTE_FIELDS)
        problems = self.query_one("#form-problems", Static)
        problems.update("\n".join(f"✕ {p}" for p in self.problems))
        problems.display = bool(self.problems)

    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self) -> None:
        self._check()

    def action_submit(self) -> None:
        if self.sending:
            return
        self._check()
        if self.problems:
            self.notify("fix the form first: " + "; ".join(self.problems), severity="error")
        else:
            self.run_worker(self._send(self.values()), group="space-edit-send", exit_on_error=False)

    async def _send(self, values: dict) -> None:
        problems = self.query_one("#form-problems", Static)
        self.sending = True
        problems.update(Text("saving…", style="italic"))
        problems.display = True
        try:
            refused = await self.submit(values)
        finally:
            self.sending = False
        if refused is None:
            self.dismiss(values)
        else:
            self.problems = [refused]
            problems.update(Text(f"✕ {refused}", style="bold red"))

    def action_cancel(self) -> None:
        self.dismiss(None)


class TemplatesScreen(Screen[None]):
    """WorkspaceTemplates: defaults, allowed images and resource bounds."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="space_templates.back")]

    def __init__(self, load: Callable[[], list[TemplateInfo]]) -> None:
        super().__init__()
        self._load = load

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail") as scroll:
            scroll.border_title = "Workspace templates"
            yield DataTable(id="templates-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="templates-images")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("TEMPLATE", "DISPLAY NAME", "APP", "DEFAULT IMAGE", "CPU", "MEMORY", "GPUS", "STORAGE",
                          "IDLE", "BOUNDS")
        self.show()
        self.set_interval(REFRESH_SECONDS, self.show)

    def show(self) -> None:
        templates = self._load()
        rows = [(t.key, t.display_name, t.app_type, t.default_image, t.default_cpu, t.default_memory,
                 str(t.default_gpus), t.storage_default, f"{t.idle_minutes}m" if t.idle_enabled else "off",
                 t.bounds_text) for t in templates]
        table = self.query_one(DataTable)
        current = [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
        if current != rows:
            table.clear()
            table.add_rows(rows)
        lines = Text()
        for t in templates:
            lines.append(f"\n{t.key}", style="bold")
            lines.append(f"  allowed images: {', '.join(t.allowed_images) or '—'}"
                         f"{'  (custom images allowed)' if t.allow_custom_images else ''}")
        self.query_one("#templates-images", Static).update(lines if templates else "No WorkspaceTemplates found.")


__all__ = ["EditResourcesScreen", "SpaceDetailScreen", "SpaceFormScreen", "TemplatesScreen"]
