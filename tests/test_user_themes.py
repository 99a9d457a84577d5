"""User themes from the config folder: offered when valid and readable, refused with a reason."""

from __future__ import annotations

import json

from gendiff.themes import GENDIFF_CONTRAST, GENDIFF_DARK, THEMES
from gendiff.themes.user import load_user_themes
from gendiff.tui.app import GendiffApp

TAKEN = {t.name for t in THEMES}
DEFAULTS = GendiffApp.get_theme_variable_defaults(None)  # type: ignore[arg-type]


def write(folder, name, data):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(data if isinstance(data, str) else json.dumps(data))


def as_file(theme, name):
    data = {f: getattr(theme, f) for f in ("primary", "secondary", "accent", "warning", "error", "success")}
    data |= {f: getattr(theme, f) for f in ("background", "surface", "panel") if getattr(theme, f)}
    return {"name": name, "dark": theme.dark, "variables": dict(theme.variables), **data}


def test_a_readable_theme_is_offered(tmp_path):
    write(tmp_path, "mine.json", as_file(GENDIFF_DARK, "mine"))
    themes, problems = load_user_themes(tmp_path, TAKEN, DEFAULTS)
    assert [t.name for t in themes] == ["mine"] and problems == []
    assert themes[0].variables["diverge"] == GENDIFF_DARK.variables["diverge"]


def test_bad_files_are_refused_each_with_a_reason(tmp_path):
    write(tmp_path, "a-broken.json", "{not json")
    write(tmp_path, "b-taken.json", as_file(GENDIFF_DARK, GENDIFF_CONTRAST.name))
    write(tmp_path, "c-colour.json", {**as_file(GENDIFF_DARK, "c"), "primary": "not-a-colour"})
    grey = {**as_file(GENDIFF_DARK, "grey"), "background": "#777777", "surface": "#777777", "panel": "#777777"}
    write(tmp_path, "d-grey.json", grey)
    write(tmp_path, "e-field.json", {**as_file(GENDIFF_DARK, "e"), "colour": "#fff"})
    themes, problems = load_user_themes(tmp_path, TAKEN, DEFAULTS)
    assert themes == []
    assert [p.split(":")[0] for p in problems] == [
        "theme a-broken.json",
        "theme b-taken.json",
        "theme c-colour.json",
        "theme d-grey.json",
        "theme e-field.json",
    ]
    assert "already taken" in problems[1]
    assert "'not-a-colour' is not a colour" in problems[2]
    assert "too little contrast" in problems[3]
    assert "unknown field(s) colour" in problems[4]


def test_no_folder_means_no_themes(tmp_path):
    assert load_user_themes(tmp_path / "missing", TAKEN) == ([], [])
