"""Penalty settings, the semantics table and its note: pure logic (no model runs)."""

import re
from pathlib import Path

import pytest

from gendiff.cli.args import run_parser
from gendiff.cli.run_options import build_config
from gendiff.engines import engine_names, parse_engine_spec
from gendiff.errors import GendiffError
from gendiff.records.decoding import NEUTRAL, Decoding, resolve, semantics_note, table_markdown
from gendiff.records.trace import TokenStep, TopToken

README = Path(__file__).parent.parent / "docs" / "penalties.md"


def config(*argv):
    return build_config(run_parser().parse_args(list(argv)))


def test_spec_penalty_overrides_the_run_wide_one():
    cfg = config("--engines", "hf-single,vllm:frequency_penalty=1.2", "--repetition-penalty", "1.3")
    single, vllm = cfg.engines
    assert single.decoding.repetition_penalty == 1.3 and single.decoding.frequency_penalty is None
    assert vllm.decoding.repetition_penalty == 1.3 and vllm.decoding.frequency_penalty == 1.2
    assert vllm.options == {}  # a penalty is not an engine option
    assert single.settings()["decoding"]["repetition_penalty"] == 1.3  # recorded per trace


def test_model_defaults_flag_and_per_spec_switch():
    cfg = config("--engines", "hf-single,vllm:model_defaults=off", "--model-defaults")
    assert cfg.engines[0].decoding.model_defaults and not cfg.engines[1].decoding.model_defaults


@pytest.mark.parametrize(
    "text, message",
    [
        ("hf-single:repetition_penalty=abc", "repetition_penalty=abc must be a number"),
        ("hf-single:repetition_penalty=0", "must be above 0"),
        ("hf-left:no_repeat_ngram_size=1.5", "must be a whole number"),
        ("vllm:no_repeat_ngram_size=3", "it has no no_repeat_ngram_size"),
        ("hf-single:model_defaults=maybe", "must be on or off"),
    ],
)
def test_bad_penalties_are_refused_with_one_line(text, message):
    with pytest.raises(GendiffError, match=re.escape(message)):
        parse_engine_spec(text, {}, engine_names())


def test_resolve_takes_only_what_the_engine_reads_from_the_model():
    model = {"repetition_penalty": 1.1, "frequency_penalty": 0.5, "no_repeat_ngram_size": 3}
    hf = ("repetition_penalty", "frequency_penalty", "presence_penalty", "no_repeat_ngram_size")
    reads = ("repetition_penalty", "no_repeat_ngram_size")
    off = resolve(Decoding(), model, hf, reads)
    assert {k: off[k] for k in hf} == NEUTRAL  # without --model-defaults: raw greedy
    on = resolve(Decoding(model_defaults=True, no_repeat_ngram_size=0), model, hf, reads)
    assert on["repetition_penalty"] == 1.1 and on["sources"]["repetition_penalty"] == "generation_config.json"
    assert on["frequency_penalty"] == 0.0  # generate() has no frequency penalty
    assert on["no_repeat_ngram_size"] == 0 and on["sources"]["no_repeat_ngram_size"] == "given"


def _resolved(**values):
    return {**NEUTRAL, **values}


def test_note_names_both_semantics():
    note = semantics_note(
        ("hf-single", "hf-single", _resolved(repetition_penalty=1.2)),
        ("vllm", "vllm", _resolved(frequency_penalty=1.2)),
    )
    assert note == (
        "hf-single applies repetition_penalty 1.2 multiplicatively over prompt+output; "
        "vllm applies frequency_penalty 1.2 additively over output only"
    )


def test_note_when_only_one_side_penalises_and_none_when_alike():
    assert semantics_note(("hf-single", "a", _resolved()), ("vllm", "b", _resolved(repetition_penalty=1.1))) == (
        "a applies no penalty; b applies repetition_penalty 1.1 multiplicatively over prompt+output"
    )
    same = _resolved(repetition_penalty=1.3)
    assert semantics_note(("hf-single", "a", same), ("vllm", "b", same)) is None
    assert semantics_note(("hf-single", "a", same), ("hf-right", "b", same)) is None


def test_hf_left_note_says_its_pads_are_counted():
    same = _resolved(repetition_penalty=1.3)
    note = semantics_note(("hf-single", "hf-single", same), ("hf-left", "hf-left", same))
    assert note.endswith(
        "hf-left applies repetition_penalty 1.3 multiplicatively over prompt+output, "
        "plus the pad tokens of the rows it left-pads"
    )


def test_readme_carries_the_semantics_table():
    assert table_markdown() in README.read_text(encoding="utf-8")


def test_output_penalty_processor_by_hand():
    import torch

    from gendiff.engines.penalties import OutputPenaltyProcessor

    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    ids = torch.tensor([[3, 3, 1, 1, 2]])  # prompt 3 3; output 1 1 2
    out = OutputPenaltyProcessor(0.5, 0.25, prompt_length=2)(ids, scores)
    # token 1: twice in the output; token 2: once; token 3: only in the prompt, not penalised
    assert out.tolist() == [[1.0, 2.0 - 1.0 - 0.25, 3.0 - 0.5 - 0.25, 4.0]]


def test_transformers_penalises_the_pads_of_a_left_padded_batch():
    """What hf-left inherits from generate(): RepetitionPenaltyLogitsProcessor gathers over
    input_ids, and on a left-padded batch those include the pad id."""
    import torch
    from transformers import RepetitionPenaltyLogitsProcessor

    pad = 1
    scores = torch.tensor([[2.0, -1.0, 0.5, 0.5], [2.0, -1.0, 0.5, 0.5]])
    ids = torch.tensor([[pad, pad, 2], [3, 3, 2]])  # row 0 padded, row 1 not
    out = RepetitionPenaltyLogitsProcessor(penalty=2.0)(ids, scores)
    assert out[0, pad].item() == -2.0  # the pad's score was penalised in the padded row
    assert out[1, pad].item() == -1.0


def test_step_round_trip_keeps_raw_scores_and_old_steps_stay_the_same():
    top = (TopToken(5, "a", -0.1, 3.0), TopToken(6, "b", -2.0, 1.0))
    raw = (TopToken(6, "b", -0.2, 3.5), TopToken(5, "a", -1.0, 3.0))
    step = TokenStep(5, "a", -0.1, top, -1.0, raw)
    assert TokenStep.from_dict(step.to_dict()) == step
    assert step.processed and step.margin == pytest.approx(1.9) and step.raw_margin == pytest.approx(0.8)
    plain = TokenStep(5, "a", -0.1, top)
    assert set(plain.to_dict()) == {"token_id", "text", "logprob", "top"} and not plain.processed


def test_a_penalty_is_a_sweep_axis_for_every_engine():
    from gendiff.run.sweep import parse_sweep, variant_specs

    cfg = config("--engines", "hf-single,vllm:frequency_penalty=1.2")
    axes = parse_sweep(["repetition_penalty=1,1.3"], cfg.engines)
    single, vllm = variant_specs(cfg.engines, {"repetition_penalty": "1.3"})
    assert axes == {"repetition_penalty": ["1", "1.3"]}
    assert single.decoding.repetition_penalty == 1.3 and single.label == "hf-single"
    assert vllm.decoding.repetition_penalty == 1.3 and vllm.decoding.frequency_penalty == 1.2
    with pytest.raises(GendiffError, match="it has no no_repeat_ngram_size"):
        variant_specs(cfg.engines, {"no_repeat_ngram_size": "2"})
