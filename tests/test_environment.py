"""Environment capture (gendiff/environment.py): what every snapshot records."""

import json
import subprocess
import sys

import pytest

from gendiff.io import environment
from gendiff.io.environment import environment_info, source_commit


def _fake_dist(site, name, direct_url):
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "direct_url.json").write_text(json.dumps(direct_url))


def test_source_commit_from_pip_vcs_install_and_from_an_editable_checkout(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _fake_dist(site, "fromgit", {"url": "https://github.com/x/y", "vcs_info": {"vcs": "git", "commit_id": "abc123"}})
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    (checkout / "f").write_text("x")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    _fake_dist(site, "editable", {"url": checkout.as_uri(), "dir_info": {"editable": True}})
    _fake_dist(site, "wheel", {"url": "https://files/x.whl", "archive_info": {}})
    monkeypatch.syspath_prepend(str(site))
    source_commit.cache_clear()
    assert source_commit("fromgit") == "abc123"
    assert source_commit("editable") == head
    assert source_commit("wheel") is None
    assert source_commit("no-such-package-here") is None


def test_environment_keys_follow_the_schema():
    import jsonschema

    from gendiff.io.validation import schema

    info = environment_info("cpu")
    jsonschema.validate(info, schema()["properties"]["environment"])
    assert info["device"] == "cpu" and info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["gpu_count"] == len(environment._nvidia_gpus()[0])


@pytest.mark.slow  # imports torch
def test_environment_matches_torch():
    import torch

    info = environment_info()
    assert info["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert info["cuda"] == torch.version.cuda
    if not torch.cuda.is_available():
        assert info["gpu_count"] == 0 and info["gpu"] is None and info["driver"] is None
    else:  # only on a CUDA machine (not run where this was written)
        assert info["gpu_count"] == torch.cuda.device_count()
        assert torch.cuda.get_device_name(0) in info["gpu"]
