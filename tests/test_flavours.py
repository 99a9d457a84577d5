"""The served flavours' request and answer shapes, on answers written out here in each server's
format (the runs against real servers are in test_served.py and test_llamacpp.py)."""

import math

import pytest

from gendiff.engines.answers import Expected, check_answer
from gendiff.engines.flavour import SGLANG_RENORMALISED, ServedError
from gendiff.engines.flavours import FLAVOURS
from gendiff.engines.settings import GenerationSettings

LLAMACPP = FLAVOURS["llamacpp"]
SETTINGS = GenerationSettings(max_new_tokens=7, top_k=3, stop_at_eos=False)


def _llamacpp_answer(**generation_settings):
    """A /completion answer as llama-server writes it (field names from its server-task.cpp)."""
    return {
        "content": " x",
        "stop_type": "eos",
        "generation_settings": {"temperature": 0.0, "samplers": ["temperature"], **generation_settings},
        "completion_probabilities": [
            {
                "id": 12,
                "token": " x",
                "bytes": [32, 120],
                "logprob": -0.25,
                "top_logprobs": [
                    {"id": 12, "token": " x", "bytes": [32, 120], "logprob": -0.25},
                    {"id": 7, "token": " y", "bytes": [32, 121], "logprob": -1.5},
                    {"id": 9, "token": "z", "bytes": [122], "logprob": -3.4028234663852886e38},
                ],
            }
        ],
    }


def test_llamacpp_request_is_greedy_with_every_sampler_neutral():
    body = LLAMACPP.generate("demo", [0, 5, 6], SETTINGS).body
    assert body["prompt"] == [0, 5, 6] and body["n_predict"] == 7 and body["n_probs"] == 3
    # ignore_eos is a -inf bias on EOS in llama.cpp: never sent, the engine resubmits instead
    assert body["ignore_eos"] is False and LLAMACPP.eos_is_a_bias
    assert body["samplers"] == ["temperature"] and body["temperature"] == 0.0
    assert body["dry_multiplier"] == 0.0 and body["xtc_probability"] == 0.0 and body["mirostat"] == 0
    assert body["typical_p"] == 1.0 and body["logit_bias"] == [] and body["post_sampling_probs"] is False
    assert body["cache_prompt"] is False


def test_llamacpp_float_lowest_is_minus_infinity():
    steps, finish = check_answer(LLAMACPP.parse(_llamacpp_answer()), Expected(24, 3, None, sorted_top=True))
    (token_id, logprob, top) = steps[0]
    assert (token_id, logprob, finish) == (12, -0.25, "eos")
    assert top[:2] == [(12, -0.25), (7, -1.5)] and top[2][0] == 9 and top[2][1] == -math.inf


@pytest.mark.parametrize(
    ("reported", "message"),
    [
        ({"mirostat": 2}, "the server ran with mirostat=2 although gendiff sent 0"),
        ({"samplers": ["dry", "temperature"]}, "the server ran with samplers=\\['dry', 'temperature'\\]"),
        ({"ignore_eos": True}, "the server ran with ignore_eos=True although gendiff sent False"),
    ],
)
def test_llamacpp_settings_the_server_did_not_apply_are_refused(reported, message):
    with pytest.raises(ServedError, match=message):
        LLAMACPP.parse(_llamacpp_answer(**reported))


def test_llamacpp_shape_on_the_openai_flavour_names_the_flavour():
    # llama.cpp's /v1/completions: logprobs.content, and no echo of the prompt
    answer = {"choices": [{"text": " x", "logprobs": {"content": [{"id": 12, "logprob": -0.25, "top_logprobs": []}]}}]}
    for parse in (FLAVOURS["openai"].parse, FLAVOURS["openai"].parse_tokens):
        with pytest.raises(ServedError, match="llama.cpp's logprobs shape .*use flavour=llamacpp"):
            parse(answer)


def _sglang_answer(steps):
    return {
        "text": "",
        "meta_info": {
            "finish_reason": {"type": "length"},
            "output_token_logprobs": [[lp, tid, None] for tid, lp, _ in steps],
            "output_top_logprobs": [[[lp, tid, None] for tid, lp in top] for _, _, top in steps],
        },
    }


def test_sglang_renormalised_logprobs_are_refused_with_the_fix():
    renormalised = [(5, 0.0, [(5, 0.0), (8, -math.inf), (9, -math.inf)])]
    with pytest.raises(ServedError, match="SGLANG_RETURN_ORIGINAL_LOGPROB=1"):
        FLAVOURS["sglang"].parse(_sglang_answer(renormalised))
    assert "SGLANG_RETURN_ORIGINAL_LOGPROB=1" in SGLANG_RENORMALISED
    one_candidate = [(5, 0.0, [(5, 0.0)])] * 4
    with pytest.raises(ServedError, match="renormalised"):
        FLAVOURS["sglang"].parse(_sglang_answer(one_candidate))


def test_sglang_a_sure_step_is_not_taken_for_renormalised():
    # logprob 0.0 at float32 resolution, the others finite: the model's own distribution
    sure = [(5, 0.0, [(5, 0.0), (8, -19.5)]), (6, -0.7, [(6, -0.7), (2, -0.9)])]
    steps, finish = check_answer(FLAVOURS["sglang"].parse(_sglang_answer(sure)), Expected(24, 2, None, sorted_top=True))
    assert steps == sure and finish == "length"


