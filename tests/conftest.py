import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from vllm_server import vllm_server  # noqa: E402, F401  (one vLLM server per session, shared by every module)


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory, monkeypatch):
    """Never touch the real user's config or prompt list."""
    folder = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("GENDIFF_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def verify_cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(autouse=True)
def isolated_verify_cache(verify_cache_root, monkeypatch):
    """The conformance verdicts go to a cache of this test session, never the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(verify_cache_root))
    return verify_cache_root


@pytest.fixture(autouse=True)
def validate_every_written_snapshot(monkeypatch):
    """The app writes snapshots without re-validating what it built; in the tests every
    snapshot written (CLI, TUI export, compare, subprocesses too) is validated against the schema first."""
    monkeypatch.setenv("GENDIFF_VALIDATE_SNAPSHOTS", "1")


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def demo_snapshot(tmp_path_factory):
    """A bfloat16 run of the demo prompts (real engines), saved once for the viewers' tests."""
    from gendiff.cli.main import main

    path = tmp_path_factory.mktemp("snap") / "demo-bf16.json"
    code = main(["run", "--quiet", "--dtype", "bfloat16", "--max-new-tokens", "24", "--json", str(path)])
    assert code == 0
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """``tiny_model_dir(arch) -> Path``: a tiny random model of ``arch`` (see tiny_models.py), built once per session."""
    from tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("tiny-models")
    return lambda arch: build_tiny_model(arch, root)


# Tests that drive the real app (the Pilot, screenshots, a pty) take 0.1-4 s each: the full suite
# runs them; the fast tier (-m "not slow") stays pure logic, hand-made data and the CLI's checks.
APP_MODULES = {
    "test_divergence_panel.py",
    "test_token_column.py",
    "test_capture.py",
    "test_user_themes.py",
}


def drives_the_app(name: str) -> bool:
    return name.startswith("test_app_") or name in APP_MODULES


def pytest_collection_modifyitems(items):
    for item in items:
        if drives_the_app(item.path.name):
            item.add_marker(pytest.mark.slow)
    # the shared vLLM server (vllm_server.py) serves every module; a test that stops it runs last
    items.sort(key=lambda item: item.get_closest_marker("stops_vllm_server") is not None)
