"""User preferences (the theme, the settings screen's fields) in a small JSON file under the
user config dir."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gendiff.errors import GendiffError
from gendiff.io.fileio import atomic_write_text
from gendiff.run.options import RunOptions


def config_path() -> Path:
    folder = os.environ.get("GENDIFF_CONFIG_DIR")
    if not folder:
        from platformdirs import user_config_dir

        folder = user_config_dir("gendiff")
    return Path(folder) / "config.json"


def read_config() -> tuple[dict[str, Any], str | None]:
    """The config file's contents and, when it exists but can't be used, why (a startup note)."""
    path = config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        return {}, f"{path}: can't read it ({exc.strerror})"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno} (char {exc.pos})"  # exc.msg alone drops it
        return {}, f"{path}: not valid JSON ({exc.msg}: {where}); the file is left as it is"
    if not isinstance(data, dict):
        return {}, f"{path}: not a JSON object; the file is left as it is"
    return data, None


def config_note() -> str | None:
    """The startup note for a config file that does not load, or None."""
    problem = read_config()[1]
    return f"{problem}; using the defaults" if problem else None


def load_config() -> dict[str, Any]:
    return read_config()[0]


def writable(path: Path) -> bool:
    """Whether this process may replace ``path`` (its folder writable, and the file if it is there)."""
    folder_ok = os.access(path.parent, os.W_OK | os.X_OK)
    return folder_ok and (not path.exists() or os.access(path, os.W_OK))


def save_config(**changes: Any) -> str | None:
    """Merge ``changes`` into the config file; None when saved, else why not (a config file that
    does not load is never overwritten: the user's text in it stays)."""
    data, problem = read_config()
    if problem:
        return f"not saved, because {problem}"
    path = config_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data | changes, indent=2) + "\n")
    except OSError as exc:
        return f"not saved to {path}: {exc.strerror or exc}"
    except GendiffError as exc:
        if not writable(path):  # the config file's path is not the user's pick: say what to change
            return f"not saved: {path} can't be written (permission denied); make {path.parent} writable to keep it"
        return f"not saved: {exc}"
    return None


# RunOptions fields the settings screen changes and the config file remembers, with the
# command-line option (argparse dest) that overrides each at launch
SETTINGS = {
    "model": "model",
    "engines": "engines",
    "reference": "reference",
    "dtype": "dtype",
    "attn": "attn",
    "batch_size": "batch_size",
    "max_new_tokens": "max_new_tokens",
    "top_k": "top_k",
    "stop_at_eos": "no_stop_at_eos",
    "fragile_threshold": "fragile_threshold",
}


def save_settings(options: RunOptions) -> str | None:
    """Remember the settings screen's fields of ``options`` for the next launch; why not, if not."""
    values = {name: getattr(options, name) for name in SETTINGS}
    values["engines"] = list(options.engines)
    return save_config(settings=values)


def restore_settings(options: RunOptions, given: set[str]) -> tuple[RunOptions, str | None]:
    """``options`` with the remembered settings where the command line did not give the option
    (``given``: argparse dests); (options, a one-line note) when the remembered ones don't check out."""
    saved = load_config().get("settings")
    if not isinstance(saved, dict):
        return options, None
    changes = {name: saved[name] for name, dest in SETTINGS.items() if name in saved and dest not in given}
    if "engines" in changes:
        changes["engines"] = tuple(changes["engines"]) if isinstance(changes["engines"], list) else None
    try:
        restored = options.with_changes(**changes)
        restored.config()  # the same checks as the command line's
    except (GendiffError, TypeError, ValueError) as exc:
        return options, f"saved settings not used ({exc}); the defaults and command line apply"
    return restored, None
