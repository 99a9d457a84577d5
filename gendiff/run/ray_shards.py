"""``gendiff run --shards N --ray ADDRESS``: each shard (:func:`gendiff.run.shards.run_shard`) as a
Ray task, then the snapshots merged.

Ray only places the work: each task runs gendiff's own Session on one shard's prompts, so which
prompts share an engine call is decided by gendiff (the shard's prompts, in the file's order) and
recorded in the snapshot, whatever Ray schedules where. A task asks for one CPU and, when an
engine runs on CUDA, one GPU per CUDA device its engines name (Ray then sets the task's
``CUDA_VISIBLE_DEVICES``); a task whose worker dies is retried (``max_retries``). A task's answer
is the snapshot's JSON form, checked on arrival like any snapshot file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gendiff.defaults import RAY_LOCAL_CPUS, SHARD_RETRIES
from gendiff.errors import EngineError, InputError, describe
from gendiff.io.merge import merge_snapshots
from gendiff.io.snapshots import snapshot_from_data
from gendiff.run.options import RunOptions
from gendiff.run.pipeline import Diagnoses, Outcome
from gendiff.run.shards import run_shard, shard_positions


def _shard_task(
    options: RunOptions, prompts: list[str], index: int, count: int, diagnoses: Diagnoses
) -> tuple[dict[str, Any], list[str], str | None]:
    """In the Ray worker: one shard's run, as (snapshot dict, notes, stage error)."""
    outcome = run_shard(options, prompts, index, count, diagnoses)
    return outcome.snapshot.to_dict(), outcome.notes, outcome.error


def gpus_per_task(options: RunOptions) -> int:
    """One GPU per distinct CUDA device the engines name (cuda, cuda:0 … count as one each); 0 on CPU."""
    config = options.config()
    cuda = {
        spec.device if spec.device != "cuda" else "cuda:0" for spec in config.engines if spec.device.startswith("cuda")
    }
    return len(cuda)


def run_on_ray(
    address: str,
    count: int,
    options: RunOptions,
    prompts: Sequence[str],
    diagnoses: Diagnoses,
    say: Callable[[str], None] = lambda line: None,
) -> Outcome:
    """Run the ``count`` shards of ``prompts`` as Ray tasks on ``address`` (``local``: a Ray
    instance started here with ``RAY_LOCAL_CPUS`` CPUs) and merge them; shards that hold no
    prompt are not run. InputError when Ray is not installed or a shard's run raises one."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray: Ray is not installed; pip install 'gendiff[ray]' (ray==2.60.0)") from None
    options.config()  # bad options fail here, before Ray starts
    shards = shard_positions(prompts, count)
    started_here = not ray.is_initialized()
    if started_here:
        if address == "local":
            ray.init(num_cpus=RAY_LOCAL_CPUS, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1, num_gpus=gpus_per_task(options), max_retries=SHARD_RETRIES)(_shard_task)
        pending = {index: task.remote(options, list(prompts), index, count, diagnoses) for index in shards}
        say(f"{len(pending)} shard tasks of {count} on Ray ({address}); {count - len(pending)} shards hold no prompt")
        parts, notes, errors = [], [], []
        for index, ref in pending.items():
            try:
                data, shard_notes, error = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(getattr(exc, "cause", None), Exception) else None
                if isinstance(cause, InputError):
                    raise InputError(f"shard {index}/{count}: {cause}") from None
                raise EngineError(f"shard {index}/{count}: {describe(cause or exc).splitlines()[0]}") from None
            except ray.exceptions.RayError as exc:  # the worker died (or its node) past max_retries
                raise EngineError(
                    f"shard {index}/{count}: its Ray worker died {SHARD_RETRIES + 1} times "
                    f"({type(exc).__name__}); see the Ray logs on the node that ran it"
                ) from None
            name = f"shard {index}/{count}"
            parts.append((name, snapshot_from_data(data, name)))
            notes += [f"{name}: {note}" for note in shard_notes]
            if error is not None:
                errors.append(f"{name}: {error}")
            say(f"{name}: {len(shards[index])} prompts done")
    finally:
        if started_here:
            ray.shutdown()
    return Outcome(merge_snapshots(parts), notes, "; ".join(errors) or None)
