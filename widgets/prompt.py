"""The one-line prompt at the bottom: `:` command mode with completion, and `/` filter."""

from __future__ import annotations

from typing import Callable

from textual.binding import Binding
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input


class CallbackSuggester(Suggester):
    """Suggests the first completion a function gives; the function decides what the candidates are."""

    def __init__(self, complete: Callable[[str], list[str]]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self._complete = complete

    async def get_suggestion(self, value: str) -> str | None:
        found = self._complete(value)
        return found[0] if found else None


class Prompt(Input):
    """Input in one of two modes. Enter posts `Entered`; esc posts `Cancelled`; typing in filter mode posts
    `FilterChanged` so the table narrows as the user types."""

    BINDINGS = [
        Binding("tab", "accept_suggestion", "Complete", show=False, id="prompt.complete"),
        Binding("escape", "cancel", "Cancel", show=False, id="prompt.cancel"),
    ]

    class Entered(Message):
        def __init__(self, mode: str, value: str) -> None:
            super().__init__()
            self.mode = mode
            self.value = value

    class Cancelled(Message):
        def __init__(self, mode: str) -> None:
            super().__init__()
            self.mode = mode

    class FilterChanged(Message):
        def __init__(self, value: str) -> None:
            super().__init__()
            self.value = value

    def __init__(self, complete: Callable[[str], list[str]], **kwargs) -> None:
        super().__init__(suggester=CallbackSuggester(complete), **kwargs)
        self.mode = "command"

    def open(self, mode: str, value: str = "") -> None:
        self.mode = mode
        self.placeholder = "command (tab completes, :help lists them)" if mode == "command" else "filter (!x inverts)"
        self.border_title = ":" if mode == "command" else "/"
        self.value = value
        self.cursor_position = len(value)
        self.display = True
        self.focus()

    def close(self) -> None:
        self.display = False

    def action_accept_suggestion(self) -> None:
        if self._suggestion:
            self.value = self._suggestion
            self.cursor_position = len(self.value)

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled(self.mode))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.mode == "filter":
            self.post_message(self.FilterChanged(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Entered(self.mode, event.value))
