"""texflow-widen-accumulators: f16 sums accumulate in f32.

Why: with `--precision=f16` every activation is stored in half precision, and IREE compiles an
f16 contraction or sum reduction with an f16 accumulator.  A sum can leave f16's range (65504)
although every value the model stores stays inside it: torchvision ResNet-50 gave NaN on
llvm-cpu, while its largest activation is 20,521 (ONNX Runtime, f32).  Its global average pool
sums 49 values of up to ~20,000 each.  Mobile f16 stacks keep f16 storage and accumulate in
f32 where accuracy needs it, and NVIDIA's cooperative-matrix units do exactly that
(f16 x f16 -> f32).

What it does, for every op whose result is an f16 sum over a reduction loop:
- a `linalg.generic` whose body yields `acc + x`: the init is extended to f32, the body adds in
  f32 (a product `a * b` feeding the sum is taken in f32 from the extended factors, so a
  contraction's terms are exact), and the result is rounded to f16 by an elementwise op after
  it, which IREE fuses into the same dispatch;
- a named contraction or convolution (matmul, batch_matmul, mmt4d, batch_mmt4d, the 2-D
  convolutions and depthwise convolutions, sum pooling): the same op rebuilt with f16 operands
  and an f32 init (linalg's named ops extend their operands to the output's type), then rounded;
- a sum whose only user scales it (a mean's division by the count) is scaled in f32 before it
  is rounded.

On Vulkan targets only sums of plain values (pooling, means) are widened (`contractions=false`,
see the option): ResNet-50's overflow was its global average pool, and IREE 3.13's SPIR-V code
generator rejects some f16 x f16 -> f32 convolutions.

It runs at the end of the layout phase with `--precision=f16`, after layout selection and
packing have written the ops' final forms (they build f16 bodies from f16 operands).  Max/min
reductions are widened by texflow-demote-f16 itself.  A `--layout-pipeline` without this pass
keeps IREE's f16 accumulators (for speed, where the sums are known to stay small).
"""

from __future__ import annotations

import dataclasses

from iree.compiler import ir
from iree.compiler.dialects import arith, linalg

from texflow import irutil
from texflow.ir.structured import cast_elements, inputs_of, iterator_types, outputs_of
from ..registry import Pass, register_pass

# named ops that accumulate a sum, and the attributes their builders take
_NAMED = {
    "linalg.matmul": (), "linalg.batch_matmul": (), "linalg.mmt4d": (), "linalg.batch_mmt4d": (),
    "linalg.conv_2d_nhwc_hwcf": ("strides", "dilations"),
    "linalg.conv_2d_nchw_fchw": ("strides", "dilations"),
    "linalg.depthwise_conv_2d_nhwc_hwc": ("strides", "dilations"),
    "linalg.depthwise_conv_2d_nchw_chw": ("strides", "dilations"),
    "linalg.pooling_nhwc_sum": ("strides", "dilations"),
    "linalg.pooling_nchw_sum": ("strides", "dilations"),
}


def _elem(v) -> str:
    try:
        return str(ir.RankedTensorType(v.type).element_type)
    except ValueError:
        return ""


_SCALE_OPS = ("arith.divf", "arith.mulf")


def _scale_in_f32(r) -> bool:
    """When f32 sum `r` feeds only an elementwise generic whose body scales it (a mean's
    division by the count, or a multiplication), do that first operation in f32 and round its
    result instead: the sum itself may exceed f16's range where the mean does not (ResNet-50's
    global average pool sums 49 values of up to ~20,000).  Returns whether it did."""
    uses = list(r.uses)
    if len(uses) != 1:
        return False
    user, k = uses[0].owner, uses[0].operand_number
    user = irutil.operation(user)
    if user.name != "linalg.generic" or any(i != "parallel" for i in iterator_types(user)) \
            or k >= len(inputs_of(user)):
        return False
    arg = user.regions[0].blocks[0].arguments[k]
    a_uses = list(arg.uses)
    if len(a_uses) != 1:
        return False
    op = a_uses[0].owner
    op = irutil.operation(op)
    if op.name not in _SCALE_OPS or str(op.results[0].type) != "f16" or op.operands[0] == op.operands[1]:
        return False
    f16, f32 = ir.F16Type.get(), ir.F32Type.get()
    user.operands[k] = r
    arg.set_type(f32)
    other = 1 - a_uses[0].operand_number
    with ir.InsertionPoint(op), op.location:
        op.operands[other] = arith.extf(f32, op.operands[other])
    res = op.results[0]
    res.set_type(f32)
    with ir.InsertionPoint.after(op), op.location:
        res16 = arith.truncf(f16, res)
    res.replace_all_uses_except(res16, irutil.producer(res16))
    return True


