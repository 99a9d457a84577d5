"""The ``openai`` engine without a server: its options, and a port where nothing listens.

The runs against a real vLLM server are in test_served.py (slow tier)."""

import socket
import subprocess
import sys
import threading
import time

import pytest
from fake_server import MODEL, FakeServer

from gendiff.demo import demo_model_path
from gendiff.engines import create_engine, engine_names, parse_engine_spec
from gendiff.errors import GendiffError


def _create(spec):
    return create_engine(parse_engine_spec(spec, {}, engine_names()), str(demo_model_path()))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("openai:model=x", "engine openai:model=x: needs url; e.g. openai:url=http://127.0.0.1:8000/v1,model=NAME"),
        (
            "openai:url=http://h:1/v1",
            "engine openai:url=http://h:1/v1: needs model; e.g. openai:url=http://127.0.0.1:8000/v1,model=NAME",
        ),
        (
            "openai:url=h:1/v1,model=x",
            "engine openai:url=h:1/v1,model=x: url=h:1/v1: must start with http:// or https://",
        ),
        (
            "openai:url=http://h:1/v1,model=x,concurrency=0",
            "engine openai:url=http://h:1/v1,model=x,concurrency=0: concurrency=0: must be 'all' or a whole number >= 1",
        ),
        (
            "openai:url=http://h:1/v1,model=x,flavour=tgi",
            "engine openai:url=http://h:1/v1,model=x,flavour=tgi: flavour=tgi is not one of auto, openai, sglang, llamacpp",
        ),
        (
            "openai:url=http://h:1/v1,model=x,timeout=-1",
            "engine openai:url=http://h:1/v1,model=x,timeout=-1: timeout=-1: must be a number of seconds above 0",
        ),
    ],
)
def test_bad_options_are_one_line(spec, message):
    with pytest.raises(GendiffError) as error:
        _create(spec)
    assert str(error.value) == message


def test_options_and_defaults():
    engine = _create("openai:url=http://127.0.0.1:8000/v1/,model=my-model,concurrency=4")
    assert engine.url == "http://127.0.0.1:8000/v1" and engine.root == "http://127.0.0.1:8000"
    assert {k: engine.option(k) for k in engine.options} == {
        "url": "http://127.0.0.1:8000/v1/",
        "model": "my-model",
        "concurrency": "4",
        "flavour": "auto",
        "timeout": "120",
        "retries": "3",
        "api_key_env": None,
    }


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on exit: nothing listens there


def test_nothing_listening_is_one_line_after_retries():
    port = _closed_port()
    engine = _create(f"openai:url=http://127.0.0.1:{port}/v1,model=x,retries=1")
    with pytest.raises(GendiffError) as error:
        engine.load()
    assert str(error.value) == (
        f"engine openai:url=http://127.0.0.1:{port}/v1,model=x,retries=1: no server answers at "
        f"http://127.0.0.1:{port}/v1 ([Errno 111] Connection refused); start it (docs/served.md) "
        "or fix url="
    )


def test_a_refused_connection_is_retried_until_the_server_listens():
    """httpx's transport retries (0, 0.5, 1 s apart): a server that starts 0.3 s late is reached."""
    port = _closed_port()
    late: list[FakeServer] = []

    def start_late() -> None:
        time.sleep(0.3)
        late.append(FakeServer(port=port).__enter__())

    starter = threading.Thread(target=start_late)
    starter.start()
    try:
        engine = _create(f"openai:url=http://127.0.0.1:{port}/v1,model={MODEL},retries=3")
        engine.load()  # raises "no server answers" without the retries
        assert engine.flavour is not None
    finally:
        starter.join()
        for server in late:
            server.__exit__(None, None, None)


@pytest.mark.slow  # the CLI subprocess imports torch and transformers: ~8 s here
def test_cli_wrong_port_exits_3_with_the_reason(tmp_path):
    port = _closed_port()
    (tmp_path / "p.txt").write_text("Hello there\n")
    spec = f"openai:url=http://127.0.0.1:{port}/v1,model=x,retries=0"
    code = "import sys; from gendiff.cli.main import main; sys.exit(main())"
    argv = ["run", "--engines", spec, "--reference", spec, "--prompts", str(tmp_path / "p.txt")]
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert f"no server answers at http://127.0.0.1:{port}/v1" in result.stderr + result.stdout


def test_a_value_may_hold_a_colon():
    from gendiff.engines.settings import split_engine_list

    text = "hf-single,openai:url=http://h:8000/v1,model=llama3:8b,concurrency=1,hf-left:batch_size=4,vllm"
    assert split_engine_list(text) == [
        "hf-single",
        "openai:url=http://h:8000/v1,model=llama3:8b,concurrency=1",
        "hf-left:batch_size=4",
        "vllm",
    ]
    engine = _create("openai:url=http://h:8000/v1,model=llama3:8b")
    assert engine.model == "llama3:8b"


def test_a_server_that_never_answers_times_out_per_prompt():
    """A real socket that accepts connections (its backlog) and never answers."""
    import asyncio

    import httpx

    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(8)
        port = hanging.getsockname()[1]
        engine = _create(f"openai:url=http://127.0.0.1:{port}/v1,model=x,timeout=0.3")

        async def post():
            async with httpx.AsyncClient(timeout=engine._timeout()) as client:
                return await engine._post(client, "/v1/completions", {"prompt": [1, 2]})

        assert asyncio.run(post()) == "no answer within 0.3 s (timeout=)"
