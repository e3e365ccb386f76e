"""The invoke view: a JSON request editor with a template per protocol, sent through the API server's service proxy;
the status, the response (pretty JSON, or a stream's text as it arrives) and the latency; or, with a request count
above one, a load run with its progress and p50/p95/p99."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from rich.syntax import Syntax
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Label, Static, TextArea

from app.model.endpoints import BodyError, EndpointRow, LoadSummary, StreamText, parse_body

SHOWN_CHARS = 200_000
STREAM_REFRESH = 0.05
"""Seconds between redraws of a streaming answer."""

Send = Callable[[Any, str, Callable[[str], None]], Awaitable[Any]]
"""(body, path, on_chunk) -> InvokeResult"""
Load = Callable[[Any, str, int, int, Callable[[int, int], None]], Awaitable[LoadSummary]]
"""(body, path, requests, concurrency, on_progress) -> LoadSummary"""


class InvokeScreen(Screen[None]):
    DEFAULT_CSS = """
    InvokeScreen { background: $background; }
    #invoke-target { height: auto; padding: 0 1; background: $panel; color: $foreground; }
    #invoke-options { height: 3; }
    #invoke-options Label { padding: 1 1 0 1; color: $text-muted; }
    #invoke-path { width: 1fr; }
    #invoke-requests, #invoke-concurrency { width: 12; }
    #invoke-body { height: 12; border: round $primary 40%; }
    #invoke-status { height: auto; padding: 0 1; }
    #invoke-response { height: 1fr; border: round $primary 40%; padding: 0 1; }
    """

    BINDINGS = [
        Binding("ctrl+s", "send", "Send", priority=True, id="invoke.send"),
        Binding("ctrl+t", "next_template", "Template", priority=True, id="invoke.template"),
        Binding("escape", "back", "Back", priority=True, id="invoke.back"),
    ]

    def __init__(self, row: EndpointRow, send: Send, load: Load) -> None:
        super().__init__()
        self.row = row
        self._send = send
        self._load = load
        self.protocols = row.protocols()
        self.protocol_index = 0
        self.running = False
        self.status_text = ""
        self.response_text = ""
        """What the response area shows: pretty JSON, a stream's text, or the load run's figures."""

    def compose(self) -> ComposeResult:
        yield Static(id="invoke-target")
        with Horizontal(id="invoke-options"):
            yield Label("path")
            yield Input(self.protocols[0].path, id="invoke-path")
            yield Label("requests")
            yield Input("1", id="invoke-requests", type="integer")
            yield Label("concurrency")
            yield Input("10", id="invoke-concurrency", type="integer")
        body = TextArea(self._template(), id="invoke-body", show_line_numbers=True, tab_behavior="indent")
        body.border_title = f"Body — {self.protocols[0].name} (ctrl+t: next template, ctrl+s: send)"
        yield body
        yield Static(id="invoke-status")
        with VerticalScroll(id="invoke-response") as scroll:
            scroll.border_title = "Response"
            yield Static(id="invoke-response-text")
        yield Footer()

    def on_mount(self) -> None:
        self._show_target()
        self._set_status(Text("Edit the body, then ctrl+s sends it once (or `requests` times).", style="dim"))
        self.query_one("#invoke-body", TextArea).focus()

    def _template(self) -> str:
        return json.dumps(self.protocols[self.protocol_index].body, indent=2)

    @property
    def path(self) -> str:
        return self.query_one("#invoke-path", Input).value.strip() or self.protocols[self.protocol_index].path

    def _show_target(self) -> None:
        row = self.row
        self.query_one("#invoke-target", Static).update(Text.assemble(
            ("Invoke ", "dim"), (f"{row.kind} ", "dim"), (f"{row.namespace}/{row.name}", "bold"),
            (f"  ({row.state}, {row.ready_text} ready)\n", "dim"), ("POST ", "bold"),
            (f"services/{row.service}:{row.service_port}/proxy{self.path}", ""),
            ("  through the API server", "dim")))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "invoke-path":
            self._show_target()

    def _set_status(self, text: Text | str) -> None:
        self.status_text = str(text)
        self.query_one("#invoke-status", Static).update(text)

    def _set_response(self, text: str, as_json: bool = False) -> None:
        if len(text) > SHOWN_CHARS:  # a huge answer stays readable and the screen stays quick
            text = text[:SHOWN_CHARS] + f"\n… {len(text) - SHOWN_CHARS:,} more characters not shown"
            as_json = False
        self.response_text = text
        widget = self.query_one("#invoke-response-text", Static)
        if as_json:
            widget.update(Syntax(text, "json", theme="ansi_dark", background_color="default", word_wrap=True))
        else:
            widget.update(Text(text))

    def action_next_template(self) -> None:
        self.protocol_index = (self.protocol_index + 1) % len(self.protocols)
        protocol = self.protocols[self.protocol_index]
        body = self.query_one("#invoke-body", TextArea)
        body.text = self._template()
        body.border_title = f"Body — {protocol.name} (ctrl+t: next template, ctrl+s: send)"
        self.query_one("#invoke-path", Input).value = protocol.path

    def action_back(self) -> None:
        if self.running:
            self.workers.cancel_group(self, "invoke")
            self.running = False
            self._set_status(Text("cancelled", style="yellow"))
            return
        self.app.pop_screen()

    def _number(self, selector: str, default: int) -> int | None:
        text = self.query_one(selector, Input).value.strip()
        if not text:
            return default
        try:
            return int(text)
        except ValueError:
            return None

    def action_send(self) -> None:
        if self.running:
            self._set_status(Text("a request is still running (esc cancels it)", style="yellow"))
            return
        body = self.query_one("#invoke-body", TextArea).text
        try:
            parse_body(body)  # checked here; sent as typed
        except BodyError as exc:
            self._set_status(Text(f"{exc} — nothing was sent", style="bold red"))
            return
        requests = self._number("#invoke-requests", 1)
        concurrency = self._number("#invoke-concurrency", 10)
        if requests is None or concurrency is None or requests < 1 or concurrency < 1:
            self._set_status(Text("requests and concurrency must be whole numbers of at least 1", style="bold red"))
            return
        self.running = True
        if requests == 1:
            self._invoke(body, self.path)
        else:
            self._load_run(body, self.path, requests, concurrency)

    @work(exclusive=True, group="invoke", exit_on_error=False)
    async def _invoke(self, body: Any, path: str) -> None:
        stream = StreamText()
        shown: list[str] = []
        size = 0
        timer: Timer | None = None
        self._set_status(Text(f"POST {path} …", style="cyan"))
        self._set_response("")

        def flush() -> None:
            """At most every STREAM_REFRESH seconds: rebuilding the view per chunk would cost the square of the
            answer's length on the event loop. Past SHOWN_CHARS the shown text no longer changes."""
            nonlocal timer
            timer = None
            if len(self.response_text) < SHOWN_CHARS:
                self._set_response("".join(shown))
            self._set_status(Text(f"POST {path}: streaming… {size:,} characters", style="cyan"))

        def on_chunk(piece: str) -> None:
            nonlocal size, timer
            text = stream.feed(piece)
            if text:
                shown.append(text)
                size += len(text)
                if timer is None:
                    timer = self.set_timer(STREAM_REFRESH, flush)

        try:
            result = await self._send(body, path, on_chunk)
        except Exception as exc:  # noqa: BLE001 - an endpoint that is not ready, say: a message, never a crash
            self._set_status(Text(str(exc), style="bold red"))
            return
        finally:
            self.running = False
            if timer is not None:
                timer.stop()
        self.show_result(result)

    def show_result(self, result: Any) -> None:
        """An InvokeResult on screen: who answered what and how fast, and the body."""
        style = "bold green" if result.ok else "bold red"
        status = Text(result.describe(), style=style)
        if result.first_byte_ms is not None and result.streamed:
            status.append(f"  (first byte after {result.first_byte_ms:.0f} ms)", style="dim")
        self._set_status(status)
        try:
            pretty = result.pretty()
        except Exception:  # noqa: BLE001 - an answer of an unexpected shape is shown as it came
            pretty = result.text
        self._set_response(pretty, as_json=not result.streamed and pretty.lstrip()[:1] in ("{", "["))

    @work(exclusive=True, group="invoke", exit_on_error=False)
    async def _load_run(self, body: Any, path: str, requests: int, concurrency: int) -> None:
        self._set_response("")
        self._set_status(Text(f"load run: 0/{requests} done", style="cyan"))

        def progress(done: int, errors: int) -> None:
            if done == requests or done % max(1, requests // 50) == 0:
                self._set_status(Text(f"load run: {done}/{requests} done, {errors} errors, concurrency {concurrency}",
                                      style="cyan"))

        try:
            summary = await self._load(body, path, requests, concurrency, progress)
        except Exception as exc:  # noqa: BLE001
            self._set_status(Text(str(exc), style="bold red"))
            return
        finally:
            self.running = False
        self.show_summary(summary)

    def show_summary(self, summary: LoadSummary) -> None:
        ok = not summary.errors
        self._set_status(Text(f"load run done: {summary.ok}/{summary.requests} ok",
                              style="bold green" if ok else "bold red"))
        self._set_response("\n".join(summary.lines()))
