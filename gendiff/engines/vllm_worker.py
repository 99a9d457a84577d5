"""vLLM in its own process: environment variables (VLLM_BATCH_INVARIANT, thread pinning, GPU
memory) stay out of the process that runs the HF engines.

:func:`worker` hands out the one live worker for a (model, dtype, settings) key: it stays alive
between runs (the app re-runs without reloading) and a worker for other settings replaces it
(one model in memory at a time). Workers are stopped at interpreter exit. A worker that dies
raises a one-line GendiffError in the caller, which lives on. The worker's own output (vLLM
logs) goes to a temporary file, not the terminal, and its tail is quoted when it crashes.

Messages (pickled over a socket pair): ("load", kwargs) -> ("ok", resolved config);
("generate", request) -> ("ok", steps per prompt); ("forced", request) -> ("ok", per prompt
the reported logprobs of each fed token); ("stop", None); errors -> ("error", line).
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import tempfile
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from gendiff.errors import GendiffError

_lock = threading.Lock()
_live: dict[str, Any] = {}  # "key" -> tuple key, "worker" -> Worker


class Worker:
    """A child process holding one ``vllm.LLM``; methods block until it answers."""

    def __init__(self, env: dict[str, str], label: str) -> None:
        import socket

        self.label = label
        parent, child = socket.socketpair()
        self.log = tempfile.NamedTemporaryFile("w+", prefix="gendiff-vllm-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gendiff.engines.vllm_worker", str(child.fileno())],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            pass_fds=(child.fileno(),),
            start_new_session=True,  # Ctrl-C in the terminal goes to gendiff, which stops it
        )
        child.close()
        self.conn = Connection(parent.detach())
        self.env = env

    def call(self, command: str, payload: Any, cancel: threading.Event | None = None) -> Any:
        """Send one command and wait for its answer; cancelling stops the worker (vLLM can't be interrupted)."""
        try:
            self.conn.send((command, payload))
            while not self.conn.poll(0.2):
                if self.process.poll() is not None:
                    raise EOFError
                if cancel is not None and cancel.is_set():
                    self.stop(kill=True)
                    raise GendiffError(f"engine {self.label}: cancelled (its vLLM worker was stopped)")
            status, answer = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.process.wait(timeout=30)
            raise GendiffError(
                f"engine {self.label}: the vLLM worker process died (exit code {self.process.returncode}); "
                f"its log: {self.log.name}{self._last_line()}"
            ) from None
        if status != "ok":
            raise GendiffError(f"engine {self.label}: {answer} (traceback in {self.log.name})")
        return answer

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, kill: bool = False) -> None:
        """Ask the worker to exit (``kill``: don't ask, SIGKILL its whole process group: vLLM's
        own engine processes too); SIGKILL if it takes over 20 s."""
        if self.alive() and kill:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: start_new_session
            except (ProcessLookupError, PermissionError):
                pass
        if self.alive() and not kill:
            try:
                self.conn.send(("stop", None))
                self.process.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                pass
        clean = not self.alive() and self.process.returncode == 0
        if self.alive():
            self.process.kill()
            self.process.wait(timeout=20)
        self.conn.close()
        self.log.close()
        if clean:  # a log is kept only when something went wrong
            Path(self.log.name).unlink(missing_ok=True)

    def _last_line(self) -> str:
        try:
            lines = [line.strip() for line in open(self.log.name, errors="replace") if line.strip()]
        except OSError:
            return ""
        return f", ending: {lines[-1][:300]}" if lines else ""


def worker(
    key: tuple[Any, ...], env: dict[str, str], load: dict[str, Any], label: str
) -> tuple[Worker, dict[str, Any]]:
    """The live worker for ``key`` (started and loaded if needed) and its resolved vLLM config."""
    with _lock:
        current = _live.get("worker")
        if current is not None and _live.get("key") == key and current.alive():
            return current, _live["resolved"]
        if current is not None:
            current.stop()
            _live.clear()
        started = Worker(env, label)
        try:
            resolved = started.call("load", load)
        except GendiffError:
            started.stop(kill=True)
            raise
        _live.update(key=key, worker=started, resolved=resolved)
        return started, resolved


def stop_all(now: bool = False) -> None:
    """Stop the live worker, if any (at exit, and when the app quits: ``now``, without waiting
    for vLLM to shut down, which takes 10-20 s)."""
    with _lock:
        current = _live.pop("worker", None)
        _live.clear()
    if current is not None:
        current.stop(kill=now)


