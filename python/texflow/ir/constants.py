"""Constants in IR: read a dense constant's values into numpy, write numpy back as one.

Why one place: passes that re-lay out, pack or slice weights at compile time (elimination,
selection, pack-matmul, split-weights) all read and write constants the same way."""

from __future__ import annotations

import numpy as np
from iree.compiler import ir
from iree.compiler.dialects import arith


def constant_array(cst, limit: int):
    attr = cst.attributes["value"]
    try:
        dense = ir.DenseElementsAttr(attr)
    except ValueError:
        return None  # dense_resource or other: leave alone
    t = ir.RankedTensorType(dense.type)
    n = int(np.prod(t.shape)) if t.shape else 1
    if n > limit:
        return None
    try:
        if dense.is_splat:
            return np.full(t.shape, np.array(dense.get_splat_value().value))
        if ir.FloatType.isinstance(t.element_type) if hasattr(ir.FloatType, "isinstance") else \
                isinstance(t.element_type, (ir.F32Type, ir.F16Type, ir.F64Type)):
            return np.array(ir.DenseFPElementsAttr(attr)).reshape(t.shape)
        return np.array(ir.DenseIntElementsAttr(attr)).reshape(t.shape)
    except (ValueError, TypeError, AttributeError):
        return None


def make_constant(data: np.ndarray, rtype) -> ir.Value:
    rtype = ir.RankedTensorType(rtype)
    flat = data.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        attr = ir.DenseElementsAttr.get_splat(rtype, _scalar_attr(flat[0], rtype.element_type))
    else:
        attr = ir.DenseElementsAttr.get(np.ascontiguousarray(data), type=rtype)
    return arith.ConstantOp(rtype, attr).result


def _scalar_attr(x, et):
    if isinstance(et, (ir.F32Type, ir.F16Type, ir.F64Type, ir.BF16Type)) or "f" in str(et):
        return ir.FloatAttr.get(et, float(x))
    return ir.IntegerAttr.get(et, int(x))
