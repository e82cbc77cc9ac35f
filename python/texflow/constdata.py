"""Reading the data of MLIR constants into numpy arrays.

Why a module of its own: both the layout phase (weights re-laid out at compile time) and the
streaming phase (weights written to an archive) need the bytes of `dense<...>` and
`dense_resource<...>` constants.  MLIR's Python API reads only `dense<...>` elements; a
`dense_resource` blob (how ONNX weights arrive) is read back from a printed one-op module.
"""

from __future__ import annotations

import re

import numpy as np

from texflow.errors import TexflowError

# MLIR element type -> (numpy dtype used for storage, IREE dtype name)
NUMPY_DTYPES = {
    "f16": "float16", "f32": "float32", "f64": "float64",
    "i1": "bool", "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64",
    "si8": "int8", "si16": "int16", "si32": "int32", "si64": "int64",
    "ui8": "uint8", "ui16": "uint16", "ui32": "uint32", "ui64": "uint64",
    "bf16": "uint16",  # raw bits; IREE's numpy interop has no bfloat16
}


def _from_hex(text: str, etype: str, shape) -> np.ndarray | None:
    m = re.search(r'"0x([0-9A-Fa-f]*)"', text)
    if not m:
        return None
    data = bytes.fromhex(m.group(1))
    dt = np.dtype(NUMPY_DTYPES[etype])
    n = int(np.prod(shape, dtype=np.int64))
    if len(data) == dt.itemsize * n:
        return np.frombuffer(data, dt).reshape(shape).copy()
    if len(data) == dt.itemsize:  # splat in hex
        return np.full(shape, np.frombuffer(data, dt)[0], dt)
    return None


def _resource_blob(op, etype: str, shape) -> np.ndarray:
    """dense_resource<...>: print a one-op module, whose resource section holds the blob."""
    from iree.compiler import ir
    with op.context, op.location:
        tmp = ir.Module.create()
        with ir.InsertionPoint(tmp.body):
            op.clone()
        text = tmp.operation.get_asm(large_elements_limit=None)
    m = re.search(r'dialect_resources:.*?:\s*"0x([0-9A-Fa-f]*)"', text, re.S)
    if not m:
        raise TexflowError(f"cannot read the data of constant {op.location} (resource elided)")
    data = bytes.fromhex(m.group(1))[4:]  # first 4 bytes: alignment
    dt = np.dtype(NUMPY_DTYPES[etype])
    return np.frombuffer(data, dt).reshape(shape).copy()


def attr_array(attr, op, etype: str, shape) -> np.ndarray:
    from iree.compiler import ir
    if etype not in NUMPY_DTYPES:
        raise TexflowError(f"weight {op.location} has element type {etype}, which the archive "
                           f"cannot store (supported: {', '.join(sorted(NUMPY_DTYPES))})")
    try:
        dense = ir.DenseElementsAttr(attr)
    except (ValueError, TypeError):
        dense = None
    if dense is None:
        if str(attr).startswith("dense_resource<"):
            return _resource_blob(op, etype, shape)
        raise TexflowError(f"weight {op.location} is not a dense constant ({str(attr)[:60]})")
    if etype != "bf16":
        try:
            a = np.asarray(dense)
            return np.array(a, dtype=NUMPY_DTYPES[etype]).reshape(shape)
        except (ValueError, TypeError, RuntimeError):
            pass
    text = str(dense)
    a = _from_hex(text, etype, shape)
    if a is not None:
        return a
    # small bf16 constants print as decimals (MLIR's Python API cannot read bf16 elements):
    # each decimal round-trips to its bf16 value under round-to-nearest-even
    if etype != "bf16":
        raise TexflowError(f"cannot read the data of weight {op.location}")
    body = text[text.index("<") + 1: text.rindex(">")]
    body = body[: body.rindex(":")] if ":" in body else body
    toks = re.findall(r"0x[0-9A-Fa-f]+|[-+]?(?:inf|nan|\d+\.?\d*(?:[eE][-+]?\d+)?)", body)
    bits = []
    for tok in toks:
        if tok.startswith("0x"):
            bits.append(int(tok, 16) & 0xFFFF)
        else:
            u = int(np.array([float(tok)], np.float32).view(np.uint32)[0])
            if np.isnan(float(tok)):
                bits.append(0x7FC0)
            else:
                bits.append(((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF)
    n = int(np.prod(shape, dtype=np.int64))
    if len(bits) == 1:
        bits = bits * n
    if len(bits) != n:
        raise TexflowError(f"cannot read the data of bf16 weight {op.location}")
    return np.array(bits, np.uint16).reshape(shape)


def constant_data(op) -> np.ndarray:
    """The value of an `arith.constant` (dense or dense_resource) as a numpy array."""
    from iree.compiler import ir
    rt = ir.RankedTensorType(op.results[0].type)
    return attr_array(op.attributes["value"], op, str(rt.element_type), tuple(rt.shape))
