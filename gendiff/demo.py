"""Where the embedded demo model and its prompts are (``gendiff/demo_model``, shipped in the package)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def demo_model_path() -> Path:
    """The model folder shipped inside the package."""
    return Path(str(resources.files("gendiff") / "demo_model"))


def demo_prompts_path() -> Path:
    """The demo prompts (one per line), beside the model."""
    return demo_model_path() / "prompts.txt"
