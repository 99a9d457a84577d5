"""Bad-input probe for gendiff (issue #14): run each case as a user would, classify the outcome.

usage: python scripts/probe_bad_input.py CHECKOUT OUT.tsv [case-prefix...]
(PROBE_INPROC=1 runs most cases in one process: much faster; exit codes and stderr are the same.)
Cases that can damage the machine use private stand-ins: never probe --json with /dev/null as
root (an unfixed gendiff replaces it with a regular file). Results: docs/bad-input.md.
clean: the expected exit code, no traceback, and (for errors) one `gendiff: error:` line
crash: a traceback; loss: a post-check found data lost/damaged; misleading: anything else
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WT = Path(sys.argv[1]).resolve()
OUT = Path(sys.argv[2])
ONLY = sys.argv[3:]
PY = "/work/main/.venv/bin/python"
DEMO = WT / "gendiff" / "demo_model"
ENV = {**os.environ, "PYTHONPATH": str(WT), "TOKENIZERS_PARALLELISM": "false"}
FAST = ["--engines", "hf-single,hf-left", "--max-new-tokens", "2", "--quiet"]


INPROC = os.environ.get("PROBE_INPROC") == "1"


def _inproc(argv, cwd):
    import contextlib
    import io
    import traceback

    sys.path.insert(0, str(WT))
    from gendiff.cli.main import main as gmain

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = gmain([str(a) for a in argv])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def gendiff(*argv, cwd, timeout=300, shell_tail="", sub=False):
    if INPROC and not shell_tail and not sub:
        return _inproc(argv, cwd)
    cmd = [PY, "-m", "gendiff", *argv]
    if shell_tail:
        line = " ".join(_q(a) for a in cmd) + shell_tail
        p = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout
        )
    else:
        p = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def _q(s):
    import shlex

    return shlex.quote(str(s))


def _sigint_default():
    # a background (nohup &) probe inherits SIGINT ignored; a user's terminal does not
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def model_copy(d, name="m"):
    m = d / name
    shutil.copytree(DEMO, m)
    return m


def edit_config(m, **changes):
    c = json.loads((m / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    (m / "config.json").write_text(json.dumps(c))


def prompts_file(d, text="The capital of France is\nHello\n", name="p.txt"):
    f = d / name
    f.write_text(text)
    return f


CASES = []


def case(cid, desc, expect=2, contains=None):
    def deco(fn):
        CASES.append((cid, desc, expect, contains, fn))
        return fn

    return deco


# ── model folders ─────────────────────────────────────────────────────────
@case("m01", "config.json is a JSON list", contains="config.json")
def _(d):
    m = model_copy(d)
    (m / "config.json").write_text("[1, 2]")
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m02", "config.json is a JSON string", contains="config.json")
def _(d):
    m = model_copy(d)
    (m / "config.json").write_text('"x"')
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m03", "config.json empty file", contains="config.json")
def _(d):
    m = model_copy(d)
    (m / "config.json").write_text("")
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m04", "architectures Llama, model_type bert", contains="model_type")
def _(d):
    m = model_copy(d)
    edit_config(m, model_type="bert")
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m05", "architectures is a string, not a list")
def _(d):
    m = model_copy(d)
    edit_config(m, architectures="LlamaForCausalLM")
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m06", "model_type missing", contains="model_type")
def _(d):
    m = model_copy(d)
    edit_config(m, model_type=None)
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m07", "model_type unknown", contains="model_type")
def _(d):
    m = model_copy(d)
    edit_config(m, model_type="banana")
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m08", "weights file empty", contains="model.safetensors")
def _(d):
    m = model_copy(d)
    (m / "model.safetensors").write_bytes(b"")
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m09", "weights file truncated", contains="model.safetensors")
def _(d):
    m = model_copy(d)
    data = (m / "model.safetensors").read_bytes()
    (m / "model.safetensors").write_bytes(data[: len(data) // 2])
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m10", "weights file corrupt header", contains="model.safetensors")
def _(d):
    m = model_copy(d)
    data = bytearray((m / "model.safetensors").read_bytes())
    data[8:40] = b"X" * 32
    (m / "model.safetensors").write_bytes(bytes(data))
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m11", "weights file missing", contains="weights")
def _(d):
    m = model_copy(d)
    (m / "model.safetensors").unlink()
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m12", "weights file is random garbage", contains="model.safetensors")
def _(d):
    m = model_copy(d)
    (m / "model.safetensors").write_bytes(os.urandom(4096))
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m13", "sharded index names a missing shard", contains="index")
def _(d):
    m = model_copy(d)
    (m / "model.safetensors").rename(m / "model-00001-of-00002.safetensors")
    from safetensors import safe_open

    with safe_open(str(m / "model-00001-of-00002.safetensors"), "pt") as f:
        keys = list(f.keys())
    wm = {k: "model-00001-of-00002.safetensors" for k in keys}
    wm[keys[0]] = "model-00002-of-00002.safetensors"
    (m / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m14", "weights with a tensor removed (missing key)", contains="missing")
def _(d):
    m = model_copy(d)
    from safetensors.torch import load_file, save_file

    t = load_file(str(m / "model.safetensors"))
    t.pop(sorted(t)[3])
    save_file(t, str(m / "model.safetensors"), metadata={"format": "pt"})
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m15", "weights with an extra unexpected tensor", contains="unexpected")
def _(d):
    m = model_copy(d)
    import torch
    from safetensors.torch import load_file, save_file

    t = load_file(str(m / "model.safetensors"))
    t["model.extra.weight"] = torch.zeros(3)
    save_file(t, str(m / "model.safetensors"), metadata={"format": "pt"})
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m16", "tensor shape differs from config (hidden_size changed)")
def _(d):
    m = model_copy(d)
    edit_config(m, intermediate_size=512)
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m17", "config vocab_size smaller than tokenizer (vocabularies differ)", contains="vocabular")
def _(d):
    m = model_copy(d)
    from safetensors.torch import load_file, save_file

    t = load_file(str(m / "model.safetensors"))
    n = 300
    t = {k: (v[:n].clone() if v.shape[0] == 2807 else v) for k, v in t.items()}
    save_file(t, str(m / "model.safetensors"), metadata={"format": "pt"})
    edit_config(m, vocab_size=n)
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m18", "tokenizer.json missing", contains="tokenizer")
def _(d):
    m = model_copy(d)
    (m / "tokenizer.json").unlink()
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m19", "tokenizer.json corrupt", contains="tokenizer")
def _(d):
    m = model_copy(d)
    (m / "tokenizer.json").write_text("{not json")
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m20", "--model is a file", contains="not a directory")
def _(d):
    return gendiff("run", "--model", DEMO / "config.json", *FAST, cwd=d)


@case("m21", "config.json unreadable (chmod 000) [root can read]", expect=None)
def _(d):
    m = model_copy(d)
    os.chmod(m / "config.json", 0)
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m22", "config.json is a directory", contains="config.json")
def _(d):
    m = model_copy(d)
    (m / "config.json").unlink()
    (m / "config.json").mkdir()
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m23", "vocab_size in config is a string", contains="vocab_size")
def _(d):
    m = model_copy(d)
    edit_config(m, vocab_size="big")
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m24", "max_position_embeddings 0", contains="max_position_embeddings")
def _(d):
    m = model_copy(d)
    edit_config(m, max_position_embeddings=0)
    return gendiff("run", "--model", m, *FAST, cwd=d)


@case("m25", "pytorch_model.bin that is garbage, no safetensors", contains="pytorch_model.bin")
def _(d):
    m = model_copy(d)
    (m / "model.safetensors").unlink()
    (m / "pytorch_model.bin").write_bytes(b"garbage" * 10)
    return gendiff("run", "--model", m, *FAST, cwd=d)


# ── device ────────────────────────────────────────────────────────────────
@case("d01", "--device cuda without GPU", contains="cuda")
def _(d):
    return gendiff("run", "--device", "cuda", *FAST, cwd=d)


@case("d02", "--device banana", contains="banana")
def _(d):
    return gendiff("run", "--device", "banana", *FAST, cwd=d)


@case("d03", "--device cuda:x", contains="cuda:x")
def _(d):
    return gendiff("run", "--device", "cuda:x", *FAST, cwd=d)


@case("d04", "engine spec device=banana", contains="banana")
def _(d):
    return gendiff("run", "--engines", "hf-single,hf-left:device=banana", "--max-new-tokens", "2", "--quiet", cwd=d)


@case("d05", "--device ''", contains="device")
def _(d):
    return gendiff("run", "--device", "", *FAST, cwd=d)


@case("d06", "--device meta", contains="meta")
def _(d):
    return gendiff("run", "--device", "meta", *FAST, cwd=d)


# ── prompts ───────────────────────────────────────────────────────────────
@case("p01", "UTF-8 BOM in .txt prompt file: stripped", expect=0)
def _(d):
    f = prompts_file(d, "\ufeffHello world\nSecond\n")
    out = d / "s.json"
    r = gendiff("run", "--prompts", f, *FAST, "--json", out, cwd=d)
    if r[0] == 0 and json.loads(out.read_text())["prompts"][0]["text"].startswith("\ufeff"):
        return r + ("misleading: BOM kept in prompt 1",)
    return r


@case("p02", "UTF-8 BOM in .jsonl prompt file", expect=0)
def _(d):
    f = prompts_file(d, '\ufeff{"prompt": "Hello"}\n', name="p.jsonl")
    return gendiff("run", "--prompts", f, *FAST, cwd=d)


@case("p03", "prompt that tokenizes to 0 tokens", contains="prompt 1")
def _(d):
    m = model_copy(d)
    t = json.loads((m / "tokenizer.json").read_text())
    t["post_processor"] = None  # no BOS
    t["normalizer"] = {"type": "Replace", "pattern": {"String": "~"}, "content": ""}
    (m / "tokenizer.json").write_text(json.dumps(t))
    f = prompts_file(d, "~~~\nHello\n")
    return gendiff("run", "--model", m, "--prompts", f, *FAST, cwd=d)


@case("p04", "prompt file is latin-1", contains="UTF-8")
def _(d):
    f = d / "p.txt"
    f.write_bytes("caf\xe9\n".encode("latin-1"))
    return gendiff("run", "--prompts", f, *FAST, cwd=d)


@case("p05", "prompt file is a directory", contains="folder")
def _(d):
    return gendiff("run", "--prompts", d, *FAST, cwd=d)


@case("p06", "jsonl line is a list", contains="p.jsonl:1")
def _(d):
    f = prompts_file(d, '["a"]\n', name="p.jsonl")
    return gendiff("run", "--prompts", f, *FAST, cwd=d)


@case("p07", "jsonl prompt is a number", contains="p.jsonl:1")
def _(d):
    f = prompts_file(d, '{"prompt": 3}\n', name="p.jsonl")
    return gendiff("run", "--prompts", f, *FAST, cwd=d)


@case("p08", "prompt with NUL byte", expect=0)
def _(d):
    f = prompts_file(d, "Hello\x00world\n")
    return gendiff("run", "--prompts", f, *FAST, cwd=d)


@case("p09", "prompt file is binary garbage", contains="p.txt")
def _(d):
    f = d / "p.txt"
    f.write_bytes(os.urandom(2000))
    return gendiff("run", "--prompts", f, *FAST, cwd=d)


@case("p10", "prompt file is a FIFO with nothing written [hang?]", expect=None)
def _(d):
    f = d / "p.txt"
    os.mkfifo(f)
    try:
        return gendiff("run", "--prompts", f, *FAST, cwd=d, timeout=20)
    except subprocess.TimeoutExpired:
        return (-1, "", "hang (timeout 20 s)")


@case("p11", "trailing backslash in a .txt prompt", expect=0)
def _(d):
    f = prompts_file(d, "Hello \\\n")
    return gendiff("run", "--prompts", f, *FAST, cwd=d)


@case("p12", "UTF-16 prompt file (with BOM)", contains="UTF")
def _(d):
    f = d / "p.txt"
    f.write_bytes("Hello\n".encode("utf-16"))
    return gendiff("run", "--prompts", f, *FAST, cwd=d)


@case("p13", "prompt of only a lone surrogate escape in jsonl", expect=None)
def _(d):
    f = prompts_file(d, '{"prompt": "\\ud800 hello"}\n', name="p.jsonl")
    return gendiff("run", "--prompts", f, *FAST, cwd=d)


@case("p14", "CRLF line endings: no \\r in prompts", expect=0)
def _(d):
    f = d / "p.txt"
    f.write_bytes(b"Hello\r\nWorld\r\n")
    out = d / "s.json"
    r = gendiff("run", "--prompts", f, *FAST, "--json", out, cwd=d)
    if r[0] == 0 and any("\r" in p["text"] for p in json.loads(out.read_text())["prompts"]):
        return r + ("misleading: \\r kept",)
    return r


@case("p15", ".json prompt file holding a JSON array", contains="p.json")
def _(d):
    f = prompts_file(d, '["a", "b"]\n', name="p.json")
    return gendiff("run", "--prompts", f, *FAST, cwd=d)


# ── options ───────────────────────────────────────────────────────────────
@case("o01", "--fragile-threshold nan", contains="--fragile-threshold")
def _(d):
    return gendiff("run", "--fragile-threshold", "nan", *FAST, cwd=d)


@case("o02", "--fragile-threshold inf", contains="--fragile-threshold")
def _(d):
    return gendiff("run", "--fragile-threshold", "inf", *FAST, cwd=d)


@case("o03", "--fragile-threshold -1", contains="--fragile-threshold")
def _(d):
    return gendiff("run", "--fragile-threshold", "-1", *FAST, cwd=d)


@case("o04", "--tolerance 0 with --bisect: checked before the run", contains="--tolerance")
def _(d):
    t = time.time()
    r = gendiff("run", "--bisect", "--tolerance", "0", *FAST, cwd=d)
    if "loading" in r[2] or time.time() - t > 8:
        return r + ("misleading: checked after the run",)
    return r


@case("o05", "--tolerance nan", contains="--tolerance")
def _(d):
    return gendiff("run", "--bisect", "--tolerance", "nan", *FAST, cwd=d)


@case("o06", "--engines ''", contains="--engines")
def _(d):
    return gendiff("run", "--engines", "", "--max-new-tokens", "2", "--quiet", cwd=d)


@case("o07", "--engines ,", contains="--engines")
def _(d):
    return gendiff("run", "--engines", ",", "--max-new-tokens", "2", "--quiet", cwd=d)


@case("o08", "--json ''", contains="--json")
def _(d):
    return gendiff("run", "--json", "", *FAST, cwd=d)


@case("o09", "--json dir/ (not existing)", contains="dir")
def _(d):
    r = gendiff("run", "--json", "dir/", *FAST, cwd=d)
    if (d / "dir").is_file():
        return r + ("misleading: wrote a file named dir",)
    return r


@case("o10", "--json existing directory", contains="folder")
def _(d):
    (d / "out").mkdir()
    return gendiff("run", "--json", "out", *FAST, cwd=d)


@case("o11", "--top-k abc (argparse)", contains="--top-k")
def _(d):
    return gendiff("run", "--top-k", "abc", *FAST, cwd=d)


@case("o12", "--batch-size 0", contains="batch")
def _(d):
    return gendiff("run", "--batch-size", "0", *FAST, cwd=d)


@case("o13", "--max-new-tokens -5", contains="--max-new-tokens")
def _(d):
    return gendiff("run", "--max-new-tokens", "-5", "--engines", "hf-single", "--quiet", cwd=d)


@case("o14", "--engines hf-single,hf-single (duplicate)", contains="once")
def _(d):
    return gendiff("run", "--engines", "hf-single,hf-single", "--max-new-tokens", "2", "--quiet", cwd=d)


@case("o15", "--engines 'hf-left:' (empty options)", expect=0)
def _(d):
    return gendiff("run", "--engines", "hf-single,hf-left:", "--max-new-tokens", "2", "--quiet", cwd=d)


@case("o16", "--engines 'hf-left:batch_size=-1'", contains="batch_size")
def _(d):
    return gendiff("run", "--engines", "hf-single,hf-left:batch_size=-1", "--max-new-tokens", "2", "--quiet", cwd=d)


@case("o17", "--engines 'hf-left:dtype=float64'", contains="float64")
def _(d):
    return gendiff("run", "--engines", "hf-single,hf-left:dtype=float64", "--max-new-tokens", "2", "--quiet", cwd=d)


@case("o18", "--engines ':dtype=bfloat16' (no name)", contains="engine")
def _(d):
    return gendiff("run", "--engines", ":dtype=bfloat16", "--max-new-tokens", "2", "--quiet", cwd=d)


@case("o19", "--reference ''", contains="reference")
def _(d):
    return gendiff("run", "--reference", "", *FAST, cwd=d)


@case("o20", "--sweep dtype= (no values)", contains="--sweep")
def _(d):
    return gendiff("run", "--sweep", "dtype=", *FAST, cwd=d)


@case("o21", "--sweep dtype=float64", contains="float64")
def _(d):
    return gendiff("run", "--sweep", "dtype=float64", *FAST, cwd=d)


@case("o22", "--max-new-tokens 10**9 (beyond context)", contains="context")
def _(d):
    return gendiff("run", "--max-new-tokens", "1000000000", "--engines", "hf-single", "--quiet", cwd=d)


@case("o23", "--top-k 25 with vllm-like limit on hf: fine", expect=0)
def _(d):
    return gendiff("run", "--top-k", "25", *FAST, cwd=d)


@case("o24", "unknown option --modle", contains="--modle")
def _(d):
    return gendiff("run", "--modle", "x", cwd=d)


@case("o25", "--sweep with an engine option unknown", contains="--sweep")
def _(d):
    return gendiff("run", "--sweep", "colour=red,blue", *FAST, cwd=d)


@case("o26", "--json to a path under a file (not a folder)", contains="s.json")
def _(d):
    (d / "afile").write_text("x")
    return gendiff("run", "--json", "afile/s.json", *FAST, cwd=d)


@case("o27", "--json in read-only folder [root bypasses]", expect=None)
def _(d):
    ro = d / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    return gendiff("run", "--json", ro / "s.json", *FAST, cwd=d)


# ── --json safety ─────────────────────────────────────────────────────────
@case("j01", "--json names the prompts file", contains="prompts")
def _(d):
    f = prompts_file(d)
    before = f.read_text()
    r = gendiff("run", "--prompts", f, "--json", f, *FAST, cwd=d)
    if f.read_text() != before:
        return r + ("loss: prompts replaced by the snapshot",)
    return r


def private_null(d):
    # a private char device (same as /dev/null): never probe with the real /dev/null as root
    dev = d / "mynull"
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return dev


@case("j02", "--json onto a char device (private copy of /dev/null) refused", contains="not a regular file")
def _(d):
    dev = private_null(d)
    r = gendiff("run", "--json", dev, *FAST, cwd=d)
    if not stat.S_ISCHR(os.lstat(dev).st_mode):
        return r + ("loss: device node replaced by a regular file",)
    return r


@case("j03", "--json onto a FIFO", contains="not a regular file")
def _(d):
    os.mkfifo(d / "fifo")
    r = gendiff("run", "--json", d / "fifo", *FAST, cwd=d, timeout=60)
    if not stat.S_ISFIFO(os.lstat(d / "fifo").st_mode):
        return r + ("loss: FIFO replaced by a regular file",)
    return r


@case("j04", "--json onto a symlink: writes through, link kept", expect=0)
def _(d):
    (d / "real.json").write_text("old")
    os.symlink("real.json", d / "link.json")
    r = gendiff("run", "--json", "link.json", *FAST, cwd=d)
    if not os.path.islink(d / "link.json") or (d / "real.json").read_text() == "old":
        return r + ("loss: symlink replaced / target not updated",)
    return r


@case("j05", "--json over a hard-linked file: link kept or refused", expect=None)
def _(d):
    (d / "a.json").write_text("old")
    os.chmod(d / "a.json", 0o644)
    os.link(d / "a.json", d / "b.json")
    r = gendiff("run", "--json", "a.json", *FAST, cwd=d)
    same = os.stat(d / "a.json").st_ino == os.stat(d / "b.json").st_ino
    if not same:
        return r + ("loss: hard link split",)
    if r[0] == 0 and (d / "b.json").read_text() == "old":
        return r + ("loss: b not updated",)
    return r


@case("j06", "--json over a 0644 file keeps 0644", expect=0)
def _(d):
    (d / "a.json").write_text("old")
    os.chmod(d / "a.json", 0o644)
    r = gendiff("run", "--json", "a.json", *FAST, cwd=d)
    mode = stat.S_IMODE(os.stat(d / "a.json").st_mode)
    if mode != 0o644:
        return r + (f"loss: mode 0644 became {oct(mode)}",)
    return r


@case("j07", "--json new file gets umask mode (not 0600)", expect=0)
def _(d):
    r = gendiff("run", "--json", "new.json", *FAST, cwd=d)
    mode = stat.S_IMODE(os.stat(d / "new.json").st_mode)
    want = 0o666 & ~_umask()
    if mode != want:
        return r + (f"misleading: new file mode {oct(mode)}, expected {oct(want)}",)
    return r


def _umask():
    u = os.umask(0)
    os.umask(u)
    return u


@case("j08", "| head -3 with --json: snapshot written, error code kept", expect=0)
def _(d):
    f = prompts_file(d, "".join(f"Prompt number {i}\n" for i in range(300)))
    r = gendiff(
        "run",
        "--prompts",
        f,
        "--engines",
        "hf-single",
        "--max-new-tokens",
        "1",
        "--quiet",
        "--json",
        "out.json",
        cwd=d,
        shell_tail=" | head -3",
    )
    if not (d / "out.json").exists():
        return r + ("loss: snapshot never written",)
    return r


@case("j10", "--json names a file inside the model folder (config.json)", contains="model")
def _(d):
    m = model_copy(d)
    before = (m / "config.json").read_text()
    r = gendiff("run", "--model", m, "--json", m / "config.json", *FAST, cwd=d)
    if (m / "config.json").read_text() != before:
        return r + ("loss: model config.json replaced by a snapshot",)
    return r


@case("j11", "compare A B --json A (overwrites the baseline)", contains="A")
def _(d):
    a, b = d / "a.json", d / "b.json"
    gendiff("run", *FAST, "--json", a, cwd=d)
    shutil.copy(a, b)
    before = a.read_text()
    r = gendiff("compare", a, b, "--json", a, cwd=d)
    if a.read_text() != before:
        return r + ("loss: snapshot A replaced by the comparison",)
    return r


@case("j12", "SIGINT during snapshot write: no temp left", expect=130)
def _(d):
    f = prompts_file(d, "".join(f"Prompt number {i}\n" for i in range(60)))
    code = (
        "import os, signal, sys, threading\n"
        "import gendiff.io.fileio as fio\n"
        "orig = os.fsync\n"
        "def slow(fd):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    import time; time.sleep(1)\n"
        "    return orig(fd)\n"
        "os.fsync = slow\n"
        "from gendiff.cli.main import main\n"
        f"sys.exit(main(['run', '--prompts', {str(f)!r}, '--engines', 'hf-single', '--max-new-tokens', '1', '--quiet', '--json', 'out.json']))\n"
    )
    p = subprocess.run([PY, "-c", code], cwd=d, env=ENV, capture_output=True, text=True, preexec_fn=_sigint_default)
    left = [x.name for x in d.iterdir() if x.name.endswith(".tmp")]
    r = (p.returncode, p.stdout, p.stderr)
    if left:
        return r + (f"loss: temp left {left}",)
    return r


@case("j13", "stale temp from SIGKILL is cleaned next time", expect=0)
def _(d):
    stale = d / ".out.json.99999999.abcd.tmp"
    stale.write_text("x" * 1000)
    old = time.time() - 7200
    os.utime(stale, (old, old))
    stale2 = d / ".out.json.abcd1234.tmp"  # mkstemp-style name from older versions
    stale2.write_text("x" * 1000)
    os.utime(stale2, (old, old))
    r = gendiff("run", *FAST, "--json", "out.json", cwd=d)
    left = [x.name for x in d.iterdir() if x.name.endswith(".tmp")]
    if left:
        return r + (f"loss: stale temp kept {left}",)
    return r


@case("j14", "SIGTERM during the run: exits, no temp, message", expect=None)
def _(d):
    f = prompts_file(d, "".join(f"Prompt number {i}\n" for i in range(200)))
    p = subprocess.Popen(
        [
            PY,
            "-m",
            "gendiff",
            "run",
            "--prompts",
            str(f),
            "--engines",
            "hf-single",
            "--max-new-tokens",
            "8",
            "--json",
            "out.json",
        ],
        cwd=d,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(6)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    left = [x.name for x in d.iterdir() if x.name.endswith(".tmp")]
    r = (p.returncode, out, err)
    if left:
        return r + (f"loss: temp left {left}",)
    return r


@case("j15", "SIGINT during the run (before writing): exit 130, one line", expect=130)
def _(d):
    f = prompts_file(d, "".join(f"Prompt number {i}\n" for i in range(200)))
    p = subprocess.Popen(
        [
            PY,
            "-m",
            "gendiff",
            "run",
            "--prompts",
            str(f),
            "--engines",
            "hf-single",
            "--max-new-tokens",
            "8",
            "--quiet",
            "--json",
            "out.json",
        ],
        cwd=d,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_default,
    )
    time.sleep(6)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    return (p.returncode, out, err)


@case("j16", "--json onto a dangling symlink: creates the target, keeps link", expect=0)
def _(d):
    os.symlink("target.json", d / "link.json")
    r = gendiff("run", "--json", "link.json", *FAST, cwd=d)
    if not os.path.islink(d / "link.json") or not (d / "target.json").is_file():
        return r + ("loss: dangling link replaced",)
    return r


# ── compare / snapshots ───────────────────────────────────────────────────
_SNAP_CACHE = {}


def _snap(d, name="a.json", extra=()):
    p = d / name
    if not p.exists():
        key = str(WT)
        if key not in _SNAP_CACHE:
            c = Path(tempfile.mkdtemp(prefix="probe-snap-")) / "base.json"
            r = gendiff("run", *FAST, *extra, "--json", c, cwd=c.parent)
            assert r[0] == 0, r
            _SNAP_CACHE[key] = c
        shutil.copy(_SNAP_CACHE[key], p)
    return p


def _mutate(src, dst, fn):
    data = json.loads(src.read_text())
    fn(data)
    dst.write_text(json.dumps(data))
    return dst


@case("c01", "compare: trace prompt_token_ids disagree with prompt", contains="token")
def _(d):
    a = _snap(d)

    def f(data):
        data["prompts"][0]["traces"]["hf-left"]["prompt_token_ids"][0] += 1

    b = _mutate(a, d / "b.json", f)
    return gendiff("compare", a, b, cwd=d)


@case("c02", "compare: B missing", contains="no such file")
def _(d):
    return gendiff("compare", _snap(d), d / "nope.json", cwd=d)


@case("c03", "compare: B is a prompts .txt", contains="b.txt")
def _(d):
    return gendiff("compare", _snap(d), prompts_file(d, name="b.txt"), cwd=d)


@case("c04", "compare: B is a directory", contains="snapshot")
def _(d):
    return gendiff("compare", _snap(d), d, cwd=d)


@case("c05", "compare: A truncated JSON", contains="not valid JSON")
def _(d):
    a = _snap(d)
    t = d / "t.json"
    t.write_text(a.read_text()[:500])
    return gendiff("compare", t, a, cwd=d)


@case("c06", "compare: a trace's steps empty but token_ids not", contains="b.json")
def _(d):
    a = _snap(d)

    def f(data):
        data["prompts"][0]["traces"]["hf-left"]["steps"] = []

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("c07", "compare: reference not among engines", contains="b.json")
def _(d):
    a = _snap(d)

    def f(data):
        data["reference"] = "nope"

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("c08", "compare: trace token_ids length != steps", contains="b.json")
def _(d):
    a = _snap(d)

    def f(data):
        data["prompts"][0]["traces"]["hf-left"]["token_ids"].append(5)

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("c09", "compare: traces keyed by an engine not in engines", contains="b.json")
def _(d):
    a = _snap(d)

    def f(data):
        for p in data["prompts"]:
            p["traces"]["ghost"] = p["traces"].pop("hf-left")

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("c10", "compare: trace token_id differs from steps' token_id", contains="b.json")
def _(d):
    a = _snap(d)

    def f(data):
        tr = data["prompts"][0]["traces"]["hf-left"]
        tr["token_ids"][0] = (tr["token_ids"][0] + 1) % 100

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("c11", "compare: --engines ''", contains="--engines")
def _(d):
    a = _snap(d)
    return gendiff("compare", a, a, "--engines", "", cwd=d)


@case("c12", "compare: logprob NaN literal in B (accepted: see docs/bad-input.md)", expect=0)
def _(d):
    a = _snap(d)
    b = d / "b.json"
    data = json.loads(a.read_text())
    data["prompts"][0]["traces"]["hf-left"]["steps"][0]["logprob"] = float("nan")
    b.write_text(json.dumps(data))
    return gendiff("compare", a, b, cwd=d)


@case("c13", "compare: a snapshot with 0 prompts vs normal", contains="prompts")
def _(d):
    a = _snap(d)

    def f(data):
        data["prompts"] = []

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("c14", "compare: divergence naming an unknown engine", contains="b.json")
def _(d):
    a = _snap(d)

    def f(data):
        data["prompts"][0]["divergences"][0]["engine"] = "ghost"

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("c15", "compare: trace prompt_index wrong", contains="b.json")
def _(d):
    a = _snap(d)

    def f(data):
        data["prompts"][0]["traces"]["hf-left"]["prompt_index"] = 99

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("c16", "compare: engines list with a duplicate label", contains="b.json")
def _(d):
    a = _snap(d)

    def f(data):
        data["engines"].append(dict(data["engines"][0]))

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("c17", "compare A A with --json onto /dev/null", contains="regular")
def _(d):
    a = _snap(d)
    dev = private_null(d)
    r = gendiff("compare", a, a, "--json", dev, cwd=d)
    if not stat.S_ISCHR(os.lstat(dev).st_mode):
        return r + ("loss: device node replaced by a regular file",)
    return r


@case("c18", "compare: B is a latin-1 file", contains="b.json")
def _(d):
    a = _snap(d)
    (d / "b.json").write_bytes(b"\xff\xfe garbage")
    return gendiff("compare", a, d / "b.json", cwd=d)


@case("c19", "compare: step top list empty (accepted: see docs/bad-input.md)", expect=0)
def _(d):
    a = _snap(d)

    def f(data):
        data["prompts"][0]["traces"]["hf-left"]["steps"][0]["top"] = []

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("c20", "compare: prompt token_ids empty in both (accepted: see docs/bad-input.md)", expect=0)
def _(d):
    a = _snap(d)

    def f(data):
        data["prompts"][0]["token_ids"] = []
        for t in data["prompts"][0]["traces"].values():
            t["prompt_token_ids"] = []

    b = _mutate(a, d / "b.json", f)
    return gendiff("compare", b, b, cwd=d)


# ── siblings found while fixing (added later) ─────────────────────────────
@case("m26", "--model ''", contains="model")
def _(d):
    return gendiff("run", "--model", "", *FAST, cwd=d)


@case("p16", "--prompts '' (silently the demo prompts?)", contains="prompts")
def _(d):
    return gendiff("run", "--prompts", "", *FAST, cwd=d)


@case("o28", "--reference '' (silently the first engine?)", contains="reference")
def _(d):
    return gendiff("run", "--reference", "", *FAST, cwd=d)


@case("o29", "--repetition-penalty inf", contains="finite")
def _(d):
    return gendiff("run", "--repetition-penalty", "inf", *FAST, cwd=d)


@case("o30", "--frequency-penalty nan", contains="finite")
def _(d):
    return gendiff("run", "--frequency-penalty", "nan", *FAST, cwd=d)


@case("c21", "compare: B is a FIFO [hang?]", contains="b.json")
def _(d):
    a = _snap(d)
    os.mkfifo(d / "b.json")
    try:
        return gendiff("compare", a, d / "b.json", cwd=d, timeout=30, sub=True)
    except subprocess.TimeoutExpired:
        return (-1, "", "hang (timeout 30 s)", "misleading: hangs")


@case("c22", "compare A B --json B (overwrites B)", contains="B")
def _(d):
    a = _snap(d)
    b = d / "b.json"
    shutil.copy(a, b)
    before = b.read_text()
    r = gendiff("compare", a, b, "--json", b, cwd=d)
    if b.read_text() != before:
        return r + ("loss: snapshot B replaced by the comparison",)
    return r


# ── issue 24: untrusted input (terminal text, credentials, snapshots, server answers) ──────────
sys.path.insert(0, str(WT))  # the fake server imports gendiff.demo: the probed checkout's
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import re  # noqa: E402

ESC = "\x1b"
HOSTILE = f"{ESC}[2J{ESC}]52;c;cHduZWQ={ESC}\\{ESC}]0;owned\x07\x07\x9b31m\x9d0;t\x9c\u202eevil\u202c"
ACTIVE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _inert(result, *secrets):
    """A note when the output holds bytes that act on a terminal, or a secret."""
    rc, out, err = result[:3]
    if len(result) > 3:
        return result
    if ACTIVE.search(out + err):
        return result + ("misleading: raw control/bidi characters reach the terminal",)
    for secret in secrets:
        if secret in out + err:
            return result + ("misleading: a secret is printed",)
    return result


@case("t01", "run: prompts full of ESC[2J, OSC 52/0, BEL, C1, bidi", expect=0)
def _(d):
    f = d / "p.jsonl"
    f.write_text(json.dumps({"prompt": "The capital of France is " + HOSTILE}) + "\n")
    return _inert(gendiff("run", "--prompts", f, "--engines", "hf-single,hf-left", "--max-new-tokens", "2", cwd=d))


def _hostile_snapshot(d, name):
    a = _snap(d)

    def f(data):
        p = data["prompts"][0]
        p["text"] = data["batches"][0]["texts"][0] = HOSTILE + p["text"]
        for t in p["traces"].values():
            for s in t["steps"]:
                s["text"] = HOSTILE + s["text"]
        data["environment"]["torch"] = HOSTILE

    return _mutate(a, d / name, f)


@case("t02", "compare: escapes in prompt text, token texts, environment", expect=0)
def _(d):
    return _inert(gendiff("compare", _hostile_snapshot(d, "x.json"), _hostile_snapshot(d, "y.json"), cwd=d))


@case("t03", "error line quoting a file name with ESC, BEL and a newline", contains="no such file")
def _(d):
    return _inert(gendiff("run", "--prompts", d / f"x{ESC}]0;t\x07\nline.txt", *FAST, cwd=d))


def _serve(answer=None, **kw):
    from fake_server import FakeServer

    return FakeServer(answer=answer, **kw)


def _served_run(d, answer=None, extra="", llamacpp=False, key=None, env=None, json_out=None):
    (d / "p.txt").write_text("Hello there\nThe capital of France is\n")
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        with _serve(answer, llamacpp=llamacpp, key=key) as server:
            spec = f"openai:url={server.url},model=fake{extra}"
            tail = ["--json", json_out] if json_out else []
            r = gendiff("run", "--prompts", d / "p.txt", "--engines", spec, "--max-new-tokens", "3", *tail, cwd=d)
            return r, server
    finally:
        os.environ.clear()
        os.environ.update(saved)


@case("t04", "a server error message holding escapes", expect=3)
def _(d):
    r, _ = _served_run(d, lambda body: (500, {"error": {"message": f"boom {ESC}]0;owned{ESC}\\ {ESC}[2J"}}))
    return _inert(r)


@case("k01", "url=http://user:pass@… (nothing listening): password never printed", contains="api_key_env")
def _(d):
    r = gendiff("run", "--engines", "openai:url=http://bob:hunter2@127.0.0.1:9/v1,model=x", *FAST[2:], cwd=d)
    return _inert(r, "hunter2")


@case("k02", "url with user:pass against a live server, --json: not stored", contains="api_key_env")
def _(d):
    out = d / "s.json"
    (d / "p.txt").write_text("Hello there\n")
    with _serve() as server:
        url = server.url.replace("http://", "http://bob:hunter2@")
        r = gendiff("run", "--prompts", d / "p.txt", "--engines", f"openai:url={url},model=fake", "--json", out, cwd=d)
    if out.exists() and "hunter2" in out.read_text():
        return r + ("misleading: the password is stored in the snapshot",)
    return _inert(r, "hunter2")


@case("k03", "api_key_env names an unset variable: exit 2 before any work", contains="GENDIFF_PROBE_KEY")
def _(d):
    os.environ.pop("GENDIFF_PROBE_KEY", None)
    r, server = _served_run(d, extra=",api_key_env=GENDIFF_PROBE_KEY", key="sk-probe-1234")
    if server.requests:
        return r + (f"misleading: {len(server.requests)} requests sent before the check",)
    return r


@case("k04", "api_key_env: Bearer sent; key not in stdout, stderr, snapshot", expect=0)
def _(d):
    out = d / "s.json"
    env = {"GENDIFF_PROBE_KEY": "sk-probe-1234"}
    r, server = _served_run(d, extra=",api_key_env=GENDIFF_PROBE_KEY", key="sk-probe-1234", env=env, json_out=out)
    if out.exists() and "sk-probe-1234" in out.read_text():
        return r + ("misleading: the key is stored in the snapshot",)
    return _inert(r, "sk-probe-1234")


@case("k05", "a server echoing the key in its error", expect=3)
def _(d):
    env = {"GENDIFF_PROBE_KEY": "sk-probe-1234"}

    def echo(body):
        return 400, {"error": {"message": "bad request, Authorization: Bearer sk-probe-1234"}}

    r, _ = _served_run(d, echo, extra=",api_key_env=GENDIFF_PROBE_KEY", key="sk-probe-1234", env=env)
    return _inert(r, "sk-probe-1234")


def _divergence_edit(edit, identical=False):
    def f(data):
        p = data["prompts"][0]
        if identical:  # make hf-left's trace the same as hf-single's
            p["traces"]["hf-left"]["steps"] = p["traces"]["hf-single"]["steps"]
            p["traces"]["hf-left"]["token_ids"] = p["traces"]["hf-single"]["token_ids"]
        edit(p["divergences"][0], p)

    return f


def _say_identical(div, p):
    div.update(step=None, reason="identical", detail="identical", reference_token=None, other_token=None)
    div.update(agreeing_steps=len(p["traces"]["hf-single"]["steps"]), classification=None, cross_top_k=None)


def _forked(data):
    # hf-left's tokens differ from its second step on
    tr = data["prompts"][0]["traces"]["hf-left"]
    tr["steps"][1]["token_id"] = (tr["steps"][1]["token_id"] + 1) % 100
    tr["token_ids"] = [s["token_id"] for s in tr["steps"]]


@case("s01", "compare: tokens differ from step 1, record says identical", contains="b.json")
def _(d):
    a = _snap(d)

    def f(data):
        _forked(data)
        _say_identical(data["prompts"][0]["divergences"][0], data["prompts"][0])

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("s02", "compare: identical streams, record says diverged at step -1", contains="b.json")
def _(d):
    a = _snap(d)
    f = _divergence_edit(lambda div, p: div.update(step=-1, reason="token", detail="x"), identical=True)
    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("s03", "compare: identical streams, record says diverged at step 10**18", contains="b.json")
def _(d):
    a = _snap(d)
    f = _divergence_edit(lambda div, p: div.update(step=10**18, reason="token", detail="x"), identical=True)
    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("s04", "compare: a generated token id beyond the vocabulary", contains="b.json")
def _(d):
    a = _snap(d)

    def f(data):
        for tr in data["prompts"][0]["traces"].values():
            tr["steps"][0]["token_id"] = tr["steps"][0]["top"][0]["token_id"] = 999999
            tr["token_ids"][0] = 999999
        for div in data["prompts"][0]["divergences"]:
            for key in ("reference_token", "other_token"):
                if div.get(key) and div["step"] == 0:
                    div[key]["token_id"] = 999999

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("s05", "compare: a negative token id in a top-k candidate", contains="b.json")
def _(d):
    a = _snap(d)

    def f(data):
        data["prompts"][0]["traces"]["hf-left"]["steps"][0]["top"][1]["token_id"] = -5

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("s06", "compare: B's prompt text differs, ids the same", contains="text")
def _(d):
    a = _snap(d)

    def f(data):
        data["prompts"][0]["text"] = data["batches"][0]["texts"][0] = "something else entirely"

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("s07", "compare: record's step moved by one", contains="b.json")
def _(d):
    a = _snap(d)

    def f(data):
        _forked(data)
        div = data["prompts"][0]["divergences"][0]
        div.update(step=0, reason="token", detail="x", agreeing_steps=0)

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


@case("s08", "compare: two records of the same engine pair", contains="b.json")
def _(d):
    a = _snap(d)

    def f(data):
        data["prompts"][0]["divergences"].append(dict(data["prompts"][0]["divergences"][0]))

    return gendiff("compare", a, _mutate(a, d / "b.json", f), cwd=d)


def open_in_app(path):
    """What ``gendiff PATH`` checks before the app starts (cli.launch: open_document), in one
    process: the error line and exit code it would give, or 0 and what it opened."""
    if not INPROC:
        code = (
            "import sys\nfrom gendiff.errors import GendiffError\nfrom gendiff.io.documents import open_document\n"
            "try:\n    doc = open_document(sys.argv[1])\nexcept GendiffError as exc:\n"
            "    print(f'gendiff: error: {exc}', file=sys.stderr); sys.exit(exc.exit_code)\n"
            "print('opened as', 'a snapshot' if doc.snapshot else 'a prompt file')\n"
        )
        p = subprocess.run([PY, "-c", code, str(path)], env=ENV, capture_output=True, text=True, timeout=300)
        out = p.stdout
        rc, err = p.returncode, p.stderr
    else:
        import traceback

        from gendiff.errors import GendiffError
        from gendiff.io.documents import open_document

        try:
            doc = open_document(str(path))
            rc, out, err = 0, "opened as " + ("a snapshot" if doc.snapshot else "a prompt file"), ""
        except GendiffError as exc:
            rc, out, err = exc.exit_code, "", f"gendiff: error: {' '.join(str(exc).split())}\n"
        except BaseException:
            rc, out, err = 1, "", traceback.format_exc()
    if "prompt file" in out:
        return rc, out, err, "misleading: a broken snapshot opened as a prompt file"
    return rc, out, err


CORRUPT = "not a gendiff snapshot (corrupt"


@case("b01", "app: truncated snapshot", contains=CORRUPT)
def _(d):
    t = d / "t.json"
    t.write_text(_snap(d).read_text()[:5000])
    return open_in_app(t)


@case("b02", "app: snapshot without schema", contains=CORRUPT)
def _(d):
    a = _snap(d)
    return open_in_app(_mutate(a, d / "n.json", lambda data: data.pop("schema")))


@case("b03", "app: snapshot with trailing garbage", contains=CORRUPT)
def _(d):
    t = d / "t.json"
    t.write_text(_snap(d).read_text() + "}garbage")
    return open_in_app(t)


@case("b04", "app: byte flip that breaks the JSON", contains=CORRUPT)
def _(d):
    raw = bytearray(_snap(d).read_bytes())
    raw[raw.index(b'":') + 1] = ord("!")
    (d / "f.json").write_bytes(bytes(raw))
    return open_in_app(d / "f.json")


@case("b05", "app: byte flip to invalid UTF-8", contains=CORRUPT)
def _(d):
    raw = bytearray(_snap(d).read_bytes())
    raw[50] = 0xFF
    (d / "u.json").write_bytes(bytes(raw))
    return open_in_app(d / "u.json")


@case("b06", "app: a value nested 100,000 lists deep", contains="nested")
def _(d):
    (d / "n.json").write_text('{"schema": "gendiff.snapshot/2", "x": ' + "[" * 100000 + "]" * 100000 + "}")
    return open_in_app(d / "n.json")


@case("b07", "compare: a value nested 100,000 lists deep", contains="nested")
def _(d):
    (d / "n.json").write_text('{"schema": "gendiff.snapshot/2", "x": ' + "[" * 100000 + "]" * 100000 + "}")
    return gendiff("compare", _snap(d), d / "n.json", cwd=d)


@case("b08", "app: truncated snapshot renamed .txt", contains=CORRUPT)
def _(d):
    t = d / "t.txt"
    t.write_text(_snap(d).read_text()[:5000])
    return open_in_app(t)


@case("b09", "app: truncated pretty-printed snapshot", contains=CORRUPT)
def _(d):
    t = d / "t.json"
    t.write_text(json.dumps(json.loads(_snap(d).read_text()), indent=1)[:3000])
    return open_in_app(t)


@case("b10", "app: record says identical over differing tokens", contains="identical")
def _(d):
    a = _snap(d)

    def f(data):
        _forked(data)
        _say_identical(data["prompts"][0]["divergences"][0], data["prompts"][0])

    return open_in_app(_mutate(a, d / "b.json", f))


def _on_second(edit, llamacpp=False):
    from fake_server import _tokenizer, greedy_answer, llamacpp_answer

    bad = _tokenizer()("The capital of France is")["input_ids"]
    shape = llamacpp_answer if llamacpp else greedy_answer

    def answer(body):
        data = shape(body)
        if body["prompt"] == bad:
            result = edit(data)
            return result if isinstance(result, (tuple, str)) else data
        return data

    return answer


def _lp(data):
    return data["choices"][0]["logprobs"]


def _answer_case(d, edit, llamacpp=False, extra=""):
    out = d / "s.json"
    r, _ = _served_run(d, _on_second(edit, llamacpp), llamacpp=llamacpp, extra=extra, json_out=out)
    if out.exists():
        try:
            json.loads(out.read_text(), parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
        except ValueError as exc:
            if "Infinity" not in str(exc):
                return r + (f"misleading: the snapshot holds a bare {exc} (not JSON)",)
    return _inert(r)


@case("a01", "server: generated token id 999999", expect=3, contains="999999")
def _(d):
    return _answer_case(d, lambda data: _lp(data)["tokens"].__setitem__(1, "token_id:999999"))


@case("a02", "server: generated token id -5", expect=3, contains="-5")
def _(d):
    return _answer_case(d, lambda data: _lp(data)["tokens"].__setitem__(0, "token_id:-5"))


@case("a03", "server: a NaN logprob", expect=3, contains="NaN")
def _(d):
    return _answer_case(d, lambda data: _lp(data)["token_logprobs"].__setitem__(1, float("nan")))


@case("a04", "server: token_logprobs one shorter than tokens", expect=3, contains="token_logprobs")
def _(d):
    return _answer_case(d, lambda data: _lp(data)["token_logprobs"].pop())


@case("a05", "server: top_logprobs without the chosen token", expect=3, contains="chosen token")
def _(d):
    others = {f"token_id:{60 + r}": -0.05 - r for r in range(5)}
    return _answer_case(d, lambda data: _lp(data)["top_logprobs"].__setitem__(0, others))


@case("a06", "server: a positive logprob", expect=3, contains="above 0")
def _(d):
    return _answer_case(d, lambda data: _lp(data)["token_logprobs"].__setitem__(0, 0.5))


@case("a07", "server: connection reset on one prompt", expect=3, contains="prompt 2")
def _(d):
    from fake_server import RESET

    return _answer_case(d, lambda data: RESET)


@case("a08", "server: more tokens than asked for", expect=3, contains="asked for")
def _(d):
    def edit(data):
        for key in ("tokens", "token_logprobs", "top_logprobs"):
            _lp(data)[key].append(_lp(data)[key][-1])

    return _answer_case(d, edit)


@case("a09", "llama.cpp: -3.4e38 for a zero probability is -inf", expect=0)
def _(d):
    def edit(data):
        data["completion_probabilities"][0]["top_logprobs"][-1]["logprob"] = -3.4028234663852886e38

    r = _answer_case(d, edit, llamacpp=True, extra=",flavour=llamacpp")
    if len(r) == 3 and r[0] == 0:
        data = json.loads((d / "s.json").read_text())
        lp = next(iter(data["prompts"][1]["traces"].values()))["steps"][0]["top"][-1]["logprob"]
        if lp != float("-inf"):
            return r + (f"misleading: recorded as {lp}, not -inf",)
    return r


@case("a10", "llama.cpp: a top-k listing one token twice", expect=3, contains="twice")
def _(d):
    def edit(data):
        top = data["completion_probabilities"][0]["top_logprobs"]
        top[1] = dict(top[0])

    return _answer_case(d, edit, llamacpp=True, extra=",flavour=llamacpp")


@case("a11", "server: tokenization echo with an id beyond the vocabulary", expect=3, contains="tokenization")
def _(d):
    from fake_server import FakeServer

    (d / "p.txt").write_text("Hello there\n")
    with FakeServer() as server:
        original = server._handle

        def handle(handler, method, body):
            if method == "POST" and isinstance(body, dict) and body.get("echo"):
                answer = {"choices": [{"logprobs": {"tokens": ["token_id:1", "token_id:999999"]}}]}
                return server._send(handler, 200, answer)
            return original(handler, method, body)

        server._handle = handle
        spec = f"openai:url={server.url},model=fake"
        return _inert(gendiff("run", "--prompts", d / "p.txt", "--engines", spec, "--max-new-tokens", "2", cwd=d))


@case("a12", "server: a logprob sent as a string", expect=3, contains="logprob")
def _(d):
    return _answer_case(d, lambda data: _lp(data)["token_logprobs"].__setitem__(0, "-0.1"))


@case("a13", "llama.cpp: top-k not best first", expect=3, contains="best first")
def _(d):
    return _answer_case(
        d,
        lambda data: data["completion_probabilities"][0]["top_logprobs"].reverse(),
        llamacpp=True,
        extra=",flavour=llamacpp",
    )


@case("a14", "server: chosen logprob differs from its own top-k entry", expect=3, contains="gives token")
def _(d):
    return _answer_case(d, lambda data: _lp(data)["token_logprobs"].__setitem__(1, -0.9))


def classify(cid, expect, contains, result):
    rc, out, err = result[:3]
    note = result[3] if len(result) > 3 else ""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if "Traceback" in err or "Traceback" in out:
        return "crash", _last(err)
    if note.startswith("loss"):
        return "loss", note
    if note:
        return "misleading", note
    if expect is None:
        return "check", f"rc={rc}: " + (lines[0] if lines else out.splitlines()[-1] if out else "")
    if rc != expect:
        return "misleading", f"rc={rc} (want {expect}): " + (lines[0] if lines else "")[:200]
    if contains and expect != 2 and contains.lower() not in (out + err).lower():
        return "misleading", f"output lacks {contains!r}: " + (lines[-1] if lines else "")[:200]
    if expect == 2:
        errs = [ln for ln in lines if ln.startswith("gendiff: error:")]
        if len(errs) != 1 or len(lines) != 1:
            return "misleading", "not one error line: " + " | ".join(lines)[:200]
        if contains and contains.lower() not in errs[0].lower():
            return "misleading", f"message lacks {contains!r}: {errs[0][:200]}"
        return "clean", errs[0][:200]
    return "clean", (lines[0] if lines else "")[:200]


def _last(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def main():
    rows = []
    for cid, desc, expect, contains, fn in CASES:
        if ONLY and not any(cid.startswith(o) for o in ONLY):
            continue
        d = Path(tempfile.mkdtemp(prefix=f"probe-{cid}-"))
        t = time.time()
        try:
            result = fn(d)
        except Exception as exc:  # the harness itself
            result = (-1, "", f"HARNESS {type(exc).__name__}: {exc}")
        verdict, detail = classify(cid, expect, contains, result)
        rows.append((cid, desc, verdict, detail.replace("\t", " ").replace("\n", " ")))
        print(f"{cid}\t{verdict}\t{time.time() - t:.1f}s\t{desc}\t{detail}", flush=True)
        shutil.rmtree(d, ignore_errors=True)
    with OUT.open("w") as h:
        for row in rows:
            h.write("\t".join(row) + "\n")


if __name__ == "__main__":
    main()
