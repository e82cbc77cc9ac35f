"""texflow-fuse-attention and texflow-rewrite-softmax: softmax in the forms IREE's CPU code runs fastest.

Why: ONNX Softmax reaches texflow decomposed by the importer (torch-mlir): a max reduction that
also computes an unused arg-max index, then x - max, exp, a sum reduction and a division.  IREE
raises that chain back into `linalg.softmax`, whose llvm-cpu code is slow: measured on this
machine (1 thread, AVX-512, IREE 3.13, medians) it took 0.50 ms on 3x197x197 (ViT), 0.70 ms on
12x128x128 (GPT-2) and 33 ms on 8x1024x1024 (SD-UNet), 3.3-7.5 ns per element.  Written as the
three generics below, IREE fuses and vectorises them as plain reductions and elementwise code:
0.26, 0.35 and 17.5 ms, 1.5-2.4x faster on every shape measured.

    m = max_a(x)                     (no index)
    s = sum_a(exp(x - m))
    y = exp(x - m) / s

Attention with narrow heads does better still.  A softmax between two contractions,
Q.K^T -> softmax -> .V, is IREE's `iree_linalg_ext.attention`, which IREE's CPU back end tiles
as online ("flash") attention: the sequence x sequence score matrix is never written.  On
SD-UNet's 8 heads of width 8 over 1024 tokens it ran in 20.6 ms against 50.4 ms for the three
separate ops, and 2.2 ms against 3.9 ms for its cross-attention (77 keys).  With 64-wide heads
IREE's attention code is far slower (36.7 ms against 6.4 ms for ViT's 3x197x197x64), so only
heads up to `max-head-dim` wide (16) are fused; wider ones keep the packed batch matmuls of
texflow-pack-matmul and the rewritten softmax.

Both passes share one matcher of the decomposed softmax.  The fused attention's operands are
read through indexing maps derived from the two contractions' maps, so transposes that layout
elimination folded into those contractions stay folded (SmartMem's index-map folding).
"""

from __future__ import annotations

import dataclasses

from iree.compiler import ir
from iree.compiler.dialects import arith, linalg, math, tensor

from texflow import irutil
from texflow.ir.structured import (affine_maps, build_generic, contraction_maps, fill_value, generic_body_ops,
                                   inputs_of, map_dims, outputs_of)
from .registry import Pass, register_pass

_UNIT_RESHAPES = ("tensor.expand_shape", "tensor.collapse_shape")


# -- matching ------------------------------------------------------------------

def _non_unit(shape) -> list[int]:
    return [i for i, n in enumerate(shape) if n != 1]


def _is_unit_reshape(op) -> bool:
    """A reshape that only inserts or removes unit dimensions."""
    if op is None or op.name not in _UNIT_RESHAPES:
        return False
    a, b = irutil.tensor_shape(op.operands[0]), irutil.tensor_shape(op.results[0])
    return [a[i] for i in _non_unit(a)] == [b[i] for i in _non_unit(b)]


def strip_unit_reshapes(v):
    """The value `v` is a unit-dimension reshape of (itself if none)."""
    while _is_unit_reshape(irutil.producer(v)):
        v = irutil.producer(v).operands[0]
    return v


def _dim_to_base(v, base) -> dict[int, int]:
    """For v, a unit-dimension reshape of `base`: v's non-unit dim -> base's dim."""
    a, b = _non_unit(irutil.tensor_shape(v)), _non_unit(irutil.tensor_shape(base))
    return dict(zip(a, b))


def _block_args(op):
    return list(op.regions[0].blocks[0].arguments)


def _body(op) -> list:
    """The body's ops before the yield, and the yield's operands."""
    ops = generic_body_ops(op)
    return [o.operation for o in ops[:-1]], list(ops[-1].operation.operands)


def _all_parallel_except(op, a: int | None) -> bool:
    its = [str(x) for x in ir.ArrayAttr(op.attributes["iterator_types"])]
    return all(("reduction" in t) == (i == a) for i, t in enumerate(its))


def _broadcast_dim(m: ir.AffineMap) -> int | None:
    """If map m reads an operand that drops one loop dim `a` (or holds it as a constant 0) and
    is the identity on the others, `a`; else None."""
    n = m.n_dims
    res = [e.maybe_downcast() for e in m.results]
    dims = [e.position if isinstance(e, ir.AffineDimExpr) else None for e in res]
    if len(res) == n - 1 and None not in dims:
        missing = [d for d in range(n) if d not in dims]
        if len(missing) == 1 and dims == [d for d in range(n) if d != missing[0]]:
            return missing[0]
        return None
    if len(res) == n:
        consts = [i for i, e in enumerate(res) if isinstance(e, ir.AffineConstantExpr)]
        if len(consts) == 1 and res[consts[0]].value == 0 and \
                all(dims[i] == i for i in range(n) if i != consts[0]):
            return consts[0]
    return None


def _is_identity(m: ir.AffineMap) -> bool:
    return map_dims(m) == list(range(m.n_dims)) and len(m.results) == m.n_dims


