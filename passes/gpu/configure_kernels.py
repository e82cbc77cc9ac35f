"""texflow-configure-kernels: give texflow's own GPU contractions the configuration measured
fastest on the target.

Why: IREE's SPIR-V heuristics configure an op by its loop structure.  texflow-select-layout's
channel-packed (NC4HW4) 1x1 convolution ends in a reduction loop of 4, so IREE 3.13 runs it as
*SubgroupReduce*, one 32-thread workgroup per output pixel: on an H200 ResNet-50's 1x1
convolutions ran at 0.2 TFLOP/s and took 7.5 of its 10 kernel milliseconds
(benchmarks/gpu/h200/profile/).  The target's table (`texflow.kernelconfig`, measured by
`python -m texflow.bench.tune_kernels`) says which pipeline and tiles run each shape fastest.

What it does, for each f32 NC4HW4 convolution (the `linalg.generic` texflow-select-layout
writes: loops n fo oh ow fi | co kh kw ci, batch 1) of a class the table has (a stride-1 1x1
one, `conv1x1_nc4hw4`; a KxK one of stride 1 or 2, `conv_nc4hw4_s1`/`_s2`) whose shape it covers
(tuned, or the nearest tuned shape whose tiles divide it):

- rewrites it into the loop form IREE's dispatch keeps: the batch loop dropped and, for a 1x1
  convolution, the window loops dropped and the pixels collapsed into one loop,
  out[fo, hw, fi] += x[kb, hw, k4] * w[fo, kb, k4, fi] (`tensor.collapse_shape` of the input and
  init, the filter re-laid out at compile time, a `tensor.expand_shape` of the result).  IREE
  would fold those loops itself, rebuilding the op and dropping any attribute on it;
- attaches `compilation_info` (pipeline, workgroup size, tile sizes) from the table.

Ops the table does not cover are left as they are.  The pass runs on Vulkan targets only; the
compiler retries without it if IREE rejects a configured op (`Compiler.compile_module`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from iree.compiler import ir

from texflow import irutil
from texflow.errors import TexflowError
from texflow.ir.constants import constant_array, make_constant
from texflow.kernelconfig.table import loops_of
from texflow.ir.structured import (affine_maps, build_reshape, inputs_of, iterator_types,
                                   outputs_of, rebuild_generic, static_shape)
from ..registry import Pass, register_pass

CONFIG_ATTR = "compilation_info"
_SELECT_ITERATORS = ["parallel"] * 5 + ["reduction"] * 4


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


# Points (n fo oh ow fi co kh kw ci) at which an input map is evaluated: in general position, so
# that an affine map agreeing with (n, co, s*oh + d*kh, s*ow + d*kw, ci) at all of them is it.
_PROBES = [[0, 3, 5, 7, 1, 2, 1, 2, 3], [0, 1, 2, 3, 2, 5, 2, 0, 1], [0, 4, 11, 6, 3, 1, 0, 1, 2],
           [0, 2, 1, 13, 0, 7, 1, 1, 0], [0, 5, 3, 2, 1, 4, 0, 0, 3]]


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


def _stride_dilation(xm) -> tuple[int, int] | None:
    """(stride, dilation) of select's input map (n, co, s*oh + d*kh, s*ow + d*kw, ci), or None."""
    if xm.n_dims != 9 or xm.n_symbols or len(xm.results) != 5:
        return None
    got = [[_eval(e, p) for e in xm.results] for p in _PROBES]
    for s in (1, 2, 3, 4):
        for d in (1, 2, 3, 4):
            if got == [[p[0], p[5], s * p[2] + d * p[6], s * p[3] + d * p[7], p[8]] for p in _PROBES]:
                return s, d
    return None


@dataclasses.dataclass
class PackedConv:
    """A batch-1 f32 convolution on NC4HW4 tensors as texflow-select-layout writes it."""
    op: object
    x: object
    w: object  # the filter value, (F/4, C/4, KH, KW, 4, 4)
    w_data: object  # its numpy data when it is a constant (re-laid out at compile time), else None
    init: object
    f: int
    c: int
    oh: int
    ow: int
    kh: int
    kw: int
    stride: int
    dilation: int
    hin: int
    win: int

    @property
    def kernel_class(self) -> str | None:
        """Its class in the kernel tables (texflow.kernelconfig), or None."""
        if (self.kh, self.kw, self.stride) == (1, 1, 1) and (self.hin, self.win) == (self.oh, self.ow):
            return "conv1x1_nc4hw4"
        if self.kh * self.kw > 1 and self.dilation == 1 and self.stride in (1, 2):
            return f"conv_nc4hw4_s{self.stride}"
        return None

    @property
    def dims(self) -> tuple[int, ...]:
        """Its loop sizes in its class's form."""
        if self.kernel_class == "conv1x1_nc4hw4":
            return (self.f, self.oh * self.ow, 4, self.c, 4)
        return (self.f, self.oh, self.ow, 4, self.c, self.kh, self.kw, 4)


