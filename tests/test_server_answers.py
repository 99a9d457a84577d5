"""Issue 24: a server's answer is checked before it is believed, the same way for every flavour.

Ids must be integers inside the model's vocabulary, logprobs numbers that are finite (or -inf,
which llama.cpp writes as -3.4e38) and never above 0, one per token, the top-k k distinct
candidates (best first and holding the chosen token where the flavour promises it). A bad
answer fails its prompt with one line naming the server and the field; the run exits 3. The
unit tests drive ``check_answer`` directly; the others run ``gendiff run`` against the fake
server (no model runs: the openai engine needs only the demo tokenizer)."""

from __future__ import annotations

import json
import math

import pytest
from fake_server import FakeServer, greedy_answer, llamacpp_answer

from gendiff.cli.main import main
from gendiff.demo import demo_model_path
from gendiff.engines.answers import BadAnswer, Expected, Parsed, check_answer

VOCAB = json.loads((demo_model_path() / "config.json").read_text())["vocab_size"]
PROMPTS = ["Hello there", "The capital of France is"]


def _parsed(steps, columns=None):
    return Parsed(steps, "length", token="t[{i}]", logprob="lp[{i}]", top="top[{i}]", columns=columns or {})


def _expected(**kw):
    return Expected(**{"max_new_tokens": 4, "top_k": 2, "vocab_size": 100, **kw})


def test_a_good_answer_passes_unchanged():
    steps = [(5, -0.1, [(5, -0.1), (6, -2.0)]), (7, -0.5, [(7, -0.5), (1, -1.0)])]
    assert check_answer(_parsed(steps), _expected()) == (steps, "length")


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([(100, -0.1, [(100, -0.1), (6, -2.0)])], "t[0] is token id 100, outside the model's vocabulary (0 to 99)"),
        ([(-5, -0.1, [(-5, -0.1), (6, -2.0)])], "t[0] is token id -5, outside"),
        ([(True, -0.1, [(5, -0.1), (6, -2.0)])], "t[0] is True, not a token id"),
        ([(5.0, -0.1, [(5, -0.1), (6, -2.0)])], "t[0] is 5.0, not a token id"),
        ([(5, math.nan, [(5, -0.1), (6, -2.0)])], "lp[0] is NaN, not a logprob"),
        ([(5, 0.5, [(5, 0.5), (6, -2.0)])], "lp[0] is 0.5: a logprob is never above 0"),
        ([(5, math.inf, [(5, -0.1), (6, -2.0)])], "lp[0] is inf: a logprob is never above 0"),
        ([(5, "-0.1", [(5, -0.1), (6, -2.0)])], "lp[0] is '-0.1', not a logprob"),
        ([(5, -math.inf, [(5, -0.1), (6, -2.0)])], "the chosen token 5 has probability 0"),
        ([(5, -0.1, [(6, -2.0), (6, -2.5)])], "top[0] lists token 6 twice"),
        ([(5, -0.1, [(5, -0.1)])], "top[0] holds 1 candidates, 2 were asked for"),
        ([(5, -0.1, [(5, -0.1), (6, math.nan)])], "top[0][1] is NaN"),
        ([(5, -0.1, [(5, -0.3), (6, -2.0)])], "lp[0] is -0.1 but top[0] gives token 5 -0.3"),
        ([(5, -0.1, None)], "top[0] is None, not the top-2 candidates"),
        ([(5, -0.1, [(5, -0.1), (6, -2.0)])] * 5, "5 tokens, but 4 were asked for"),
    ],
)
def test_bad_steps_are_named(steps, message):
    with pytest.raises(BadAnswer) as error:
        check_answer(_parsed(steps), _expected())
    assert message in str(error.value)


def test_promises_of_the_flavour():
    unsorted = [(5, -0.1, [(6, -2.0), (5, -0.1)])]
    assert check_answer(_parsed(unsorted), _expected())  # the openai dict has no order
    with pytest.raises(BadAnswer, match=r"top\[0\] is not ordered best first"):
        check_answer(_parsed(unsorted), _expected(sorted_top=True))
    without = [(5, -0.1, [(6, -0.05), (7, -2.0)])]
    assert check_answer(_parsed(without), _expected())
    with pytest.raises(BadAnswer, match=r"top\[0\] does not hold the chosen token 5"):
        check_answer(_parsed(without), _expected(chosen_in_top=True))


