"""Classification on real runs, --recheck float32, --stats and --repeat on the demo model."""

from __future__ import annotations

import json
import math

import pytest

from gendiff.io.snapshots import load_snapshot, save_snapshot

pytestmark = pytest.mark.slow


def run_session(engines: list[str], prompts: list[str], tokens: int):
    from gendiff.engines.settings import GenerationSettings, parse_engine_spec
    from gendiff.run.config import RunConfig
    from gendiff.run.session import Session

    specs = tuple(parse_engine_spec(text) for text in engines)
    config = RunConfig(None, specs, specs[0].label, GenerationSettings(max_new_tokens=tokens))
    session = Session(config, prompts)
    return session, session.run()


def test_classification_of_the_real_bfloat16_run(demo_snapshot):
    """Every token divergence of the demo bf16 run is a tie or near-tie, and the label agrees
    with the recorded logits: exact-tie exactly when the reference's top two logits are equal."""

    snapshot = load_snapshot(demo_snapshot)
    token = [d for d in snapshot.divergences() if d.reason == "token"]
    assert token
    for d in token:
        first, second = d.reference_step.top[:2]
        assert d.classification == ("exact-tie" if first.logit == second.logit else "near-tie"), d.to_dict()
        in_other = {t.token_id for t in d.other_step.top}
        in_ref = {t.token_id for t in d.reference_step.top}
        assert d.cross_top_k == (d.reference_step.token_id in in_other and d.other_step.token_id in in_ref)
    raw = json.loads(demo_snapshot.read_text())
    recorded = [d["classification"] for p in raw["prompts"] for d in p["divergences"] if d["reason"] == "token"]
    assert set(recorded) <= {"exact-tie", "near-tie"} and "exact-tie" in recorded


def test_recheck_float32_says_rounding_for_the_padding_and_packing_divergences(demo_snapshot):
    from gendiff.run.recheck import recheck
    from gendiff.run.session import Session

    snapshot = load_snapshot(demo_snapshot)
    session = Session.from_snapshot(snapshot)
    notes = recheck(session, snapshot)
    assert notes == []
    checked = [d for d in snapshot.divergences() if d.reason == "token"]
    assert {d.engine for d in checked} >= {"hf-left", "packed"}
    for d in checked:
        assert d.recheck is not None and d.recheck.dtype == "float32"
        assert d.recheck.verdict == "agrees" and d.recheck.step is None, d.to_dict()
    assert all(d["recheck"]["verdict"] == "agrees" for d in (d.to_dict() for d in checked))