def _binary_body(op, name: str, commutative: bool = False) -> bool:
    """The body is `yield name(arg0, arg1)`."""
    ops, ys = _body(op)
    args = _block_args(op)
    if len(ops) != 1 or ops[0].name != name or len(ys) != 1 or ys[0] != ops[0].results[0]:
        return False
    x, y = ops[0].operands
    return (x == args[0] and y == args[1]) or (commutative and x == args[1] and y == args[0])


@dataclasses.dataclass
class Softmax:
    """A decomposed softmax: `y = exp(x - max_a x) / sum_a exp(x - max_a x)`, `ops` its ops
    from the division back (erased once y is replaced)."""
    x: object  # ir.Value
    axis: int
    y: object  # the division's result
    ops: list


def _reduction(v, a: int, combiner: tuple[str, ...], init_ok) -> object | None:
    """If `v` (through unit reshapes) is result 0 of a reduction along `a` of one input whose
    first result combines input and accumulator with `combiner`, that op."""
    v = strip_unit_reshapes(v)
    op = irutil.producer(v)
    if op is None or op.name != "linalg.generic" or ir.OpResult(v).result_number != 0:
        return None
    ins, outs = inputs_of(op), outputs_of(op)
    if len(ins) != 1 or not _all_parallel_except(op, a):
        return None
    maps = affine_maps(op)
    if not _is_identity(maps[0]) or _broadcast_dim(maps[1]) != a:
        return None
    if init_ok(fill_value(outs[0])) is not True:
        return None
    # other results (torch-mlir's arg-max index) must be unused
    if any(len(irutil.uses(r)) for r in list(op.results)[1:]):
        return None
    args = _block_args(op)
    _, ys = _body(op)
    comb = irutil.producer(ys[0])
    if comb is None or comb.name not in combiner:
        return None
    if set(comb.operands) != {args[0], args[len(ins)]}:
        return None
    return op


def _exp_of_difference(v, a: int):
    """If `v` is exp(x - b) with b broadcast along `a` (one generic or a sub then an exp),
    (x, b's value, ops)."""
    op = irutil.producer(v)
    if op is None or op.name != "linalg.generic" or not _all_parallel_except(op, None):
        return None
    ins = inputs_of(op)
    maps = affine_maps(op)
    ops, ys = _body(op)
    args = _block_args(op)
    if len(ins) == 1 and _is_identity(maps[0]) and _is_identity(maps[1]) and len(ops) == 1 \
            and ops[0].name == "math.exp" and ops[0].operands[0] == args[0] and ys[0] == ops[0].results[0]:
        sub = irutil.producer(ins[0])
        if sub is None or sub.name != "linalg.generic" or not _all_parallel_except(sub, None):
            return None
        sm = affine_maps(sub)
        if len(inputs_of(sub)) != 2 or not _binary_body(sub, "arith.subf") or \
                not _is_identity(sm[0]) or _broadcast_dim(sm[1]) != a or not _is_identity(sm[2]):
            return None
        return inputs_of(sub)[0], inputs_of(sub)[1], [op, sub]
    if len(ins) == 2 and len(ops) == 2 and ops[0].name == "arith.subf" and ops[1].name == "math.exp" \
            and list(ops[0].operands) == args[:2] and ops[1].operands[0] == ops[0].results[0] \
            and ys[0] == ops[1].results[0] and _is_identity(maps[0]) and _broadcast_dim(maps[1]) == a \
            and _is_identity(maps[2]):
        return ins[0], ins[1], [op]
    return None


def match_softmax(div) -> Softmax | None:
    """The decomposed softmax whose last op is `div` (e / broadcast sum), or None."""
    if div.name != "linalg.generic" or len(div.results) != 1 or not _all_parallel_except(div, None):
        return None
    ins = inputs_of(div)
    if len(ins) != 2 or not _binary_body(div, "arith.divf"):
        return None
    maps = affine_maps(div)
    if not _is_identity(maps[0]) or not _is_identity(maps[2]):
        return None
    a = _broadcast_dim(maps[1])
    if a is None:
        return None
    e = ins[0]
    sum_op = _reduction(ins[1], a, ("arith.addf",), lambda f: f == 0.0)
    if sum_op is None or inputs_of(sum_op)[0] != e:
        return None
    found = _exp_of_difference(e, a)
    if found is None:
        return None
    x, b, exp_ops = found
    max_op = _reduction(b, a, ("arith.maximumf", "arith.maxnumf"),
                        lambda f: f is not None and f <= -3.0e38)
    if max_op is None or inputs_of(max_op)[0] != x:
        return None
    et = ir.RankedTensorType(x.type).element_type
    if str(et) != "f32" or not ir.RankedTensorType(x.type).has_static_shape:
        return None
    return Softmax(x=x, axis=a, y=div.results[0], ops=[div, sum_op] + exp_ops + [max_op])


def softmaxes(module):
    """Yield each decomposed softmax of the module, matched only when it is reached: a pass
    rewrites one before the next is matched, and a softmax may read an earlier one's result,
    which the rewrite replaces (a Softmax matched beforehand would hold the erased value)."""
    roots = [op for f in irutil.functions(module) for op in irutil.collect(f, ("linalg.generic",))
             if match_softmax(op) is not None]
    for div in roots:  # rewrites erase only their own softmax's ops, never another's division
        s = match_softmax(div)
        if s is not None:
            yield s


