"""Shards without a model: the shard rule against hashlib written here, --shard refusals before any
model work, the shard record checked on load, and every refusal of gendiff merge (hand-made snapshots)."""

import hashlib
import json
from dataclasses import replace

import pytest

from gendiff.cli.main import main
from gendiff.io.snapshots import load_snapshot, save_snapshot
from gendiff.records.shard import Shard, prompts_digest, select_shard, shard_of
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from tests.helpers import ENVIRONMENT, step, trace

TEXTS = [f"prompt number {n}: {'x' * n}" for n in range(12)]


def expected_shard(text: str, count: int) -> int:
    """The documented rule, written out: sha256 of the UTF-8 bytes, big-endian, mod N, numbered from 1."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big") % count + 1


def test_the_shard_rule_is_sha256_mod_n_numbered_from_one():
    for count in (1, 2, 3, 7):
        assert [shard_of(t, count) for t in TEXTS] == [expected_shard(t, count) for t in TEXTS]
    assert {shard_of(t, 3) for t in TEXTS} == {1, 2, 3}  # 12 prompts reach every one of 3 shards


def test_a_prompts_shard_does_not_move_when_the_file_is_reordered_or_grows():
    reordered = list(reversed(TEXTS)) + ["a new prompt", "another"]
    for index in (1, 2, 3):
        before = {TEXTS[i] for i in select_shard(TEXTS, index, 3)[0]}
        after = {reordered[i] for i in select_shard(reordered, index, 3)[0]}
        assert before == after - {"a new prompt", "another"}
        assert all(expected_shard(t, 3) == index for t in after)


def hand_shard(index: int, count: int, texts=TEXTS, engine_name: str = "hf-single", **changes) -> Snapshot:
    """The snapshot a --shard index/count run of ``texts`` would write, made by hand (one engine)."""
    positions = [i for i, t in enumerate(texts) if expected_shard(t, count) == index]
    prompts = []
    for position in positions:
        made = replace(trace("hf-single", [step(5, (5, -0.5), (6, -1.0))]), prompt_index=position)
        prompts.append(
            PromptResult(texts[position], [1, 2, 3], {"hf-single": made}, id=position, batches={"hf-single": 0})
        )
    batch = Batch(
        0, ("hf-single",), tuple(positions), tuple(texts[i] for i in positions), tuple((1, 2, 3) for _ in positions)
    )
    snapshot = Snapshot(
        model={"name": "m", "path": f"/machine{index}/m", "fingerprint": "abc"},
        decoding={"max_new_tokens": 1, "top_k": 2},
        reference="hf-single",
        engines=[{"label": "hf-single", "name": engine_name, "settings": {"dtype": "float32"}, "error": None}],
        prompts=prompts,
        environment=dict(ENVIRONMENT),
        batches=[batch],
        shard=Shard((index,), count, len(texts), prompts_digest(texts)),
    )
    return replace(snapshot, **changes)


def merge(capsys, tmp_path, *snapshots, out="merged.gdz"):
    names = []
    for n, snapshot in enumerate(snapshots):
        names.append(str(save_snapshot(snapshot, tmp_path / f"part{n}.{'gdz' if n % 2 else 'json'}")))
    code = main(["merge", *names, "-o", str(tmp_path / out)])
    captured = capsys.readouterr()
    return code, captured.err, tmp_path / out


def test_merge_joins_the_shards_in_the_prompt_files_order(capsys, tmp_path):
    code, err, out = merge(capsys, tmp_path, hand_shard(3, 3), hand_shard(1, 3), hand_shard(2, 3))
    assert code == 0, err
    merged = load_snapshot(out)
    assert [p.text for p in merged.prompts] == TEXTS and [p.id for p in merged.prompts] == list(range(12))
    assert merged.shard.indices == (1, 2, 3) and merged.shard.total == 12
    # each shard's call kept, renumbered; every prompt points at the call that holds it
    assert sorted(b.id for b in merged.batches) == [0, 1, 2]
    for prompt in merged.prompts:
        batch = merged.batch(prompt.batches["hf-single"])
        assert prompt.id in batch.prompt_ids and expected_shard(batch.texts[0], 3) == expected_shard(prompt.text, 3)
    again = json.loads(json.dumps(merged.to_dict()))
    assert again["shard"]["indices"] == [1, 2, 3] and again["shard"]["rule"] == "sha256-utf8-mod"


@pytest.mark.parametrize(
    ("second", "field"),
    [
        (hand_shard(2, 2, model={"name": "m", "path": "/p", "fingerprint": "other"}), "model differs"),
        (hand_shard(2, 2, decoding={"max_new_tokens": 2, "top_k": 2}), "decoding differs"),
        (hand_shard(2, 2, engine_name="hf-left"), "engines differs"),
        (hand_shard(2, 2, environment={**ENVIRONMENT, "torch": "2.12.0"}), "environment differs"),
        (hand_shard(2, 3), "shard.count differs"),
        (hand_shard(1, 2), "shard.indices: shard 1/2 is also in"),
        (hand_shard(2, 2, texts=TEXTS + ["one more"]), "shard.prompts_total differs"),
        (hand_shard(2, 2, shard=None), "shard: not a shard's snapshot"),
        (hand_shard(2, 2, partial=True), "partial"),
    ],
)
def test_merge_refuses_what_is_not_a_shard_of_the_same_run(capsys, tmp_path, second, field):
    code, err, out = merge(capsys, tmp_path, hand_shard(1, 2), second)
    assert code == 2
    assert err.count("\n") == 1 and "part1.gdz" in err and field in err, err
    assert not out.exists()


def test_merge_refuses_a_prompt_id_given_twice(capsys, tmp_path):
    first, second = hand_shard(1, 2), hand_shard(2, 2)
    taken, moved = first.prompts[0].id, second.prompts[0]
    moved.id, moved.traces["hf-single"] = taken, replace(moved.traces["hf-single"], prompt_index=taken)
    ids = list(second.batches[0].prompt_ids)
    ids[0] = taken
    second.batches[0] = replace(second.batches[0], prompt_ids=tuple(ids))
    code, err, _ = merge(capsys, tmp_path, first, second)
    assert code == 2 and f"prompts: prompt {taken + 1} is also in" in err, err


def test_a_prompt_outside_its_recorded_shard_is_refused_on_load(tmp_path):
    snapshot = hand_shard(1, 2)
    wrong = replace(snapshot, shard=replace(snapshot.shard, indices=(2,)))
    path = save_snapshot(wrong, tmp_path / "wrong.gdz")
    with pytest.raises(Exception, match=r"falls in shard 1/2, not in 2/2"):
        load_snapshot(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shard", "0/2"], "numbered 1 to N"),
        (["--shard", "3/2"], "numbered 1 to N"),
        (["--shard", "1/0"], "numbered 1 to N"),
        (["--shard", "two"], "is not I/N"),
        (["--shard", "1/2", "--shards", "2"], "not allowed with"),
        (["--shards", "2"], "needs --ray"),
        (["--ray", "local"], "add --shards N"),
        (["--shard", "1/2", "--stats"], "run them unsharded"),
        (["--shard", "5/900"], "no prompt of"),
    ],
)
def test_bad_shard_options_exit_2_before_any_model_work(capsys, monkeypatch, argv, message):
    import gendiff.run.session as session

    monkeypatch.setattr(session.Session, "__post_init__", lambda self: pytest.fail("a model was loaded"))
    code = main(["run", "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err


def test_ray_missing_is_bad_input_before_any_model_work(capsys, monkeypatch):
    import sys

    import gendiff.run.session as session

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    monkeypatch.setattr(session.Session, "__post_init__", lambda self: pytest.fail("a model was loaded"))
    code = main(["run", "--quiet", "--shards", "2", "--ray", "local"])
    err = capsys.readouterr().err
    assert code == 2 and "Ray is not installed" in err and "gendiff[ray]" in err


@pytest.mark.parametrize(
    ("devices", "gpus"), [(("cpu", "cpu"), 0), (("cuda", "cuda:0"), 1), (("cuda:0", "cuda:1"), 2), (("cpu", "cuda"), 1)]
)
def test_a_shard_task_asks_one_gpu_per_cuda_device_its_engines_name(devices, gpus):
    from gendiff.run.options import RunOptions
    from gendiff.run.ray_shards import gpus_per_task

    engines = tuple(f"{name}:device={device}" for name, device in zip(("hf-single", "hf-left"), devices))
    assert gpus_per_task(RunOptions(engines=engines)) == gpus


def test_a_shard_opened_and_exported_by_the_app_keeps_its_ids_and_record_until_edited(capsys, tmp_path):
    from gendiff.state.exchange import export_snapshot, open_workspace

    first, second = hand_shard(1, 2), hand_shard(2, 2)
    positions = [p.id for p in first.prompts]
    exported = export_snapshot(open_workspace(load_snapshot(save_snapshot(first, tmp_path / "one.gdz"))))
    assert exported.shard == first.shard and [p.id for p in exported.prompts] == positions
    assert [b.prompt_ids for b in exported.batches] == [tuple(positions)]
    # what the app wrote merges with the other shard into the whole list, in the file's order
    code, err, out = merge(capsys, tmp_path, exported, second)
    assert code == 0, err
    assert [p.text for p in load_snapshot(out).prompts] == TEXTS

    edited = open_workspace(load_snapshot(tmp_path / "one.gdz"))
    edited.edit(edited.prompts[0].id, "a prompt of no shard of that list")
    after = export_snapshot(edited)
    assert after.shard is None and any("shard record dropped" in n for n in after.notes)
    assert [p.id for p in after.prompts] == list(range(len(positions)))


def test_a_column_foot_names_only_the_settings_that_differ_from_the_runs():
    from gendiff.state import view
    from gendiff.state.exchange import open_workspace

    snapshot = hand_shard(1, 2)
    snapshot.model.update(dtype="float32", attn="sdpa")
    engine = {"label": "hf-single", "name": "hf-single", "error": None}
    ws = open_workspace(replace(snapshot, engines=[{**engine, "settings": {"dtype": "float32", "attn": "sdpa"}}]))
    assert view.engine_settings(ws, "hf-single") == ""  # the header says float32 · sdpa once
    ws = open_workspace(replace(snapshot, engines=[{**engine, "settings": {"dtype": "bfloat16", "attn": "sdpa"}}]))
    assert view.engine_settings(ws, "hf-single") == "bf16"
    assert view.run_settings(ws) == "float32 · sdpa"


def test_a_shards_summary_names_prompts_by_their_position_in_the_file():
    from gendiff.cli.summary import summary_table
    from gendiff.records.divergence import compare

    snapshot = hand_shard(2, 3)
    snapshot.engines.append({"label": "hf-left", "name": "hf-left", "settings": {"dtype": "float32"}, "error": None})
    for prompt in snapshot.prompts:
        other = replace(prompt.traces["hf-single"], engine="hf-left")
        prompt.traces["hf-left"] = other
        prompt.batches["hf-left"] = 0
        prompt.divergences = [compare(prompt.traces["hf-single"], other)]
    positions = [i + 1 for i, t in enumerate(TEXTS) if expected_shard(t, 3) == 2]  # 1-based positions in the file
    assert positions != list(range(1, len(positions) + 1))  # else the test could not tell them apart
    numbered = [line.split()[0] for line in summary_table(snapshot).splitlines() if line[:4].strip().isdigit()]
    assert numbered == [str(n) for n in positions]
    assert f"shard 2/3: {len(positions)} of {len(TEXTS)} prompts, numbered by their position in the prompt file" in (
        summary_table(snapshot)
    )
