"""Models loaded in several threads at once (the app's preload or conformance probe beside a run):
each must come back in the dtype asked for. transformers sets torch's process-wide default dtype
while it builds a model; without one build at a time, a model asked for in bfloat16 came back with
float32 and float16 weights too (measured: 13 of 16 loads in 4 rounds of 4 threads)."""

import threading

import pytest
import torch

from gendiff.demo import demo_model_path
from gendiff.engines.loading import load_model, release_model

pytestmark = pytest.mark.slow

DTYPES = ["float32", "bfloat16", "float16", "bfloat16"]


def test_models_loaded_at_once_in_several_threads_each_have_the_dtype_asked_for():
    for _ in range(3):
        barrier = threading.Barrier(len(DTYPES))
        got: dict[int, object] = {}

        def load(i: int, dtype: str, barrier: threading.Barrier, got: dict) -> None:
            barrier.wait()
            try:
                got[i] = {p.dtype for p in load_model(demo_model_path(), dtype, "sdpa", "cpu").model.parameters()}
            except Exception as exc:  # noqa: BLE001 — recorded, asserted below
                got[i] = exc

        threads = [threading.Thread(target=load, args=(i, d, barrier, got)) for i, d in enumerate(DTYPES)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert got == {i: {getattr(torch, d)} for i, d in enumerate(DTYPES)}
        for dtype in set(DTYPES):
            release_model(demo_model_path(), dtype, "sdpa", "cpu")
