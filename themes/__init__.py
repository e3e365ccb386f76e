"""Colour themes: three built in, plus the user's YAML themes from `$XDG_DATA_HOME/hyperdesk/themes/`.

A theme is data: the fields of `textual.theme.Theme`. The TCSS in `hyperdesk.tcss` uses only theme variables,
so every theme restyles every widget.

A user theme file looks like:

    name: solarized
    primary: "#268bd2"
    background: "#002b36"
    dark: true            # optional, default true
    variables: {}         # optional extra TCSS variables
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from textual.color import Color, ColorParseError
from textual.theme import Theme

STYLESHEET = Path(__file__).with_name("hyperdesk.tcss")

BUILTIN: dict[str, Theme] = {
    theme.name: theme
    for theme in (
        Theme(
            name="hyperdesk-dark",
            primary="#4EA8DE",
            secondary="#7B9ACC",
            accent="#F2A65A",
            warning="#E9C46A",
            error="#EF6F6C",
            success="#6CC18E",
            foreground="#D8DEE9",
            background="#10151C",
            surface="#171E27",
            panel="#1F2833",
            dark=True,
        ),
        Theme(
            name="hyperdesk-light",
            primary="#0B6BCB",
            secondary="#4C5F8A",
            accent="#B5540B",
            warning="#9A6700",
            error="#C62828",
            success="#1B7F3B",
            foreground="#1C2430",
            background="#F7F8FA",
            surface="#FFFFFF",
            panel="#E6EAF0",
            dark=False,
        ),
        # Reads well over a plain 16-colour SSH terminal: every colour is one of the terminal's own.
        Theme(
            name="hyperdesk-ansi",
            ansi=True,
            primary="ansi_blue",
            secondary="ansi_cyan",
            accent="ansi_yellow",
            warning="ansi_yellow",
            error="ansi_red",
            success="ansi_green",
            foreground="ansi_default",
            background="ansi_default",
            surface="ansi_default",
            panel="ansi_default",
            boost="ansi_default",
            dark=True,
            variables={
                "ansi-background": "ansi_black",
                "ansi-foreground": "ansi_white",
                "border-blurred": "ansi_bright_black",
                "block-cursor-foreground": "ansi_black",
                "block-cursor-background": "ansi_cyan",
                "block-cursor-blurred-foreground": "ansi_default",
                "block-cursor-blurred-background": "ansi_bright_black",
                "input-cursor-background": "ansi_white",
                "input-cursor-foreground": "ansi_black",
                "input-selection-background": "ansi_blue",
                "footer-key-foreground": "ansi_cyan",
            },
        ),
    )
}

DEFAULT = "hyperdesk-dark"

_COLOUR_FIELDS = ("primary", "secondary", "accent", "warning", "error", "success", "foreground", "background",
                  "surface", "panel", "boost")


class ThemeFileError(Exception):
    """A user theme file that cannot be used; the message names the file and the field."""


def load_user_themes(directory: Path) -> tuple[list[Theme], list[str]]:
    """Every `*.yaml` theme in `directory`; a broken file is reported and skipped, never fatal."""
    themes: list[Theme] = []
    errors: list[str] = []
    if not directory.is_dir():
        return themes, errors
    for path in sorted(directory.glob("*.y*ml")):
        try:
            themes.append(theme_from_file(path))
        except ThemeFileError as exc:
            errors.append(str(exc))
    return themes, errors


def theme_from_file(path: Path) -> Theme:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ThemeFileError(f"{path}: cannot be read as YAML: {str(exc).splitlines()[0]}") from None
    return theme_from_dict(data, source=str(path))


def theme_from_dict(data: Any, source: str) -> Theme:
    if not isinstance(data, dict):
        raise ThemeFileError(f"{source}: a theme must be a mapping")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ThemeFileError(f"{source}: name: required")
    if "primary" not in data:
        raise ThemeFileError(f"{source}: primary: required")
    unknown = set(data) - {*_COLOUR_FIELDS, "name", "dark", "variables"}
    if unknown:
        raise ThemeFileError(f"{source}: {sorted(unknown)[0]}: unknown field")
    colours: dict[str, str] = {}
    for key in _COLOUR_FIELDS:
        if key in data:
            value = str(data[key])
            try:
                Color.parse(value)
            except ColorParseError:
                raise ThemeFileError(f"{source}: {key}: {value!r} is not a colour") from None
            colours[key] = value
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise ThemeFileError(f"{source}: variables: must be a mapping")
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeFileError(f"{source}: dark: expected true or false")
    return Theme(name=name, dark=dark, variables={str(k): str(v) for k, v in variables.items()}, **colours)