def test_tested_flavours():
    assert {name: f.tested for name, f in FLAVOURS.items()} == {"openai": True, "sglang": False, "llamacpp": True}


def test_reported_keeps_only_what_the_server_said():
    props = {
        "model_path": "/m/demo-q8_0.gguf",
        "model_ftype": "Q8_0",
        "total_slots": 4,
        "build_info": "b0-unknown",
        "default_generation_settings": {"n_ctx": 512, "params": {"temperature": 0.8}},
        "chat_template": "{{ x }}",
    }
    models = {"data": [{"id": "demo", "meta": {"ftype": "Q8_0", "n_params": 5, "size": 9, "n_vocab": 2807}}]}
    assert LLAMACPP.reported({"/props": props, "/v1/models": models}) == {
        "model_path": "/m/demo-q8_0.gguf",
        "model_ftype": "Q8_0",
        "total_slots": 4,
        "build_info": "b0-unknown",
        "n_ctx": 512,
        "model.ftype": "Q8_0",
        "model.n_params": 5,
        "model.size": 9,
        "model.n_vocab": 2807,
    }
    assert LLAMACPP.reported({}) == {}  # a server that reports nothing: nothing recorded
    vllm = FLAVOURS["openai"].reported(
        {
            "/version": {"version": "0.32.0"},
            "/v1/models": {"data": [{"id": "demo", "root": "/m", "max_model_len": 512}]},
        }
    )
    assert vllm == {"version": "0.32.0", "model.root": "/m", "model.max_model_len": 512}
    info = {"version": "0.5.23", "dtype": "float32", "kv_cache_dtype": "auto", "tp_size": 1, "api_key": "k", "x": [1]}
    assert FLAVOURS["sglang"].reported({"/get_server_info": info}) == {
        "version": "0.5.23",
        "dtype": "float32",
        "kv_cache_dtype": "auto",
        "tp_size": 1,
    }


# ---- teacher-forced requests (--stats, gendiff score): echo + logprobs, logprob_start_len=0 ----


def test_vllm_echo_answer_is_read_with_the_first_prompt_token_unscored():
    # as vLLM 0.32's server answered POST /v1/completions {"prompt": [0, 400, 500], "echo": true,
    # "logprobs": 2, "max_tokens": 1, "return_tokens_as_token_ids": true} (trimmed to 2 candidates)
    flavour = FLAVOURS["openai"]
    request = flavour.forced("demo", [0, 400, 500], 2)
    assert request.path == "/v1/completions"
    assert {k: request.body[k] for k in ("prompt", "echo", "logprobs", "max_tokens")} == {
        "prompt": [0, 400, 500],
        "echo": True,
        "logprobs": 2,
        "max_tokens": 1,
    }
    answer = {
        "choices": [
            {
                "logprobs": {
                    "tokens": ["token_id:0", "token_id:400", "token_id:500", "token_id:600"],
                    "token_logprobs": [None, -16.37794303894043, -14.409524917602539, -3.03],
                    "top_logprobs": [
                        None,
                        {"token_id:400": -16.37794303894043, "token_id:0": -1.0127, "token_id:348": -1.2885},
                        {"token_id:500": -14.409524917602539, "token_id:380": -0.00099, "token_id:867": -8.38},
                        {"token_id:600": -3.03, "token_id:824": -3.04},
                    ],
                }
            }
        ]
    }
    ids, chosen, tops = flavour.parse_forced(answer)
    assert ids == [0, 400, 500, 600] and chosen[0] is None and tops[0] is None
    assert chosen[2] == -14.409524917602539
    assert tops[2] == [(500, -14.409524917602539), (380, -0.00099), (867, -8.38)]  # the fed token and the top 2


def test_sglang_input_logprobs_are_read_and_the_request_starts_at_the_first_token():
    flavour = FLAVOURS["sglang"]
    body = flavour.forced("demo", [0, 400, 500], 2).body
    assert body["input_ids"] == [0, 400, 500] and body["logprob_start_len"] == 0 and body["top_logprobs_num"] == 2
    answer = {  # SGLang's [logprob, token_id, text] triples; nothing for the first input token
        "meta_info": {
            "input_token_logprobs": [[None, 0, None], [-16.4, 400, None], [-14.4, 500, None]],
            "input_top_logprobs": [
                None,
                [[-1.01, 0, None], [-1.29, 348, None]],
                [[-0.001, 380, None], [-8.4, 867, None]],
            ],
        }
    }
    ids, chosen, tops = flavour.parse_forced(answer)
    assert ids == [0, 400, 500] and chosen == [None, -16.4, -14.4]
    assert tops == [None, [(0, -1.01), (348, -1.29)], [(380, -0.001), (867, -8.4)]]


def test_llamacpp_says_it_has_no_prompt_logprobs():
    assert "no logprobs of the prompt's tokens" in (FLAVOURS["llamacpp"].forced_refusal or "")
    assert FLAVOURS["openai"].forced_refusal is None and FLAVOURS["sglang"].forced_refusal is None
