"""``r`` on one prompt of a 3-prompt call, through the real app on the demo model (slow): hf-single
(which runs each prompt alone) computes only that prompt, hf-left (which batches) the whole call
again; both give the tokens of a plain greedy loop written here; the strip counts each engine's
own rows; the export says which call made each trace and loads."""

from __future__ import annotations

import pytest
from app_helpers import SIZE, app_for, prompt_file, running, strip_text, wait_until

from gendiff.demo import demo_model_path
from gendiff.io.snapshots import load_snapshot, save_snapshot
from gendiff.records.events import EngineStarted, StepGenerated
from gendiff.state.exchange import export_snapshot
from gendiff.tui.messages import RunEvents

pytestmark = pytest.mark.slow
TOKENS = 6
PROMPTS = ("The capital of France is", "1, 2, 3,", "Once upon a time there was a little")


def plain_greedy(texts: list[str]) -> dict[str, tuple[int, ...]]:
    """A float32 loop without KV cache, padding or batching: each text -> its first TOKENS ids."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(demo_model_path()), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(demo_model_path()))
    out = {}
    for text in texts:
        tokens = list(tokenizer(text)["input_ids"])
        start = len(tokens)
        with torch.no_grad():
            for _ in range(TOKENS):
                logits = model(torch.tensor([tokens])).logits[0, -1].float()
                tokens.append(int(torch.argmax(logits)))  # ties: the lowest id, as gendiff
        out[text] = tuple(tokens[start:])
    return out


async def test_r_on_one_prompt_runs_it_alone_on_hf_single_and_the_whole_call_on_hf_left(tmp_path):
    expected = plain_greedy(list(PROMPTS))
    messages: dict[int, RunEvents] = {}  # the r run's messages (a hook sees one at every hop)
    recording = False

    def look(message):
        if recording and isinstance(message, RunEvents):
            messages[id(message)] = message

    app = app_for(
        prompt_file(tmp_path, *PROMPTS), engines=("hf-single", "hf-left"), max_new_tokens=TOKENS, stop_at_eos=False
    )
    async with app.run_test(size=SIZE, message_hook=look) as pilot:
        main, ws = app.main, app.main.ws
        await pilot.press("R")
        await wait_until(pilot, lambda: not running(app))
        first, second, third = ws.prompts
        before = {p.id: {label: p.cells[label].trace for label in ws.labels} for p in (first, third)}
        main.workbench.prompt_list.highlighted = 1
        await pilot.pause()
        recording = True
        await pilot.press("r")
        await wait_until(pilot, lambda: not running(app))

        seen = [event for message in messages.values() for event in message.events]
        started = {e.engine: e.prompts for e in seen if isinstance(e, EngineStarted)}
        rows = {
            label: {e.prompt_index for e in seen if isinstance(e, StepGenerated) and e.engine == label}
            for label in ws.labels
        }
        assert started == {"hf-single": 1, "hf-left": 3}
        assert rows == {"hf-single": {second.id}, "hf-left": {first.id, second.id, third.id}}
        steps = [e for e in seen if isinstance(e, StepGenerated) and e.engine == "hf-single"]
        assert len(steps) == TOKENS  # one row of TOKENS steps, nothing else computed
        for label in ws.labels:
            assert tuple(ws.token_ids(second, label)) == expected[PROMPTS[1]]
            assert ws.get(second.id).cells[label].state == "finished"
        # the others keep what R gave them (r takes only the selected prompt's results)
        for prompt in (first, third):
            assert {label: prompt.cells[label].trace for label in ws.labels} == before[prompt.id]
        strip = strip_text(main)
        assert "hf-single ✓ 1/1 · " in strip and "hf-left ✓ 3/3 · " in strip

        path = save_snapshot(export_snapshot(ws), tmp_path / "after-r.gdz", check=True)
    loaded = load_snapshot(path)
    result = loaded.prompts[1]
    alone = loaded.batch(result.batches["hf-single"])
    call = loaded.batch(result.batches["hf-left"])
    assert (alone.engines, alone.prompt_ids, alone.texts) == (("hf-single",), (result.id,), (PROMPTS[1],))
    assert call.engines == ("hf-left",) and call.texts == PROMPTS and call.row_of(result.id) == 1
    assert [tuple(result.traces[label].token_ids) for label in ("hf-single", "hf-left")] == [expected[PROMPTS[1]]] * 2
    # the next r repeats hf-left's whole call again
    assert main.ws.plan_one(second.id).ids == tuple(p.id for p in (first, second, third))


def test_a_divergence_after_r_on_one_prompt_is_diagnosed_in_the_batching_engines_call():
    """hf-single (the reference) ran the prompt alone, hf-left the whole call: bisection and
    re-convergence replay hf-left's call (the batch effect) and hf-single the prompt alone,
    rather than refusing two calls."""
    from gendiff.demo import demo_prompts_path
    from gendiff.io.prompts import PromptBook
    from gendiff.run.options import RunOptions
    from gendiff.run.pipeline import Diagnoses, explain
    from gendiff.run.session import Session

    prompts = PromptBook.load(demo_prompts_path()).prompts
    options = RunOptions(engines=("hf-single", "hf-left"), dtype="bfloat16")
    session = Session(options.config(), prompts)
    whole = session.run()
    diverged = [(row, d) for row, p in enumerate(whole.prompts) for d in p.divergences if d.diverged and d.step]
    assert diverged, "the demo prompts in bfloat16 give hf-left a batch effect to diagnose"
    row, before = diverged[0]
    replayed = session.run(keep=[row])
    assert [p.id for p in replayed.prompts] == [whole.prompts[row].id]
    result = replayed.prompts[0]
    assert len(replayed.batch(result.batches["hf-left"]).prompt_ids) == len(prompts)
    assert replayed.batch(result.batches["hf-single"]).prompt_ids == (result.id,)
    after = result.divergence_for("hf-left")
    assert after.diverged and after.step == before.step  # the batch effect is still there
    diagnoses = Diagnoses(reconverge=True, bisect=True)
    outcome = explain(session, replayed, diagnoses, only={(after.prompt_index, "hf-left")})
    assert outcome.error is None
    diagnosed = result.divergence_for("hf-left")
    assert diagnosed.bisection is not None and diagnosed.bisection.error is None
    assert diagnosed.reconvergence is not None
