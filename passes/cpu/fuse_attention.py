"""texflow-fuse-attention: Q.K^T -> softmax -> .V with narrow heads as one attention op.

Why: a softmax between two contractions is IREE's `iree_linalg_ext.attention`, which IREE's
CPU back end tiles as online ("flash") attention: the sequence x sequence score matrix is never
written.  On SD-UNet's 8 heads of width 8 over 1024 tokens it ran in 20.6 ms against 50.4 ms
for the three separate ops, and 2.2 ms against 3.9 ms for its cross-attention (77 keys).  With
64-wide heads IREE's attention code is far slower (36.7 ms against 6.4 ms for ViT's
3x197x197x64), so only heads up to `max-head-dim` wide (16) are fused; wider ones keep the
packed batch matmuls of texflow-pack-matmul and the rewritten softmax (texflow-rewrite-softmax).

The fused attention's operands are read through indexing maps derived from the two
contractions' maps, so transposes that layout elimination folded into those contractions stay
folded (SmartMem's index-map folding).
"""

from __future__ import annotations

import dataclasses

from iree.compiler import ir
from iree.compiler.dialects import arith, tensor

from texflow import irutil
from texflow.ir.structured import (affine_maps, contraction_maps, fill_value, inputs_of, map_dims_or_zero,
                                   outputs_of)
from ..registry import Pass, register_pass
from .softmax_match import (Softmax, all_parallel_except, binary_body, block_args, body_and_yields, dim_to_base,
                            erase_dead, is_identity, is_unit_reshape, softmaxes, strip_unit_reshapes)


# -- attention ---------------------------------------------------------------------

def _contraction(op):
    """(maps, iterators, lhs, rhs) of a zero-initialised contraction with one reduction whose
    body multiplies and accumulates (matmul, batch_matmul or an equivalent generic), or None."""
    if op is None:
        return None
    cm = contraction_maps(op)
    if cm is None or len(op.results) != 1:
        return None
    maps, its = cm
    ins = inputs_of(op)
    if len(ins) != 2 or its.count("reduction") != 1 or fill_value(outputs_of(op)[0]) != 0.0:
        return None
    if op.name == "linalg.generic":
        ops, ys = body_and_yields(op)
        args = block_args(op)
        if len(ops) != 2 or ops[0].name != "arith.mulf" or ops[1].name != "arith.addf":
            return None
        if set(ops[0].operands) != {args[0], args[1]} or set(ops[1].operands) != {args[2], ops[0].results[0]} \
                or ys[0] != ops[1].results[0]:
            return None
    dims = [map_dims_or_zero(m) for m in maps]
    if any(d is None for d in dims) or None in dims[2] or len(set(dims[2])) != len(dims[2]):
        return None
    return maps, its, ins[0], ins[1]


def _drop_unit_results(v, dims: list):
    """Collapse away v's dims whose map result is the constant 0 (unit dims): (value, dims)."""
    shape = irutil.tensor_shape(v)
    keep = [i for i, d in enumerate(dims) if d is not None]
    if len(keep) == len(dims):
        return v, dims
    if any(shape[i] != 1 for i, d in enumerate(dims) if d is None) or not keep:
        return None
    groups, cur = [], []
    for i in range(len(dims)):
        cur.append(i)
        if dims[i] is not None:
            groups.append(cur)
            cur = []
    if cur:
        groups[-1] += cur
    t = ir.RankedTensorType.get([shape[i] for i in keep], ir.RankedTensorType(v.type).element_type)
    return tensor.collapse_shape(t, v, groups), [dims[i] for i in keep]


def _splat(v) -> float | None:
    """The value of a constant splat tensor (any shape), else None."""
    op = irutil.producer(v)
    if op is None or op.name != "arith.constant":
        return None
    try:
        a = ir.DenseFPElementsAttr(op.attributes["value"])
    except (ValueError, TypeError):
        return None
    return float(a.get_splat_value().value) if a.is_splat else None


