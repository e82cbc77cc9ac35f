"""texflow-configure-kernels: give the kernels of texflow's channel-packed convolutions the
configuration measured fastest on the target, once IREE has formed its dispatches.

Why: IREE's SPIR-V heuristics configure an op by its loop structure.  texflow-select-layout's
channel-packed (NC4HW4) 1x1 convolution ends in a reduction loop of 4, so IREE 3.13 runs it as
*SubgroupReduce*, one 32-thread workgroup per output pixel: on an H200 ResNet-50's 1x1
convolutions ran at 0.2 TFLOP/s and took 7.5 of its 10 kernel milliseconds
(benchmarks/gpu/h200/profile/).  The target's table (`texflow.kernelconfig`, measured by
`python -m texflow.bench.tune_kernels`) says which pipeline and tiles run each shape fastest.

Why on IREE's dispatches (the `executable-sources` phase) rather than in texflow's layout phase:
IREE drops an op's `compilation_info` whenever it rebuilds the op, and it rebuilds convolutions
while forming dispatches (unit loops folded, pixels collapsed).  Configuring in the layout phase
meant writing each convolution in its final loop form by hand, with reshapes around it, and those
reshapes stopped IREE fusing the convolution's neighbours into its dispatch: a bias broadcast
became its own dispatch and a padding copy could no longer be written by its producer
(ResNet-50 on vulkan-nvidia: 57 dispatches without the table, 103 with it; H100, 2026-12-08).
Inside a dispatch the op is in its final form, and attaching the attribute changes nothing else:
the dispatches are exactly those IREE forms without a table.

Matched: the root `linalg.generic` of a dispatch in one of the table's classes (its loops as
`texflow.kernelconfig.table.KERNEL_CLASSES` names them, f32, body out + x * w):
- `conv1x1_nc4hw4`: out[fo, hw, fi] += x[kb, hw, k4] * w[fo, kb, k4, fi], the pixels collapsed
  and `conv1x1_nc4hw4_2d`, the same with two pixel loops out[fo, oh, ow, fi] (IREE keeps them
  apart when it writes the result into a padded buffer for the next convolution);
- `conv_nc4hw4_s1` / `_s2`: out[fo, oh, ow, fi] += x[co, s*oh + kh, s*ow + kw, ci]
  * w[fo, co, kh, kw, ci, fi], a KxK window (K > 1).
A shape that was not tuned takes the nearest tuned shape's configuration whose tiles divide its
loops (`nearest`); with none, IREE configures it.  The compiler retries without this pass if
IREE rejects a configured op (`Compiler.compile_module`).
"""

from __future__ import annotations

import dataclasses

from iree.compiler import ir

from texflow import irutil
from texflow.errors import TexflowError
from texflow.ir.structured import affine_maps, inputs_of, iterator_types, outputs_of, static_shape
from ..registry import Pass, register_pass

CONFIG_ATTR = "compilation_info"
_P, _R = "parallel", "reduction"


def _eval(e, point: list[int]) -> int | None:
    """The value of affine expression `e` at `point` (dims only), None for other forms."""
    if isinstance(e, ir.AffineDimExpr):
        return point[e.position]
    if isinstance(e, ir.AffineConstantExpr):
        return e.value
    if isinstance(e, (ir.AffineAddExpr, ir.AffineMulExpr)):
        lhs, rhs = _eval(e.lhs, point), _eval(e.rhs, point)
        if lhs is None or rhs is None:
            return None
        return lhs + rhs if isinstance(e, ir.AffineAddExpr) else lhs * rhs
    return None


# Points at which an indexing map is evaluated: in general position, so that a map agreeing with
# the expected function of the loops at all of them is it (whatever form IREE printed it in).
_PROBES = [[3, 5, 7, 1, 2, 1, 2, 3], [1, 2, 3, 2, 5, 2, 0, 1], [4, 11, 6, 3, 1, 0, 1, 2],
           [2, 1, 13, 0, 7, 1, 1, 0], [5, 3, 2, 1, 4, 0, 0, 3]]


def _is(m, n_loops: int, f) -> bool:
    """Affine map `m` (over `n_loops` loops) computes f(loops) at every probe point."""
    if m.n_dims != n_loops or m.n_symbols:
        return False
    return all([_eval(e, p[:n_loops]) for e in m.results] == f(p[:n_loops]) for p in _PROBES)


def _is_mul_add(op) -> bool:
    """The body computes out + a * b."""
    blk = op.regions[0].blocks[0]
    ops = [o.operation for o in blk.operations]
    if len(ops) != 3 or [o.name for o in ops] != ["arith.mulf", "arith.addf", "linalg.yield"]:
        return False
    a, b, out = blk.arguments
    mul, add, y = ops
    if {mul.operands[0], mul.operands[1]} != {a, b} or a == b:
        return False
    if {add.operands[0], add.operands[1]} != {mul.results[0], out}:
        return False
    return y.operands[0] == add.results[0]


