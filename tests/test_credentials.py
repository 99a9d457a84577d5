"""Issue 24: no secret is ever printed or stored. A URL with a user name or password is refused
(the spec is the engine's label, shown and stored everywhere); the ``openai`` engine's key comes
from the environment variable ``api_key_env`` names, sent as ``Authorization: Bearer`` and kept
out of stdout, stderr, the snapshot and the engine log. Against the fake server (no model runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_server import FakeServer

from gendiff.cli.main import main
from gendiff.display import has_userinfo, without_userinfo
from gendiff.engines import engine_names, parse_engine_spec
from gendiff.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-TOPSECRET-4242"


@pytest.mark.parametrize(
    "url",
    [
        "http://bob:hunter2@127.0.0.1:1/v1",
        "https://hunter2@example.org/v1",
        "http://bob:hun/ter@2@host:8000/v1",  # a password holding / and @
        "HTTP://bob:hunter2@host/v1",
    ],
)
def test_a_url_with_credentials_is_refused_without_showing_them(url, tmp_path, capsys):
    with pytest.raises(InputError) as error:
        parse_engine_spec(f"openai:url={url},model=x", {}, engine_names())
    assert "hunter2" not in str(error.value) and "hun/ter" not in str(error.value)
    assert "api_key_env=NAME" in str(error.value)
    out = tmp_path / "s.json"
    code = main(["run", "--engines", f"openai:url={url},model=x", "--json", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 2 and not out.exists()
    assert "hunter2" not in captured.out + captured.err and "bob" not in captured.out + captured.err
    assert captured.err.startswith("gendiff: error: engine 'openai:url=") and captured.err.count("\n") == 1


def test_userinfo_helpers():
    assert without_userinfo("at http://u:p@h:1/v1, and https://x@y/z") == "at http://***@h:1/v1, and https://***@y/z"
    assert not has_userinfo("http://h:1/v1 mail me@example.org") and has_userinfo("ftp://a@b")


def test_a_missing_key_variable_is_bad_input_before_anything_runs(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("GENDIFF_TEST_KEY", raising=False)
    with FakeServer(key=SECRET) as server:
        spec = f"openai:url={server.url},model=fake,api_key_env=GENDIFF_TEST_KEY"
        code = main(["run", "--engines", spec, "--max-new-tokens", "2", "--json", str(tmp_path / "s.json")])
    err = capsys.readouterr().err
    assert code == 2 and server.requests == [] and not (tmp_path / "s.json").exists()
    assert err.count("\n") == 1 and "GENDIFF_TEST_KEY is not set" in err


def test_the_key_holds_no_secret_itself(capsys):
    code = main(["run", "--engines", f"openai:url=http://h:1/v1,model=x,api_key_env={SECRET}", "--quiet"])
    assert code == 2 and "must name an environment variable" in capsys.readouterr().err


def test_the_key_is_sent_as_bearer_and_never_printed_or_stored(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GENDIFF_TEST_KEY", SECRET)
    out = tmp_path / "s.json"
    with FakeServer(key=SECRET) as server:
        spec = f"openai:url={server.url},model=fake,api_key_env=GENDIFF_TEST_KEY"
        code = main(["run", "--engines", spec, "--max-new-tokens", "3", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(server.requests) >= 4  # models, version, a tokenization check and a generation per prompt
    assert all(headers.get("Authorization") == f"Bearer {SECRET}" for _, _, headers, _ in server.requests)
    text = out.read_text(encoding="utf-8")
    assert SECRET not in captured.out + captured.err + text
    data = json.loads(text)
    assert data["engines"][0]["settings"]["options"]["api_key_env"] == "GENDIFF_TEST_KEY"
    # the run really generated: the fake server's stream (ids 20, 21, 22) is what was recorded
    assert data["prompts"][0]["traces"][spec]["token_ids"] == [20, 21, 22]


def test_a_wrong_key_is_bad_input_named_without_the_key(monkeypatch, capsys):
    monkeypatch.setenv("GENDIFF_TEST_KEY", "sk-wrong-1111")
    with FakeServer(key=SECRET) as server:
        spec = f"openai:url={server.url},model=fake,api_key_env=GENDIFF_TEST_KEY"
        code = main(["run", "--engines", spec, "--max-new-tokens", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "refuses the key in $GENDIFF_TEST_KEY (401" in err  # the key is input: exit 2
    assert "sk-wrong-1111" not in err


def test_a_model_the_server_does_not_serve_is_bad_input_naming_what_it_serves(capsys):
    with FakeServer() as server:
        spec = f"openai:url={server.url},model=no-such-model"
        code = main(["run", "--engines", spec, "--max-new-tokens", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"the server at {server.url} serves fake, not 'no-such-model'; pass model=<one of those>" in err
    assert not [r for r in server.requests if r[0] == "POST"]  # refused before any generation


def test_a_server_echoing_the_key_in_its_error_is_scrubbed(monkeypatch, capsys):
    monkeypatch.setenv("GENDIFF_TEST_KEY", SECRET)

    def echo(body):
        return 500, {"error": {"message": f"bad request (Authorization: Bearer {SECRET})"}}

    with FakeServer(answer=echo, key=SECRET) as server:
        spec = f"openai:url={server.url},model=fake,api_key_env=GENDIFF_TEST_KEY"
        code = main(["run", "--engines", spec, "--max-new-tokens", "2"])
    captured = capsys.readouterr()
    assert code == 3 and "server error 500: bad request (Authorization: Bearer ***)" in captured.err
    assert SECRET not in captured.out + captured.err


@pytest.mark.slow  # a subprocess importing everything: seconds, though no model runs
def test_no_secret_in_the_engine_log(tmp_path):
    """The app's captured output (engine-output.log), with every library logging at DEBUG."""
    script = (
        "import logging, sys; logging.basicConfig(level=logging.DEBUG)\n"
        "from gendiff.io.capture import captured_output\n"
        "from gendiff.cli.main import main\n"
        "with captured_output() as log:\n"
        "    code = main(sys.argv[1:])\n"
        "print(log); sys.exit(code)\n"
    )
    with FakeServer(key=SECRET) as server:
        spec = f"openai:url={server.url},model=fake,api_key_env=GENDIFF_TEST_KEY"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "GENDIFF_STATE_DIR": str(tmp_path), "GENDIFF_TEST_KEY": SECRET}
        result = subprocess.run(
            [sys.executable, "-c", script, "run", "--engines", spec, "--max-new-tokens", "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    log = Path(result.stdout.strip()).read_text(encoding="utf-8")
    assert "HTTP Request: POST" in log  # the libraries did log the requests
    assert SECRET not in log + result.stdout + result.stderr
