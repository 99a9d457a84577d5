"""Issue 24: text from files, prompts, tokens and servers can't act on the terminal through the CLI.

Every byte that could move the cursor, clear the screen, set the title (OSC 0) or the clipboard
(OSC 52), ring the bell, or reorder text (bidi overrides) must reach stdout/stderr as something
visible. The fast tests go through ``gendiff compare`` on hand-made snapshots (no model); the
slow one runs the demo model on a prompt file full of them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gendiff.io.snapshots import save_snapshot
from gendiff.records.divergence import compare
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from gendiff.records.trace import TokenStep, TopToken, Trace

ROOT = Path(__file__).resolve().parent.parent
ESC = "\x1b"
HOSTILE = (
    f"{ESC}[2J{ESC}[H"  # clear the screen, cursor home
    f"{ESC}]52;c;cHduZWQ={ESC}\\"  # OSC 52: write 'pwned' to the clipboard
    f"{ESC}]0;owned title\x07"  # OSC 0: the window title, ended by BEL
    "\x07"  # a bare bell
    "\x9b31m\x9d0;c1 title\x9c"  # C1 CSI and OSC (8-bit)
    "\u202eevil\u202c\u2066iso\u2069"  # bidi override and isolate
    "\x7f\x08"  # DEL, backspace
)
# what must never reach the terminal: C0 except newline, DEL, C1, bidi embeddings/overrides/isolates
ACTIVE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _step(token_id: int, text: str, logprob: float, other: tuple[int, str, float]) -> TokenStep:
    top = (TopToken(token_id, text, logprob, None), TopToken(*other, None))
    return TokenStep(token_id, text, logprob, top)


def _snapshot(other_token: int) -> Snapshot:
    """One prompt whose text and token texts are full of escape sequences; hf-left picks ``other_token``."""
    ref = Trace("hf-single", 0, (1, 2, 3), (_step(5, "A" + HOSTILE, -0.5, (6, HOSTILE + "B", -1.0)),), "length")
    texts = {5: "A" + HOSTILE, 6: HOSTILE + "B"}
    rest = 11 - other_token
    other = Trace(
        "hf-left",
        0,
        (1, 2, 3),
        (_step(other_token, texts[other_token], -0.5, (rest, texts[rest], -1.0)),),
        "length",
    )
    prompt = "say " + HOSTILE
    return Snapshot(
        model={"name": "m", "path": "/m", "dtype": "float32", "attn": "sdpa"},
        decoding={"max_new_tokens": 1, "top_k": 2},
        reference="hf-single",
        engines=[
            {"label": "hf-single", "name": "hf-single", "settings": {}},
            {"label": "hf-left", "name": "hf-left", "settings": {}},
        ],
        prompts=[
            PromptResult(
                prompt,
                [1, 2, 3],
                {"hf-single": ref, "hf-left": other},
                [compare(ref, other)],
                id=0,
                batches={"hf-single": 0, "hf-left": 0},
            )
        ],
        environment={"python": "3.11", "torch": HOSTILE, "transformers": "5", "device": "cpu", "gpu": "GPU " + HOSTILE},
        batches=[Batch(0, ("hf-single", "hf-left"), (0,), (prompt,), ((1, 2, 3),))],
    )


def _gendiff(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gendiff", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        timeout=120,
    )


def _decoded(result: subprocess.CompletedProcess) -> tuple[str, str]:
    return result.stdout.decode("utf-8"), result.stderr.decode("utf-8")


def test_compare_prints_hostile_prompt_and_token_text_inert(tmp_path):
    a = save_snapshot(_snapshot(5), tmp_path / "a.json", check=True)
    b = save_snapshot(_snapshot(6), tmp_path / f"b{ESC}]0;file title\x07.json", check=True)
    result = _gendiff("compare", str(a), str(b), cwd=tmp_path)
    out, err = _decoded(result)
    assert result.returncode == 0, err
    assert ACTIVE.search(out) is None and ACTIVE.search(err) is None, repr(out + err)
    # shown, not dropped: the reader can see what the data holds
    assert "␛[2J" in out and "␛]52;c;cHduZWQ=" in out and "␛]0;owned title␇" in out
    assert "⟨U+009B⟩31m" in out and "⟨U+202E⟩evil" in out
    assert "DIVERGED at step 0" in out and "b␛]0;file title␇.json" in out


def test_an_error_quoting_a_hostile_file_name_is_one_inert_line(tmp_path):
    missing = tmp_path / f"x{ESC}[2J\nsecond line\x07.json"
    result = _gendiff("compare", str(missing), str(missing), cwd=tmp_path)
    out, err = _decoded(result)
    assert result.returncode == 2
    assert out == "" and ACTIVE.search(err) is None, repr(err)
    assert err.count("\n") == 1 and err.startswith("gendiff: error: ") and "x␛[2J↵second line␇.json" in err


def test_a_snapshot_keeps_the_hostile_text_as_it_was(tmp_path):
    # inert is for the terminal only: the data itself is not rewritten
    path = save_snapshot(_snapshot(6), tmp_path / "a.json", check=True)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["prompts"][0]["text"] == "say " + HOSTILE


@pytest.mark.slow
def test_gendiff_run_on_a_hostile_prompt_file_writes_nothing_active(tmp_path):
    prompts = tmp_path / "p.jsonl"
    lines = [{"prompt": "The capital of France is " + HOSTILE}, {"prompt": HOSTILE + "\u200f\u061c"}]
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    result = _gendiff(
        "run",
        "--prompts",
        str(prompts),
        "--engines",
        "hf-single,hf-left",
        "--max-new-tokens",
        "3",
        "--json",
        str(tmp_path / "s.json"),
        cwd=tmp_path,
    )
    out, err = _decoded(result)
    assert result.returncode == 0, err
    assert ACTIVE.search(out) is None and ACTIVE.search(err) is None, repr(out + err)
    assert "␛[2J" in out and "␛]52;c" in out
    saved = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert [p["text"] for p in saved["prompts"]] == [line["prompt"] for line in lines]