def test_arrays_of_other_lengths_are_named():
    with pytest.raises(BadAnswer, match=r"arrays differ in length \(tokens 3, token_logprobs 2\)"):
        check_answer(_parsed([], {"tokens": 3, "token_logprobs": 2}), _expected())


def test_zero_probability_written_as_minus_flt_max_is_minus_inf():
    steps = [(5, -0.1, [(5, -0.1), (6, -3.4028234663852886e38)])]
    ((_, _, top),), _ = check_answer(_parsed(steps), _expected())
    assert top[1] == (6, -math.inf)


# ---- through the CLI, against the fake server ------------------------------------------------


def _run(tmp_path, capsys, answer=None, llamacpp=False, extra=""):
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    out = tmp_path / "s.json"
    with FakeServer(answer=answer, llamacpp=llamacpp) as server:
        spec = f"openai:url={server.url},model=fake{extra}"
        argv = ["run", "--prompts", str(tmp_path / "p.jsonl"), "--engines", spec, "--max-new-tokens", "3"]
        code = main([*argv, "--top-k", "2", "--json", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err, server, out


def _on_second_prompt(edit, shape=greedy_answer):
    """An answer function that breaks the answer of PROMPTS[1] with ``edit`` (the first stays good)."""
    from fake_server import _tokenizer

    bad = _tokenizer()(PROMPTS[1])["input_ids"]

    def answer(body):
        data = shape(body)
        if body["prompt"] == bad:
            result = edit(data)
            return result if isinstance(result, tuple) else data  # a tuple: (status, body) instead
        return data

    return answer


def _logprobs(data):
    return data["choices"][0]["logprobs"]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (
            lambda d: _logprobs(d)["tokens"].__setitem__(1, "token_id:999999"),
            "choices[0].logprobs.tokens[1] is token id 999999, outside the model's vocabulary (0 to",
        ),
        (
            lambda d: _logprobs(d)["tokens"].__setitem__(0, "token_id:-5"),
            "choices[0].logprobs.tokens[0] is token id -5",
        ),
        (
            lambda d: _logprobs(d)["token_logprobs"].__setitem__(2, math.nan),
            "choices[0].logprobs.token_logprobs[2] is NaN",
        ),
        (
            lambda d: _logprobs(d)["token_logprobs"].pop(),
            "arrays differ in length (tokens 3, token_logprobs 2, top_logprobs 3)",
        ),
        (
            lambda d: _logprobs(d)["top_logprobs"].__setitem__(0, {"token_id:30": -0.05, "token_id:31": -2.0}),
            "choices[0].logprobs.top_logprobs[0] does not hold the chosen token 20",
        ),
        (
            lambda d: _logprobs(d)["token_logprobs"].__setitem__(0, 0.25),
            "choices[0].logprobs.token_logprobs[0] is 0.25: a logprob is never above 0",
        ),
        (
            lambda d: _logprobs(d)["top_logprobs"][1].update({"token_id:50": math.inf}),
            "choices[0].logprobs.top_logprobs[1][2] is inf",
        ),
        (
            lambda d: _logprobs(d)["token_logprobs"].__setitem__(1, -0.7),
            "token_logprobs[1] is -0.7 but choices[0].logprobs.top_logprobs[1] gives token 21 -0.1",
        ),
        (
            lambda d: [
                _logprobs(d)[k].append(_logprobs(d)[k][-1]) for k in ("tokens", "token_logprobs", "top_logprobs")
            ],
            "4 tokens, but 3 were asked for",
        ),
        (lambda d: (500, {"error": {"message": "boom \x1b]0;title\x07"}}), "server error 500: boom ␛]0;title␇"),
    ],
)
def test_a_bad_answer_fails_its_prompt_with_one_line(tmp_path, capsys, edit, field):
    code, out, err, server, snapshot = _run(tmp_path, capsys, _on_second_prompt(edit))
    assert code == 3, err
    error = [line for line in err.splitlines() if line.startswith("gendiff: error:")]
    assert len(error) == 1 and "failed on 1 of 2 prompts (prompt 2: " in error[0] and field in error[0], err
    if "server error" not in field:
        assert f"the server at {server.url} sent an unusable answer" in error[0]
    assert "\x1b" not in err + out and "  FAILED: " in out  # the summary says it too
    data = json.loads(snapshot.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the snapshot"))
    first, second = (p["traces"][next(iter(p["traces"]))] for p in data["prompts"])
    assert first["token_ids"] == [20, 21, 22] and second["finish_reason"] == "error"  # nothing lost


def test_every_prompt_bad_is_one_engine_error(tmp_path, capsys):
    def answer(body):
        data = greedy_answer(body)
        _logprobs(data)["tokens"][0] = "token_id:999999"
        return data

    code, out, err, server, _ = _run(tmp_path, capsys, answer)
    assert (
        code == 3 and "every prompt failed; the first: the server at" in err and "tokens[0] is token id 999999" in err
    )


def test_a_bad_tokenization_answer_is_named(tmp_path, capsys):
    with FakeServer() as server:
        original = server._handle

        def handle(handler, method, body):
            if method == "POST" and isinstance(body, dict) and body.get("echo"):
                server.requests.append((method, handler.path, dict(handler.headers), body))
                tokens = ["token_id:1", "token_id:-3"]
                return server._send(handler, 200, {"choices": [{"logprobs": {"tokens": tokens}}]})
            return original(handler, method, body)

        server._handle = handle
        (tmp_path / "p.txt").write_text("Hello there\n")
        spec = f"openai:url={server.url},model=fake"
        code = main(["run", "--prompts", str(tmp_path / "p.txt"), "--engines", spec, "--max-new-tokens", "2"])
    err = capsys.readouterr().err
    assert code == 3 and "checking its tokenization: the server at" in err
    assert "choices[0].logprobs.tokens[1] is token id -3" in err


def test_llamacpp_zero_probability_is_recorded_as_minus_inf(tmp_path, capsys):
    def edit(data):
        data["completion_probabilities"][1]["top_logprobs"][1]["logprob"] = -3.4028234663852886e38

    code, out, err, _, snapshot = _run(tmp_path, capsys, _on_second_prompt(edit, llamacpp_answer), llamacpp=True)
    assert code == 0, err
    data = json.loads(snapshot.read_text())
    second = next(iter(data["prompts"][1]["traces"].values()))
    assert second["steps"][1]["top"][1]["logprob"] == -math.inf


def test_llamacpp_unsorted_top_is_refused(tmp_path, capsys):
    def edit(data):
        data["completion_probabilities"][0]["top_logprobs"].reverse()

    code, out, err, _, _ = _run(tmp_path, capsys, _on_second_prompt(edit, llamacpp_answer), llamacpp=True)
    assert code == 3 and "completion_probabilities[0].top_logprobs is not ordered best first" in err


def test_a_good_run_against_the_fake_server(tmp_path, capsys):
    code, out, err, server, snapshot = _run(tmp_path, capsys)
    assert code == 0, err
    steps = next(iter(json.loads(snapshot.read_text())["prompts"][0]["traces"].values()))["steps"]
    # the fake's stream, written out: ids 20, 21, 22 at -0.1 each, the runner-up (id + 1) at -3.5
    assert [(s["token_id"], s["logprob"], [(t["token_id"], t["logprob"]) for t in s["top"]]) for s in steps] == [
        (i, -0.1, [(i, -0.1), (i + 1, -3.5)]) for i in (20, 21, 22)
    ]
    assert VOCAB > 22


def test_a_429_is_retried_after_its_retry_after(tmp_path, capsys):
    import time

    asked: list[float] = []

    def busy_once(body):
        asked.append(time.monotonic())
        if len(asked) <= 2:  # both prompts' first tries
            return 429, {"error": {"message": "slow down"}}, {"Retry-After": "0.4"}
        return greedy_answer(body)

    code, out, err, server, snapshot = _run(tmp_path, capsys, busy_once)
    assert code == 0, err
    assert len(asked) == 4 and asked[2] - asked[0] >= 0.35  # waited as asked, then answered
    assert all(
        p["traces"][next(iter(p["traces"]))]["token_ids"] == [20, 21, 22]
        for p in json.loads(snapshot.read_text())["prompts"]
    )


def test_a_429_past_the_retries_fails_its_prompt(tmp_path, capsys):
    code, out, err, server, _ = _run(
        tmp_path, capsys, lambda body: (429, {"error": {"message": "quota"}}, {"Retry-After": "0"}), extra=",retries=1"
    )
    assert code == 3 and "server error 429: quota" in err