def match_kernel(op) -> tuple[str, tuple[int, ...]] | None:
    """(class, loop sizes) of a dispatch's convolution in one of the kernel table's classes
    (module docstring), or None."""
    if op.name != "linalg.generic" or len(op.results) != 1:
        return None
    ins, outs = inputs_of(op), outputs_of(op)
    if len(ins) != 2 or len(outs) != 1:
        return None
    if str(ir.RankedTensorType(op.results[0].type).element_type) != "f32" or not _is_mul_add(op):
        return None
    xs, ws, os_ = static_shape(ins[0]), static_shape(ins[1]), static_shape(outs[0])
    if not (xs and ws and os_):
        return None
    its, (xm, wm, om) = iterator_types(op), affine_maps(op)
    if its == [_P] * 3 + [_R] * 2 and len(xs) == 3 and len(ws) == 4 and len(os_) == 3:
        f, hw, _ = os_
        c = ws[1]
        if (xs, ws, os_) != ([c, hw, 4], [f, c, 4, 4], [f, hw, 4]):
            return None
        if _is(xm, 5, lambda d: [d[3], d[1], d[4]]) and _is(wm, 5, lambda d: [d[0], d[3], d[4], d[2]]) \
                and _is(om, 5, lambda d: d[:3]):
            return "conv1x1_nc4hw4", (f, hw, 4, c, 4)
        return None
    if its == [_P] * 4 + [_R] * 2 and len(xs) == 4 and len(ws) == 4 and len(os_) == 4:
        f, oh, ow, _ = os_
        c = ws[1]
        if (xs, ws, os_) != ([c, oh, ow, 4], [f, c, 4, 4], [f, oh, ow, 4]):
            return None
        if _is(xm, 6, lambda d: [d[4], d[1], d[2], d[5]]) and _is(wm, 6, lambda d: [d[0], d[4], d[5], d[3]]) \
                and _is(om, 6, lambda d: d[:4]):
            return "conv1x1_nc4hw4_2d", (f, oh, ow, 4, c, 4)
        return None
    if its == [_P] * 4 + [_R] * 4 and len(xs) == 4 and len(ws) == 6 and len(os_) == 4:
        f, oh, ow, _ = os_
        c, kh, kw = ws[1], ws[2], ws[3]
        if kh * kw == 1 or ws != [f, c, kh, kw, 4, 4] or os_ != [f, oh, ow, 4] or xs[0] != c or xs[3] != 4:
            return None
        if not (_is(wm, 8, lambda d: [d[0], d[4], d[5], d[6], d[7], d[3]]) and _is(om, 8, lambda d: d[:4])):
            return None
        for s in (1, 2):
            if _is(xm, 8, lambda d: [d[4], s * d[1] + d[5], s * d[2] + d[6], d[7]]):
                return f"conv_nc4hw4_s{s}", (f, oh, ow, 4, c, kh, kw, 4)
    return None


def dispatch_kernels(module) -> list[tuple[object, str, tuple[int, ...]]]:
    """(op, class, loop sizes) of every configurable kernel in an executable-sources module."""
    found = []

    def visit(o):
        if o.name == "linalg.generic":
            m = match_kernel(o)
            if m is not None:
                found.append((o, *m))
    irutil.walk(irutil.operation(module), visit)
    return found


@register_pass
class ConfigureKernels(Pass):
    name = "texflow-configure-kernels"
    # Not undoable: it only sets attributes, and a snapshot would copy the whole module, weights
    # included; an error in it makes the compiler retry without it.
    summary = ("Give the NC4HW4 convolutions in IREE's dispatches (executable-sources phase) the "
               "SPIR-V pipeline and tiles measured fastest on the target, as compilation_info")

    @dataclasses.dataclass
    class Options:
        target: str = dataclasses.field(default="vulkan-nvidia", metadata={
            "help": "whose kernel table to use (texflow/kernelconfig/data/<target>.json); a "
                    "target without one leaves every op to IREE"})
        table: str = dataclasses.field(default="", metadata={
            "help": "a kernel table JSON to use instead of the target's"})
        nearest: bool = dataclasses.field(default=True, metadata={
            "help": "configure shapes that were not tuned from the nearest tuned shape"})

    def apply(self, module) -> None:
        from texflow import kernelconfig
        _check_target(self.options.target)
        table = kernelconfig.load(self.options.target, self.options.table or None)
        if table is None:
            self.bump("no kernel table for the target")
            return
        for op, cls, dims in dispatch_kernels(module):
            what = "1x1 convolutions" if cls.startswith("conv1x1") else "KxK convolutions"
            found = table.lookup(cls, dims)
            if found is None or (not self.options.nearest and found[1] != "tuned"):
                self.bump(f"{what} left to IREE (no fitting configuration)")
                continue
            config, how = found
            op.attributes[CONFIG_ATTR] = ir.Attribute.parse(config.attr_text())
            self.bump(f"{what} configured ({'tuned shape' if how == 'tuned' else 'nearest tuned shape'})")


def _check_target(target: str) -> None:
    if not target.startswith("vulkan"):
        raise TexflowError(f"texflow-configure-kernels configures SPIR-V code; target '{target}' is not a Vulkan target")
