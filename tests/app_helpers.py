"""Driving the real app in tests: starting it as the command line does, reading what it shows,
hand-made snapshots to open, and a hand-fed run (the events a Session emits, posted to the
screen's run controller as its worker would post them, without a worker or a model)."""

from __future__ import annotations

import json

from gendiff.io.documents import open_document
from gendiff.io.snapshots import save_snapshot
from gendiff.records.divergence import compare
from gendiff.records.events import (
    EngineFinished,
    EngineLoaded,
    EngineStarted,
    PromptFinished,
    RunStarted,
    StepGenerated,
)
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from gendiff.records.trace import TokenStep, TopToken, Trace
from gendiff.run.options import RunOptions
from gendiff.tui.app import GendiffApp, LaunchOptions
from gendiff.tui.messages import RunEnded, RunEvents

SIZE = (150, 42)
ENVIRONMENT = {"python": "3.11", "torch": "2.13.0", "transformers": "5.19.0", "device": "cpu"}


# ── the app ────────────────────────────────────────────────────────────────
async def wait_until(pilot, condition, timeout=600.0):
    waited = 0.0
    while not condition():
        await pilot.pause(0.1)
        waited += 0.1
        assert waited < timeout, "timed out waiting"
    await pilot.pause()  # what the state says now reaches the screen (its Changed messages)


async def settled(pilot):
    """Past the moment the prompt's text and the panel take the rows what they show needs
    (SteadyStatic.SETTLE_SECONDS after the last change), laid out."""
    from gendiff.tui.widgets.steady_static import SETTLE_SECONDS

    await pilot.pause(SETTLE_SECONDS + 0.05)
    await pilot.pause()


def app_for(path=None, other=None, preload=False, theme=None, given=None, **run):
    """The app as ``gendiff [path [other]] --option …`` starts it (the file is opened first, as the CLI does)."""
    run.setdefault("max_new_tokens", 24)
    document = open_document(str(path), str(other) if other else None) if path else None
    app = GendiffApp(LaunchOptions(RunOptions(**run), document, theme, preload, given))
    # every notification said, also those whose toast timed out (a loaded machine runs slowly)
    app.said = []
    shown = app.notify

    def notify(message, *args, **kwargs):
        app.said.append(str(message))
        return shown(message, *args, **kwargs)

    app.notify = notify
    return app


def prompt_file(folder, *prompts):
    file = folder / "prompts.txt"
    file.write_text("".join(p.replace("\n", "\\n") + "\n" for p in prompts))
    return file


def marks(app):
    ws = app.main.ws
    return [ws.mark(p)[0] for p in ws.prompts]


def running(app):
    return app.main.ws.running


def notifications(app):
    """Every notification the app has shown, oldest first."""
    return list(app.said)


def plain(widget, width=140):
    """What a Static shows, as plain text (rendered with Rich at ``width``)."""
    from rich.console import Console

    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(widget.content)
    return console.export_text()


def column(main, label):
    """The engine's column: its frame (title, foot, display) with ``.tokens`` inside."""
    return main.workbench.columns.columns()[label]


def shown_columns(main):
    """The engine columns on screen, left to right."""
    return [c.label for c in main.workbench.columns.in_order() if c.display]


def rows(main):
    """The prompt list's rows as drawn."""
    prompts = main.workbench.prompt_list
    return [str(prompts.get_option_at_index(i).prompt) for i in range(prompts.option_count)]


def strip_text(main, width=400):
    return plain(main.query_one("#progress"), width=width)


# ── hand-made snapshots ────────────────────────────────────────────────────
def tok(token_id, text, *cands):
    """cands: (id, text, logprob), best first; the first is chosen."""
    top = tuple(TopToken(i, t, lp, lp + 7.5) for i, t, lp in cands)
    return TokenStep(token_id, text, cands[0][2], top)


def hand_made_snapshot(path):
    """Two prompts, three engines: hf-left picks " city" over " capital" at step 3 of prompt 1 (a
    near-tie), packed stops a token early on prompt 2."""
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
        environment=ENVIRONMENT,
        created="2026-11-23T12:00:00+00:00",
        batches=[batch],
    )
    save_snapshot(snapshot, path)
    return path


