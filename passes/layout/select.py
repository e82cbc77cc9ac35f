"""texflow-select-layout: choose the physical layout of every tensor in convolution regions.

Why: elimination removes the layout transformations a model was exported with, but the
layout the convolutions then compute in (ONNX's NCHW) is rarely the one the target reads
best.  SmartMem's second step is to *choose* layouts: a producer writes what its consumer
reads best, and the cost of each choice is the target's.  Here a region is the graph of
2-D convolutions (`linalg.conv_2d_nchw_fchw`, `linalg.depthwise_conv_2d_nchw_chw`), the
elementwise ops, spatial pads and max/sum pooling between them.  Each of its tensors gets one of

- `nchw`   the logical layout (no change),
- `nhwc`   channels innermost: the convolution's reduction dimension contiguous,
- `nc4hw4` channels packed by four innermost (`N x C/4 x H x W x 4`): the "texel" layout
           of a mobile GPU's 2.5D texture memory, expressed on IREE's storage buffers,

chosen to minimise a per-target cost (`texflow.selection.costmodel`: measured on llvm-cpu
and on an NVIDIA GPU through Vulkan, published figures for Adreno and Mali) of the
convolutions in their layouts plus the conversions between layouts.  That is a PBQP
problem (`texflow.selection.solver`): CP-SAT solves it exactly within a time limit, and
SmartMem's greedy rule takes over on large graphs; the report says which one decided.

Lowering: a convolution in NHWC becomes `linalg.conv_2d_nhwc_hwcf` (depthwise:
`depthwise_conv_2d_nhwc_hwc`); in NC4HW4 it becomes a `linalg.generic` over packed
operands.  Filters and biases are re-laid out at compile time (constants, never at run
time).  Elementwise ops, pads and pooling are rebuilt in their tensor's layout.  Conversions
are `linalg.transpose` (NHWC) and `linalg.pack` / `linalg.unpack` (NC4HW4; on Vulkan an
expand_shape + transpose, which IREE's SPIR-V backend can tile) at the edges of a region,
shared by all consumers of a value; on llvm-cpu a region input's conversion is followed by a
`util.optimization_barrier` so that IREE does not fuse it into the convolution (`barrier`).  A solution
needing more than `max-conversions-per-conv` conversions per convolution is rejected (the
model counts a conversion's bytes, not the fusion IREE loses).  Every rebuilt op carries a
`layout.physical` attribute (stripped by texflow-lower-layout), and the module gets a
readable report in its `texflow.layout_selection` attribute.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from iree.compiler import ir
from iree.compiler.dialects import arith, linalg, tensor

from texflow import irutil
from texflow.dialects.layout import PHYSICAL_ATTR, PhysicalLayout
from texflow.errors import TexflowError
from texflow.streaming.stages import tensor_bytes
from texflow.ir.constants import constant_array, make_constant
from texflow.ir.structured import (affine_maps, build_generic, build_reshape, is_elementwise, pack_op,
                                   rebuild_generic, reads_output as _reads_output, static_shape as _shape,
                                   unpack_op)
from ..registry import Pass, register_pass

REPORT_ATTR = "texflow.layout_selection"
# Pooling keeps its window's loops; only NHWC has a named form (no packed one).
POOLS = {"linalg.pooling_nchw_max": "pooling_nhwc_max", "linalg.pooling_nchw_sum": "pooling_nhwc_sum"}
# IREE 3.13's code for a depthwise convolution in NCHW (and as a channel-packed generic) gave
# wrong numbers on lavapipe for these targets, while NHWC was right (docs/known-issues.md):
# there, depthwise convolutions are always given NHWC, whatever the cost.
MISCOMPILED_DEPTHWISE = ("vulkan-generic", "vulkan-valhall", "vulkan-adreno")
# IREE 3.13 cannot compile an f16 convolution in NCHW for this target ("no GPU subgroup mma
# compute ops generated"): in f16 its convolutions never stay NCHW.
NO_F16_NCHW_CONV = ("vulkan-nvidia",)
# Logical NCHW dim -> expression over the layout's loops (rank 4 or 5).
_LOOPS = {"nchw": 4, "nhwc": 4, "nc4hw4": 5}
_PHYSICAL = {"nhwc": PhysicalLayout([0, 2, 3, 1]), "nc4hw4": PhysicalLayout([0, 1, 2, 3], (1, 4))}


def _logical_exprs(layout: str) -> list:
    d = [ir.AffineDimExpr.get(i) for i in range(_LOOPS[layout])]
    if layout == "nchw":
        return d
    if layout == "nhwc":
        return [d[0], d[3], d[1], d[2]]
    return [d[0], d[1] * 4 + d[4], d[2], d[3]]


def physical_shape(shape: list[int], layout: str) -> list[int]:
    n, c, h, w = shape
    return {"nchw": [n, c, h, w], "nhwc": [n, h, w, c], "nc4hw4": [n, c // 4, h, w, 4]}[layout]


def _elem(v) -> str:
    return "f16" if str(ir.RankedTensorType(v.type).element_type) == "f16" else "f32"


def _conversions_needed(pb, x: list[str]) -> int:
    """Distinct conversions a solution inserts: one per (value, layout) read in another layout
    (shared by its consumers), two when neither layout is NCHW."""
    need = set()
    for p, q, _, fixed in pb.edges:
        to = fixed if q is None else x[q]
        if to != x[p]:
            need.add((p, to, pb.conversions(x[p], to)))
    for i, (fixed, q, _) in enumerate(pb.sources):
        if x[q] != fixed:
            need.add((("src", i), x[q], pb.conversions(fixed, x[q])))
    return sum(k for _, _, k in need)


def _node_index(nodes) -> dict:
    """hash of each node's result -> its index (see `_node_of`)."""
    return {hash(n.op.results[0]): i for i, n in enumerate(nodes)}