def _round_result(op, r) -> None:
    """`r` (now f32) rounded to f16 for every user, right after `op` (or after a scaling
    that follows it, see _scale_in_f32)."""
    if _scale_in_f32(r):
        return
    with ir.InsertionPoint.after(op), op.location:
        r16 = cast_elements(r, ir.F16Type.get(), arith.truncf)
    r.replace_all_uses_except(r16, irutil.producer(r16))


_CONTRACTIONS = {n for n in _NAMED if "pooling" not in n}


def _is_product_sum(g) -> bool:
    """Whether generic `g`'s body sums products (a contraction), not plain values."""
    return any(o.operation.name == "arith.mulf" for o in g.regions[0].blocks[0].operations)


@register_pass
class WidenAccumulators(Pass):
    name = "texflow-widen-accumulators"
    summary = "Accumulate f16 sums (contractions, convolutions, sum reductions) in f32, rounding results to f16"

    @dataclasses.dataclass
    class Options:
        contractions: bool = dataclasses.field(default=True, metadata={
            "help": "also contractions and convolutions (off: only sums of plain values, such as "
                    "pooling and means).  The Vulkan pipelines turn it off: IREE 3.13's SPIR-V "
                    "code generator fails on f16 x f16 -> f32 convolutions whose channels are not "
                    "a multiple of its cooperative-matrix tile ('no GPU subgroup mma compute ops "
                    "generated', MobileNetV2 on vulkan-nvidia)"})

    def apply(self, module) -> None:
        ops = []
        for f in irutil.functions(module):
            irutil.walk(f, lambda o: ops.append(o) if o.name.startswith("linalg.") else None)
        for o in ops:
            if o.name == "linalg.generic":
                if self.options.contractions or not _is_product_sum(o):
                    self._generic(o)
            elif o.name in _NAMED:
                if self.options.contractions or o.name not in _CONTRACTIONS:
                    self._named(o)

    def _generic(self, g) -> None:
        if "reduction" not in iterator_types(g) or len(outputs_of(g)) != len(g.results):
            return
        n_in = len(inputs_of(g))
        blk = g.regions[0].blocks[0]
        yld = list(blk.operations)[-1]
        f32 = ir.F32Type.get()
        for j in range(len(g.results)):
            acc = blk.arguments[n_in + j]
            comb = irutil.producer(yld.operands[j])
            if str(acc.type) != "f16" or comb is None or comb.name != "arith.addf":
                continue
            if comb.operands[0] == comb.operands[1] or acc not in (comb.operands[0], comb.operands[1]):
                continue
            if any(u.owner != comb for u in acc.uses):
                continue  # the accumulator is read otherwise too: not a plain sum
            k = 1 if comb.operands[0] == acc else 0
            term = comb.operands[k]
            init = g.operands[n_in + j]
            with ir.InsertionPoint(g), g.location:
                g.operands[n_in + j] = cast_elements(init, f32, arith.extf)
            r = g.results[j]
            r.set_type(ir.RankedTensorType.get(list(ir.RankedTensorType(r.type).shape), f32))
            _round_result(g, r)
            acc.set_type(f32)
            mul = irutil.producer(term)
            with ir.InsertionPoint(comb), g.location:
                if mul is not None and mul.name == "arith.mulf" and len(list(term.uses)) == 1 \
                        and str(term.type) == "f16":
                    # the product of two f16 factors, exact in f32
                    a, b = (arith.extf(f32, x) for x in mul.operands)
                    comb.operands[k] = arith.mulf(a, b)
                    mul.erase()
                else:
                    comb.operands[k] = arith.extf(f32, term)
            comb.results[0].set_type(f32)
            self.bump("f16 sums accumulated in f32 (generic)")

    def _named(self, o) -> None:
        outs = outputs_of(o)
        if len(outs) != 1 or _elem(outs[0]) != "f16":
            return
        if any(_elem(v) not in ("f16", "f32", "") for v in inputs_of(o)):
            return
        f32 = ir.F32Type.get()
        build = getattr(linalg, o.name.split(".", 1)[1])
        kw = {a: irutil.int_array(o.attributes[a]) for a in _NAMED[o.name] if a in o.attributes}
        if "indexing_maps" in o.attributes:  # a matmul's maps (transposed operands) kept as they are
            kw["indexing_maps"] = [ir.AffineMapAttr(a).value for a in ir.ArrayAttr(o.attributes["indexing_maps"])]
        with ir.InsertionPoint(o), o.location:
            init = cast_elements(outs[0], f32, arith.extf)
            new = irutil.result_value(build(*inputs_of(o), outs=[init], **kw))
        old = o.results[0]
        old.replace_all_uses_with(new)
        o.erase()
        _round_result(irutil.producer(new), new)
        self.bump("f16 sums accumulated in f32 (named op)")

