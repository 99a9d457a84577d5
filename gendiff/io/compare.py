"""Line up the same engines across two snapshots (two machines, two library versions, …).

The result is itself a Snapshot: for every engine both sides ran, two traces per prompt
(``hf-left@A`` and ``hf-left@B``) and a Divergence of B from A, so the CLI summary, the TUI
and the JSON export all work on it unchanged. It refuses when the two runs are not of the same
prompts (token ids) or the same model (name and fingerprint).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from gendiff.defaults import FRAGILE_THRESHOLD
from gendiff.errors import GendiffError
from gendiff.io.snapshots import load_snapshot
from gendiff.records.divergence import compare
from gendiff.records.snapshot import PromptResult, Snapshot

TAGS = ("A", "B")


def side_label(label: str, tag: str) -> str:
    return f"{label}@{tag}"


def compare_snapshots(
    a: Snapshot,
    b: Snapshot,
    engines: list[str] | None = None,
    names: tuple[str, str] = ("A", "B"),
) -> Snapshot:
    """Compare ``b`` against ``a``, engine by engine. ``names``: how to call them in messages (paths)."""
    _check_same_model(a, b, names)
    _check_same_prompts(a, b, names)
    common = [label for label in a.engine_labels if label in b.engine_labels]
    if engines:
        missing = [e for e in engines if e not in common]
        if missing:
            raise GendiffError(
                f"engine {missing[0]!r} is not in both snapshots; engines in both: {', '.join(common) or 'none'}"
            )
        common = list(engines)
    if not common:
        raise GendiffError(
            f"{names[0]} ({', '.join(a.engine_labels)}) and {names[1]} ({', '.join(b.engine_labels)}) "
            "have no engine in common; compare needs the same engine on both sides"
        )
    threshold = float(a.decoding.get("fragile_threshold", FRAGILE_THRESHOLD))
    prompts = []
    # B's calls join A's under fresh ids, its prompts renumbered to A's (the prompts are the same)
    offset = max((batch.id for batch in a.batches), default=-1) + 1
    b_ids = {pb.id: pa.id for pa, pb in zip(a.prompts, b.prompts)}
    spare = iter(range(max([p.id for p in a.prompts] + [p.id for p in b.prompts], default=0) + 1, 1 << 62))
    b_batches = [
        replace(
            batch,
            id=batch.id + offset,
            prompt_ids=tuple(b_ids[i] if i in b_ids else next(spare) for i in batch.prompt_ids),
        )
        for batch in b.batches
    ]
    for pa, pb in zip(a.prompts, b.prompts):
        result = PromptResult(pa.text, list(pa.token_ids), id=pa.id)
        for label in common:
            ta, tb = pa.traces.get(label), pb.traces.get(label)
            if ta is None or tb is None:
                continue
            ta = replace(ta, engine=side_label(label, "A"))
            tb = replace(tb, engine=side_label(label, "B"), prompt_index=ta.prompt_index)
            result.traces[ta.engine] = ta
            result.traces[tb.engine] = tb
            result.batches[ta.engine] = pa.batches[label]
            result.batches[tb.engine] = pb.batches[label] + offset
            result.divergences.append(compare(ta, tb, threshold))
        prompts.append(result)
    by_label = {side: {e["label"]: e for e in snap.engines} for side, snap in zip(TAGS, (a, b))}
    engines_out = [{**by_label[tag][label], "label": side_label(label, tag)} for label in common for tag in TAGS]
    notes = []
    if a.decoding.get("max_new_tokens") != b.decoding.get("max_new_tokens"):
        notes.append(
            f"max_new_tokens differ ({a.decoding.get('max_new_tokens')} vs {b.decoding.get('max_new_tokens')}): "
            "length differences are expected"
        )
    for key in ("dtype", "attn"):
        if a.model.get(key) != b.model.get(key):
            notes.append(f"{key}: {a.model.get(key)} (A) vs {b.model.get(key)} (B)")
    for key in ("torch", "transformers", "vllm", "vllm_commit", "device", "gpu", "gpu_count", "driver", "cuda", "cpu"):
        va, vb = a.environment.get(key), b.environment.get(key)
        if va != vb:
            notes.append(f"{key}: {va} (A) vs {vb} (B)")
    return Snapshot(
        model=a.model,
        decoding=a.decoding,
        reference=side_label(common[0], "A"),
        engines=engines_out,
        prompts=prompts,
        environment=a.environment,
        notes=notes,
        sources=[
            {"tag": tag, "path": name, "created": snap.created, "environment": snap.environment, "model": snap.model}
            for tag, name, snap in zip(TAGS, names, (a, b))
        ],
        batches=[*a.batches, *b_batches],
    )


def _check_same_model(a: Snapshot, b: Snapshot, names: tuple[str, str]) -> None:
    fa, fb = a.model.get("fingerprint"), b.model.get("fingerprint")
    if a.model.get("name") != b.model.get("name") or (fa and fb and fa != fb):
        raise GendiffError(
            f"{names[0]} ran model {a.model.get('name')} ({fa or 'no fingerprint'}) but {names[1]} ran "
            f"{b.model.get('name')} ({fb or 'no fingerprint'}); compare needs the same model on both sides"
        )


def _check_same_prompts(a: Snapshot, b: Snapshot, names: tuple[str, str]) -> None:
    if len(a.prompts) != len(b.prompts):
        raise GendiffError(
            f"{names[0]} has {len(a.prompts)} prompts but {names[1]} has {len(b.prompts)}; "
            "compare needs the same prompts in the same order"
        )
    for index, (pa, pb) in enumerate(zip(a.prompts, b.prompts), 1):
        if list(pa.token_ids) != list(pb.token_ids) or pa.text != pb.text:
            # the same ids under another text: one file was edited (each side would show its own)
            what = "text" if pa.text != pb.text else "token ids (another tokenizer?)"
            raise GendiffError(
                f"prompt {index} differs between {names[0]} and {names[1]} ({what}); "
                "compare needs the same prompts in the same order"
            )


def load_pair(path_a: str, path_b: str, engines: list[str] | None = None) -> Snapshot:
    # each file's own records are checked, not recomputed: the comparison makes its own. Two
    # threads: one file's decompression (zstd and zlib let go of the GIL) overlaps the other's parse
    with ThreadPoolExecutor(2) as pool:
        loads = [pool.submit(load_snapshot, path, recompute=False) for path in (path_a, path_b)]
        a, b = (load.result() for load in loads)  # A's error first, as one after the other
    return compare_snapshots(a, b, engines, (Path(path_a).name, Path(path_b).name))
