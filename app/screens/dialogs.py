"""Small modal screens: the help listing and a yes/no confirmation."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, OptionList, Static
from textual.widgets.option_list import Option


class HelpScreen(ModalScreen[None]):
    """Every key that works where the user pressed `?`, with the binding id a keymap override uses."""

    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "Close", id="help.close"),
    ]

    def __init__(self, title: str, rows: list[tuple[str, str, str]], commands: list[str]) -> None:
        super().__init__()
        self._title = title
        self._rows = rows
        self._commands = commands

    def compose(self) -> ComposeResult:
        keys = Table(box=None, expand=True, show_edge=False, pad_edge=False)
        keys.add_column("KEY", style="bold", no_wrap=True)
        keys.add_column("ACTION")
        keys.add_column("KEYMAP ID", style="dim", no_wrap=True)
        for key, description, binding_id in self._rows:
            keys.add_row(key, description, binding_id)
        with Vertical(id="help-box") as box:
            box.border_title = f"Keys — {self._title}"
            box.border_subtitle = "esc closes"
            with VerticalScroll():
                yield Static(keys)
                yield Static("\n[b]Commands[/b] (type : first)\n" + "\n".join(f"  :{c}" for c in self._commands))


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question whose safe answer, No, is the one a reflexive enter gives."""

    AUTO_FOCUS = "#no"
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self._question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self._question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class ChoiceScreen(ModalScreen["str | None"]):
    """Pick one of a few values (a priority class, a queue); esc picks nothing."""

    BINDINGS = [Binding("escape", "dismiss_none", "Cancel", id="choice.cancel")]

    def __init__(self, title: str, choices: list[tuple[str, str]], initial: str | None = None) -> None:
        super().__init__()
        self._title = title
        self._choices = choices
        self._initial = initial
        """The value highlighted when the list opens (the current one), else the first."""

    def compose(self) -> ComposeResult:
        with Vertical(id="choice-box") as box:
            box.border_title = self._title
            yield OptionList(*(Option(label, id=value) for value, label in self._choices), id="choice-list")

    def on_mount(self) -> None:
        values = [value for value, _ in self._choices]
        if self._initial in values:
            self.query_one(OptionList).highlighted = values.index(self._initial)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
