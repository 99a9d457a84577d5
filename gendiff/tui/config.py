"""User preferences (the theme) in a small JSON file under the user config dir."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gendiff.errors import GendiffError
from gendiff.fileio import atomic_write_text


def config_path() -> Path:
    folder = os.environ.get("GENDIFF_CONFIG_DIR")
    if not folder:
        from platformdirs import user_config_dir

        folder = user_config_dir("gendiff")
    return Path(folder) / "config.json"


def load_config() -> dict[str, Any]:
    try:
        data = json.loads(config_path().read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def save_config(**changes: Any) -> None:
    """Merge ``changes`` into the config file; a read-only config dir is not worth crashing for."""
    data = load_config() | changes
    path = config_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    except (OSError, GendiffError):
        pass
