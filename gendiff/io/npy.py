"""NumPy's ``.npy`` array format (version 1.0, NEP 1), written and read without NumPy.

A ``.gdz`` snapshot keeps its columns as ``.npy`` files in a zip (NumPy's ``.npz`` layout), so
``numpy.load`` opens them as they are; gendiff itself reads them into ``memoryview``s (no copy on
a little-endian machine) and never imports NumPy (the app's start stays fast).
"""

from __future__ import annotations

import ast
import math
import sys
from array import array
from typing import Any

MAGIC = b"\x93NUMPY"
_KINDS = {**dict.fromkeys("bhilq", "i"), **dict.fromkeys("BHILQ", "u"), **dict.fromkeys("fd", "f")}


def descr(typecode: str) -> str:
    """The .npy dtype of an ``array`` typecode, little-endian: ``'f'`` -> ``'<f4'``."""
    size = array(typecode).itemsize
    return f"{'|' if size == 1 else '<'}{_KINDS[typecode]}{size}"


# .npy dtype -> the array typecode of that kind and size (the first such, e.g. 'i' over 'l' for <i4)
TYPECODES = {descr(code): code for code in reversed("bBhHiIqQlLfd")}


def header(typecode: str, shape: tuple[int, ...]) -> bytes:
    """The .npy header of a C-order array of ``shape``, padded to 64 bytes as NumPy writes it."""
    text = f"{{'descr': '{descr(typecode)}', 'fortran_order': False, 'shape': {shape!r}, }}"
    padding = -(len(MAGIC) + 2 + 2 + len(text) + 1) % 64
    text += " " * padding + "\n"
    return MAGIC + b"\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin-1")


def encode(values: array, shape: tuple[int, ...]) -> bytes:
    """``values`` (flat, C order) as the bytes of a .npy file of ``shape``."""
    if math.prod(shape) != len(values):
        raise ValueError(f"{len(values)} values do not fill the shape {shape}")
    if sys.byteorder == "big" and values.itemsize > 1:
        values = array(values.typecode, values)
        values.byteswap()
    return header(values.typecode, shape) + values.tobytes()


def read(data: bytes) -> tuple[str, tuple[int, ...], Any]:
    """A .npy file's (typecode, shape, flat values); the values are a memoryview of ``data`` (an
    array on a big-endian machine). Raises ValueError saying what is wrong with the bytes."""
    if not data.startswith(MAGIC) or len(data) < 10:
        raise ValueError("not a .npy array")
    major = data[6]
    size_bytes = {1: 2, 2: 4, 3: 4}.get(major)
    if size_bytes is None:
        raise ValueError(f".npy version {major} is not one gendiff reads")
    start = 8 + size_bytes
    end = start + int.from_bytes(data[8:start], "little")
    try:
        fields = ast.literal_eval(data[start:end].decode("latin-1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError("its .npy header is not readable") from None
    if not isinstance(fields, dict) or set(fields) != {"descr", "fortran_order", "shape"}:
        raise ValueError("its .npy header is not a dtype and a shape")
    typecode = TYPECODES.get(fields["descr"]) if isinstance(fields["descr"], str) else None
    shape = fields["shape"]
    if typecode is None:
        raise ValueError(f"dtype {fields['descr']!r} is not one gendiff writes")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"shape {shape!r} is not a shape")
    if fields["fortran_order"] is not False and len(shape) > 1:
        raise ValueError("it is in Fortran order")
    body = memoryview(data)[end:]
    itemsize = array(typecode).itemsize
    if len(body) != math.prod(shape) * itemsize:
        raise ValueError(f"it holds {len(body)} bytes, not the {math.prod(shape) * itemsize} of shape {shape}")
    if sys.byteorder == "big" and itemsize > 1:
        values = array(typecode, body.tobytes())
        values.byteswap()
        return typecode, shape, values
    return typecode, shape, body.cast(typecode)
