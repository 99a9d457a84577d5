"""The .gdz snapshot format (gendiff.snapshot/3): every field round-trips against the JSON form,
the arrays on disk are what NumPy reads back, old files still open, damaged files give one
error line naming the file, writes are atomic like the JSON ones."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zstandard
from helpers import ENVIRONMENT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gendiff.cli.main import main
from gendiff.errors import InputError
from gendiff.io.compare import load_pair
from gendiff.io.documents import open_document
from gendiff.io.snapshots import is_snapshot_file, load_snapshot, save_snapshot, validate
from gendiff.records.columns import KEPT_TRACES, StepColumns
from gendiff.records.divergence import compare
from gendiff.records.snapshot import Batch, PromptResult, Snapshot
from gendiff.records.trace import TokenStep, TopToken, Trace

DATA = Path(__file__).parent / "data"


def dumps(data: object) -> str:
    # NaN != NaN: compare the JSON text (NaN, -0.0 and inf written the same on both sides)
    return json.dumps(data, sort_keys=True)


def make_snapshot(traces_by_prompt: list[dict[str, Trace]], labels: list[str]) -> Snapshot:
    """A valid snapshot of the given traces (each prompt's traces share its token ids), divergences computed."""
    prompts = []
    for p, traces in enumerate(traces_by_prompt):
        token_ids = next(iter(traces.values())).prompt_token_ids if traces else (1,)
        reference = traces.get(labels[0])
        divergences = [
            compare(reference, t) for label, t in traces.items() if reference is not None and label != labels[0]
        ]
        prompts.append(
            PromptResult(
                f"prompt {p}", list(token_ids), traces, divergences, id=p, batches={label: 0 for label in traces}
            )
        )
    return Snapshot(
        model={"name": "m", "path": "/m", "dtype": "float32", "attn": "sdpa"},
        decoding={"max_new_tokens": 8, "top_k": 4},
        reference=labels[0],
        engines=[{"label": label, "name": label, "settings": {}} for label in labels],
        prompts=prompts,
        environment=ENVIRONMENT,
        created="2026-12-01T00:00:00+00:00",
        batches=[
            Batch(
                0,
                tuple(labels),
                tuple(p.id for p in prompts),
                tuple(p.text for p in prompts),
                tuple(tuple(p.token_ids) for p in prompts),
            )
        ],
    )


def varied_snapshot() -> Snapshot:
    """Every kind of step a run records: float32 scores with logits (HF), logprobs only (a served
    engine), penalised steps with raw scores (HF) and with empty raw_top and no raw logprob
    (vLLM), fewer candidates than top-k, a token decoded two ways, a failed engine."""
    f32 = lambda x: float(np.float32(x))  # noqa: E731

    def top(*pairs: tuple[int, float], logits: bool = True) -> tuple[TopToken, ...]:
        return tuple(TopToken(i, f"t{i}", f32(lp), f32(lp + 9.5) if logits else None) for i, lp in pairs)

    hf = (
        TokenStep(5, "t5", f32(-0.1), top((5, -0.1), (6, -2.3), (7, -3.1), (8, -4.0))),
        TokenStep(6, "t6", f32(-0.7), top((6, -0.7), (5, -0.71))),  # 2 of 4 candidates
        TokenStep(7, "t7", f32(-0.2), top((7, -0.2), (9, -1.9), (5, -2.0), (6, -2.2))),
    )
    served = tuple(  # logprobs as a server's JSON gives them: not float32 values
        TokenStep(
            s.token_id, s.text, -0.123456789, (TopToken(s.token_id, s.text, -0.123456789), TopToken(9, "t9", -1.5))
        )
        for s in hf
    )
    penalised = tuple(
        TokenStep(s.token_id, s.text, s.logprob, s.top, f32(s.logprob - 0.5), top((s.token_id, -0.6), (3, -0.9)))
        for s in hf
    )
    vllm = tuple(TokenStep(s.token_id, s.text, s.logprob, s.top, None, ()) for s in hf)
    odd_text = (
        TokenStep(5, "five", f32(-0.1), (TopToken(5, "five", f32(-0.1), 1.0), TopToken(6, "t6", f32(-2.0), 0.5))),
    )
    prompt = (1, 2, 3)
    first = {
        "hf-single": Trace("hf-single", 0, prompt, hf, "length", {"dtype": "float32"}, None, 0.25),
        "served": Trace("served", 0, prompt, served, "length"),
        "hf-left": Trace("hf-left", 0, prompt, penalised, "length", {"repetition_penalty": 1.3}),
        "vllm": Trace("vllm", 0, prompt, vllm, "eos"),
    }
    second = {
        "hf-single": Trace("hf-single", 1, (4,), odd_text, "eos"),
        "served": Trace.failed("served", 1, [4], "engine served: connection refused", {}),
        "hf-left": Trace("hf-left", 1, (4,), (), "cancelled"),
        "vllm": Trace("vllm", 1, (4,), hf[:1], "length"),
    }
    return make_snapshot([first, second], ["hf-single", "served", "hf-left", "vllm"])


# ── round trip ───────────────────────────────────────────────────────────
def test_the_varied_snapshot_round_trips_through_gdz_as_through_json(tmp_path):
    snapshot = varied_snapshot()
    save_snapshot(snapshot, tmp_path / "s.gdz")
    save_snapshot(snapshot, tmp_path / "s.json")
    from_gdz, from_json = load_snapshot(tmp_path / "s.gdz"), load_snapshot(tmp_path / "s.json")
    assert dumps(from_gdz.to_dict()) == dumps(from_json.to_dict()) == dumps(snapshot.to_dict())
    for prompt, original in zip(from_gdz.prompts, snapshot.prompts):
        for label, trace in prompt.traces.items():
            assert isinstance(trace.steps, StepColumns)
            assert trace == original.traces[label]  # a dataclass equal to the one built from TokenSteps
            assert trace.token_ids == original.traces[label].token_ids and trace.text == original.traces[label].text
    assert (
        from_gdz.prompts[0].traces["vllm"].steps[0].raw_top == ()
        and from_gdz.prompts[0].traces["vllm"].steps[0].raw_logprob is None
    )
    assert from_gdz.prompts[0].traces["served"].steps[2].top[1].logit is None
    assert from_gdz.prompts[1].traces["hf-single"].steps[0].text == "five"  # not the table's "t5"


token_ids = st.one_of(
    st.integers(0, 40), st.integers(0, 2**31 - 1)
)  # ids of any vocabulary (2**31 and past: refused as no token id)
# finite: classify() can't take NaN or inf margins (see test_nan_and_infinite_scores_round_trip)
scores = st.one_of(
    st.floats(width=32, allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False)
)
texts = st.one_of(st.sampled_from(["a", " the", "\n", "é", ""]), st.text(max_size=3))
candidates = st.builds(TopToken, token_ids, texts, scores, st.one_of(st.none(), scores))
raw_tops = st.one_of(st.none(), st.just(()), st.lists(candidates, max_size=3).map(tuple))
steps = st.builds(
    TokenStep,
    token_ids,
    texts,
    scores,
    st.lists(candidates, max_size=4).map(tuple),
    st.one_of(st.none(), scores),
    raw_tops,
)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    labels = ["ref", "other", "third"][: draw(st.integers(1, 3))]
    prompts = []
    for p in range(draw(st.integers(1, 3))):
        prompt = tuple(draw(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=3)))
        traces = {}
        for label in labels:
            kind = draw(st.sampled_from(["steps", "steps", "failed", "absent"]))
            if kind == "steps":
                steps_drawn = tuple(draw(st.lists(steps, max_size=5)))
                traces[label] = Trace(label, p, prompt, steps_drawn, draw(st.sampled_from(["eos", "length"])))
            elif kind == "failed":
                traces[label] = Trace.failed(label, p, list(prompt), "engine broke", {})
        prompts.append(traces)
    return make_snapshot(prompts, labels)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_random_snapshots_round_trip_every_field_against_the_json_form(snapshot):
    with tempfile.TemporaryDirectory() as folder:
        gdz, plain = Path(folder) / "s.gdz", Path(folder) / "s.json"
        save_snapshot(snapshot, gdz)
        save_snapshot(snapshot, plain)
        from_gdz, from_json = load_snapshot(gdz), load_snapshot(plain)
        save_snapshot(from_gdz, Path(folder) / "again.gdz")  # from the columns (copied, or rebuilt)
        again = load_snapshot(Path(folder) / "again.gdz")
    assert dumps(from_gdz.to_dict()) == dumps(from_json.to_dict()) == dumps(again.to_dict())
    for prompt, original in zip(from_gdz.prompts, snapshot.prompts):
        for label, trace in prompt.traces.items():
            # one step at a time (nothing built yet), then the whole trace (built and kept)
            one_by_one = [trace.steps[i].to_dict() for i in range(len(trace.steps))]
            assert dumps(one_by_one) == dumps([s.to_dict() for s in trace.steps])
            assert dumps([s.to_dict() for s in trace.steps[-2:]]) == dumps(
                [s.to_dict() for s in original.traces[label].steps[-2:]]
            )
            assert trace.token_ids == original.traces[label].token_ids and trace.text == original.traces[label].text


