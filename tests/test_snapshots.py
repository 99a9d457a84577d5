"""Screenshots of the main screens (pytest-textual-snapshot). Update with --snapshot-update."""

from gendiff.io.documents import open_document
from gendiff.io.snapshots import save_snapshot
from gendiff.records.divergence import compare
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from gendiff.records.trace import TokenStep, TopToken, Trace
from gendiff.run.options import RunOptions
from gendiff.tui.app import GendiffApp, LaunchOptions

SIZE = (130, 40)


def tok(token_id, text, *cands):
    """cands: (id, text, logprob), best first; the first is chosen."""
    top = tuple(TopToken(i, t, lp, lp + 7.5) for i, t, lp in cands)
    return TokenStep(token_id, text, cands[0][2], top)


def hand_made_snapshot(path):
    prefix = [
        tok(11, " Paris", (11, " Paris", -0.01), (12, " Lyon", -4.6)),
        tok(13, ".", (13, ".", -0.001), (14, "\n", -7.0)),
        tok(15, " The", (15, " The", -0.2), (16, " It", -1.9)),
    ]
    ref_steps = prefix + [tok(17, " capital", (17, " capital", -0.6931), (18, " city", -0.6940))]
    other_steps = [
        tok(11, " Paris", (11, " Paris", -0.0102), (12, " Lyon", -4.59)),
        tok(13, ".", (13, ".", -0.001), (14, "\n", -7.0)),
        tok(15, " The", (15, " The", -0.2011), (16, " It", -1.89)),
        tok(18, " city", (18, " city", -0.6929), (17, " capital", -0.6933)),
    ]
    prompt = (1, 2, 3)
    ref = Trace("hf-single", 0, prompt, tuple(ref_steps), "length")
    left = Trace("hf-left", 0, prompt, tuple(other_steps), "length")
    packed = Trace("packed", 0, prompt, tuple(ref_steps), "length")
    second_ref = Trace("hf-single", 1, (1, 5), tuple(prefix), "eos")
    second_left = Trace("hf-left", 1, (1, 5), tuple(prefix), "eos")
    second_packed = Trace("packed", 1, (1, 5), tuple(prefix[:2]), "eos")
    engines = ("hf-single", "hf-left", "packed")
    prompts = [
        PromptResult(
            "The capital of France is",
            list(prompt),
            {"hf-single": ref, "hf-left": left, "packed": packed},
            id=0,
            batches=dict.fromkeys(engines, 0),
        ),
        PromptResult(
            "Shopping list:\n1.",
            [1, 5],
            {"hf-single": second_ref, "hf-left": second_left, "packed": second_packed},
            id=1,
            batches=dict.fromkeys(engines, 0),
        ),
    ]
    batch = Batch(0, engines, (0, 1), tuple(p.text for p in prompts), (prompt, (1, 5)))
    for p in prompts:
        p.divergences = [compare(p.traces["hf-single"], p.traces[e]) for e in ("hf-left", "packed")]
    snapshot = Snapshot(
        model={"name": "demo_model", "path": "/demo_model", "dtype": "bfloat16", "attn": "sdpa"},
        decoding={"max_new_tokens": 4, "top_k": 2},
        reference="hf-single",
        engines=[{"label": e, "name": e, "settings": {}} for e in ("hf-single", "hf-left", "packed")],
        prompts=prompts,
        environment={"python": "3.11", "torch": "2.13.0", "transformers": "5.19.0", "device": "cpu"},
        created="2026-11-23T12:00:00+00:00",
        batches=[batch],
    )
    save_snapshot(snapshot, path)
    return path


def viewer(tmp_path):
    document = open_document(str(hand_made_snapshot(tmp_path / "snap.json")))
    return GendiffApp(LaunchOptions(RunOptions(), document, preload=False))


def test_main_screen(snap_compare, tmp_path):
    assert snap_compare(viewer(tmp_path), terminal_size=SIZE)


def test_divergence_panel_after_n(snap_compare, tmp_path):
    assert snap_compare(viewer(tmp_path), press=["n"], terminal_size=SIZE)


def test_help_screen(snap_compare, tmp_path):
    assert snap_compare(viewer(tmp_path), press=["question_mark"], terminal_size=SIZE)


def test_prompt_editor(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompts.txt").write_text("The capital of France is\nHow to make tea:\\n-\n")
    app = GendiffApp(LaunchOptions(RunOptions(), open_document("prompts.txt"), preload=False))
    assert snap_compare(app, press=["down", "e"], terminal_size=SIZE)