def _scaled(x):
    """If x = s * c or s / c elementwise with c a constant splat: (s, c or 1/c, the op);
    else (x, 1.0, None)."""
    op = irutil.producer(x)
    if op is None or op.name != "linalg.generic" or not all_parallel_except(op, None):
        return x, 1.0, None
    ins, maps = inputs_of(op), affine_maps(op)
    if len(ins) != 2 or not is_identity(maps[0]) or not is_identity(maps[2]):
        return x, 1.0, None
    c = _splat(ins[1])
    if c is None or c == 0.0:
        return x, 1.0, None
    if binary_body(op, "arith.mulf", commutative=True):
        return ins[0], c, op
    if binary_body(op, "arith.divf"):
        return ins[0], 1.0 / c, op
    return x, 1.0, None


def _only_feeds(base, v, ops) -> bool:
    """Whether `base` reaches nothing but `ops`, through single-use unit reshapes down to `v`."""
    while base != v:
        users = irutil.uses(base)
        if len(users) != 1:
            return False
        base = users[0].results[0]
    inside = [o.operation for o in ops]
    return all(u.operation in inside for u in irutil.uses(v))


def _single_user_through_reshapes(v):
    """The op using v (through single-use unit reshapes), and the value it reads."""
    while True:
        users = irutil.uses(v)
        if len(users) != 1:
            return None, None
        u = users[0].operation
        if is_unit_reshape(u):
            v = u.results[0]
            continue
        return u, v