# ── the arrays on disk, read by NumPy ────────────────────────────────────
def _arrays(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    with zipfile.ZipFile(path) as archive:
        outline = json.loads(archive.read("snapshot.json"))
        arrays = {
            name.removesuffix(".npy.zst"): np.load(
                io.BytesIO(zstandard.ZstdDecompressor().decompress(archive.read(name)))
            )
            for name in archive.namelist()
            if name.endswith(".npy.zst")
        }
    return outline, arrays


def test_columns_on_disk_are_npy_arrays_holding_each_steps_values(tmp_path):
    snapshot = varied_snapshot()
    save_snapshot(snapshot, tmp_path / "s.gdz")
    outline, arrays = _arrays(tmp_path / "s.gdz")
    assert outline["schema"] == "gendiff.snapshot/3"
    assert arrays["token_id"].dtype == np.int32 and arrays["top_token_id"].shape[1] == 4
    assert arrays["top_logit"].dtype == np.float32  # every logit is a float32 value
    assert arrays["top_logprob"].dtype == np.float64  # the served engine's -0.123456789 is not
    table = dict(zip(outline["tokens"]["ids"], outline["tokens"]["texts"]))
    for p, prompt in enumerate(snapshot.prompts):
        for label, trace in prompt.traces.items():
            start, stop = outline["prompts"][p]["traces"][label]["rows"]
            assert stop - start == len(trace.steps)
            for row, step in zip(range(start, stop), trace.steps):
                assert arrays["token_id"][row] == step.token_id and arrays["logprob"][row] == step.logprob
                assert arrays["top_count"][row] == len(step.top)
                for j, candidate in enumerate(step.top):
                    assert arrays["top_token_id"][row, j] == candidate.token_id
                    assert arrays["top_logprob"][row, j] == candidate.logprob
                    assert bool(arrays["top_flags"][row, j] & 1) == (candidate.logit is not None)
                    if candidate.logit is not None:
                        assert arrays["top_logit"][row, j] == np.float32(candidate.logit)
                if step.raw_top is not None:
                    assert arrays["flags"][row] & 1 and arrays["raw_top_count"][row] == len(step.raw_top)
                    for j, candidate in enumerate(step.raw_top):
                        assert arrays["raw_top_logprob"][row, j] == candidate.logprob
                if table[step.token_id] != step.text:
                    assert ["step", row, step.text] in outline["text_overrides"]


def test_a_gdz_is_several_times_smaller_than_its_json(tmp_path):
    steps = varied_snapshot().prompts[0].traces["hf-single"].steps * 20
    prompts = [{label: Trace(label, p, (1, 2), steps, "length") for label in ("a", "b", "c")} for p in range(40)]
    big = make_snapshot(prompts, ["a", "b", "c"])
    save_snapshot(big, tmp_path / "s.gdz")
    save_snapshot(big, tmp_path / "s.json")
    assert os.path.getsize(tmp_path / "s.gdz") * 10 < os.path.getsize(tmp_path / "s.json")


# ── lazy steps ───────────────────────────────────────────────────────────
def test_loading_builds_no_token_steps_and_compare_reads_the_arrays(tmp_path):
    save_snapshot(varied_snapshot(), tmp_path / "a.gdz")
    save_snapshot(varied_snapshot(), tmp_path / "b.gdz")
    save_snapshot(varied_snapshot(), tmp_path / "a.json")
    save_snapshot(varied_snapshot(), tmp_path / "b.json")
    loaded = load_snapshot(tmp_path / "a.gdz")
    columns = loaded.prompts[0].traces["hf-single"].steps.columns
    assert columns._built == {}
    compared = load_pair(str(tmp_path / "a.gdz"), str(tmp_path / "b.gdz"))
    assert all(t.steps.columns._built == {} for p in compared.prompts for t in p.traces.values())
    reference = load_pair(str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert dumps([d.to_dict() for p in compared.prompts for d in p.divergences]) == dumps(
        [d.to_dict() for p in reference.prompts for d in p.divergences]
    )


def test_a_loaded_gdz_saves_by_copying_its_columns(tmp_path, monkeypatch):
    steps = varied_snapshot().prompts[0].traces["hf-single"].steps
    prompts = [{label: Trace(label, p, (1, 2), steps, "length") for label in ("a", "b")} for p in range(3)]
    save_snapshot(make_snapshot(prompts, ["a", "b"]), tmp_path / "a.gdz")
    save_snapshot(make_snapshot(prompts, ["a", "b"]), tmp_path / "b.gdz")
    compared = load_pair(str(tmp_path / "a.gdz"), str(tmp_path / "b.gdz"))
    monkeypatch.delenv("GENDIFF_VALIDATE_SNAPSHOTS")  # validating the JSON view would build every step
    save_snapshot(compared, tmp_path / "c.gdz")
    assert all(t.steps.columns._built == {} for p in compared.prompts for t in p.traces.values())  # nothing built
    assert dumps(load_snapshot(tmp_path / "c.gdz").to_dict()) == dumps(compared.to_dict())
    assert main(["export", str(tmp_path / "a.gdz"), str(tmp_path / "a2.gdz")]) == 0
    assert (tmp_path / "a2.gdz").read_bytes() == (tmp_path / "a.gdz").read_bytes()


def test_step_columns_behave_as_the_tuple_of_their_steps(tmp_path):
    snapshot = varied_snapshot()
    save_snapshot(snapshot, tmp_path / "s.gdz")
    steps = load_snapshot(tmp_path / "s.gdz").prompts[0].traces["hf-left"].steps
    original = snapshot.prompts[0].traces["hf-left"].steps
    assert steps == original and original == steps and hash(steps) == hash(original)
    assert steps[-1] == original[-1] and steps[1:] == original[1:] and isinstance(steps[1:], tuple)
    assert list(steps) == list(original) and len(steps) == 3 and steps.margins == [s.margin for s in original]
    with pytest.raises(IndexError):
        steps[3]
    assert pickle.loads(pickle.dumps(steps)) == original and type(pickle.loads(pickle.dumps(steps))) is tuple
    assert steps != original[:2] and steps != "abc"


def test_only_the_last_traces_looked_at_stay_built(tmp_path):
    labels = ["a"]
    prompts = [
        {"a": Trace("a", p, (1,), (TokenStep(2, "x", -0.5, (TopToken(2, "x", -0.5, 1.0),)),), "length")}
        for p in range(KEPT_TRACES + 10)
    ]
    save_snapshot(make_snapshot(prompts, labels), tmp_path / "s.gdz")
    loaded = load_snapshot(tmp_path / "s.gdz")
    for prompt in loaded.prompts:
        list(prompt.traces["a"].steps)
    assert len(loaded.prompts[0].traces["a"].steps.columns._built) == KEPT_TRACES


# ── old files ────────────────────────────────────────────────────────────
@pytest.mark.parametrize("fixture", ["snapshot-v1.json", "snapshot-v2.json"])
def test_old_json_files_open_and_convert_to_gdz_and_back(tmp_path, fixture):
    old = load_snapshot(DATA / fixture)
    assert main(["export", str(DATA / fixture), str(tmp_path / "s.gdz")]) == 0
    assert main(["export", "--json", str(tmp_path / "s.gdz"), str(tmp_path / "back.json")]) == 0
    back = json.loads((tmp_path / "back.json").read_text())
    validate(back, "back.json")
    assert dumps(back) == dumps(old.to_dict())
    if fixture == "snapshot-v2.json":  # written by the JSON writer: the same bytes come back
        assert (tmp_path / "back.json").read_bytes() == (DATA / fixture).read_bytes()


def test_the_v2_fixture_is_the_varied_snapshot():
    assert dumps(load_snapshot(DATA / "snapshot-v2.json").to_dict()) == dumps(varied_snapshot().to_dict())


def test_gdz_files_are_recognised_by_content(tmp_path):
    save_snapshot(varied_snapshot(), tmp_path / "named.json", format="gdz")
    assert is_snapshot_file(tmp_path / "named.json")
    assert open_document(str(tmp_path / "named.json")).snapshot.engine_labels == varied_snapshot().engine_labels
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert not is_snapshot_file(tmp_path / "other.zip")


# ── damaged files ────────────────────────────────────────────────────────
def export_error(capsys, path: Path, tmp_path: Path) -> str:
    code = main(["export", "--json", str(path), str(tmp_path / "out.json")])
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gendiff: error: snapshot {path}"), err
    assert not (tmp_path / "out.json").exists()
    return lines[0]


@pytest.fixture
def gdz(tmp_path) -> Path:
    path = tmp_path / "s.gdz"
    save_snapshot(varied_snapshot(), path)
    return path


@pytest.mark.parametrize("keep", [4, 30, 0.5, -23, -1])
def test_a_truncated_gdz_is_one_error_line(capsys, tmp_path, gdz, keep):
    data = gdz.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    gdz.write_bytes(data[:cut])
    assert "corrupt or truncated" in export_error(capsys, gdz, tmp_path)


def test_a_flipped_byte_in_a_column_is_one_error_line(capsys, tmp_path, gdz):
    data = bytearray(gdz.read_bytes())
    with zipfile.ZipFile(gdz) as archive:
        info = archive.getinfo("top_logprob.npy.zst")
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2] ^= 0xFF
    gdz.write_bytes(bytes(data))
    assert "corrupt" in export_error(capsys, gdz, tmp_path)


def rewrite(path: Path, change) -> None:  # noqa: ANN001
    """Rewrite a .gdz with ``change(members)`` applied to {name: bytes} (snapshot.json parsed)."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["snapshot.json"] = json.loads(members["snapshot.json"])
    change(members)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, json.dumps(data) if name == "snapshot.json" else data)


def column(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, values)
    return zstandard.ZstdCompressor().compress(buffer.getvalue())


def _set(members: dict, key: str, value: object) -> None:
    members[key] = value


def _rows(members: dict) -> int:
    return members["snapshot.json"]["columns"]["rows"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.pop("top_logit.npy.zst"), "column top_logit.npy.zst is missing"),
        (lambda m: _set(m, "token_id.npy.zst", column(np.zeros(3, np.int32))), "of shape (3,), not"),
        (lambda m: _set(m, "logprob.npy.zst", column(np.zeros(_rows(m), np.int32))), "is <i4 of shape"),
        (
            lambda m: _set(m, "top_count.npy.zst", column(np.full(_rows(m), 9, np.uint8))),
            "column top_count holds 9, over its limit 4",
        ),
        (
            lambda m: _set(m, "top_flags.npy.zst", column(np.full((_rows(m), 4), 2, np.uint8))),
            "column top_flags holds 2",
        ),
        (lambda m: _set(m, "token_id.npy.zst", b"not zstd"), "not a readable .gdz"),
        (lambda m: _set(m, "token_id.npy.zst", zstandard.ZstdCompressor().compress(b"not npy")), "not a .npy array"),
        (lambda m: m["snapshot.json"]["tokens"].update(ids=[1, 2], texts=["a", "b"]), "has no text in the token table"),
        (lambda m: m["snapshot.json"]["tokens"].update(ids=[1, 2], texts=["a"]), "ids and texts do not pair up"),
        (lambda m: m["snapshot.json"]["prompts"][0]["traces"]["vllm"].update(rows=[6, 99]), "6:99 is outside the"),
        (lambda m: m["snapshot.json"].update(schema="gendiff.snapshot/4"), "a version this gendiff can't read"),
        (lambda m: m["snapshot.json"].update(schema="other/1"), "a zip, but not a gendiff snapshot"),
        (lambda m: m["snapshot.json"]["columns"].pop("rows"), "invalid at columns"),
        (lambda m: m["snapshot.json"]["prompts"][0]["traces"]["vllm"].update(engine="x"), "says it is of 'x'"),
        (lambda m: m.pop("snapshot.json"), "a zip without snapshot.json"),
    ],
)
def test_a_damaged_gdz_is_one_error_line_naming_the_problem(capsys, tmp_path, gdz, change, message):
    rewrite(gdz, change)
    assert message in export_error(capsys, gdz, tmp_path)


def test_a_damaged_gdz_is_an_input_error(gdz):
    gdz.write_bytes(gdz.read_bytes()[:-5])
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_snapshot(gdz)


def test_outline_not_json_is_one_error_line(capsys, tmp_path, gdz):
    with zipfile.ZipFile(gdz) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["snapshot.json"] = b"{not json"
    with zipfile.ZipFile(gdz, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    assert "snapshot.json is not valid JSON" in export_error(capsys, gdz, tmp_path)


# ── writing ──────────────────────────────────────────────────────────────
@pytest.mark.parametrize("mode", [0o644, 0o600])
def test_a_gdz_write_keeps_the_mode_and_writes_through_a_symlink(tmp_path, mode):
    real = tmp_path / "real.gdz"
    real.write_bytes(b"old")
    real.chmod(mode)
    (tmp_path / "link.gdz").symlink_to("real.gdz")
    save_snapshot(varied_snapshot(), tmp_path / "link.gdz")
    assert (tmp_path / "link.gdz").is_symlink() and stat.S_IMODE(real.stat().st_mode) == mode
    assert load_snapshot(real).engine_labels == varied_snapshot().engine_labels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.gdz", "real.gdz"]  # no temp file left


def test_a_failing_gdz_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    file = tmp_path / "s.gdz"
    file.write_bytes(b"old")

    def broken(*args: object) -> bytes:
        raise KeyboardInterrupt

    monkeypatch.setattr("gendiff.io.columnar.npy.encode", broken)
    with pytest.raises(KeyboardInterrupt):
        save_snapshot(varied_snapshot(), file)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.gdz"] and file.read_bytes() == b"old"


def test_the_same_snapshot_gives_the_same_bytes(tmp_path):
    save_snapshot(varied_snapshot(), tmp_path / "a.gdz")
    save_snapshot(varied_snapshot(), tmp_path / "b.gdz")
    assert (tmp_path / "a.gdz").read_bytes() == (tmp_path / "b.gdz").read_bytes()


def test_scores_that_are_not_float32_are_kept_exactly(tmp_path):
    value = math.pi  # not a float32: stored as float64
    trace = Trace("a", 0, (1,), (TokenStep(2, "x", value, (TopToken(2, "x", value, value),)),), "length")
    save_snapshot(make_snapshot([{"a": trace}], ["a"]), tmp_path / "s.gdz")
    step = load_snapshot(tmp_path / "s.gdz").prompts[0].traces["a"].steps[0]
    assert step.logprob == value and step.top[0].logit == value


def test_nan_and_infinite_scores_round_trip(tmp_path):
    odd = (math.nan, math.inf, -math.inf, -0.0)
    trace = Trace(
        "a",
        0,
        (1,),
        tuple(TokenStep(2, "x", v, (TopToken(2, "x", v, v), TopToken(3, "y", v, None))) for v in odd),
        "length",
    )
    snapshot = make_snapshot([{"a": trace}], ["a"])
    save_snapshot(snapshot, tmp_path / "s.gdz")
    save_snapshot(snapshot, tmp_path / "s.json")
    assert dumps(load_snapshot(tmp_path / "s.gdz").to_dict()) == dumps(load_snapshot(tmp_path / "s.json").to_dict())
    assert math.copysign(1.0, load_snapshot(tmp_path / "s.gdz").prompts[0].traces["a"].steps[3].logprob) == -1.0


# ── the command line ─────────────────────────────────────────────────────
def test_compare_saves_gdz_and_export_gives_json_on_stdout(capsys, tmp_path, gdz):
    assert main(["compare", str(gdz), str(gdz), "--save", str(tmp_path / "c.gdz")]) == 0
    capsys.readouterr()
    assert main(["export", str(tmp_path / "c.gdz"), "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    validate(data, "stdout")
    assert [e["label"] for e in data["engines"]][:2] == ["hf-single@A", "hf-single@B"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "A", "A", "--json", "c.gdz"], "--json c.gdz: a .gdz name for a JSON file; use --save c.gdz"),
        (["export", "--gdz", "A", "-"], "the .gdz format is binary"),
        (["export", "A", "A"], "s.gdz: that is the snapshot it reads"),
        (["compare", "A", "A", "--json", "x.json", "--save", "y.gdz"], "not allowed with argument"),
    ],
)
def test_output_options_are_checked(capsys, tmp_path, monkeypatch, gdz, argv, message):
    monkeypatch.chdir(tmp_path)
    code = main([str(gdz) if a == "A" else a for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# ── real runs (the demo model) ───────────────────────────────────────────
@pytest.mark.slow
def test_a_real_run_converts_to_gdz_and_back_to_the_same_json_bytes(tmp_path, demo_snapshot):
    assert main(["export", str(demo_snapshot), str(tmp_path / "s.gdz")]) == 0
    assert main(["export", "--json", str(tmp_path / "s.gdz"), str(tmp_path / "back.json")]) == 0
    assert (tmp_path / "back.json").read_bytes() == demo_snapshot.read_bytes()
    _, arrays = _arrays(tmp_path / "s.gdz")
    assert (
        arrays["top_logprob"].dtype == np.float32 and arrays["top_logit"].dtype == np.float32
    )  # HF scores are float32
    assert os.path.getsize(tmp_path / "s.gdz") * 5 < os.path.getsize(demo_snapshot)


@pytest.mark.slow
def test_run_save_writes_a_gdz_the_app_and_compare_open(capsys, tmp_path):
    out = tmp_path / "run.gdz"
    assert (
        main(
            [
                "run",
                "--quiet",
                "--max-new-tokens",
                "6",
                "--no-stop-at-eos",
                "--engines",
                "hf-single,hf-left",
                "--save",
                str(out),
            ]
        )
        == 0
    )
    assert f"snapshot written to {out}" in capsys.readouterr().err
    snapshot = open_document(str(out)).snapshot
    assert all(len(t.steps) == 6 for p in snapshot.prompts for t in p.traces.values())
    assert main(["compare", str(out), str(out), "--fail-on-divergence"]) == 0