def match_packed_conv(op) -> PackedConv | None:
    """The NC4HW4 f32 convolution texflow-select-layout writes (loops n fo oh ow fi | co kh kw
    ci, batch 1), or None."""
    if op.name != "linalg.generic" or len(op.results) != 1:
        return None
    ins, outs = inputs_of(op), outputs_of(op)
    if len(ins) != 2 or len(outs) != 1 or iterator_types(op) != _SELECT_ITERATORS:
        return None
    xs, ws, os_ = static_shape(ins[0]), static_shape(ins[1]), static_shape(outs[0])
    if not (xs and ws and os_) or len(xs) != 5 or len(ws) != 6 or len(os_) != 5:
        return None
    if str(ir.RankedTensorType(op.results[0].type).element_type) != "f32":
        return None
    n, c, hin, win, l = xs
    _, f, oh, ow, _ = os_
    kh, kw = ws[2], ws[3]
    if (n, l) != (1, 4) or os_ != [1, f, oh, ow, 4] or ws != [f, c, kh, kw, 4, 4]:
        return None
    d = [ir.AffineDimExpr.get(i) for i in range(9)]
    n_, fo, oh_, ow_, fi, co, kh_, kw_, ci = d
    maps = affine_maps(op)
    if maps[1] != ir.AffineMap.get(9, 0, [fo, co, kh_, kw_, ci, fi]) or \
            maps[2] != ir.AffineMap.get(9, 0, [n_, fo, oh_, ow_, fi]):
        return None
    sd = _stride_dilation(maps[0])
    if sd is None or not _is_mul_add(op):
        return None
    cst = irutil.producer(ins[1])
    wd = constant_array(cst, 1 << 26) if cst is not None and cst.name == "arith.constant" else None
    return PackedConv(op, ins[0], ins[1], wd, outs[0], f, c, oh, ow, kh, kw, sd[0], sd[1], hin, win)


def rewrite(m: PackedConv, config_text: str):
    """`m` in its class's loop form with `config_text` as its compilation_info (returns the new
    generic).  conv1x1_nc4hw4: out[fo, hw, fi] += x[kb, hw, k4] * w[fo, kb, k4, fi];
    conv_nc4hw4_s*: the batch loop dropped, the rest as it was."""
    op = m.op
    et = ir.RankedTensorType(op.results[0].type).element_type
    with ir.InsertionPoint(op), op.location:
        if m.kernel_class == "conv1x1_nc4hw4":
            hw = m.oh * m.ow
            x_shape, o_shape, w_shape = [m.c, hw, 4], [m.f, hw, 4], [m.f, m.c, 4, 4]
            d = [ir.AffineDimExpr.get(i) for i in range(5)]
            fo, p, fi, kb, k4 = d
            maps = [ir.AffineMap.get(5, 0, [kb, p, k4]), ir.AffineMap.get(5, 0, [fo, kb, k4, fi]),
                    ir.AffineMap.get(5, 0, [fo, p, fi])]
        else:
            s = m.stride
            x_shape, o_shape = [m.c, m.hin, m.win, 4], [m.f, m.oh, m.ow, 4]
            w_shape = [m.f, m.c, m.kh, m.kw, 4, 4]
            d = [ir.AffineDimExpr.get(i) for i in range(8)]
            fo, oh, ow, fi, co, kh, kw, ci = d
            maps = [ir.AffineMap.get(8, 0, [co, oh * s + kh, ow * s + kw, ci]),
                    ir.AffineMap.get(8, 0, [fo, co, kh, kw, ci, fi]),
                    ir.AffineMap.get(8, 0, [fo, oh, ow, fi])]
        _, iters = loops_of(m.kernel_class)
        x = build_reshape(m.x, [1, m.c, m.hin, m.win, 4], x_shape, et)
        init = build_reshape(m.init, [1, m.f, m.oh, m.ow, 4], o_shape, et)
        if w_shape == [m.f, m.c, m.kh, m.kw, 4, 4]:
            wv = m.w
        elif m.w_data is not None:  # a constant filter is re-laid out at compile time
            wv = make_constant(np.ascontiguousarray(m.w_data.reshape(w_shape)),
                               ir.RankedTensorType.get(w_shape, et))
        else:
            wv = build_reshape(m.w, [m.f, m.c, m.kh, m.kw, 4, 4], w_shape, et)
        new = rebuild_generic(op, [x, wv], [init], maps, list(iters),
                              [ir.RankedTensorType.get(o_shape, et)])
        new.attributes[CONFIG_ATTR] = ir.Attribute.parse(config_text)
        out = build_reshape(new.results[0], o_shape, [1, m.f, m.oh, m.ow, 4], et)
    op.results[0].replace_all_uses_with(out)
    op.erase()
    return new


@register_pass
class ConfigureKernels(Pass):
    name = "texflow-configure-kernels"
    undoable = True  # an optimisation: dropped, not fatal, if its result does not verify
    summary = ("Give texflow's NC4HW4 convolutions the SPIR-V pipeline and tiles measured fastest "
               "on the target, as IREE compilation_info")

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
        ops = []
        for f in irutil.functions(module):
            irutil.walk(f, lambda o: ops.append(o) if o.name == "linalg.generic" else None)
        for op in ops:
            m = match_packed_conv(op)
            cls = m.kernel_class if m is not None else None
            if cls is None:
                continue
            what = "1x1 convolutions" if cls == "conv1x1_nc4hw4" else "KxK convolutions"
            found = table.lookup(cls, m.dims)
            if found is None or (not self.options.nearest and found[1] != "tuned"):
                self.bump(f"{what} left to IREE (no fitting configuration)")
                continue
            config, how = found
            rewrite(m, config.attr_text())
            self.bump(f"{what} configured ({'tuned shape' if how == 'tuned' else 'nearest tuned shape'})")


def _check_target(target: str) -> None:
    if not target.startswith("vulkan"):
        raise TexflowError(f"texflow-configure-kernels configures SPIR-V code; target '{target}' is not a Vulkan target")