def _node_of(v, nodes, index) -> int | None:
    """The index of the node whose result is `v`, else None (hashes are only a hint)."""
    i = index.get(hash(v))
    return i if i is not None and nodes[i].op.results[0] == v else None


def _activation_domain(shape: list[int], allowed) -> list[str]:
    """Layouts an elementwise op or a pad may take: NC4HW4 needs channels divisible by 4."""
    return [l for l in ("nchw", "nhwc", "nc4hw4") if l in allowed and (l != "nc4hw4" or shape[1] % 4 == 0)]


def _loc_name(op) -> str:
    """The ONNX node name in an op's location (`loc("node_Conv_3")`), else the location."""
    text = str(op.location)
    return text[5:-2] if text.startswith('loc("') and text.endswith('")') else text


@dataclasses.dataclass
class Node:
    op: object
    kind: str  # conv, dwconv, eltwise, pad
    domain: list[str]
    flops: float = 0.0
    region_inputs: list[int] = dataclasses.field(default_factory=list)  # operand indices
    in_channels: int | None = None
    patch: bool = False  # stride = kernel (a patch embedding)


@register_pass
class SelectLayout(Pass):
    name = "texflow-select-layout"
    undoable = True  # an optimisation: dropped, not fatal, if its result does not verify
    summary = ("Choose NCHW, NHWC or texel-packed NC4HW4 for each tensor of convolution regions "
               "by a per-target cost model (CP-SAT, greedy fallback)")

    @dataclasses.dataclass
    class Options:
        target: str = dataclasses.field(default="llvm-cpu", metadata={
            "help": "cost model: llvm-cpu, vulkan-nvidia (measured), vulkan-adreno, vulkan-valhall, "
                    "vulkan-generic (published figures)"})
        cost_model: str = dataclasses.field(default="", metadata={
            "help": "a calibration JSON to use instead of the target's"})
        layouts: str = dataclasses.field(default="nchw,nhwc,nc4hw4", metadata={
            "help": "layouts the selection may use (nchw is always allowed)"})
        solver: str = dataclasses.field(default="auto", metadata={"help": "auto | cpsat | greedy"})
        time_limit: float = dataclasses.field(default=5.0, metadata={
            "help": "CP-SAT deterministic seconds (its work counter, not the clock: the same "
                    "answer under any machine load)"})
        max_exact_nodes: int = dataclasses.field(default=2000, metadata={
            "help": "larger regions are solved by the greedy rule"})
        packing: str = dataclasses.field(default="auto", metadata={
            "help": "how NC4HW4 conversions are written: pack (linalg.pack/unpack), transpose "
                    "(expand_shape + linalg.transpose), auto (transpose on vulkan targets, whose "
                    "SPIR-V code generator cannot tile linalg.pack in IREE 3.13)"})
        barrier: str = dataclasses.field(default="auto", metadata={
            "help": "a util.optimization_barrier after each conversion of a region input: true, "
                    "false, auto (llvm-cpu only: IREE's CPU path fused the conversion into the "
                    "convolution, ViT's patch embedding 2.4x slower; on the H100 the barrier "
                    "made MobileNetV2 1.24x slower)"})
        max_conversions_per_conv: float = dataclasses.field(default=1.0, metadata={
            "help": "keep a function's layouts when the selection needs more conversions than "
                    "this per convolution (at least 2): the cost model counts a conversion's bytes, "
                    "not the fusion IREE loses (SD-UNet: 88 conversions, predicted 34% faster, "
                    "measured 1.2x slower)"})
        force: str = dataclasses.field(default="", metadata={
            "help": "give every tensor that can take it this layout instead of solving "
                    "(tests and benchmarks)"})

    def apply(self, module) -> None:
        from texflow.selection import costmodel, solver as sv
        if self.options.solver not in ("auto", "cpsat", "greedy"):
            raise TexflowError(f"solver must be auto, cpsat or greedy, got '{self.options.solver}'")
        allowed = {l.strip() for l in self.options.layouts.split(",") if l.strip()} | {"nchw"}
        if self.options.force:
            allowed.add(self.options.force)
        bad = allowed - set(costmodel.LAYOUTS)
        if bad:
            raise TexflowError(f"unknown layout(s) {sorted(bad)} (known: {', '.join(costmodel.LAYOUTS)})")
        cm = costmodel.load(self.options.target, self.options.cost_model or None)
        if self.options.packing not in ("auto", "pack", "transpose"):
            raise TexflowError(f"packing must be auto, pack or transpose, got '{self.options.packing}'")
        if self.options.barrier not in ("auto", "true", "false"):
            raise TexflowError(f"barrier must be auto, true or false, got '{self.options.barrier}'")
        # both 'auto's follow the target: Vulkan gets reshape + transpose and no barrier
        gpu = self.options.target.startswith("vulkan")
        self._use_pack = self.options.packing == "pack" or (self.options.packing == "auto" and not gpu)
        self._use_barrier = self.options.barrier == "true" or (self.options.barrier == "auto" and not gpu)
        report = {"cost_model": cm.describe(), "functions": {}}
        for f in irutil.functions(module):
            nodes = self._collect(f, cm, allowed)
            if not any(n.kind in ("conv", "dwconv") for n in nodes):
                continue
            pb, index = self._problem(nodes, cm)
            if self.options.force:
                x = [self.options.force if self.options.force in d else
                     "nchw" if "nchw" in d else d[0] for d in pb.domains]
                sol = sv.Solution(x, pb.cost(x), f"forced ({self.options.force})", 0.0)
            else:
                sol = sv.solve(pb, self.options.solver, self.options.time_limit,
                               self.options.max_exact_nodes)
            ref = ["nchw" if "nchw" in d else d[0] for d in pb.domains]
            base = pb.cost(ref)
            entry = {"solver": sol.solver,
                     "estimated_ms": round(sol.cost, 4), "estimated_ms_all_nchw": round(base, 4),
                     "lower_bound_ms": None if sol.bound is None else round(sol.bound, 4)}
            n_conv = sum(1 for n in nodes if n.kind in ("conv", "dwconv"))
            n_cvt = _conversions_needed(pb, sol.layouts)
            limit = max(2.0, self.options.max_conversions_per_conv * n_conv)
            if not self.options.force and n_cvt > limit:
                entry["rejected"] = (f"{n_cvt} conversions for {n_conv} convolutions (limit "
                                     f"{limit:g}): kept the layouts IREE would use")
                sol.layouts = ref
                self.bump("selections rejected (too many conversions)")
            entry.update(self._rewrite(nodes, sol.layouts, index))
            report["functions"][ir.StringAttr(f.attributes["sym_name"]).value] = entry
            self.bump("layouts forced" if sol.solver.startswith("forced") else
                      "solved exactly" if sol.solver.startswith("cp-sat (optimal") else
                      "solved by the greedy rule" if sol.solver.startswith("greedy") else
                      "solved by cp-sat (not proven optimal)")
        if report["functions"]:
            module.attributes[REPORT_ATTR] = ir.StringAttr.get(json.dumps(report, sort_keys=True))

    # -- the problem ---------------------------------------------------------------------
    def _collect(self, f, cm, allowed) -> list[Node]:
        """The function's candidate ops, keeping only those connected (through the tensors
        they pass each other) to a convolution or pooling: attention's 4-D elementwise ops
        have nothing to choose."""
        nodes: list[Node] = []
        for op in f.regions[0].blocks[0].operations:
            op = op.operation
            n = self._node(op, cm, allowed)
            if n is not None:
                nodes.append(n)
        index = _node_index(nodes)
        parent = list(range(len(nodes)))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i
        for i, n in enumerate(nodes):
            for k in n.region_inputs:
                p = _node_of(n.op.operands[k], nodes, index)
                if p is not None:
                    parent[find(p)] = find(i)
        anchored = {find(i) for i, n in enumerate(nodes) if n.kind in ("conv", "dwconv", "pool")}
        return [n for i, n in enumerate(nodes) if find(i) in anchored]

    def _node(self, op, cm, allowed) -> Node | None:
        name = op.name
        if name in ("linalg.conv_2d_nchw_fchw", "linalg.depthwise_conv_2d_nchw_chw"):
            x, w = op.operands[0], op.operands[1]
            out = op.results[0]
            xs, ws, os_ = _shape(x), _shape(w), _shape(out)
            if not (xs and ws and os_) or len(xs) != 4:
                return None
            cst = irutil.producer(w)
            if cst is None or cst.name != "arith.constant" or constant_array(cst, 1 << 26) is None:
                self.bump("convolutions left in NCHW (filter not a constant)")
                return None
            kind = "conv" if name.endswith("fchw") else "dwconv"
            strides = irutil.int_array(op.attributes["strides"])
            patch = kind == "conv" and ws[-1] >= 4 and list(ws[-2:]) == strides
            dom = [l for l in cm.layouts(kind, _elem(out), xs[1], patch) if l in allowed]
            if kind == "dwconv" and self.options.target in MISCOMPILED_DEPTHWISE:
                dom = ["nhwc"]
            if _elem(out) == "f16" and self.options.target in NO_F16_NCHW_CONV and len(dom) > 1:
                dom = [l for l in dom if l != "nchw"]
            if "nc4hw4" in dom and (xs[1] % 4 or os_[1] % 4):
                dom.remove("nc4hw4")
            k = ws[-2] * ws[-1] * (ws[1] if kind == "conv" else 1)
            return Node(op, kind, dom, 2.0 * float(np.prod(os_)) * k, [0], xs[1], patch)
        if name in POOLS:
            xs, os_ = _shape(op.operands[0]), _shape(op.results[0])
            if not (xs and os_) or len(xs) != 4:
                return None
            return Node(op, "pool", [l for l in ("nchw", "nhwc") if l in allowed], 0.0, [0])
        if name == "linalg.generic" and is_elementwise(op) and not _reads_output(op):
            s = _shape(op.results[0])
            maps = affine_maps(op)
            ins = list(op.operands)[:len(maps) - 1]
            if not s or len(s) != 4 or not maps[-1].is_permutation or \
                    list(maps[-1].results) != [ir.AffineDimExpr.get(i) for i in range(4)]:
                return None
            region = []
            for i, (v, m) in enumerate(zip(ins, maps)):
                if not all(isinstance(e, (ir.AffineDimExpr, ir.AffineConstantExpr))
                           for e in m.results):
                    return None
                if _shape(v) == s and m == ir.AffineMap.get_identity(4):
                    region.append(i)
            return Node(op, "eltwise", _activation_domain(s, allowed), 0.0, region)
        if name == "tensor.pad":
            s = _shape(op.results[0])
            if not s or len(s) != 4 or len(op.operands) != 1:
                return None
            low, high = list(ir.DenseI64ArrayAttr(op.attributes["static_low"])), \
                list(ir.DenseI64ArrayAttr(op.attributes["static_high"]))
            if low[:2] != [0, 0] or high[:2] != [0, 0]:
                return None
            body = op.regions[0].blocks[0]
            if len(body.operations) != 1:  # only a yield of a value from outside
                return None
            return Node(op, "pad", _activation_domain(s, allowed), 0.0, [0])
        return None

    def _problem(self, nodes: list[Node], cm):
        from texflow.selection.solver import Problem
        index = _node_index(nodes)
        unary, edges, sources = [], [], []
        for i, n in enumerate(nodes):
            e = _elem(n.op.results[0])
            unary.append({l: (cm.op_ms(n.kind, l, n.flops, e, n.in_channels, n.patch)
                              if n.kind in ("conv", "dwconv") else 0.0)
                          for l in n.domain})
            for k in n.region_inputs:
                v = n.op.operands[k]
                w = cm.move_ms(tensor_bytes(v.type), e, _shape(v)[1])
                p = _node_of(v, nodes, index)
                if p is not None:
                    edges.append((p, i, w, None))
                else:
                    sources.append(("nchw", i, w))
            # consumers outside the region (or reading this value other than as a region
            # operand) need the logical layout: one shared conversion
            if self._outside_uses(n, nodes, index):
                edges.append((i, None, cm.move_ms(tensor_bytes(n.op.results[0].type), e,
                                                  _shape(n.op.results[0])[1]), "nchw"))
        return Problem([n.domain for n in nodes], unary, edges, sources), index

    def _outside_uses(self, n: Node, nodes, index) -> list:
        out = []
        v = n.op.results[0]
        for u in v.uses:
            owner = irutil.operation(u.owner)
            j = _node_of(owner.results[0], nodes, index) if len(owner.results) else None
            if j is None or u.operand_number not in nodes[j].region_inputs:
                out.append(u)
        return out

    # -- the rewrite ---------------------------------------------------------------------
    def _rewrite(self, nodes: list[Node], layouts: list[str], index) -> dict:
        choices = [{"op": _loc_name(n.op) or f"#{i}", "kind": n.kind,
                    "shape": "x".join(map(str, _shape(n.op.results[0]))), "layout": l}
                   for i, (n, l) in enumerate(zip(nodes, layouts))]
        avail: list[dict[str, object]] = [dict() for _ in nodes]
        src_cache: dict[tuple[int, str], object] = {}
        conversions = 0

        def convert(v, frm: str, to: str):
            nonlocal conversions
            if frm == to:
                return v
            if frm != "nchw" and to != "nchw":
                return convert(convert(v, frm, "nchw"), "nchw", to)
            conversions += 1
            s = _shape(v)
            et = ir.RankedTensorType(v.type).element_type
            if "nhwc" in (frm, to):
                perm = [0, 2, 3, 1] if to == "nhwc" else [0, 3, 1, 2]
                init = tensor.empty([s[p] for p in perm], et)
                return irutil.result_value(linalg.transpose(v, outs=[init], permutation=perm))
            if to == "nc4hw4":
                ps = physical_shape(s, "nc4hw4")
                if not self._use_pack:  # (N, C/4, 4, H, W) view, then channels-in-4 innermost
                    n, c, h, w = s
                    ex = build_reshape(v, s, [n, c // 4, 4, h, w], et)
                    init = tensor.empty(ps, et)
                    return irutil.result_value(linalg.transpose(ex, outs=[init], permutation=[0, 1, 3, 4, 2]))
                return pack_op(v, tensor.empty(ps, et), [1], [4])  # channels by 4
            n, c0, h, w, c1 = s
            if not self._use_pack:
                init = tensor.empty([n, c0, c1, h, w], et)
                t = irutil.result_value(linalg.transpose(v, outs=[init], permutation=[0, 1, 4, 2, 3]))
                return build_reshape(t, [n, c0, c1, h, w], [n, c0 * c1, h, w], et)
            return unpack_op(v, tensor.empty([n, c0 * c1, h, w], et), [1], [4])

        def get(v, layout: str, at):
            """`v` (an old NCHW value) in `layout`, inserted before `at` when new."""
            p = _node_of(v, nodes, index)
            if p is not None and avail[p]:
                have = avail[p]
                if layout not in have:
                    # right after the value's definition, so that it dominates every use
                    frm = "nchw" if "nchw" in have else next(iter(have))
                    defop = irutil.producer(have[frm])
                    with ir.InsertionPoint.after(defop), nodes[p].op.location:
                        have[layout] = convert(have[frm], frm, layout)
                return have[layout]
            key = (hash(v), layout)
            if layout == "nchw":
                return v
            if key not in src_cache:
                with ir.InsertionPoint(at), at.location:
                    c = convert(v, "nchw", layout)
                    if self._use_barrier:
                        # keep IREE from fusing the conversion into the consuming convolution's
                        # dispatch (it then reads the old layout through a permuted map)
                        c = ir.Operation.create("util.optimization_barrier", results=[c.type],
                                                operands=[c]).results[0]
                    src_cache[key] = c
            return src_cache[key]

        rebuilt = []
        for i, (n, l) in enumerate(zip(nodes, layouts)):
            op = n.op
            if l == "nchw":
                for k in n.region_inputs:
                    op.operands[k] = get(op.operands[k], "nchw", op)
                avail[i]["nchw"] = op.results[0]
                continue
            with ir.InsertionPoint(op), op.location:
                new = {"conv": self._conv, "dwconv": self._conv, "eltwise": self._eltwise,
                       "pad": self._pad, "pool": self._pool}[n.kind](n, l, lambda v: get(v, l, op))
            new.attributes[PHYSICAL_ATTR] = _PHYSICAL[l].attr()
            avail[i][l] = new.results[0]
            rebuilt.append(i)
            self.bump(f"tensors in {l.upper()}")
        # whatever else still reads an old result reads it in NCHW; backwards, so that the
        # old ops of later nodes are gone before their operands are looked at
        for i in reversed(rebuilt):
            old = nodes[i].op.results[0]
            if list(old.uses):
                old.replace_all_uses_with(get(old, "nchw", nodes[i].op))
            nodes[i].op.erase()
        self.bump("layout conversions inserted", conversions)
        counts = {l: layouts.count(l) for l in ("nchw", "nhwc", "nc4hw4")}
        return {"tensors": counts, "conversions": conversions,
                "convolutions": {k: sum(1 for c in choices if c["kind"] in ("conv", "dwconv")
                                        and c["layout"] == k) for k in counts},
                "choices": choices}

    def _init(self, init, layout: str, get):
        """The convolution's init (its bias, broadcast) in `layout`: a broadcast of a constant
        is rebuilt from the re-laid-out constant, anything else converted."""
        b = irutil.producer(init)
        s = _shape(init)
        et = ir.RankedTensorType(init.type).element_type
        if b is not None and b.name == "linalg.broadcast" and irutil.int_array(b.attributes["dimensions"]) == [0, 2, 3]:
            cst = irutil.producer(b.operands[0])
            data = constant_array(cst, 1 << 26) if cst is not None and cst.name == "arith.constant" else None
            if data is not None:
                ps = physical_shape(s, layout)
                if layout == "nhwc":
                    bias, dims = data, [0, 1, 2]
                else:
                    bias, dims = data.reshape(s[1] // 4, 4), [0, 2, 3]
                bv = make_constant(bias, ir.RankedTensorType.get(list(bias.shape), et))
                e = tensor.empty(ps, et)
                return irutil.result_value(linalg.broadcast(bv, outs=[e], dimensions=dims))
        if b is not None and b.name == "linalg.fill":
            return irutil.result_value(linalg.fill(b.operands[0], outs=[tensor.empty(physical_shape(s, layout), et)]))
        return get(init)

    def _conv(self, n: Node, layout: str, get):
        op = n.op
        x, w, init = op.operands[0], op.operands[1], op.operands[2]
        strides = irutil.int_array(op.attributes["strides"])
        dil = irutil.int_array(op.attributes["dilations"])
        wd = constant_array(irutil.producer(w), 1 << 26)
        et = ir.RankedTensorType(w.type).element_type
        xi = get(x)
        new_init = self._init(init, layout, get)
        if layout == "nhwc":
            if n.kind == "conv":
                wt = np.ascontiguousarray(np.transpose(wd, (2, 3, 1, 0)))  # FCHW -> HWCF
                wv = make_constant(wt, ir.RankedTensorType.get(list(wt.shape), et))
                r = linalg.conv_2d_nhwc_hwcf(xi, wv, outs=[new_init], strides=strides, dilations=dil)
            else:
                wt = np.ascontiguousarray(np.transpose(wd, (1, 2, 0)))  # CHW -> HWC
                wv = make_constant(wt, ir.RankedTensorType.get(list(wt.shape), et))
                r = linalg.depthwise_conv_2d_nhwc_hwc(xi, wv, outs=[new_init], strides=strides, dilations=dil)
            return irutil.producer(irutil.result_value(r))
        if n.kind == "conv":
            # NC4HW4: a generic over packed operands; the filter is packed on both channel dims
            F, C, KH, KW = wd.shape
            wt = np.ascontiguousarray(wd.reshape(F // 4, 4, C // 4, 4, KH, KW).transpose(0, 2, 4, 5, 3, 1))
            d = [ir.AffineDimExpr.get(i) for i in range(9)]  # n fo oh ow fi | co kh kw ci
            n_, fo, oh, ow, fi, co, kh, kw, ci = d
            maps = [ir.AffineMap.get(9, 0, [n_, co, oh * strides[0] + kh * dil[0], ow * strides[1] + kw * dil[1], ci]),
                    ir.AffineMap.get(9, 0, [fo, co, kh, kw, ci, fi]),
                    ir.AffineMap.get(9, 0, [n_, fo, oh, ow, fi])]
            its = ["parallel"] * 5 + ["reduction"] * 4
        else:
            # depthwise NC4HW4: channel c = 4*c0 + c1 is both the input's and the output's
            C, KH, KW = wd.shape
            wt = np.ascontiguousarray(wd.reshape(C // 4, 4, KH, KW).transpose(0, 2, 3, 1))
            d = [ir.AffineDimExpr.get(i) for i in range(7)]  # n c0 oh ow c1 | kh kw
            n_, c0, oh, ow, c1, kh, kw = d
            maps = [ir.AffineMap.get(7, 0, [n_, c0, oh * strides[0] + kh * dil[0], ow * strides[1] + kw * dil[1], c1]),
                    ir.AffineMap.get(7, 0, [c0, kh, kw, c1]),
                    ir.AffineMap.get(7, 0, [n_, c0, oh, ow, c1])]
            its = ["parallel"] * 5 + ["reduction"] * 2
        wv = make_constant(wt, ir.RankedTensorType.get(list(wt.shape), et))
        return build_generic([xi, wv], maps[:2], new_init, maps[2], its,
                             lambda b: arith.addf(b[2], arith.mulf(b[0], b[1]))).owner

    def _pool(self, n: Node, layout: str, get):
        op = n.op
        x, window, init = op.operands[0], op.operands[1], op.operands[2]
        build = getattr(linalg, POOLS[op.name])
        r = build(get(x), window, outs=[self._init(init, layout, get)],
                  strides=irutil.int_array(op.attributes["strides"]), dilations=irutil.int_array(op.attributes["dilations"]))
        return irutil.producer(irutil.result_value(r))

    def _eltwise(self, n: Node, layout: str, get):
        op = n.op
        maps = affine_maps(op)
        ins = list(op.operands)[:len(maps) - 1]
        sub = _logical_exprs(layout)
        rank = _LOOPS[layout]
        new_ins, new_maps = [], []
        for i, (v, m) in enumerate(zip(ins, maps)):
            if i in n.region_inputs:
                new_ins.append(get(v))
                new_maps.append(ir.AffineMap.get_identity(rank))
                continue
            exprs = [sub[e.position] if isinstance(e, ir.AffineDimExpr) else e
                     for e in m.results]
            new_ins.append(v)
            new_maps.append(ir.AffineMap.get(rank, 0, exprs))
        new_maps.append(ir.AffineMap.get_identity(rank))
        rt = ir.RankedTensorType(op.results[0].type)
        ps = physical_shape(list(rt.shape), layout)
        init = tensor.empty(ps, rt.element_type)
        return rebuild_generic(op, new_ins, [init], new_maps, ["parallel"] * rank,
                               [ir.RankedTensorType.get(ps, rt.element_type)])

    def _pad(self, n: Node, layout: str, get):
        op = n.op
        low = list(ir.DenseI64ArrayAttr(op.attributes["static_low"]))
        high = list(ir.DenseI64ArrayAttr(op.attributes["static_high"]))
        rt = ir.RankedTensorType(op.results[0].type)
        phys = {"nhwc": lambda a: [a[0], a[2], a[3], a[1]],
                "nc4hw4": lambda a: [a[0], a[1], a[2], a[3], 0]}[layout]
        src = get(op.operands[0])
        attrs = {"static_low": ir.DenseI64ArrayAttr.get(phys(low)),
                 "static_high": ir.DenseI64ArrayAttr.get(phys(high)),
                 "operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 0, 0])}
        if "nofold" in op.attributes:
            attrs["nofold"] = op.attributes["nofold"]
        new = ir.Operation.create("tensor.pad",
                                  results=[ir.RankedTensorType.get(physical_shape(list(rt.shape), layout),
                                                                   rt.element_type)],
                                  operands=[src], attributes=attrs, regions=1)
        blk = new.regions[0].blocks.append(*([ir.IndexType.get()] * _LOOPS[layout]))
        ip = ir.InsertionPoint(blk)
        for o in list(op.regions[0].blocks[0].operations):
            o.detach_from_parent()
            ip.insert(o)
        return new
