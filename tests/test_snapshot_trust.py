"""Issue 24: a snapshot's divergence records are not believed, they are checked against its traces.

Every file opened (the app's document, ``gendiff compare``, ``load_snapshot``) has each divergence
recomputed from the two traces; a record that disagrees (another step, "identical" over
differing tokens, a step out of range) is refused with one line naming the file, the prompt and
the engine, and token ids must lie inside the recorded vocabulary. Hand-made data, no model."""

from __future__ import annotations

import json
import sys

import pytest
from helpers import ENVIRONMENT, step, trace

from gendiff.cli.main import main
from gendiff.errors import InputError
from gendiff.io.documents import open_document
from gendiff.io.snapshots import load_snapshot, save_snapshot
from gendiff.records.divergence import compare
from gendiff.records.snapshot import Batch, PromptResult, Snapshot

REF_IDS = [5, 6, 7, 8]
OTHER_IDS = [5, 6, 9, 8]  # differs from step 2


def _steps(ids: list[int]) -> list:
    return [step(i, (i, -0.2), (i + 100, -0.9)) for i in ids]


def _snapshot(other_ids: list[int] = OTHER_IDS, vocab: int | None = 200) -> Snapshot:
    ref, other = trace("hf-single", _steps(REF_IDS)), trace("hf-left", _steps(other_ids))
    model = {"name": "m", "path": "/m", "dtype": "float32", "attn": "sdpa"}
    if vocab is not None:
        model["vocab_size"] = vocab
    return Snapshot(
        model=model,
        decoding={"max_new_tokens": 4, "top_k": 2},
        reference="hf-single",
        engines=[
            {"label": "hf-single", "name": "hf-single", "settings": {}},
            {"label": "hf-left", "name": "hf-left", "settings": {}},
        ],
        prompts=[
            PromptResult(
                "hello there",
                [1, 2, 3],
                {"hf-single": ref, "hf-left": other},
                [compare(ref, other)],
                id=0,
                batches={"hf-single": 0, "hf-left": 0},
            )
        ],
        environment=ENVIRONMENT,
        batches=[Batch(0, ("hf-single", "hf-left"), (0,), ("hello there",), ((1, 2, 3),))],
    )


def _written(tmp_path, edit=None, name="s.json", **kwargs):
    path = save_snapshot(_snapshot(**kwargs), tmp_path / name, check=True)
    if edit is not None:
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return path


def _divergence(data):
    return data["prompts"][0]["divergences"][0]


def _refused(path) -> str:
    """The one message every way of opening ``path`` gives (the loader, the app's document)."""
    with pytest.raises(InputError) as loaded:
        load_snapshot(path)
    with pytest.raises(InputError) as opened:
        open_document(str(path))
    assert str(loaded.value) == str(opened.value)
    message = str(loaded.value)
    assert str(path) in message and "\n" not in message
    return message


def test_an_honest_file_loads_and_keeps_its_record(tmp_path):
    loaded = load_snapshot(_written(tmp_path))
    d = loaded.prompts[0].divergences[0]
    assert (d.reason, d.step, d.agreeing_steps) == ("token", 2, 2)
    assert (d.reference_step.token_id, d.other_step.token_id) == (7, 9)


def _say_identical(data):
    d = _divergence(data)
    d.update(step=None, reason="identical", detail="identical", reference_token=None, other_token=None)
    d.update(agreeing_steps=4, classification=None, cross_top_k=None, flip_gap=None, reference_gap=None)
    d["margins"] = {"reference": None, "other": None}


def test_identical_over_differing_tokens_is_refused(tmp_path):
    message = _refused(_written(tmp_path, _say_identical))
    assert "prompt 1 ('hello there')" in message and "hf-left against hf-single" in message
    assert "the record says identical (4 tokens), its traces say diverged at step 2 (token, token 7 vs 9)" in message


@pytest.mark.parametrize("stored", [-1, 10**18, 1, 3])
def test_a_stored_step_the_traces_do_not_give_is_refused(tmp_path, stored):
    def edit(data):
        _divergence(data)["step"] = stored

    message = _refused(_written(tmp_path, edit))
    assert f"the record says diverged at step {stored}" in message and "its traces say diverged at step 2" in message


@pytest.mark.parametrize("stored", [-1, 10**18, 0])
def test_a_divergence_claimed_for_identical_streams_is_refused(tmp_path, stored):
    def edit(data):
        d = _divergence(data)
        d.update(step=stored, reason="token", detail="'x' vs 'y'", agreeing_steps=max(stored, 0))
        d["reference_token"] = d["other_token"] = data["prompts"][0]["traces"]["hf-left"]["steps"][0]

    message = _refused(_written(tmp_path, edit, other_ids=REF_IDS))
    assert f"the record says diverged at step {stored}" in message and "its traces say identical (4 tokens)" in message


