"""Where the embedded demo model and its prompts are (``gendiff/demo_model``, shipped in the package)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def demo_model_path() -> Path:
    """The model folder shipped inside the package."""
    return Path(str(resources.files("gendiff") / "demo_model"))


def demo_prompts_path() -> Path:
    """The demo prompts (one per line), beside the model."""
    return demo_model_path() / "prompts.txt"


def model_name(folder: str | os.PathLike[str] | None) -> str:
    """The one name a model goes by, on screen and in a snapshot: its folder's name (the embedded
    demo model's, ``demo_model``, when ``folder`` is None)."""
    path = Path(folder) if folder is not None else demo_model_path()
    return path.name or path.resolve().name
