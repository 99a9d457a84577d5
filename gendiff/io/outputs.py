"""Where an output may go: the one check of an output path for the CLI and the app's export
dialogs. Not over one of the inputs of the work (a prompt file, a snapshot read or viewed: the
write would replace what the user typed or saved) and not into the model folder."""

from __future__ import annotations

import os
from typing import Any

from gendiff.demo import demo_model_path
from gendiff.errors import InputError
from gendiff.io.fileio import check_writable, resolve_target, same_file


def check_output(path: str, inputs: dict[str, Any], model: str | None = None, option: str = "--json") -> None:
    """Refuse (before any work) an output path that can't be written, or that names one of the
    inputs (``{what: path}``, None entries skipped: a snapshot written there would replace it) or
    a file of the model folder (None: the demo model's). ``option`` names the path in messages
    (``--json``, ``--save``, ``OUT``; empty: the path alone, as the app's dialogs say it).
    Raises InputError, one line naming the path and what to do."""
    target = check_writable(path, option)
    name = f"{option} {path}" if option else str(path)
    for what, source in inputs.items():
        if source is not None and same_file(target, source):
            raise InputError(f"{name}: that is {what}; writing there would replace it, so give another path")
    folder = os.path.realpath(model if model is not None else demo_model_path())
    if os.path.realpath(resolve_target(path).parent) == folder:
        raise InputError(f"{name}: that is inside the model folder {folder}; write the file elsewhere")
