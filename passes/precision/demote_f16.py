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

Max and min reductions (softmax's row maximum, ReduceMax/Min, ArgMax) keep an f32 accumulator:
each f16 element is extended (exactly) before it is compared, and the result is truncated back
(exactly: it is one of the f16 inputs), so the values are those of an f16 reduction.  Why: on
an x86-64 CPU without AVX512-FP16 (AMD Zen 4, Skylake-AVX512, Haswell, baseline x86-64) LLVM
legalises a reduction of a `<N x half>` vector by max/min (`llvm.vector.reduce.fmax`,
`llvm.vp.reduce.fmax`, which IREE emits for these reductions, e.g. in the `linalg.softmax` it
raises the f16 softmax into) element by element through calls to libm's `fmaxf`/`fminf`, which
IREE's embedded ELF linker does not provide: the module failed to link (`undefined symbol:
fmaxf at iree-lld`).  Reductions of `<N x float>` are lowered inline on every x86-64 CPU.

`keep_f32` names ONNX nodes (op locations) that stay in f32: their ops, with everything nested
in them, keep f32 types, f16 operands are extended on the way in and f32 results truncated on
the way out.  Why: IREE 3.13's SPIR-V code generator rejects the f16 form of some kernels that
it compiles in f32 (SqueezeNet's classifier convolution, GPT-2's projections on
`vulkan-nvidia`); the compiler names the nodes of the dispatches IREE rejected and compiles
again with those nodes in f32 (`Compiler.compile_module`), and a user can name nodes too.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
from iree.compiler import ir
from iree.compiler.dialects import arith

from texflow import irutil
from texflow.ir.structured import cast_elements
from ..registry import Pass, register_pass

_CASTS = ("arith.truncf", "arith.extf")
_ABI_OPS = ("hal.tensor.import", "hal.tensor.barrier", "hal.tensor.export")  # keep f32
_EXTREMA = ("arith.maximumf", "arith.maxnumf", "arith.minimumf", "arith.minnumf")


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
    """Tensor `v` cast to `to_type`'s element type by `op_name` (arith.truncf / arith.extf)."""
    cast = arith.truncf if op_name == "arith.truncf" else arith.extf
    return cast_elements(v, ir.RankedTensorType(to_type).element_type, cast)


@register_pass
class DemoteF16(Pass):
    name = "texflow-demote-f16"
    summary = "Compute in f16: demote f32 constants, activations and ops; cast only at the function's inputs and outputs"

    @dataclasses.dataclass
    class Options:
        keep_f32: str = dataclasses.field(default="", metadata={
            "help": "comma-separated op location names (ONNX node names) whose ops stay in f32, "
                    "with casts at their edges"})

    def apply(self, module) -> None:
        self._keep = frozenset(n.strip() for n in self.options.keep_f32.split(",") if n.strip())
        for f in irutil.functions(module):
            self._function(f)

    def _function(self, f) -> None:
        n_kept = self._mark_kept(f)
        ops = [o for o in irutil.collect(f) if not _is_kept(o, f)]
        boundary_in = [o for o in ops if o.name == "hal.tensor.import"]
        boundary_out = [o for o in ops if o.name in ("hal.tensor.barrier", "hal.tensor.export")]
        # 1. demote every f32 value and constant inside the body (not the ABI ops, not the
        #    ops kept in f32)
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
        # 4. the edges of the ops kept in f32
        if n_kept:
            self._cast_kept_edges(f)
            self.bump("ops kept in f32", n_kept)
        # 5. max/min reductions accumulate in f32 (see the module doc)
        for o in irutil.collect(f, ("linalg.generic",)):
            self._widen_extremum_reduction(o)

    def _mark_kept(self, f) -> int:
        """Mark the function body's ops located at a kept name (_KEPT); ops nested in them
        are kept with them (a body is typed as a whole).  Returns how many were marked."""
        n = 0
        if not self._keep:
            return n
        for blk in f.regions[0].blocks:
            for o in blk.operations:
                o = o.operation
                if o.name not in _ABI_OPS and self._keep.intersection(location_names(o.location)):
                    o.attributes[_KEPT] = ir.UnitAttr.get()
                    n += 1
        return n

    def _cast_kept_edges(self, f) -> None:
        """Extend the f16 operands of kept ops; truncate kept results read by f16 ops; drop the
        marks."""
        for blk in f.regions[0].blocks:
            for o in list(blk.operations):
                o = o.operation
                if _KEPT not in o.attributes:
                    continue
                del o.attributes[_KEPT]
                for i in range(len(o.operands)):
                    v = o.operands[i]
                    p = irutil.producer(v)
                    if _element_type(v.type) == "f16" and (p is None or _KEPT not in p.attributes):
                        with ir.InsertionPoint(o), o.location:
                            o.operands[i] = _extend(v)
                # values a kept op's body captures from the (f16) function body
                for inner in irutil.collect(o)[1:]:
                    inner = irutil.operation(inner)
                    for i in range(len(inner.operands)):
                        v = inner.operands[i]
                        p = irutil.producer(v)
                        if _element_type(v.type) == "f16" and p is not None and not _within(p, o):
                            with ir.InsertionPoint(o), o.location:
                                inner.operands[i] = _extend(v)
                for r in o.results:
                    if _element_type(r.type) != "f32":
                        continue
                    users = [(u.owner, u.operand_number) for u in r.uses]
                    users = [(w, i) for w, i in users if irutil.operation(w).name not in _ABI_OPS
                             and not _is_kept(w, f)]
                    if not users:
                        continue
                    with ir.InsertionPoint.after(o), o.location:
                        if o.name == "tensor.empty":  # a shared init: an f16 one of its own
                            e = o.clone()
                            e.results[0].set_type(_f16_of(r.type))
                            r16 = e.results[0]
                        else:
                            r16 = _truncate(r)
                    for owner, i in users:
                        owner.operands[i] = r16

    def _widen_extremum_reduction(self, g) -> None:
        """Give each f16 max/min reduction of generic `g` an f32 accumulator: its init is
        extended, its body compares in f32 and its result is truncated back to f16."""
        its = [str(a) for a in ir.ArrayAttr(g.attributes["iterator_types"])]
        if not any("reduction" in a for a in its):
            return
        n_in = ir.DenseI32ArrayAttr(g.attributes["operandSegmentSizes"])[0]
        blk = g.regions[0].blocks[0]
        ops = list(blk.operations)
        yld = ops[-1]
        f16, f32 = ir.F16Type.get(), ir.F32Type.get()
        for j in range(len(g.results)):
            acc = blk.arguments[n_in + j]
            comb = irutil.producer(yld.operands[j])
            if str(acc.type) != "f16" or comb is None or comb.name not in _EXTREMA:
                continue
            others = [k for k in range(2) if comb.operands[k] != acc]
            if len(others) != 1 or comb.operands[1 - others[0]] != acc:
                continue
            loc = g.location
            # the init and the result, outside the body
            init = g.operands[n_in + j]
            with ir.InsertionPoint(g), loc:
                g.operands[n_in + j] = _cast_tensor(init, _f32_of(init.type), "arith.extf")
            r = g.results[j]
            r16_type = r.type
            r.set_type(_f32_of(r16_type))
            with ir.InsertionPoint.after(g), loc:
                r16 = _cast_tensor(r, r16_type, "arith.truncf")
            r.replace_all_uses_except(r16, irutil.producer(r16))
            # the body: other users of the accumulator (an arg-max's comparison) read it in f16
            acc.set_type(f32)
            users = [(u.owner, u.operand_number) for u in acc.uses if u.owner != comb]
            if users:
                with ir.InsertionPoint.at_block_begin(blk), loc:
                    acc16 = arith.truncf(f16, acc)
                for owner, i in users:
                    owner.operands[i] = acc16
            k = others[0]
            with ir.InsertionPoint(comb), loc:
                comb.operands[k] = arith.extf(f32, comb.operands[k])
            res = comb.results[0]
            res.set_type(f32)
            users = [(u.owner, u.operand_number) for u in res.uses if u.owner != yld.operation]
            if users:
                with ir.InsertionPoint.after(comb), loc:
                    res16 = arith.truncf(f16, res)
                for owner, i in users:
                    owner.operands[i] = res16
            self.bump("max/min reductions accumulated in f32")

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


def location_names(loc) -> set[str]:
    """The names in an op location: 'loc("node_conv2d_22")' -> {"node_conv2d_22"}; a fused
    location gives each of its names."""
    return set(re.findall(r'"([^"]*)"', str(loc)))


_KEPT = "texflow.keep_f32"  # marks, while the pass runs, the ops kept in f32


def _is_kept(o, f) -> bool:
    """Whether op `o` of function `f` is, or is nested in, an op marked _KEPT."""
    top = irutil.operation(o)
    for parent in irutil.enclosing_ops(o):
        if parent == f.operation:
            return _KEPT in top.attributes
        top = parent
    return False


def _within(p, o) -> bool:
    """Whether op `p` is nested in op `o`."""
    return any(parent == o for parent in irutil.enclosing_ops(p))


def _element_type(t) -> str | None:
    if str(t) in ("f16", "f32"):
        return str(t)
    try:
        return str(ir.RankedTensorType(t).element_type)
    except ValueError:
        return None


def _extend(v):
    if str(v.type) == "f16":
        return arith.extf(ir.F32Type.get(), v)
    return _cast_tensor(v, _f32_of(v.type), "arith.extf")


def _truncate(v):
    if str(v.type) == "f32":
        return arith.truncf(ir.F16Type.get(), v)
    return _cast_tensor(v, _f16_of(v.type), "arith.truncf")


def _is_tensor(v) -> bool:
    try:
        ir.RankedTensorType(v.type)
        return True
    except ValueError:
        return False


def _f32_of(t):
    rt = ir.RankedTensorType(t)
    return ir.RankedTensorType.get(list(rt.shape), ir.F32Type.get(), rt.encoding)
