"""What one engine produced for one prompt: plain frozen data, no torch."""

from __future__ import annotations

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
    """One generated token: the choice, its logprob, and the top-k candidates (best first)."""

    token_id: int
    text: str
    logprob: float
    top: tuple[TopToken, ...]

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
        return {
            "token_id": self.token_id,
            "text": self.text,
            "logprob": self.logprob,
            "top": [t.to_dict() for t in self.top],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenStep:
        return cls(
            int(data["token_id"]),
            str(data["text"]),
            float(data["logprob"]),
            tuple(TopToken.from_dict(t) for t in data["top"]),
        )


@dataclass(frozen=True)
class Trace:
    """Greedy generation of one engine on one prompt."""

    engine: str
    prompt_index: int
    prompt_token_ids: tuple[int, ...]
    steps: tuple[TokenStep, ...]
    finish_reason: str
    settings: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    error: str | None = None
    wall_time_s: float = 0.0

    @property
    def token_ids(self) -> tuple[int, ...]:
        return tuple(step.token_id for step in self.steps)

    @property
    def text(self) -> str:
        return "".join(step.text for step in self.steps)

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
        return cls(
            engine=str(data["engine"]),
            prompt_index=int(data["prompt_index"]),
            prompt_token_ids=tuple(int(t) for t in data["prompt_token_ids"]),
            steps=tuple(TokenStep.from_dict(s) for s in data["steps"]),
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