@register_pass
class FuseAttention(Pass):
    name = "texflow-fuse-attention"
    undoable = True  # an optimisation: dropped, not fatal, if its result does not verify
    summary = ("Fuse Q.K^T -> softmax -> .V with narrow heads into iree_linalg_ext.attention "
               "(online softmax: the score matrix is never written)")

    @dataclasses.dataclass
    class Options:
        max_head_dim: int = dataclasses.field(default=16, metadata={
            "help": "fuse only when the head width (reduction of Q.K^T and columns of .V) is at "
                    "most this; IREE's CPU attention code is slower than separate ops on 64-wide "
                    "heads"})

    def apply(self, module) -> None:
        for s in softmaxes(module):
            if self._fuse(s):
                self.bump("attentions fused")

    def _fuse(self, s: Softmax) -> bool:
        # Q.K^T: the contraction producing x (up to unit reshapes), used by nothing else
        # (possibly scaled by a constant first, as exported models do: S * d^-0.5)
        start, scale_value, scale_op = _scaled(s.x)
        chain = s.ops + ([scale_op] if scale_op is not None else [])
        if scale_op is not None and not _only_feeds(s.x, s.x, s.ops):
            return False
        sv = strip_unit_reshapes(start)
        c1 = irutil.producer(sv)
        k1 = _contraction(c1)
        if k1 is None or not _only_feeds(sv, start, chain):
            return False
        maps1, its1, a1, b1 = k1
        d1 = [map_dims_or_zero(m) for m in maps1]
        x_to_s = dim_to_base(start, sv)
        if s.axis not in x_to_s:
            return False
        l_k2 = d1[2][x_to_s[s.axis]]  # C1 loop of the softmax axis (keys)
        r1 = its1.index("reduction")
        if l_k2 in d1[0] and l_k2 not in d1[1]:
            (q, dq), (k, dk) = (b1, d1[1]), (a1, d1[0])
        elif l_k2 in d1[1] and l_k2 not in d1[0]:
            (q, dq), (k, dk) = (a1, d1[0]), (b1, d1[1])
        else:
            return False
        out_loops = [l for l in d1[2] if l != l_k2]
        batch = [l for l in out_loops if l in dq and l in dk]
        ms = [l for l in out_loops if l in dq and l not in dk]
        if len(ms) != 1 or len(batch) + 1 != len(out_loops):
            return False
        sizes1 = self._loop_sizes(maps1, [a1, b1, c1.results[0]])
        # P.V: the contraction reading the softmax (up to unit reshapes)
        c2, pv = _single_user_through_reshapes(s.y)
        k2 = _contraction(c2)
        if k2 is None:
            return False
        maps2, its2, a2, b2 = k2
        d2 = [map_dims_or_zero(m) for m in maps2]
        if pv == a2 and pv != b2:
            dp, (v, dv) = d2[0], (b2, d2[1])
        elif pv == b2 and pv != a2:
            dp, (v, dv) = d2[1], (a2, d2[0])
        else:
            return False
        r2 = its2.index("reduction")
        # loop correspondences: C2 loop -> C1 loop through P's dims -> x's dims -> S's dims
        p_to_x = dim_to_base(pv, s.y) if pv != s.y else {i: i for i in range(len(dp))}
        x_to_c1 = {xd: d1[2][sd] for xd, sd in x_to_s.items()}
        c2_to_c1 = {}
        for pd, l2 in enumerate(dp):
            if l2 is None:
                continue
            if pd not in p_to_x or p_to_x[pd] not in x_to_c1:
                if irutil.tensor_shape(pv)[pd] == 1:
                    continue
                return False
            c2_to_c1[l2] = x_to_c1[p_to_x[pd]]
        if c2_to_c1.get(r2) != l_k2:
            return False
        sizes2 = self._loop_sizes(maps2, [a2, b2, c2.results[0]])
        ns = [l for l in range(len(its2)) if l not in c2_to_c1]
        if len(ns) != 1 or its2[ns[0]] != "parallel":
            return False
        head, width = sizes1[r1], sizes2[ns[0]]
        if max(head, width) > self.options.max_head_dim:
            self.bump("attentions left (heads wider than max-head-dim)")
            return False
        # attention domain: (batch..., m, n, k1, k2)
        order = batch + ms + ["n", r1, l_k2]
        pos1 = {l: i for i, l in enumerate(order) if l != "n"}
        pos2 = {l2: pos1[l1] for l2, l1 in c2_to_c1.items() if l1 in pos1}
        pos2[ns[0]] = order.index("n")
        if any(l is not None and l not in pos2 for l in d2[2] + dv) or \
                any(l is not None and l not in pos1 for l in dq + dk):
            return False
        with c2.location, ir.InsertionPoint(c2):
            got = [_drop_unit_results(val, dims) for val, dims in ((q, dq), (k, dk), (v, dv))]
            if None in got:
                return False
            (q, dq), (k, dk), (v, dv) = got
            nd = len(order)
            amap = lambda dims, pos: ir.AffineMap.get(nd, 0, [ir.AffineDimExpr.get(pos[d]) for d in dims])
            out_dims = [d for d in d2[2] if d is not None]
            res_shape = irutil.tensor_shape(c2.results[0])
            out_shape = [res_shape[i] for i, d in enumerate(d2[2]) if d is not None]
            et = ir.RankedTensorType(q.type).element_type
            out_t = ir.RankedTensorType.get(out_shape, et)
            maps = [amap(dq, pos1), amap(dk, pos1), amap(dv, pos2), ir.AffineMap.get(nd, 0, []),
                    amap(out_dims, pos2)]
            scale = arith.constant(et, scale_value)
            att = ir.Operation.create(
                "iree_linalg_ext.attention", results=[out_t],
                operands=[q, k, v, scale, tensor.empty(out_shape, et)],
                attributes={"indexing_maps": ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps])},
                regions=1)
            blk = att.regions[0].blocks.append(et)
            with ir.InsertionPoint(blk):
                ir.Operation.create("iree_linalg_ext.yield", operands=[blk.arguments[0]])
            r = att.results[0]
            if out_shape != res_shape:
                groups, cur = [], []
                for i, d in enumerate(d2[2]):
                    cur.append(i)
                    if d is not None:
                        groups.append(cur)
                        cur = []
                groups[-1] += cur
                r = tensor.expand_shape(ir.RankedTensorType(c2.results[0].type), r, groups, [], res_shape)
        c2.results[0].replace_all_uses_with(r)
        erase_dead([c2] + chain + [c1])
        return True

    @staticmethod
    def _loop_sizes(maps, values) -> dict[int, int]:
        sizes = {}
        for m, v in zip(maps, values):
            shape = irutil.tensor_shape(v)
            for i, e in enumerate(m.results):
                e = e.maybe_downcast()
                if isinstance(e, ir.AffineDimExpr):
                    sizes[e.position] = shape[i]
        return sizes