def late_divergence_snapshot(path, steps=150, at=130):
    """Three engines over ``steps`` tokens of a word each; hf-left picks another word at ``at``."""
    words = [tok(100 + i, f" w{i}", (100 + i, f" w{i}", -0.1), (99, " x", -2.5)) for i in range(steps)]
    other = list(words)
    other[at] = tok(99, " x", (99, " x", -0.7), (100 + at, f" w{at}", -0.71))
    prompt = (1, 2)
    traces = {
        "hf-single": Trace("hf-single", 0, prompt, tuple(words), "length"),
        "hf-left": Trace("hf-left", 0, prompt, tuple(other), "length"),
        "packed": Trace("packed", 0, prompt, tuple(words), "length"),
    }
    result = PromptResult("Count the words", list(prompt), traces, id=0, batches=dict.fromkeys(traces, 0))
    result.divergences = [compare(traces["hf-single"], traces[e]) for e in ("hf-left", "packed")]
    snapshot = Snapshot(
        model={"name": "demo_model", "path": "/demo_model", "dtype": "bfloat16", "attn": "sdpa"},
        decoding={"max_new_tokens": steps, "top_k": 2},
        reference="hf-single",
        engines=[{"label": e, "name": e, "settings": {}} for e in traces],
        prompts=[result],
        environment=ENVIRONMENT,
        created="2026-11-23T12:00:00+00:00",
        batches=[Batch(0, tuple(traces), (0,), (result.text,), (prompt,))],
    )
    save_snapshot(snapshot, path)
    return path


def snapshot_pair(folder):
    """Two snapshots of the same run, B's recorded as float32 (compare checks model and prompts)."""
    a = hand_made_snapshot(folder / "a.json")
    data = json.loads(a.read_text())
    data["model"]["dtype"] = "float32"
    b = folder / "b.json"
    b.write_text(json.dumps(data))
    return a, b


# ── a hand-fed run ─────────────────────────────────────────────────────────
def step_of(token: int) -> TokenStep:
    return TokenStep(
        token, f" t{token}", -0.1, (TopToken(token, f" t{token}", -0.1, 1.0), TopToken(0, "x", -3.0, -2.0))
    )


class FakeRun:
    """A run of ``plan`` as ``R``/``r`` starts one, its events written by the test: ``post``
    hands them to the screen's run controller (as the run worker does), ``end`` sends the run's
    snapshot of the traces posted (as the worker does when Session.run returns)."""

    def __init__(self, main, plan, max_new_tokens=4, clock=None):
        self.main, self.plan = main, plan
        self.ws = main.ws
        self.run = main.ws.start(plan, max_new_tokens, clock=clock)
        self.traces: dict[str, dict[int, Trace]] = {}
        main.refresh_all()  # as the screen does after starting a run

    def text_of(self, pid: int) -> str:
        return self.plan.texts[self.plan.ids.index(pid)]

    def token_ids(self, pid: int) -> tuple[int, ...]:
        return tuple(ord(c) % 50 + 1 for c in self.text_of(pid))

    def trace(self, label: str, pid: int, tokens: list[int], finish: str = "length") -> Trace:
        trace = Trace(label, pid, self.token_ids(pid), tuple(step_of(t) for t in tokens), finish)
        self.traces.setdefault(label, {})[pid] = trace
        return trace

    def meta(self, prompts: list[PromptResult]) -> Snapshot:
        ids = self.plan.ids
        batch = Batch(0, tuple(self.ws.labels), ids, self.plan.texts, tuple(self.token_ids(p) for p in ids))
        return Snapshot(
            model={"name": "fake", "path": "/fake", "dtype": "float32", "attn": "sdpa"},
            decoding={"max_new_tokens": self.run.max_new_tokens, "top_k": 2},
            reference=self.ws.reference,
            engines=[{"label": label, "name": label, "settings": {}} for label in self.ws.labels],
            prompts=prompts,
            environment=ENVIRONMENT,
            batches=[batch],
        )

    def started(self) -> RunStarted:
        return RunStarted(self.meta([]), tuple(self.ws.labels))

    def engine_events(self, label: str, tokens: dict[int, list[int]], seconds: float = 0.5) -> list[object]:
        """An engine's whole turn, one prompt after the other: started, loaded, each prompt's
        ``tokens[pid]`` generated and the prompt finished, the engine finished."""
        events: list[object] = [EngineStarted(label, len(self.plan.ids)), EngineLoaded(label, 0.1)]
        traces = []
        for pid in self.plan.ids:
            events += [StepGenerated(label, pid, i, step_of(t)) for i, t in enumerate(tokens[pid])]
            traces.append(self.trace(label, pid, tokens[pid]))
            events.append(PromptFinished(label, traces[-1]))
        return [*events, EngineFinished(label, tuple(traces), seconds)]

    async def post(self, pilot, *events) -> None:
        self.main.runner.post_message(RunEvents(self.run.id, list(events)))
        await pilot.pause()

    def snapshot(self) -> Snapshot:
        ref = self.ws.reference
        prompts = []
        for pid in self.plan.ids:
            traces = {label: by_id[pid] for label, by_id in self.traces.items() if pid in by_id}
            result = PromptResult(
                self.text_of(pid), list(self.token_ids(pid)), traces, id=pid, batches=dict.fromkeys(traces, 0)
            )
            if ref in traces:
                result.divergences = [compare(traces[ref], t) for label, t in traces.items() if label != ref]
            prompts.append(result)
        return self.meta(prompts)

    async def end(self, pilot, error: str | None = None) -> None:
        self.main.runner.post_message(RunEnded(self.run.id, None if error else self.snapshot(), error))
        await pilot.pause()
