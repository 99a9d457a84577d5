"""What one engine produced for one prompt: plain frozen data, no torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TopToken:
    """One of the k best candidates at a step. ``logit`` is None for engines that only give logprobs."""

    token_id: int
    text: str
    logprob: float
    logit: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "text": self.text, "logprob": self.logprob, "logit": self.logit}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TopToken:
        return cls(int(data["token_id"]), str(data["text"]), float(data["logprob"]), _opt_float(data.get("logit")))


@dataclass(frozen=True)
class TokenStep:
    """One generated token: the choice, its logprob, and the top-k candidates (best first).

    ``logprob`` and ``top`` are the scores the greedy argmax was taken from: after the engine's
    penalties when it applies any (processed), else the raw ones. With a penalty, ``raw_logprob``
    and ``raw_top`` keep the model's raw scores (the chosen token's and the raw top-k; None
    where the engine can't give them: vLLM gives one or the other, so its penalised steps have
    ``raw_top == ()`` and ``raw_logprob`` None). ``raw_top`` None: no penalty, the scores are raw."""

    token_id: int
    text: str
    logprob: float
    top: tuple[TopToken, ...]
    raw_logprob: float | None = None
    raw_top: tuple[TopToken, ...] | None = None

    @property
    def processed(self) -> bool:
        """True when the decision scores differ from the raw ones (a penalty changed them)."""
        return self.raw_top is not None and (
            self.raw_logprob != self.logprob
            or [(t.token_id, t.logprob) for t in self.raw_top] != [(t.token_id, t.logprob) for t in self.top]
        )

    @property
    def raw_margin(self) -> float | None:
        """Top-1 minus top-2 of the raw scores; None without raw scores."""
        if self.raw_top is None or len(self.raw_top) < 2:
            return None
        return self.raw_top[0].logprob - self.raw_top[1].logprob

    @property
    def margin(self) -> float | None:
        """Top-1 minus top-2 logprob (identical in logit space); None with fewer than 2 candidates."""
        if len(self.top) < 2:
            return None
        return self.top[0].logprob - self.top[1].logprob

    def logprob_of(self, token_id: int) -> float | None:
        """The logprob of ``token_id`` at this step if it is among the recorded candidates."""
        if token_id == self.token_id:
            return self.logprob
        for candidate in self.top:
            if candidate.token_id == token_id:
                return candidate.logprob
        return None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "token_id": self.token_id,
            "text": self.text,
            "logprob": self.logprob,
            "top": [t.to_dict() for t in self.top],
        }
        if self.raw_top is not None:  # only with a penalty: older readers see the same keys
            data["raw_logprob"] = self.raw_logprob
            data["raw_top"] = [t.to_dict() for t in self.raw_top]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenStep:
        raw_top = data.get("raw_top")
        return cls(
            int(data["token_id"]),
            str(data["text"]),
            float(data["logprob"]),
            tuple(TopToken.from_dict(t) for t in data["top"]),
            _opt_float(data.get("raw_logprob")),
            None if raw_top is None else tuple(TopToken.from_dict(t) for t in raw_top),
        )


@dataclass(frozen=True)
class Trace:
    """Greedy generation of one engine on one prompt.

    ``steps`` is a tuple, or (a snapshot read from a ``.gdz`` file) a
    :class:`gendiff.records.columns.StepColumns`: a read-only sequence of the same TokenSteps,
    built when looked at, equal to their tuple; slicing it gives a tuple."""

    engine: str
    prompt_index: int
    prompt_token_ids: tuple[int, ...]
    steps: Sequence[TokenStep]
    finish_reason: str
    settings: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    error: str | None = None
    wall_time_s: float = 0.0

    @property
    def token_ids(self) -> tuple[int, ...]:
        columns = getattr(self.steps, "token_ids", None)  # StepColumns: read from its array
        return columns if columns is not None else tuple(step.token_id for step in self.steps)

    @property
    def text(self) -> str:
        columns = getattr(self.steps, "texts", None)
        return "".join(columns if columns is not None else (step.text for step in self.steps))

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "settings": dict(self.settings),
            "prompt_index": self.prompt_index,
            "prompt_token_ids": list(self.prompt_token_ids),
            "token_ids": list(self.token_ids),
            "steps": [s.to_dict() for s in self.steps],
            "finish_reason": self.finish_reason,
            "error": self.error,
            "wall_time_s": self.wall_time_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        """The dict form; its ``steps`` is a list of step dicts, or a sequence of TokenSteps already
        built (the ``.gdz`` reader's StepColumns), kept as it is."""
        steps = data["steps"]
        return cls(
            engine=str(data["engine"]),
            prompt_index=int(data["prompt_index"]),
            prompt_token_ids=tuple(int(t) for t in data["prompt_token_ids"]),
            steps=tuple(TokenStep.from_dict(s) for s in steps) if isinstance(steps, list) else steps,
            finish_reason=str(data["finish_reason"]),
            settings=dict(data.get("settings") or {}),
            error=data.get("error"),
            wall_time_s=float(data.get("wall_time_s") or 0.0),
        )

    @classmethod
    def failed(
        cls, engine: str, prompt_index: int, prompt_token_ids: list[int], error: str, settings: dict[str, Any]
    ) -> Trace:
        return cls(engine, prompt_index, tuple(prompt_token_ids), (), "error", settings, error)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
