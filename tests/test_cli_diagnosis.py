"""`gendiff run --bisect/--reconverge/--sweep` and `gendiff compare` on real runs of the demo model."""

import json
import re
import shutil

import pytest

from gendiff.cli.main import main
from gendiff.demo import demo_model_path
from gendiff.io.snapshots import load_snapshot, validate

pytestmark = pytest.mark.slow


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory):
    """A bfloat16 run of the demo prompts with every divergence bisected and re-converged."""
    path = tmp_path_factory.mktemp("diag") / "bf16.json"
    code = main(
        [
            "run",
            "--quiet",
            "--dtype",
            "bfloat16",
            "--engines",
            "hf-single,hf-left,packed",
            "--bisect",
            "--reconverge",
            "--json",
            str(path),
        ]
    )
    assert code == 0
    return path


@pytest.fixture(scope="module")
def float32_snapshot(tmp_path_factory):
    path = tmp_path_factory.mktemp("f32") / "f32.json"
    assert main(["run", "--quiet", "--engines", "hf-single,hf-left,packed", "--json", str(path)]) == 0
    return path


def test_bisect_and_reconverge_records_in_the_snapshot(diagnosed):
    data = json.loads(diagnosed.read_text())
    validate(data, "test")
    token = [d for p in data["prompts"] for d in p["divergences"] if d["reason"] == "token"]
    assert token, "bfloat16 makes the demo prompts diverge"
    for d in token:
        b, r = d["bisection"], d["reconvergence"]
        assert b["step"] == d["step"] and b["engine"] == d["engine"] and b["reproduced"]
        assert b["first_bitwise"].startswith("model.layers.")  # padding/packing: the embeddings agree, a layer splits
        names = [m["name"] for m in b["modules"]]
        assert names.index(b["first_bitwise"]) == next(i for i, m in enumerate(b["modules"]) if not m["equal"])
        assert r["verdict"] in ("transient flip", "lasting fork") and r["mismatches"][0] == d["step"]
    identical = [d for p in data["prompts"] for d in p["divergences"] if d["reason"] == "identical"]
    assert identical and all(d["bisection"] is None for d in identical)
    # and it loads back into the same objects
    snap = load_snapshot(diagnosed)
    d = snap.divergences()[0]
    assert d.bisection is not None and d.bisection.first_bitwise.name == token[0]["bisection"]["first_bitwise"]