def forced_logprobs(model, prompt: list[int], forced: list[int]):
    """A plain KV-cache loop, fed ``forced``: the log_softmax of each step's logits (float64)."""
    import torch

    out = model(torch.tensor([prompt]), use_cache=True)
    rows = [out.logits[0, -1]]
    cache = out.past_key_values
    for token in forced[:-1]:
        out = model(torch.tensor([[token]]), past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        rows.append(out.logits[0, -1])
    return torch.log_softmax(torch.stack(rows).double(), dim=-1)


STATS_ENGINES = ["hf-single", "hf-single:cache=on", "hf-single:dtype=bfloat16", "hf-left:batch_size=1", "packed"]


@pytest.fixture(scope="module")
def stats_run():
    from gendiff.run.statistics import attach_statistics

    prompts = ["Once upon a time, there was a kind penguin named Leo.", "260 + 487 ="]
    session, snapshot = run_session(STATS_ENGINES, prompts, 10)
    notes = attach_statistics(session, snapshot)
    return snapshot, notes


def test_statistics_zero_against_itself_positive_for_bfloat16_and_equal_to_a_recomputation(stats_run):
    import torch
    from transformers import AutoModelForCausalLM

    from gendiff.demo import demo_model_path

    snapshot, notes = stats_run
    assert notes == []
    # batched engines in float32: the same distributions up to rounding, every position compared
    for label in ("hf-left:batch_size=1", "packed"):
        stats = snapshot.statistics[label]
        assert stats.positions == snapshot.statistics["hf-single"].positions
        assert stats.kld_max < 1e-6 and stats.same_top1 == 1.0, label
    same = snapshot.statistics["hf-single:cache=on"]
    assert same.kld_max <= 1e-6 and same.same_top1 == 1.0 and abs(same.dp_mean) <= 1e-6
    low = snapshot.statistics["hf-single:dtype=bfloat16"]
    assert low.kld_mean > 0 and low.positions == sum(len(p.traces["hf-single"].steps) for p in snapshot.prompts)

    # recomputation for prompt 1: float32 and bfloat16 models fed the float32 run's tokens
    prompt = snapshot.prompts[0]
    forced = list(prompt.traces["hf-single"].token_ids)
    with torch.inference_mode():
        models = [
            AutoModelForCausalLM.from_pretrained(str(demo_model_path()), dtype=dtype, attn_implementation="sdpa")
            for dtype in (torch.float32, torch.bfloat16)
        ]
        p_log, q_log = (forced_logprobs(m.eval(), prompt.token_ids, forced) for m in models)
    kl = (p_log.exp() * (p_log - q_log)).sum(-1)
    target = torch.tensor(forced)[:, None]
    dp = q_log.gather(-1, target)[:, 0].exp() - p_log.gather(-1, target)[:, 0].exp()
    stats = prompt.statistics["hf-single:dtype=bfloat16"]
    assert stats.positions == len(forced)
    assert stats.kld_steps == pytest.approx(kl.tolist(), rel=1e-3, abs=1e-7)
    assert stats.kld_mean == pytest.approx(float(kl.mean()), rel=1e-3, abs=1e-7)
    assert stats.kld_max == pytest.approx(float(kl.max()), rel=1e-3, abs=1e-7)
    assert stats.same_top1 == pytest.approx(float((p_log.argmax(-1) == q_log.argmax(-1)).double().mean()))
    assert stats.dp_mean == pytest.approx(float(dp.mean()), rel=1e-3, abs=1e-7)
    assert stats.dp_rms == pytest.approx(math.sqrt(float((dp**2).mean())), rel=1e-3, abs=1e-7)
    assert stats.loss == pytest.approx(float(-q_log.gather(-1, target).mean()), rel=1e-4)


def test_full_set_delta_and_ppl_equal_a_plain_torch_recomputation(stats_run):
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from gendiff.demo import demo_model_path

    snapshot, _ = stats_run
    nll_p, nll_q = [], []
    with torch.inference_mode():
        models = [
            AutoModelForCausalLM.from_pretrained(str(demo_model_path()), dtype=dtype, attn_implementation="sdpa").eval()
            for dtype in (torch.float32, torch.bfloat16)
        ]
        for prompt in snapshot.prompts:
            forced = list(prompt.traces["hf-single"].token_ids)
            target = torch.tensor(forced)[:, None]
            p_log, q_log = (forced_logprobs(m, prompt.token_ids, forced) for m in models)
            nll_p += (-p_log.gather(-1, target)[:, 0]).tolist()
            nll_q += (-q_log.gather(-1, target)[:, 0]).tolist()
    nll_p, nll_q = np.array(nll_p), np.array(nll_q)
    full = snapshot.statistics["hf-single:dtype=bfloat16"].full
    delta = nll_p - nll_q  # logprob_engine − logprob_reference
    assert full["positions"] == len(delta)
    assert full["delta_mean"] == pytest.approx(delta.mean(), abs=1e-5)
    assert full["delta_rms"] == pytest.approx(np.sqrt(np.mean(delta**2)), rel=1e-3, abs=1e-5)
    assert full["ppl_base"] == pytest.approx(np.exp(nll_p.mean()), rel=1e-5)
    assert full["ppl_q"] == pytest.approx(np.exp(nll_q.mean()), rel=1e-4)
    assert full["delta"]["p50"] == pytest.approx(np.percentile(delta, 50), abs=1e-5)
    # float32 engines: δ at the 1e-5 level
    same = snapshot.statistics["hf-left:batch_size=1"].full
    assert abs(same["delta_mean"]) < 1e-5 and same["delta_rms"] < 1e-5
    print(
        f"bfloat16 vs float32 on the demo model: δ mean {full['delta_mean']:.6f} RMS {full['delta_rms']:.6f}; "
        f"float32 hf-left δ RMS {same['delta_rms']:.2e}"
    )


def test_repeat_5_gives_one_unique_completion_per_engine_on_cpu(tmp_path):
    from gendiff.cli.main import main

    prompts = tmp_path / "p.txt"
    prompts.write_text("260 + 487 =\nThe capital of Ghana\nHow to make tea: -\nfor i in range(7): print(i\n")
    out = tmp_path / "repeat.json"
    code = main(
        ["run", "--quiet", "--prompts", str(prompts), "--max-new-tokens", "6", "--batch-size", "2", "--repeat", "5"]
        + ["--engines", "hf-single,hf-left,hf-right,packed", "--json", str(out)]
    )
    assert code == 0
    snapshot = load_snapshot(out)
    for prompt in snapshot.prompts:
        assert set(prompt.repeats) == {"hf-single", "hf-left", "hf-right", "packed"}
        for label, repeats in prompt.repeats.items():
            assert (repeats.runs, repeats.unique, repeats.first_split) == (5, 1, None), label
            # the prompt sat at another row in every run while there were rows left (4 prompts)
            assert len(set(repeats.rows[:4])) == 4


async def test_the_panel_shows_the_statistics_line_with_a_sparkline(stats_run, tmp_path):
    from app_helpers import app_for

    snapshot, _ = stats_run
    path = save_snapshot(snapshot, tmp_path / "stats.json")
    app = app_for(path)
    async with app.run_test(size=(150, 42)) as pilot:
        await pilot.pause()
        panel = app.main.query_one("#panel")
        for _ in range(len(STATS_ENGINES)):
            if app.main.workbench.selected_engine == "hf-single:dtype=bfloat16":
                break
            await pilot.press("tab")
        assert app.main.workbench.selected_engine == "hf-single:dtype=bfloat16"
        from rich.console import Console

        console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(panel.content)
        text = console.export_text()
        stats = snapshot.prompts[0].statistics["hf-single:dtype=bfloat16"]
        assert "KL from hf-single, both fed hf-single's tokens: mean " in text
        assert f"at step {stats.kld_max_position}" in text
        spark = text.split("per step ")[1].split()[0]
        assert len(spark) == stats.positions and set(spark) != {"·"}
        # a line per engine, the shown one first
        others = [
            e for e in snapshot.prompts[0].statistics if e not in ("hf-single:dtype=bfloat16", snapshot.reference)
        ]
        assert text.index("hf-single:dtype=bfloat16: KL from") < min(text.index(f"{e}: KL from") for e in others)


async def test_f_rechecks_the_run_in_float32_from_the_app(demo_snapshot):
    from app_helpers import app_for, notifications

    app = app_for(demo_snapshot)
    main = app.main

    def selected():
        return main.ws.divergence(main.workbench.current, main.workbench.selected_engine)

    async with app.run_test(size=(150, 42)) as pilot:
        await pilot.pause()
        await pilot.press("n")
        d = selected()
        assert d is not None and d.reason == "token" and d.recheck is None
        await pilot.press("f")
        waited = 0.0
        while selected().recheck is None:
            await pilot.pause(0.2)
            waited += 0.2
            assert waited < 600, "recheck did not finish"
        await pilot.pause()
        record = selected().recheck
        assert record.verdict == "agrees"
        from rich.console import Console

        console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(main.query_one("#panel").content)
        assert "recheck: rounding: gone in float32" in " ".join(console.export_text().split())  # wrap-proof
        assert any("float32 recheck:" in m for m in notifications(app))
