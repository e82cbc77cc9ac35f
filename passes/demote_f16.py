"""texflow-demote-f16: compute the whole model in half precision, keeping an f32 interface.

Why: mobile GPU stacks run FP16 (SmartMem and FlashMem evaluate in FP16): half the bytes for
every weight and activation, and on GPUs with packed f16 arithmetic twice the throughput.
IREE 3.13 only offers demoting the *inputs of contractions*
(`--iree-global-opt-demote-contraction-inputs-to`), which leaves every activation in f32.
This pass demotes everything that is f32 inside the model's functions -- constants (at
compile time), activations, elementwise bodies, convolutions and matmuls, which then
accumulate in f16 as IREE compiles f16 contractions -- and converts at the edges only: an
`arith.truncf` after each imported f32 input and an `arith.extf` before each exported
output, so callers keep passing and receiving f32 arrays.  It runs first in the layout
phase, so layout selection sees the 2-byte element size.
"""

from __future__ import annotations

import numpy as np
from iree.compiler import ir
from iree.compiler.dialects import arith, linalg, tensor

from texflow import irutil
from .registry import Pass, register_pass

_CASTS = ("arith.truncf", "arith.extf")
_ABI_OPS = ("hal.tensor.import", "hal.tensor.barrier", "hal.tensor.export")  # keep f32


def _f16_of(t):
    """The f16 version of an f32 scalar or tensor type, else None."""
    if str(t) == "f32":
        return ir.F16Type.get()
    try:
        rt = ir.RankedTensorType(t)
    except ValueError:
        return None
    if str(rt.element_type) != "f32":
        return None
    return ir.RankedTensorType.get(list(rt.shape), ir.F16Type.get(), rt.encoding)


def _cast_tensor(v, to_type, op_name: str):
    """An elementwise linalg.generic casting tensor `v` to `to_type`'s element type."""
    rt = ir.RankedTensorType(v.type)
    dst = ir.RankedTensorType(to_type)
    rank = len(rt.shape)
    init = tensor.empty(list(rt.shape), dst.element_type)
    idm = ir.AffineMap.get_identity(rank)
    its = ir.ArrayAttr.get([ir.Attribute.parse("#linalg.iterator_type<parallel>")] * rank)
    g = ir.Operation.create("linalg.generic", results=[dst], operands=[v, init],
                            attributes={"indexing_maps": ir.ArrayAttr.get([ir.AffineMapAttr.get(idm)] * 2),
                                        "iterator_types": its,
                                        "operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 1])},
                            regions=1)
    blk = g.regions[0].blocks.append(rt.element_type, dst.element_type)
    with ir.InsertionPoint(blk):
        c = (arith.truncf if op_name == "arith.truncf" else arith.extf)(dst.element_type, blk.arguments[0])
        linalg.YieldOp([c])
    return g.results[0]


@register_pass
class DemoteF16(Pass):
    name = "texflow-demote-f16"
    summary = "Compute in f16: demote f32 constants, activations and ops; cast only at the function's inputs and outputs"

    def apply(self, module) -> None:
        for f in irutil.functions(module):
            self._function(f)

    def _function(self, f) -> None:
        ops = irutil.collect(f)
        boundary_in = [o for o in ops if o.name == "hal.tensor.import"]
        boundary_out = [o for o in ops if o.name in ("hal.tensor.barrier", "hal.tensor.export")]
        # 1. demote every f32 value and constant inside the body (not the ABI ops)
        for o in ops:
            if o.name in _ABI_OPS or o.name in irutil.FUNC_OPS:
                continue
            if o.name == "arith.constant":
                self._constant(o)
            for r in o.results:
                t = _f16_of(r.type)
                if t is not None:
                    r.set_type(t)
            for reg in o.regions:
                for blk in reg.blocks:
                    for a in blk.arguments:
                        t = _f16_of(a.type)
                        if t is not None:
                            a.set_type(t)
        # 2. casts that became no-ops (f16 -> f16)
        for o in ops:
            if o.name in _CASTS and o.operands[0].type == o.results[0].type:
                o.results[0].replace_all_uses_with(o.operands[0])
                o.erase()
                self.bump("casts made redundant")
        # 3. the edges: truncate imported inputs, extend exported outputs
        for o in boundary_in:
            r = o.results[0]
            t = _f16_of(r.type)
            if t is None:
                continue
            with ir.InsertionPoint.after(o), o.location:
                c = _cast_tensor(r, t, "arith.truncf")
            r.replace_all_uses_except(c, irutil.producer(c))
            self.bump("inputs truncated to f16")
        for o in boundary_out:  # barrier results and export operands stay f32
            for i in range(len(o.operands)):
                v = o.operands[i]
                if not _is_tensor(v) or str(ir.RankedTensorType(v.type).element_type) != "f16":
                    continue
                with ir.InsertionPoint(o), o.location:
                    o.operands[i] = _cast_tensor(v, _f32_of(v.type), "arith.extf")
                if o.name == "hal.tensor.barrier":
                    o.results[i].set_type(_f32_of(v.type))
                self.bump("outputs extended to f32")

    def _constant(self, o) -> None:
        attr = o.attributes["value"]
        t = _f16_of(o.results[0].type)
        if t is None:
            return
        if str(o.results[0].type) == "f32":
            o.attributes["value"] = ir.FloatAttr.get(ir.F16Type.get(), ir.FloatAttr(attr).value)
            return
        dense = ir.DenseElementsAttr(attr)
        rt = ir.RankedTensorType(t)
        if dense.is_splat:
            val = ir.FloatAttr(dense.get_splat_value()).value
            o.attributes["value"] = ir.DenseElementsAttr.get_splat(rt, ir.FloatAttr.get(ir.F16Type.get(), val))
        else:
            data = np.array(ir.DenseFPElementsAttr(attr)).reshape(rt.shape).astype(np.float16)
            o.attributes["value"] = ir.DenseElementsAttr.get(np.ascontiguousarray(data), type=rt)
        self.bump("constants demoted")


def _is_tensor(v) -> bool:
    try:
        ir.RankedTensorType(v.type)
        return True
    except ValueError:
        return False


def _f32_of(t):
    rt = ir.RankedTensorType(t)
    return ir.RankedTensorType.get(list(rt.shape), ir.F32Type.get(), rt.encoding)
