"""The sweep runs through Session.run: its events and its cancel reach every variant."""

import threading

import pytest

from gendiff.engines import engine_names, parse_engine_spec
from gendiff.engines.settings import GenerationSettings
from gendiff.records.events import EngineFinished, EngineStarted, RunFinished, StepGenerated
from gendiff.run.config import RunConfig
from gendiff.run.sweep import run_sweep

pytestmark = pytest.mark.slow


def test_the_sweep_goes_through_session_run_with_events_and_cancel():
    specs = tuple(parse_engine_spec(name, {}, engine_names()) for name in ("hf-single", "hf-left"))
    config = RunConfig(None, specs, "hf-single", GenerationSettings(max_new_tokens=2, top_k=2))
    events, cancel = [], threading.Event()

    def on_event(event):
        events.append(event)
        if sum(isinstance(e, EngineStarted) for e in events) == 3:
            cancel.set()  # the second variant's first engine (hf-left; hf-single's run is reused)

    variants = run_sweep(config, ["The cat", "Once upon a time"], {"batch_size": ["1", "2"]}, None, on_event, cancel)
    assert len(variants) == 1 and variants[0].settings == {"batch_size": "1"}
    first_run = events[: next(i for i, e in enumerate(events) if isinstance(e, RunFinished)) + 1]
    finished = [e for e in first_run if isinstance(e, EngineFinished)]
    assert [e.engine for e in finished] == ["hf-single", "hf-left"]
    steps = [e for e in first_run if isinstance(e, StepGenerated)]
    assert len(steps) == sum(len(t.steps) for e in finished for t in e.traces) > 0
    # the second variant ran only hf-left (hf-single ignores the batch size), cancelled at once
    second = events[len(first_run) :]
    assert [e.engine for e in second if isinstance(e, EngineStarted)] == ["hf-left"]
    assert isinstance(second[-1], RunFinished) and second[-1].cancelled
    assert not any(isinstance(e, StepGenerated) for e in second)
    assert variants[0].diverged == {"hf-left": []}