def test_bisect_summary_lines(capsys, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("Once upon a time, there was a brave\n")
    code, out, err = cli(
        capsys,
        "run",
        "--quiet",
        "--prompts",
        str(prompts),
        "--dtype",
        "bfloat16",
        "--engines",
        "hf-single,hf-single:dtype=float32",
        "--bisect",
        "--reconverge",
    )
    assert code == 0, err
    assert "hf-single:dtype=float32  DIVERGED at step 2" in out
    assert "bisection: first differs at model.embed_tokens (token embedding" in out  # the weights themselves differ
    assert "relative difference after each layer at position " in out and " L0 " in out and " L3 " in out
    assert "re-convergence: transient flip" in out or "re-convergence: lasting fork" in out


def test_a_failed_reconvergence_keeps_the_run_and_says_why(capsys, tmp_path, monkeypatch):
    """A replay that raises at run time is recorded in the Reconvergence (verdict failed), shown in
    the summary and written to the snapshot; the run is not discarded."""
    from gendiff.engines.base import Engine

    def broken(self, *args, **kwargs):
        raise RuntimeError("replay exploded")

    monkeypatch.setattr(Engine, "replay", broken)
    prompts = tmp_path / "p.txt"
    prompts.write_text("Once upon a time, there was a brave\n")
    out_json = tmp_path / "run.json"
    argv = ["run", "--quiet", "--prompts", str(prompts), "--dtype", "bfloat16", "--max-new-tokens", "4"]
    code, out, err = cli(
        capsys, *argv, "--engines", "hf-single,hf-single:dtype=float32", "--reconverge", "--json", str(out_json)
    )
    assert code == 0, err
    assert "hf-single:dtype=float32  DIVERGED at step 2" in out
    assert "re-convergence: failed: RuntimeError: replay exploded" in out
    assert "diagnosis failed" not in err
    data = json.loads(out_json.read_text())
    validate(data, "test")
    r = next(d for p in data["prompts"] for d in p["divergences"] if d["reason"] == "token")["reconvergence"]
    assert r["verdict"] == "failed" and r["error"] == "RuntimeError: replay exploded"
    assert r["steps_checked"] == 0 and r["mismatches"] == []
    assert load_snapshot(out_json).divergences()[0].reconvergence.error == "RuntimeError: replay exploded"


def test_compare_a_snapshot_with_itself_is_identical(capsys, float32_snapshot):
    code, out, err = cli(capsys, "compare", str(float32_snapshot), str(float32_snapshot), "--fail-on-divergence")
    assert code == 0, err
    assert "0 of 48 prompt×engine pairs diverged" in out
    assert re.search(r"hf-left@B +identical", out)


def test_compare_float32_with_bfloat16_lines_up_each_engine(capsys, tmp_path, float32_snapshot, diagnosed):
    out_file = tmp_path / "cmp.json"
    code, out, err = cli(
        capsys, "compare", str(float32_snapshot), str(diagnosed), "--json", str(out_file), "--fail-on-divergence"
    )
    assert code == 1, err
    assert out.startswith("A = f32.json") and "B = bf16.json" in out
    compared = load_snapshot(out_file)
    assert compared.engine_labels == [f"{e}@{t}" for e in ("hf-single", "hf-left", "packed") for t in "AB"]
    assert [s["tag"] for s in compared.sources] == ["A", "B"]
    a, b = load_snapshot(float32_snapshot), load_snapshot(diagnosed)
    # each divergence is B's engine against the same engine in A, recomputed from the traces
    for prompt, pa, pb in zip(compared.prompts, a.prompts, b.prompts):
        for d in prompt.divergences:
            engine = d.engine.removesuffix("@B")
            assert d.reference == f"{engine}@A"
            differs = pa.traces[engine].token_ids != pb.traces[engine].token_ids
            assert d.diverged == differs
    assert len(compared.divergences()) > 0


def test_compare_one_engine(capsys, float32_snapshot, diagnosed):
    code, out, _ = cli(capsys, "compare", str(float32_snapshot), str(diagnosed), "--engines", "hf-left")
    assert code == 0 and "hf-left@B" in out and "packed@B" not in out
    code, _, err = cli(capsys, "compare", str(float32_snapshot), str(diagnosed), "--engines", "vllm")
    assert code == 2 and "engine 'vllm' is not in both snapshots" in err


def test_compare_refuses_other_prompts(capsys, tmp_path, float32_snapshot):
    other = tmp_path / "other.json"
    prompts = tmp_path / "p.txt"
    texts = [p.text.replace("\n", "\\n") for p in load_snapshot(float32_snapshot).prompts[:-1]]
    prompts.write_text("\n".join(texts) + "\nSomething else\n")
    assert (
        main(
            [
                "run",
                "--quiet",
                "--prompts",
                str(prompts),
                "--engines",
                "hf-single",
                "--max-new-tokens",
                "4",
                "--json",
                str(other),
            ]
        )
        == 0
    )
    capsys.readouterr()
    code, _, err = cli(capsys, "compare", str(float32_snapshot), str(other))
    assert code == 2
    assert err.strip() == (
        "gendiff: error: prompt 16 differs between f32.json and other.json (text); "
        "compare needs the same prompts in the same order"
    )


def test_compare_refuses_another_model(capsys, tmp_path, float32_snapshot):
    model = tmp_path / "my_model"
    shutil.copytree(demo_model_path(), model)
    config = json.loads((model / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5  # another model: same name would not be enough, the fingerprint differs
    (model / "config.json").write_text(json.dumps(config))
    other = tmp_path / "other.json"
    prompts = "\n".join(p.text.replace("\n", "\\n") for p in load_snapshot(float32_snapshot).prompts)
    (tmp_path / "p.txt").write_text(prompts + "\n")
    assert (
        main(
            [
                "run",
                "--quiet",
                "--model",
                str(model),
                "--prompts",
                str(tmp_path / "p.txt"),
                "--engines",
                "hf-single",
                "--max-new-tokens",
                "2",
                "--json",
                str(other),
            ]
        )
        == 0
    )
    capsys.readouterr()
    code, _, err = cli(capsys, "compare", str(float32_snapshot), str(other))
    assert code == 2 and "compare needs the same model on both sides" in err and "my_model" in err


def test_compare_missing_file(capsys, float32_snapshot, tmp_path):
    code, _, err = cli(capsys, "compare", str(float32_snapshot), str(tmp_path / "nope.json"))
    assert code == 2 and "no such file" in err


def test_sweep_table(capsys, tmp_path):
    out_file = tmp_path / "sweep.json"
    code, out, err = cli(
        capsys,
        "run",
        "--quiet",
        "--engines",
        "hf-single,hf-left,hf-right",
        "--max-new-tokens",
        "24",
        "--sweep",
        "dtype=float32,bfloat16",
        "batch_size=1,16",
        "--json",
        str(out_file),
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["dtype", "batch_size", "hf-left", "hf-right", "hf-single", "vs", "row", "1"]
    rows = [line.split() for line in lines[2:6]]
    assert [r[:2] for r in rows] == [["float32", "1"], ["float32", "16"], ["bfloat16", "1"], ["bfloat16", "16"]]
    data = json.loads(out_file.read_text())
    by = {(v["settings"]["dtype"], v["settings"]["batch_size"]): v for v in data["variants"]}
    # float32: nothing splits; batch size 1: no padding, so nothing splits either
    for key in [("float32", "1"), ("float32", "16"), ("bfloat16", "1")]:
        assert by[key]["diverged"] == {"hf-left": [], "hf-right": []}, key
    # bfloat16 with padding in a batch of 16: the split appears
    assert by[("bfloat16", "16")]["diverged"]["hf-left"]
    assert rows[3][2] == f"{len(by[('bfloat16', '16')]['diverged']['hf-left'])}/16"
    # the reference itself changes with the dtype, not with the batch size
    assert by[("float32", "16")]["reference_vs_first"] == []
    assert by[("bfloat16", "1")]["reference_vs_first"] == by[("bfloat16", "16")]["reference_vs_first"] != []
    assert "by dtype: float32 0.0 · bfloat16" in out and "by batch_size: 1 0.0 ·" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--sweep", "colour=red,blue"],
            "--sweep 'colour': not a setting of these engines; sweepable: attn, batch_size",
        ),
        (["--sweep", "dtype"], "--sweep 'dtype': write KEY=V1,V2"),
        (["--sweep", "dtype=float8"], "dtype 'float8' for hf-single: choose one of"),
        (["--sweep", "batch_size=two"], "--sweep batch_size=two: must be a whole number"),
        (["--sweep", "dtype=float32", "--bisect"], "--sweep with --bisect/--reconverge"),
        (
            ["--bisect", "--tolerance", "0", "--max-new-tokens", "1", "--engines", "hf-single"],
            "argument --tolerance: must be a finite number above 0, not 0",
        ),
    ],
)
def test_bad_sweep_and_bisect_input(capsys, argv, message):
    code, out, err = cli(capsys, "run", "--quiet", *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
