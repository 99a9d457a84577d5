"""The user's own themes: ``*.json`` files in the ``themes`` folder beside gendiff's config.

A file holds Textual theme fields and gendiff's variables, e.g.::

    {"name": "solarized", "dark": true, "primary": "#268BD2", "background": "#002B36",
     "variables": {"diverge": "#DC322F", "diverge-text": "#FDF6E3"}}

A theme is offered only if it parses and meets the same WCAG contrast as gendiff's own
(``gendiff.themes.contrast``); every refused file gets one line saying why.
"""

from __future__ import annotations

import json
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from gendiff.themes.contrast import failures

COLOUR_FIELDS = (
    "primary",
    "secondary",
    "accent",
    "warning",
    "error",
    "success",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)


def theme_from_dict(data: object, taken: set[str]) -> Theme:
    """A Theme from one file's JSON; ValueError saying what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object with a name and colours")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError('"name" is missing')
    if name in taken:
        raise ValueError(f"the name {name!r} is already taken by another theme")
    unknown = set(data) - {"name", "dark", "variables", *COLOUR_FIELDS}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    if "primary" not in data:
        raise ValueError('"primary" is missing')
    colours = {field: data[field] for field in COLOUR_FIELDS if field in data}
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ValueError('"variables" must be an object of name: colour')
    for field, value in {**colours, **variables}.items():
        try:
            Color.parse(str(value))
        except ColorParseError:
            raise ValueError(f"{field}: {value!r} is not a colour") from None
    return Theme(
        name=name,
        dark=bool(data.get("dark", True)),
        variables={str(k): str(v) for k, v in variables.items()},
        **{k: str(v) for k, v in colours.items()},
    )


def load_user_themes(
    folder: Path, taken: set[str], defaults: dict[str, str] | None = None
) -> tuple[list[Theme], list[str]]:
    """The valid themes in ``folder`` (sorted by file name) and one problem line per refused file.

    ``taken``: names already in use (gendiff's themes); ``defaults``: the variables the app
    supplies to themes that leave them out (for the contrast check)."""
    themes: list[Theme] = []
    problems: list[str] = []
    names = set(taken)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            theme = theme_from_dict(json.loads(path.read_text(encoding="utf-8")), names)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
            problems.append(f"theme {path.name}: {exc}")
            continue
        low = failures(theme, defaults)
        if low:
            more = f" (and {len(low) - 1} more)" if len(low) > 1 else ""
            problems.append(f"theme {path.name}: too little contrast: {low[0].split(': ', 1)[1]}{more}")
            continue
        names.add(theme.name)
        themes.append(theme)
    return themes, problems