def erase_dead(ops) -> None:
    """Erase `ops` (and the reshapes, fills and empties feeding them) once nothing uses them,
    consumers first."""
    pending = [o.operation for o in ops]
    changed = True
    while changed:
        changed = False
        for i, op in enumerate(pending):
            if any(len(irutil.uses(r)) for r in op.results):
                continue
            feeders = [irutil.producer(v) for v in op.operands]
            del pending[i]
            op.erase()
            for f in feeders:
                if f is not None and f.name in _UNIT_RESHAPES + ("linalg.fill", "tensor.empty") \
                        and f.operation not in pending:
                    pending.append(f.operation)
            changed = True
            break


# -- building ------------------------------------------------------------------

def three_generic_softmax(x, a: int):
    """softmax of x along dim a as max, sum-of-exp and normalise generics (see the module doc)."""
    t = ir.RankedTensorType(x.type)
    shape, et, n = list(t.shape), t.element_type, len(t.shape)
    red_shape = [s for i, s in enumerate(shape) if i != a]
    ident = ir.AffineMap.get_identity(n)
    drop = ir.AffineMap.get(n, 0, [ir.AffineDimExpr.get(i) for i in range(n) if i != a])
    its = ["reduction" if i == a else "parallel" for i in range(n)]
    empty_r = tensor.empty(red_shape, et)
    m0 = linalg.fill(arith.constant(et, float("-inf")), outs=[empty_r])
    s0 = linalg.fill(arith.constant(et, 0.0), outs=[empty_r])
    m = build_generic([x], [ident], m0, drop, its, lambda b: arith.maximumf(b[0], b[1]))
    s = build_generic([x, m], [ident, drop], s0, drop, its,
                      lambda b: arith.addf(math.exp(arith.subf(b[0], b[1])), b[2]))
    return build_generic([x, m, s], [ident, drop, drop], tensor.empty(shape, et), ident,
                         ["parallel"] * n, lambda b: arith.divf(math.exp(arith.subf(b[0], b[1])), b[2]))


@register_pass
class RewriteSoftmax(Pass):
    name = "texflow-rewrite-softmax"
    undoable = True  # an optimisation: dropped, not fatal, if its result does not verify
    summary = ("Rewrite decomposed softmaxes as max / sum-of-exp / normalise generics, which "
               "IREE's CPU code runs 1.5-2.4x faster than the linalg.softmax it would raise")

    def apply(self, module) -> None:
        for s in softmaxes(module):
            div = irutil.producer(s.y)
            with div.location, ir.InsertionPoint(div):
                y = three_generic_softmax(s.x, s.axis)
            s.y.replace_all_uses_with(y)
            erase_dead(s.ops)
            self.bump("softmaxes rewritten")


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
        ops, ys = _body(op)
        args = _block_args(op)
        if len(ops) != 2 or ops[0].name != "arith.mulf" or ops[1].name != "arith.addf":
            return None
        if set(ops[0].operands) != {args[0], args[1]} or set(ops[1].operands) != {args[2], ops[0].results[0]} \
                or ys[0] != ops[1].results[0]:
            return None
    dims = [_dims_or_zero(m) for m in maps]
    if any(d is None for d in dims) or None in dims[2] or len(set(dims[2])) != len(dims[2]):
        return None
    return maps, its, ins[0], ins[1]


def _dims_or_zero(m: ir.AffineMap):
    """The loop dim of each result of m (None for a constant 0); None if another expression."""
    out = []
    for e in m.results:
        e = e.maybe_downcast()
        if isinstance(e, ir.AffineDimExpr):
            out.append(e.position)
        elif isinstance(e, ir.AffineConstantExpr) and e.value == 0:
            out.append(None)
        else:
            return None
    return out


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
    if op is None or op.name != "linalg.generic" or not _all_parallel_except(op, None):
        return x, 1.0, None
    ins, maps = inputs_of(op), affine_maps(op)
    if len(ins) != 2 or not _is_identity(maps[0]) or not _is_identity(maps[2]):
        return x, 1.0, None
    c = _splat(ins[1])
    if c is None or c == 0.0:
        return x, 1.0, None
    if _binary_body(op, "arith.mulf", commutative=True):
        return ins[0], c, op
    if _binary_body(op, "arith.divf"):
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
        if _is_unit_reshape(u):
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
        d1 = [_dims_or_zero(m) for m in maps1]
        x_to_s = _dim_to_base(start, sv)
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
        d2 = [_dims_or_zero(m) for m in maps2]
        if pv == a2 and pv != b2:
            dp, (v, dv) = d2[0], (b2, d2[1])
        elif pv == b2 and pv != a2:
            dp, (v, dv) = d2[1], (a2, d2[0])
        else:
            return False
        r2 = its2.index("reduction")
        # loop correspondences: C2 loop -> C1 loop through P's dims -> x's dims -> S's dims
        p_to_x = _dim_to_base(pv, s.y) if pv != s.y else {i: i for i in range(len(dp))}
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