def test_another_token_at_the_right_step_is_refused(tmp_path):
    def edit(data):
        _divergence(data)["other_token"]["token_id"] = 11

    assert "token 7 vs 11" in _refused(_written(tmp_path, edit))


def test_two_records_of_one_pair_are_refused(tmp_path):
    def edit(data):
        data["prompts"][0]["divergences"].append(dict(_divergence(data)))

    assert "two divergence records of hf-left against hf-single" in _refused(_written(tmp_path, edit))


def test_numbers_are_recomputed_from_the_traces(tmp_path):
    """An edited margin or classification is not shown: the loader's numbers are the traces'."""

    def edit(data):
        d = _divergence(data)
        d["margins"] = {"reference": 9.0, "other": 9.0}
        d["classification"] = "exact-tie"
        d["fragile_steps"] = []
        d["max_drift_before"] = 5.0

    d = load_snapshot(_written(tmp_path, edit)).prompts[0].divergences[0]
    # written out: each step is (chosen, -0.2) over (chosen + 100, -0.9)
    assert d.reference_margin == pytest.approx(0.7) and d.other_margin == pytest.approx(0.7)
    assert d.max_drift_before == 0.0 and d.classification == "wide-flip"


def test_a_missing_record_is_recomputed(tmp_path):
    def edit(data):
        data["prompts"][0]["divergences"] = []

    divergences = load_snapshot(_written(tmp_path, edit)).prompts[0].divergences
    assert [(d.engine, d.reason, d.step) for d in divergences] == [("hf-left", "token", 2)]


@pytest.mark.parametrize(
    ("edit", "shown"),
    [
        (lambda data: data["prompts"][0]["traces"]["hf-left"]["steps"][1]["top"][1].update(token_id=200), "200"),
        (lambda data: data["prompts"][0]["traces"]["hf-left"]["steps"][3].update(token_id=999999), "999999"),
    ],
)
def test_ids_beyond_the_recorded_vocabulary_are_refused(tmp_path, edit, shown):
    def whole(data):
        edit(data)
        tr = data["prompts"][0]["traces"]["hf-left"]
        tr["token_ids"] = [s["token_id"] for s in tr["steps"]]

    message = _refused(_written(tmp_path, whole))
    assert (
        "hf-left, step" in message and f"token id {shown} is outside the model's vocabulary (ids 0 to 199)" in message
    )


def test_negative_and_huge_ids_are_refused_without_a_vocabulary(tmp_path):
    def negative(data):
        data["prompts"][0]["traces"]["hf-left"]["steps"][2]["top"][1]["token_id"] = -5

    assert "hf-left, step 2: token id -5 is not a token id" in _refused(_written(tmp_path, negative, vocab=None))

    def huge(data):
        data["prompts"][0]["traces"]["hf-single"]["steps"][0]["top"][0]["token_id"] = 2**40

    assert f"token id {2**40} is not a token id" in _refused(_written(tmp_path, huge, name="h.json", vocab=None))


def test_an_old_file_without_a_vocabulary_still_loads(tmp_path):
    loaded = load_snapshot(_written(tmp_path, vocab=None))
    assert "vocab_size" not in loaded.model and loaded.prompts[0].divergences[0].step == 2


def test_compare_refuses_both_kinds_of_bad_file(tmp_path, capsys):
    good = _written(tmp_path, name="a.json")
    bad = _written(tmp_path, _say_identical, name="b.json")
    assert main(["compare", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "b.json: prompt 1" in err and "the record says identical" in err


def test_compare_refuses_another_prompt_text_over_the_same_ids(tmp_path, capsys):
    good = _written(tmp_path, name="a.json")

    def edit(data):
        data["prompts"][0]["text"] = "goodbye"
        data["batches"][0]["texts"] = ["goodbye"]

    other = _written(tmp_path, edit, name="b.json")
    assert main(["compare", str(good), str(other)]) == 2
    err = capsys.readouterr().err
    assert "prompt 1 differs between a.json and b.json (text)" in err


def test_a_run_records_the_vocabulary(tmp_path, capsys):
    """Through the fake server (no model runs): the model's vocab_size is in the snapshot."""
    from fake_server import FakeServer

    from gendiff.demo import demo_model_path

    out = tmp_path / "s.json"
    with FakeServer() as server:
        code = main(
            ["run", "--engines", f"openai:url={server.url},model=fake", "--max-new-tokens", "2", "--json", str(out)]
        )
    assert code == 0, capsys.readouterr().err
    expected = json.loads((demo_model_path() / "config.json").read_text())["vocab_size"]
    assert json.loads(out.read_text())["model"]["vocab_size"] == expected
    assert load_snapshot(out).model["vocab_size"] == expected


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
