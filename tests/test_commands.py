"""Command-mode parsing and completion (pure functions)."""

from __future__ import annotations

import pytest

from app.commands import Command, CommandError, completions, parse


@pytest.mark.parametrize(
    ("text", "command"),
    [
        (":jobs", Command("pane", ("jobs",))),
        ("runs", Command("pane", ("training",))),
        ("ep", Command("pane", ("endpoints",))),
        ("ns team-a", Command("ns", ("team-a",))),
        (":ctx prod", Command("ctx", ("prod",))),
        ("split", Command("split", ())),
        ("split jobs runs", Command("split", ("jobs", "training"))),
        ("quit", Command("q", ())),
    ],
)
def test_parse(text: str, command: Command) -> None:
    assert parse(text) == command


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty command"), ("nope", "unknown command :nope"), ("ns", "needs exactly one name"),
     ("jobs extra", "takes no argument"), ("split jobs nowhere", ":split takes up to two panes")],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse(text)


def test_completions() -> None:
    assert completions("j", {})[0] == "jobs"
    assert completions("en", {})[0] == "endpoints"
    assert completions("ctx p", {"ctx": ["prod", "dev", "preprod"]}) == ["ctx prod", "ctx preprod"]
    assert completions("split jobs t", {}) == ["split jobs training"]
    assert completions("jobs", {}) == [], "a complete word needs no completion"
