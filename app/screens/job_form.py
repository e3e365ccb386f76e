"""A new job from a built-in template: a form of the template's fields, the rendered YAML beside it, live.

Plain data in: the template name, the queues and priority classes the cluster offers, whether it serves
HyperPodPyTorchJob. `ctrl+s` dismisses with the rendered manifest when the form has no problem; the caller submits.
"""

from __future__ import annotations

from typing import Any

from rich.syntax import Syntax
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Select, Static, TextArea

from app.model.templates import FIELDS, TEMPLATES, TemplateError, defaults, render, to_yaml, validate_params


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return "\n".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(value)
    return str(value)


class JobFormScreen(Screen["dict | None"]):
    BINDINGS = [
        Binding("ctrl+s", "submit", "Submit", id="form.submit"),
        Binding("escape", "cancel", "Cancel", id="form.cancel"),
    ]

    def __init__(self, template: str, *, namespace: str | None, queues: list[str], priorities: list[str],
                 serves_hyperpod: bool) -> None:
        super().__init__()
        self.template = template
        self.queues = queues
        self.priorities = priorities
        self.serves_hyperpod = serves_hyperpod
        self.values: dict[str, Any] = {**defaults(template), "namespace": namespace or ""}
        self.problems: list[str] = []
        self.manifest: dict | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="form"):
            with VerticalScroll(id="form-fields") as fields:
                fields.border_title = f"New job — {TEMPLATES[self.template]}"
                for field in FIELDS[self.template]:
                    yield Label(field.label + (" *" if field.required else ""), classes="form-label")
                    value = _text(self.values.get(field.name))
                    if field.kind == "queue":
                        yield Select([(q, q) for q in self.queues], id=f"f-{field.name}", allow_blank=True,
                                     prompt="(none)")
                    elif field.kind == "priority":
                        yield Select([(p, p) for p in self.priorities], id=f"f-{field.name}", allow_blank=True,
                                     prompt="(none)")
                    elif field.kind == "env":
                        yield TextArea(value, id=f"f-{field.name}", classes="form-env")
                    else:
                        yield Input(value, placeholder=field.help, id=f"f-{field.name}")
            with VerticalScroll(id="form-preview") as preview:
                preview.border_title = "YAML to submit"
                yield Static(id="form-problems")
                yield Static(id="form-yaml")
        yield Footer()

    def on_mount(self) -> None:
        self._update_preview()

    def _collect(self) -> None:
        for field in FIELDS[self.template]:
            widget = self.query_one(f"#f-{field.name}")
            if isinstance(widget, Select):
                value = widget.value if isinstance(widget.value, str) else None
            elif isinstance(widget, TextArea):
                value = widget.text
            else:
                value = widget.value
            self.values[field.name] = value

    def _update_preview(self) -> None:
        self._collect()
        params = {k: v for k, v in self.values.items() if v not in ("", None)}
        self.problems = validate_params(self.template, params, queues=self.queues or None,
                                        priorities=self.priorities or None)
        self.manifest = None
        if not self.problems:
            try:
                self.manifest = render(self.template, params, serves_hyperpod=self.serves_hyperpod)
            except TemplateError as exc:
                self.problems = list(exc.problems)
        problems = self.query_one("#form-problems", Static)
        problems.update("\n".join(f"✕ {p}" for p in self.problems))
        problems.display = bool(self.problems)
        text = to_yaml(self.manifest) if self.manifest else ""
        self.query_one("#form-yaml", Static).update(
            Syntax(text, "yaml", theme="ansi_dark", background_color="default") if text else "")

    @on(Input.Changed)
    @on(Select.Changed)
    @on(TextArea.Changed)
    def _changed(self) -> None:
        self._update_preview()

    def action_submit(self) -> None:
        self._update_preview()
        if self.manifest is not None:
            self.dismiss(self.manifest)
        else:
            self.notify("fix the form first: " + "; ".join(self.problems), severity="error")

    def action_cancel(self) -> None:
        self.dismiss(None)
