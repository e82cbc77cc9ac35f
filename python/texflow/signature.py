"""The signature notation both sides share: iree-run-module's `2x3xf32`.

The compiler records each function's inputs and outputs in this notation (`texflow.inputs`,
`texflow.outputs`, a streamed program's inputs); the runtime checks arrays against it and
parses command-line inputs written in it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from .errors import TexflowError

DTYPES = {
    "f32": np.float32, "f16": np.float16, "f64": np.float64, "bf16": None,
    "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
    "ui8": np.uint8, "ui16": np.uint16, "ui32": np.uint32, "ui64": np.uint64,
    "i1": np.bool_,
}


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple
    dtype: str  # MLIR element type name, e.g. f32

    @classmethod
    def parse(cls, text: str) -> "TensorSpec":
        parts = text.strip().split("x")
        dims = tuple(None if p == "?" else int(p) for p in parts[:-1])
        return cls(dims, parts[-1])

    def __str__(self):
        return "x".join(["?" if d is None else str(d) for d in self.shape] + [self.dtype])

    def matches(self, a: np.ndarray) -> bool:
        if len(a.shape) != len(self.shape):
            return False
        if any(d is not None and d != s for d, s in zip(self.shape, a.shape)):
            return False
        np_t = DTYPES.get(self.dtype)
        return np_t is None or a.dtype == np.dtype(np_t)


def parse_input(text: str) -> np.ndarray:
    """An input in iree-run-module's notation: `@x.npy`, `2x3xf32=1 2 3 4 5 6`,
    `2x3xf32=0.5` (splat) or `f32=1.0` (scalar)."""
    if text.startswith("@"):
        path = text[1:]
        if not os.path.exists(path):
            raise TexflowError(f"no such input file: {path}")
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise TexflowError(f"cannot read {path} as .npy: {e}") from None
    spec, eq, values = text.partition("=")
    if not eq:
        raise TexflowError(f"input '{text}' must be @file.npy or <shape>x<type>=<values>")
    parts = spec.split("x")
    dtype = DTYPES.get(parts[-1])
    if dtype is None:
        raise TexflowError(f"unsupported element type '{parts[-1]}' in input '{text}'")
    try:
        shape = tuple(int(p) for p in parts[:-1])
        vals = [float(v) if np.issubdtype(dtype, np.floating) else int(v)
                for v in re.split(r"[\s,\[\]]+", values.strip()) if v]
    except ValueError:
        raise TexflowError(f"cannot parse input '{text}'") from None
    n = int(np.prod(shape)) if shape else 1
    if len(vals) == 1:
        return np.full(shape, vals[0], dtype=dtype)
    if len(vals) != n:
        raise TexflowError(f"input '{spec}' needs {n} values, got {len(vals)}")
    return np.array(vals, dtype=dtype).reshape(shape)


def dtype_text(a: np.ndarray) -> str:
    """'1x8xf32' for a numpy array, in iree-run-module's notation."""
    names = {np.dtype(v): k for k, v in DTYPES.items() if v is not None}
    return "x".join([str(d) for d in a.shape] + [names.get(a.dtype, str(a.dtype))])