atexit.register(stop_all)


# ---- the worker side ---------------------------------------------------------------------------


def _resolved(llm: Any) -> dict[str, Any]:
    """The settings vLLM actually runs with (after its own defaults), for the snapshot."""
    config = llm.llm_engine.vllm_config
    cache, scheduler, parallel = config.cache_config, config.scheduler_config, config.parallel_config
    return {
        "enforce_eager": config.model_config.enforce_eager,
        "enable_prefix_caching": cache.enable_prefix_caching,
        "enable_chunked_prefill": scheduler.enable_chunked_prefill,
        "max_num_seqs": scheduler.max_num_seqs,
        "max_num_batched_tokens": scheduler.max_num_batched_tokens,
        "tensor_parallel_size": parallel.tensor_parallel_size,
        "kv_cache_dtype": cache.cache_dtype,
        "gpu_memory_utilization": cache.gpu_memory_utilization,
        "batch_invariant": os.environ.get("VLLM_BATCH_INVARIANT") == "1",
        "attention_backend": os.environ.get("VLLM_ATTENTION_BACKEND"),
        "speculative": _speculative(config.speculative_config),
    }


def _speculative(spec: Any) -> dict[str, Any] | None:
    """What speculative decoding vLLM runs (None: none)."""
    if spec is None:
        return None
    return {"method": spec.method, "num_speculative_tokens": spec.num_speculative_tokens}


def _generate(llm: Any, request: dict[str, Any]) -> list[list[tuple[int, float, list[tuple[int, float]]]]]:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(
        temperature=0.0,
        max_tokens=request["max_tokens"],
        logprobs=request["top_k"],
        ignore_eos=request["ignore_eos"],
        seed=0,
        **request.get("penalties", {}),
    )
    prompts = [TokensPrompt(prompt_token_ids=p) for p in request["prompts"]]
    out = []
    for output in llm.generate(prompts, params, use_tqdm=False):
        completion = output.outputs[0]
        steps = []
        for token_id, candidates in zip(completion.token_ids, completion.logprobs or []):
            pairs = [(int(i), float(lp.logprob)) for i, lp in candidates.items()]
            steps.append((int(token_id), float(candidates[token_id].logprob), pairs))
        out.append(steps)
    return out


def _forced(llm: Any, request: dict[str, Any]) -> list[list[tuple[list[int], list[float]]]]:
    """Teacher-forced logprobs: each prompt + its tokens prefilled once (``prompt_logprobs=k``,
    one token generated and dropped); per fed token, the reported ids and logprobs."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=request["k"], seed=0, detokenize=False)
    prompts = [TokensPrompt(prompt_token_ids=p + t) for p, t in zip(request["prompts"], request["targets"])]
    out = []
    for output, prompt, target in zip(
        llm.generate(prompts, params, use_tqdm=False), request["prompts"], request["targets"]
    ):
        positions = output.prompt_logprobs or []
        rows = []
        for index in range(len(prompt), len(prompt) + len(target)):
            entry = positions[index] if index < len(positions) else None
            items = list(entry.items()) if entry else []
            rows.append(([int(i) for i, _ in items], [float(lp.logprob) for _, lp in items]))
        out.append(rows)
    return out


def _one_line(exc: Exception) -> str:
    """The message on one line (pydantic's ValidationError spreads its reason over several)."""
    text = " ".join(str(exc).split()).split(" [type=")[0]
    return (text or type(exc).__name__)[:500]


def serve(conn: Connection) -> None:
    llm = None
    while True:
        try:
            command, payload = conn.recv()
        except EOFError:
            return  # the parent is gone
        if command == "stop":
            return
        try:
            if command == "load":
                from vllm import LLM

                llm = LLM(**payload)
                conn.send(("ok", _resolved(llm)))
            elif command == "generate":
                conn.send(("ok", _generate(llm, payload)))
            elif command == "forced":
                conn.send(("ok", _forced(llm, payload)))
            else:
                conn.send(("error", f"unknown worker command {command!r}"))
        except Exception as exc:  # reported to the parent as one line; the worker lives on
            import traceback

            traceback.print_exc()  # into the worker's log file
            conn.send(("error", f"vLLM: {type(exc).__name__}: {_one_line(exc)}"))


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
