"""The HF and packed engines on the real demo model."""

import pytest

from gendiff.demo import demo_model_path, demo_prompts_path
from gendiff.engines import create_engine, engine_names, parse_engine_spec
from gendiff.engines.loading import load_tokenizer
from gendiff.engines.settings import GenerationSettings
from gendiff.io.prompts import PromptBook
from gendiff.records.divergence import compare

pytestmark = pytest.mark.slow

SETTINGS = GenerationSettings(max_new_tokens=24, top_k=5)
HF_ENGINES = ["hf-single", "hf-left", "hf-right", "packed"]


@pytest.fixture(scope="module")
def prompt_ids():
    tokenizer = load_tokenizer(demo_model_path())
    return [tokenizer.encode(p) for p in PromptBook.load(demo_prompts_path()).prompts]


def run(spec_text, prompt_ids, dtype="float32", settings=SETTINGS):
    engine = create_engine(parse_engine_spec(spec_text, {"dtype": dtype}, engine_names()), str(demo_model_path()))
    engine.load()
    return engine.generate(prompt_ids, settings)


@pytest.fixture(scope="module")
def float32_traces(prompt_ids):
    return {name: run(name, prompt_ids) for name in HF_ENGINES}


@pytest.mark.parametrize("name", HF_ENGINES[1:])
def test_float32_engines_agree_with_hf_single(float32_traces, name):
    for ref, other in zip(float32_traces["hf-single"], float32_traces[name]):
        assert other.token_ids == ref.token_ids, f"{name} prompt {ref.prompt_index}: {compare(ref, other).detail}"
        # and the logits themselves are close: float32 drift is tiny
        assert compare(ref, other).max_drift_before < 1e-3


@pytest.mark.parametrize("name", HF_ENGINES + ["hf-single:cache=off", "packed:positions=continuous"])
def test_engine_is_bit_identical_against_itself(prompt_ids, name):
    first, second = run(name, prompt_ids[:6]), run(name, prompt_ids[:6])
    for a, b in zip(first, second):
        assert a.steps == b.steps  # token ids, logprobs, logits, top-k: all bitwise equal


def test_trace_fields(float32_traces, prompt_ids):
    vocab = load_tokenizer(demo_model_path()).vocab_size
    for name, traces in float32_traces.items():
        assert [t.prompt_index for t in traces] == list(range(len(prompt_ids)))
        for trace, ids in zip(traces, prompt_ids):
            assert trace.engine == name and trace.prompt_token_ids == tuple(ids)
            assert trace.finish_reason in ("eos", "length") and trace.error is None
            assert 1 <= len(trace.steps) <= SETTINGS.max_new_tokens
            assert trace.settings["dtype"] == "float32"
            for step in trace.steps:
                assert len(step.top) == 5 and 0 <= step.token_id < vocab
                assert step.top[0].token_id == step.token_id  # greedy: the choice is the best candidate
                assert step.logprob == step.top[0].logprob <= 0
                assert [t.logprob for t in step.top] == sorted((t.logprob for t in step.top), reverse=True)
                assert all(t.logit is not None for t in step.top)
                assert step.margin >= 0


def test_greedy_text_is_recognisable(float32_traces):
    prompts = PromptBook.load(demo_prompts_path()).prompts
    texts = {prompts[t.prompt_index]: t.text for t in float32_traces["hf-single"]}
    assert texts["The capital of France is"].startswith(" Paris.")
    assert texts["How to make tea:\n-"].startswith(" Boil the water.\n- Put the tea in a cup.")
    assert texts["def clamp(x):\n    if x > 3:\n        return"].startswith(" x\n    return 0\n")


def test_bfloat16_diverges_somewhere_at_a_near_tie(prompt_ids):
    reference = run("hf-single", prompt_ids, "bfloat16")
    found = []
    for name in HF_ENGINES[1:]:
        for ref, other in zip(reference, run(name, prompt_ids, "bfloat16")):
            d = compare(ref, other)
            if d.reason == "token":
                found.append(d)
    assert found, "no engine diverged from hf-single in bfloat16 on the demo prompts"
    assert any(d.reference_margin < 0.05 for d in found)


def test_packed_continuous_positions_change_the_logits(prompt_ids):
    reset = run("packed", prompt_ids[:4])
    continuous = run("packed:positions=continuous", prompt_ids[:4])
    # segment 0 starts at position 0 either way; the later segments' positions shift
    assert reset[0].steps == continuous[0].steps
    differences = [
        abs(a.logprob - b.logprob) for r, c in zip(reset[1:], continuous[1:]) for a, b in zip(r.steps, c.steps)
    ]
    assert max(differences) > 0


def test_packed_segments_never_see_each_other(prompt_ids):
    base = run("packed", prompt_ids[:5])
    changed_prompts = list(prompt_ids[:5])
    changed_prompts[2] = changed_prompts[2] + changed_prompts[0][1:]  # longer, different middle segment
    changed = run("packed", changed_prompts)
    for index in (0, 1, 3, 4):
        a, b = base[index], changed[index]
        assert a.token_ids == b.token_ids
        for sa, sb in zip(a.steps, b.steps):
            assert sa.logprob == pytest.approx(sb.logprob, abs=1e-5)
            assert [t.token_id for t in sa.top] == [t.token_id for t in sb.top]


def test_packed_reversed_order_keeps_prompt_indices(prompt_ids):
    traces = run("packed:order=reversed", prompt_ids[:4])
    assert [t.prompt_index for t in traces] == [0, 1, 2, 3]
    assert [t.prompt_token_ids for t in traces] == [tuple(p) for p in prompt_ids[:4]]


def test_hf_right_decodes_each_row_at_its_own_position(prompt_ids):
    # rows of very different lengths in one batch: if the first token were read from a pad
    # position (what generate() does with right padding) the short prompt would go wrong
    short_and_long = [prompt_ids[1], prompt_ids[9]]
    right = run("hf-right", short_and_long)
    single = run("hf-single", short_and_long)
    assert [t.token_ids for t in right] == [t.token_ids for t in single]


def test_stop_at_eos_off_runs_to_length(prompt_ids):
    settings = GenerationSettings(max_new_tokens=40, top_k=3, stop_at_eos=False)
    for name in ("hf-single", "hf-right", "packed"):
        traces = run(name, prompt_ids[:2], settings=settings)
        assert all(len(t.steps) == 40 and t.finish_reason == "length" for t in traces), name
