"""The logs of a job: every pod interleaved with a `[pod]` prefix, or one pod; follow, pause, search, wrap,
timestamps, the previous container, and save to a file. Memory is bounded by the buffer, whatever the pods write."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from app.cluster.actions import ActionError
from app.cluster.connection import ApiError, ClusterConnection
from app.cluster.logs import LogBuffer, job_logs
from widgets.log_view import LogView

TAIL_LINES = 1000


class LogsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back", id="logs.back"),
        Binding("f", "toggle_follow", "Follow/pause", id="logs.follow"),
        Binding("slash", "search", "Search", id="logs.search"),
        Binding("n", "next_match", "Next match", id="logs.next"),
        Binding("N", "previous_match", "Previous match", show=False, id="logs.previous"),
        Binding("w", "toggle_wrap", "Wrap", id="logs.wrap"),
        Binding("t", "toggle_timestamps", "Timestamps", id="logs.timestamps"),
        Binding("p", "toggle_previous", "Previous container", id="logs.previous_container"),
        Binding("c", "next_pod", "Pod", id="logs.pod"),
        Binding("ctrl+s", "save", "Save", id="logs.save"),
    ]

    def __init__(self, title: str, pods: list[str], connection: Callable[[], ClusterConnection | None],
                 save_dir: Path | None = None, buffer_lines: int = 50_000) -> None:
        super().__init__()
        self._title = title
        self.pods = pods
        self._connection = connection
        self.save_dir = save_dir or Path.home() / "hyperdesk-logs"
        self.buffer = LogBuffer(maxlen=buffer_lines)
        self.pod_index = -1
        """-1: every pod, interleaved; else the index of the one pod shown."""
        self.timestamps = False
        self.previous = False
        self._match = -1
        self._generation = 0
        self._note = ""

    def compose(self) -> ComposeResult:
        yield Static(id="logs-status")
        yield LogView(self.buffer, id="logs-view")
        yield Input(placeholder="search the log", id="logs-search")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#logs-search", Input).display = False
        self.query_one(LogView).focus()
        self.restart()
        self.set_interval(0.5, self._status_tick)

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    def _status(self, note: str = "") -> None:
        shown = "all pods" if self.pod_index < 0 else self.pods[self.pod_index].split("/", 1)[-1]
        flags = [("following" if self.view.follow else "paused"), shown]
        if self.timestamps:
            flags.append("timestamps")
        if self.previous:
            flags.append("previous container")
        if self.view.wrap:
            flags.append("wrap")
        self._note = note
        text = f"{self._title} — {' · '.join(flags)} — {len(self.buffer):,} lines"
        self.query_one("#logs-status", Static).update(text + (f" — {note}" if note else ""))

    def _status_tick(self) -> None:
        """The line count keeps up with the stream; "connecting…" goes once lines arrive."""
        if self._note == "connecting…" and len(self.buffer):
            self._note = ""
        self._status(self._note)

    def restart(self) -> None:
        """(Re)open the streams with the current pod choice, timestamps and previous-container setting."""
        self._generation += 1
        self.buffer.clear()
        self.view.lines_changed()
        self._status("connecting…")
        self.stream(self._generation)

    @work(exclusive=True, group="logs", exit_on_error=False)
    async def stream(self, generation: int) -> None:
        connection = self._connection()
        if connection is None:
            self._status("not connected to a cluster")
            return
        pods = self.pods if self.pod_index < 0 else [self.pods[self.pod_index]]
        errors: list[str] = []
        try:
            async for _pod, line in job_logs(connection, pods, follow=not self.previous, tail_lines=TAIL_LINES,
                                             timestamps=self.timestamps, previous=self.previous,
                                             prefix=len(pods) > 1,
                                             on_error=lambda pod, message: errors.append(f"{pod}: {message}")):
                if generation != self._generation:
                    return  # a restart replaced this stream; it is being cancelled
                self.buffer.append(line)
                self.view.lines_changed()
        except (ActionError, ApiError) as exc:
            errors.append(str(exc))
        self._status("; ".join(errors) if errors else "stream ended")

    def on_screen_resume(self) -> None:
        self._status()

    # ------------------------------------------------------------------------------------------------ keys

    def action_back(self) -> None:
        search = self.query_one("#logs-search", Input)
        if search.display:
            search.display = False
            self.view.focus()
        else:
            self.workers.cancel_group(self, "logs")
            self.app.pop_screen()

    def action_toggle_follow(self) -> None:
        self.view.follow = not self.view.follow
        self._status()

    def action_toggle_wrap(self) -> None:
        self.view.wrap = not self.view.wrap
        self._status()

    def action_toggle_timestamps(self) -> None:
        self.timestamps = not self.timestamps
        self.restart()

    def action_toggle_previous(self) -> None:
        self.previous = not self.previous
        self.restart()

    def action_next_pod(self) -> None:
        self.pod_index = self.pod_index + 1 if self.pod_index + 1 < len(self.pods) else -1
        self.restart()

    def action_search(self) -> None:
        search = self.query_one("#logs-search", Input)
        search.display = True
        search.focus()

    @on(Input.Submitted, "#logs-search")
    def _search(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.view.set_search(event.value)
        self.view.focus()
        self._match = -1
        self.action_next_match()

    def _go_to_match(self, step: int) -> None:
        matches = self.view.matches()
        if not matches:
            self._status("no match" if self.view.search is not None else "")
            return
        self._match = (self._match + step) % len(matches)
        self.view.scroll_to_line(matches[self._match])
        self._status(f"match {self._match + 1} of {len(matches)}")

    def action_next_match(self) -> None:
        self._go_to_match(1)

    def action_previous_match(self) -> None:
        self._go_to_match(-1)

    def action_save(self) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in self._title)
        path = self.save_dir / f"{name}-{datetime.now():%Y%m%d-%H%M%S}.log"
        path.write_text("\n".join(self.buffer) + "\n", encoding="utf-8")
        self.notify(f"saved {len(self.buffer):,} lines to {path}")
        self._status(f"saved to {path}")
