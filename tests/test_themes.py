"""Themes: three built in, --theme and :theme, user YAML themes, NO_COLOR."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.color import Color

from app.config import Settings
from app.tui import HyperdeskApp
from tests.plugins.tui import record_notifications
from themes import BUILTIN, ThemeFileError, theme_from_dict

pytestmark = pytest.mark.usefixtures("isolated_home")


def test_three_builtin_themes_one_of_them_ansi() -> None:
    assert {"hyperdesk-dark", "hyperdesk-light", "hyperdesk-ansi"} <= set(BUILTIN)
    assert BUILTIN["hyperdesk-ansi"].ansi
    assert not BUILTIN["hyperdesk-light"].dark


async def test_theme_from_settings_and_command() -> None:
    app = HyperdeskApp(Settings(theme="hyperdesk-light"))
    notes = record_notifications(app)
    async with app.run_test() as pilot:
        assert app.theme == "hyperdesk-light"
        background = app.screen.styles.background
        await pilot.press("colon", *"theme hyperdesk-dark", "enter")
        await pilot.pause()
        assert app.theme == "hyperdesk-dark"
        assert app.screen.styles.background != background, "the screen was restyled"
        await pilot.press("colon", *"theme neon", "enter")
        await pilot.pause()
        assert app.theme == "hyperdesk-dark"
        assert any("unknown theme 'neon'" in str(n.message) for n in notes)


async def test_user_theme_from_the_data_dir(isolated_home: Path) -> None:
    themes = isolated_home / "xdg_data_home" / "hyperdesk" / "themes"
    themes.mkdir(parents=True)
    (themes / "solar.yaml").write_text("name: solar\nprimary: '#268bd2'\nbackground: '#002b36'\n")
    (themes / "broken.yaml").write_text("name: broken\nprimary: not-a-colour\n")
    app = HyperdeskApp(Settings(theme="solar"))
    notes = record_notifications(app)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == "solar"
        assert app.screen.styles.background == Color.parse("#002b36")
        messages = [str(n.message) for n in notes]
        assert any("broken.yaml: primary: 'not-a-colour' is not a colour" in m for m in messages)


async def test_unknown_theme_in_settings_falls_back_with_a_message() -> None:
    app = HyperdeskApp(Settings(theme="neon"))
    notes = record_notifications(app)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == "hyperdesk-dark"
        assert any("unknown theme 'neon'" in str(n.message) for n in notes)


async def test_no_color_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = HyperdeskApp(Settings())
    async with app.run_test():
        assert app.no_color


@pytest.mark.parametrize(
    ("data", "message"),
    [({"primary": "red"}, "name: required"), ({"name": "x"}, "primary: required"),
     ({"name": "x", "primary": "red", "glow": 1}, "glow: unknown field"),
     ({"name": "x", "primary": "red", "dark": "yes"}, "dark: expected true or false")],
)
def test_theme_file_errors(data: dict, message: str) -> None:
    with pytest.raises(ThemeFileError, match=message):
        theme_from_dict(data, source="t.yaml")
