"""The one pipeline of a run and its diagnoses: generate, then re-converge, bisect, re-check,
repeat and gather statistics, in that order, each stage announced by events.

``gendiff run`` (all stages its flags ask for, then save) and the app (``R`` generates; ``b``
runs the re-convergence and bisection stages on one divergence; ``f`` the re-check) both go
through :func:`run_pipeline` / :func:`explain`, so a stage means the same thing, fails the same
way and is reported the same way wherever it runs:

- every stage is announced by a :class:`~gendiff.records.events.StageStarted` (number, total,
  what it does) and, for stages that work through divergences one by one, a
  :class:`~gendiff.records.events.StageProgress` per divergence; the run's own engine events
  come in between, as from :meth:`Session.run`;
- a stage that fails at run time keeps the run and everything attached so far: the remaining
  stages are skipped and :attr:`Outcome.error` names the stage (bad input still raises);
- ``cancel`` stops between stages (and inside the ones that re-run engines).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from gendiff.defaults import TOLERANCE
from gendiff.errors import Cancelled, InputError, describe
from gendiff.records.divergence import TOKEN
from gendiff.records.events import OnEvent, StageProgress, StageStarted
from gendiff.records.snapshot import Snapshot
from gendiff.run.recheck import recheck
from gendiff.run.repeat import attach_repeats
from gendiff.run.session import Session
from gendiff.run.statistics import attach_statistics

RECONVERGE, BISECT, RECHECK, REPEAT, STATS = "reconverge", "bisect", "recheck", "repeat", "stats"


@dataclass(frozen=True)
class Diagnoses:
    """What to do after the run: each field one stage (``recheck`` the dtype, ``repeat`` the
    number of runs including the first); the defaults do nothing."""

    reconverge: bool = False
    bisect: bool = False
    tolerance: float = TOLERANCE
    recheck: str | None = None
    repeat: int | None = None
    stats: bool = False

    def check(self) -> None:
        """Bad options are input errors, found before any model work."""
        if self.repeat is not None and self.repeat < 2:
            raise InputError(f"--repeat {self.repeat}: must be at least 2 (the run itself counts as the first)")
        if self.tolerance < 0:
            raise InputError(f"--tolerance {self.tolerance}: must be zero or more")

    def stages(self) -> list[str]:
        chosen = [
            (RECONVERGE, self.reconverge),
            (BISECT, self.bisect),
            (RECHECK, self.recheck is not None),
            (REPEAT, self.repeat is not None),
            (STATS, self.stats),
        ]
        return [name for name, wanted in chosen if wanted]


@dataclass
class Outcome:
    """A run and what its stages attached; ``error``: the stage that failed, the rest skipped."""

    snapshot: Snapshot
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def run_pipeline(
    session: Session,
    diagnoses: Diagnoses,
    on_event: OnEvent | None = None,
    cancel: threading.Event | None = None,
    keep: list[int] | None = None,
) -> Outcome:
    """Generate every prompt with every engine, then run the stages ``diagnoses`` asks for
    (``keep``: the positions of the prompts whose results are wanted, see :meth:`Session.run`)."""
    diagnoses.check()
    snapshot = session.run(on_event, cancel, keep=keep)
    if cancel is not None and cancel.is_set():
        return Outcome(snapshot)
    return explain(session, snapshot, diagnoses, on_event, cancel)


def explain(
    session: Session,
    snapshot: Snapshot,
    diagnoses: Diagnoses,
    on_event: OnEvent | None = None,
    cancel: threading.Event | None = None,
    only: set[tuple[int, str]] | None = None,
) -> Outcome:
    """Run the stages of ``diagnoses`` on a finished run (``only``: the divergences that the
    re-convergence and bisection stages look at, as (prompt index, engine); every replayable token
    divergence by default).

    Raises:
        Cancelled: ``cancel`` was set (what finished before is attached).
        InputError: a stage's options are wrong for this run (e.g. --stats with a reference
            that can't be teacher-forced).
    """
    diagnoses.check()
    emit = on_event or (lambda event: None)
    outcome = Outcome(snapshot)
    stages = diagnoses.stages()
    for number, stage in enumerate(stages, 1):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"cancelled before the {stage} stage; what finished is kept")
        emit(StageStarted(stage, number, len(stages), _what(stage, diagnoses)))
        try:
            outcome.notes += _run_stage(stage, session, snapshot, diagnoses, emit, cancel, only)
        except (InputError, Cancelled):
            raise
        except Exception as exc:  # a stage failing at run time: the run and what came before are kept
            outcome.error = f"{_FLAGS[stage]}: {describe(exc)}"
            break
    return outcome


_FLAGS = {RECONVERGE: "--reconverge", BISECT: "--bisect", RECHECK: "--recheck", REPEAT: "--repeat", STATS: "--stats"}


def _what(stage: str, diagnoses: Diagnoses) -> str:
    return {
        RECONVERGE: "re-convergence: feeding each diverging engine the reference's tokens",
        BISECT: "bisecting: replaying both engines to the divergent step with hooks on every module",
        RECHECK: f"re-checking the diverging pairs in {diagnoses.recheck}",
        REPEAT: f"repeating the run {(diagnoses.repeat or 1) - 1} more times, prompts reordered",
        STATS: "teacher-forcing every engine on the reference's tokens for statistics",
    }[stage]


def _run_stage(
    stage: str,
    session: Session,
    snapshot: Snapshot,
    diagnoses: Diagnoses,
    emit: Callable[[object], None],
    cancel: threading.Event | None,
    only: set[tuple[int, str]] | None,
) -> list[str]:
    if stage in (RECONVERGE, BISECT):
        return _replay_stage(stage, session, snapshot, diagnoses.tolerance, emit, cancel, only)
    if stage == RECHECK:
        return recheck(session, snapshot, diagnoses.recheck or "", emit, cancel)
    if stage == REPEAT:
        return attach_repeats(session, snapshot, diagnoses.repeat or 2, emit)
    if not session.engines[snapshot.reference].can_replay:
        raise InputError(
            f"--stats: the reference {snapshot.reference} can't be teacher-forced; pick an hf-* or packed engine "
            "as --reference"
        )
    return attach_statistics(session, snapshot, lambda label: emit(StageProgress(STATS, 0, 0, label)))


def _replay_stage(
    stage: str,
    session: Session,
    snapshot: Snapshot,
    tolerance: float,
    emit: Callable[[object], None],
    cancel: threading.Event | None,
    only: set[tuple[int, str]] | None,
) -> list[str]:
    """Attach a re-convergence or a bisection record to each token divergence both of whose
    engines can replay; returns a note naming the engines that can't."""
    wanted = [d for d in snapshot.divergences() if d.reason == TOKEN]
    if only is not None:
        wanted = [d for d in wanted if (d.prompt_index, d.engine) in only]
    replayable = [d for d in wanted if session.engines[d.reference].can_replay and session.engines[d.engine].can_replay]
    for done, d in enumerate(replayable):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"{stage} cancelled; what finished is kept")
        emit(StageProgress(stage, done, len(replayable), f"prompt {d.prompt_index + 1} {d.engine}"))
        prompt = next(p for p in snapshot.prompts if d in p.divergences)
        if stage == RECONVERGE:
            updated = replace(d, reconvergence=session.reconverge(snapshot, d))
        else:
            updated = replace(d, bisection=session.bisect(snapshot, d, tolerance))
        prompt.divergences[prompt.divergences.index(d)] = updated
    skipped = sorted({d.engine for d in wanted if d not in replayable})
    return [
        f"{label}: can't be replayed with forced tokens, so its divergences are not diagnosed "
        "(hf-single, hf-left, hf-right and packed can)"
        for label in skipped
    ]
