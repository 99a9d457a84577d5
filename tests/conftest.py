import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory, monkeypatch):
    """Never touch the real user's config or prompt list."""
    folder = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("GENDIFF_CONFIG_DIR", str(folder))
    return folder


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
