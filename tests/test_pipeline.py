"""The one pipeline (gendiff.run.pipeline) on real runs of the demo model: stages in order, each
announced; a stage failing keeps the run and what came before; `only` narrows the replays; the
command line prints the stage lines."""

import pytest

from gendiff.cli.main import main
from gendiff.demo import demo_model_path, demo_prompts_path
from gendiff.engines.settings import GenerationSettings, parse_engine_spec
from gendiff.records.events import StageProgress, StageStarted
from gendiff.run.config import RunConfig
from gendiff.run.pipeline import Diagnoses, explain, run_pipeline
from gendiff.run.session import Session

pytestmark = pytest.mark.slow

PROMPTS = demo_prompts_path().read_text().splitlines()[:6]


def session(dtype="bfloat16"):
    engines = tuple(parse_engine_spec(name, {"dtype": dtype}) for name in ("hf-single", "hf-left", "packed"))
    config = RunConfig(str(demo_model_path()), engines, "hf-single", GenerationSettings(max_new_tokens=24))
    return Session(config, PROMPTS)


@pytest.fixture(scope="module")
def ran():
    """One bfloat16 run (divergences to diagnose) with every stage, and the events it sent."""
    events = []
    s = session()
    outcome = run_pipeline(s, Diagnoses(reconverge=True, bisect=True, recheck="float32"), events.append)
    return s, outcome, events


def test_the_stages_run_in_order_each_announced_and_every_divergence_diagnosed(ran):
    _, outcome, events = ran
    token = [d for d in outcome.snapshot.divergences() if d.reason == "token"]
    if not token:
        pytest.skip("no token divergence in bfloat16 on these prompts")
    stages = [e for e in events if isinstance(e, StageStarted)]
    assert [(e.stage, e.number, e.total) for e in stages] == [
        ("reconverge", 1, 3),
        ("bisect", 2, 3),
        ("recheck", 3, 3),
    ]
    bisecting = [e for e in events if isinstance(e, StageProgress) and e.stage == "bisect"]
    assert [e.done for e in bisecting] == list(range(len(token)))
    assert all(e.total == len(token) for e in bisecting)
    assert outcome.error is None
    for d in token:
        assert d.reconvergence is not None and d.bisection is not None and d.recheck is not None
        assert d.bisection.step == d.step and d.bisection.engine == d.engine


def test_a_stage_failing_keeps_the_run_and_the_stages_before_it_and_skips_the_rest(monkeypatch):
    s = session()
    snapshot = s.run()
    token = [d for d in snapshot.divergences() if d.reason == "token"]
    if not token:
        pytest.skip("no token divergence in bfloat16 on these prompts")

    def broken(*args, **kwargs):
        raise RuntimeError("probe hook failed")

    monkeypatch.setattr(Session, "bisect", broken)
    outcome = explain(s, snapshot, Diagnoses(reconverge=True, bisect=True, recheck="float32"))
    assert outcome.error == "--bisect: RuntimeError: probe hook failed"
    after = [d for d in outcome.snapshot.divergences() if d.reason == "token"]
    assert all(d.reconvergence is not None for d in after)  # the stage before is kept
    assert all(d.bisection is None and d.recheck is None for d in after)  # the rest skipped


def test_only_narrows_the_replays_to_the_divergences_named(ran):
    s, outcome, _ = ran
    token = [d for d in outcome.snapshot.divergences() if d.reason == "token"]
    if len(token) < 2:
        pytest.skip("fewer than two token divergences")
    fresh = s.run()
    first = next(d for d in fresh.divergences() if d.reason == "token")
    explain(s, fresh, Diagnoses(reconverge=True), only={(first.prompt_index, first.engine)})
    done = [d for d in fresh.divergences() if d.reconvergence is not None]
    assert [(d.prompt_index, d.engine) for d in done] == [(first.prompt_index, first.engine)]


def test_repeat_below_two_is_bad_input_before_any_model_work(capsys):
    code = main(["run", "--repeat", "1", "--engines", "hf-single,hf-left"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "--repeat 1: must be at least 2" in err and "loading" not in err


def test_the_command_line_prints_each_stage(capsys, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    code = main(
        ["run", "--prompts", str(prompts), "--dtype", "bfloat16", "--engines", "hf-single,hf-left", "--reconverge"]
    )
    _, err = capsys.readouterr()
    assert code == 0
    assert "stage 1/1: re-convergence: feeding each diverging engine the reference's tokens…" in err


def test_the_app_s_session_refuses_an_overlong_prompt_alone_without_tokenizing_it():
    from gendiff.defaults import MAX_PROMPT_CHARS

    engines = (parse_engine_spec("hf-single"),)
    config = RunConfig(str(demo_model_path()), engines, "hf-single", GenerationSettings(max_new_tokens=4))
    s = Session(config, ["Hello there", "x" * (MAX_PROMPT_CHARS + 1)], [7, 9], per_prompt_errors=True)
    assert list(s.rejected) == [9] and "4,000,001 characters" in s.rejected[9]
    assert s.token_ids[1] == [] and s.token_ids[0]
