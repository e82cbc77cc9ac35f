"""Expand-fold (Fixed -> ILD&Var, "eliminate 1st"): a reshape/permute chain folded into a
contraction by splitting its loops.

Why: a chain such as Transpose -> Reshape(merge) -> Transpose feeding a
matmul is not a single permutation, so it cannot fold into an indexing map
as it stands: the merged dimension m = a*32 + d mixes two source dims.  But
if the consumer's loop over m is split into two loops (a, d) -- legal for a
linalg.generic, it only changes the iteration space -- the chain's composed
index map (from texflow.index_expr) becomes a projected permutation of the
new loops, and the kernel reads the chain's source directly.  Other
operands indexed by the split loop get a `tensor.expand_shape` (a free view)
and the result a `tensor.collapse_shape` back (also free).  This is SmartMem's
index comprehension applied to an ILD&Var consumer ("eliminate 1st").
"""

from __future__ import annotations

from math import prod

from iree.compiler import ir
from iree.compiler.dialects import arith, tensor

from texflow import index_expr as ie
from texflow.irutil import result_value
from texflow.ir.structured import (affine_maps, build_generic, contraction_maps, inputs_of, iterator_types,
                                   map_dims, outputs_of, reassoc_attr, rebuild_generic, static_shape,
                                   uses_index_op)

from .common import FIRST, LayoutRule, batch_and_row_loops, chain_to, producer_absorbs_transforms


def split_strides(m: list[ie.Lin], i: int, n: int) -> list[int] | None:
    """Boundaries 1 = s0 | s1 | ... | n at which dim i must be split so that
    every floordiv/mod of d_i in `m` lands on whole sub-dimensions."""
    bounds = {1, n}
    ok = [True]

    def visit_lin(e: ie.Lin):
        for a, _ in e.terms:
            visit_atom(a)

    def visit_atom(a):
        if isinstance(a, ie.Dim):
            return
        inner = a.arg
        if inner.single_dim() == i:
            bounds.add(a.divisor if isinstance(a, ie.FloorDiv) else a.modulus)
            return
        if isinstance(a, ie.Mod) and len(inner.terms) == 1 and inner.const == 0:
            (b, c), = inner.terms
            if c == 1 and isinstance(b, ie.FloorDiv) and b.arg.single_dim() == i:
                bounds.add(b.divisor)
                bounds.add(b.divisor * a.modulus)
                return
        if any(isinstance(x, ie.Dim) and x.index == i for x, _ in inner.terms):
            ok[0] = False
        visit_lin(inner)

    for e in m:
        visit_lin(e)
    if not ok[0]:
        return None
    s = sorted(b for b in bounds if b <= n)
    if any(s[k + 1] % s[k] for k in range(len(s) - 1)) or s[-1] != n:
        return None
    return s


def generalize_contraction(op):
    """linalg.matmul/batch_matmul (float) -> the equivalent linalg.generic."""
    if op.name == "linalg.generic":
        return op
    if op.name not in ("linalg.matmul", "linalg.batch_matmul"):
        return None
    maps, iters = contraction_maps(op)
    ins, outs = inputs_of(op), outputs_of(op)
    ets = [ir.RankedTensorType(v.type).element_type for v in ins + outs]
    if any(not isinstance(et, (ir.F32Type, ir.F16Type, ir.F64Type, ir.BF16Type)) for et in ets):
        return None
    if len(set(str(et) for et in ets)) != 1:
        return None
    with ir.InsertionPoint(op), op.location:
        g = build_generic(ins, maps[:len(ins)], outs[0], maps[-1], iters,
                          lambda b: arith.AddFOp(b[2], arith.MulFOp(b[0], b[1]).result).result).owner
    op.results[0].replace_all_uses_with(g.results[0])
    op.erase()
    return g


def generalizable(op) -> bool:
    """Would `generalize_contraction` give a generic (without building it)?"""
    if op.name == "linalg.generic":
        return True
    if op.name not in ("linalg.matmul", "linalg.batch_matmul"):
        return False
    ets = [ir.RankedTensorType(v.type).element_type for v in inputs_of(op) + outputs_of(op)]
    return (all(isinstance(et, (ir.F32Type, ir.F16Type, ir.F64Type, ir.BF16Type)) for et in ets)
            and len(set(str(et) for et in ets)) == 1)


def _broadcast_over_split(op, operand_index: int, c_dims, subs) -> bool:
    """Does an operand other than the folded one (or a result) broadcast over a loop the plan
    splits?  Its expand_shape would not exist (the rewrite refuses such plans)."""
    split = {c_dims[i]: [size for _, size in subs[i]] for i in range(len(subs))}
    maps = affine_maps(op) if op.name == "linalg.generic" else contraction_maps(op)[0]
    values = inputs_of(op) + outputs_of(op)
    for k, (v, m) in enumerate(zip(values, maps)):
        if k == operand_index:
            continue
        for d, n in zip(map_dims(m), static_shape(v)):
            if d in split and prod(split[d]) != n:
                return True
    return False


def plan_expand_fold(user, operand_index: int, min_chain: int = 1):
    """How to fold the transform chain feeding input `operand_index` of `user` by splitting
    its loops: (source value, plan), or None."""
    ins = inputs_of(user)
    c = ins[operand_index]
    chain = chain_to(c)
    if len(chain) < min_chain or not any(t.kind == "permute" for t in chain):
        return None
    cm = contraction_maps(user)
    if cm is None or not cm[0] or any(map_dims(m) is None for m in cm[0]):
        return None
    maps, iters = cm
    c_dims = map_dims(maps[operand_index])
    c_shape = static_shape(c)
    for start in range(len(chain)):
        x = chain[start].source
        x_shape = static_shape(x)
        m = ie.identity_map(len(x_shape))
        for t in chain[start:]:
            m = ie.compose(m, t.index_map(), t.result_shape)
        plan = _plan(m, c_shape, x_shape)
        if plan is None:
            continue
        # Never split a reduction loop: the consumer (ILD&Var) reads its
        # reduction dimension contiguously, and a split reduction becomes a
        # strided multi-dimensional one (measured: patchify folded into the
        # matmul that way ran 7x slower on llvm-cpu).  Parallel loops split
        # for free.
        if any(iters[c_dims[i]] == "reduction" and sum(sz > 1 for _, sz in plan[0][i]) > 1
               for i in range(len(c_shape))):
            continue
        if not generalizable(user) or _broadcast_over_split(user, operand_index, c_dims, plan[0]):
            return None
        return x, plan
    return None


class ExpandFold(LayoutRule):
    """Chains with a permutation feeding a contraction that no single map can absorb: the
    contraction's loops are split so that the chain's composed map becomes a projection."""

    name = "expand-fold"
    actions = FIRST

    def match(self, user):
        if user.name == "linalg.generic" and ("reduction" not in iterator_types(user)
                                             or uses_index_op(user)):
            return None
        for i, v in enumerate(inputs_of(user)):
            chain = chain_to(v)
            if len(chain) < 2:
                continue  # a lone permutation folds without splitting loops
            if producer_absorbs_transforms(chain[0].source):
                continue
            if not self.permits(chain[-1].operation, user):
                continue
            planned = plan_expand_fold(user, i, min_chain=2)
            if planned is None:
                continue
            if self.options.keep_matmul_loops and _splits_batch_or_rows(user, i, planned[1]):
                self.bump("folds refused (would split a batch or row loop)")
                continue
            return user, i, planned, len(chain)
        return None

    def rewrite(self, plan) -> None:
        user, i, (x, p), n = plan
        _rewrite(generalize_contraction(user), i, x, p)
        self.bump("transforms folded into contractions (loops split)", n)


def _splits_batch_or_rows(user, operand_index: int, plan) -> bool:
    """Would the plan split a batch loop (indexed by every operand and the result) or a row
    loop (by the left operand and the result only) of `user` into several non-unit loops?
    IREE merges neither back, and on GPUs its matmul configuration then no longer applies
    (Swin-Small's window partition folded into its QKV projection, 3136 rows -> 8x8x7x7, and
    its window attention, 192 batches -> 64x3: 1.11x slower than plain IREE on an H200).
    Column splits (head splits folded into projections) keep the configuration."""
    maps, iters = contraction_maps(user)
    batch, rows = batch_and_row_loops(maps, iters)
    c_dims = map_dims(maps[operand_index])
    return any(sum(sz > 1 for _, sz in subs) > 1 and c_dims[i] in batch + rows
               for i, subs in enumerate(plan[0]))


def _plan(m, c_shape, x_shape):
    """Sub-dimension sizes per c dim and x's map over them, or None."""
    subs = []  # per c dim: list of (stride, size), outer first
    for i, n in enumerate(c_shape):
        s = split_strides(m, i, n)
        if s is None:
            return None
        subs.append([(s[k], s[k + 1] // s[k]) for k in range(len(s) - 1)][::-1] or [(1, 1)])
    flat_sizes = [size for sl in subs for _, size in sl]
    inner = []
    pos = 0
    for sl in subs:
        expr = ie.Lin.constant(0)
        for k, (stride, _) in enumerate(sl):
            expr = expr + ie.Lin.dim(pos + k).scale(stride)
        inner.append(expr)
        pos += len(sl)
    r = ie.Ranges(flat_sizes)
    xm = [ie.substitute(e, inner, r) for e in m]
    # Each x dim must be read as one sub-dim, or as a mixed-radix combination
    # of sub-dims (then x's dim is expanded into them: a free view).
    x_idx, x_split = [], []
    for j, e in enumerate(xm):
        if e.is_const() and e.const == 0:
            if x_shape[j] != 1:
                return None
            x_idx.append([None])
            x_split.append([1])
            continue
        digits = mixed_radix(e, flat_sizes, x_shape[j])
        if digits is None:
            return None
        x_idx.append([d for d, _ in digits])
        x_split.append([size for _, size in digits])
    used = [d for ds in x_idx for d in ds if d is not None]
    if len(used) != len(set(used)):
        return None
    # every sub-dim of size > 1 must be read from x (else the read is not a projection)
    if any(flat_sizes[d] > 1 and d not in used for d in range(len(flat_sizes))):
        return None
    return subs, x_idx, x_split


def mixed_radix(e: ie.Lin, sizes: list[int], extent: int):
    """[(sub_dim, size)] outer first if e = sum sub_t * stride_t with strides
    forming a mixed radix that exactly covers `extent`; else None."""
    if e.const != 0:
        return None
    terms = []
    for a, c in e.terms:
        if not isinstance(a, ie.Dim) or c <= 0:
            return None
        terms.append((c, a.index))
    terms.sort()
    stride = 1
    for c, d in terms:
        if c != stride:
            return None
        stride *= sizes[d]
    if stride != extent:
        return None
    return [(d, sizes[d]) for _, d in reversed(terms)]


def _rewrite(g, operand_index, x, plan):
    subs, x_idx, x_split = plan
    maps = affine_maps(g)
    iters = iterator_types(g)
    n_loops = maps[0].n_dims
    ins, outs = inputs_of(g), outputs_of(g)
    c_dims = map_dims(maps[operand_index])
    # loop l -> its sub-loop sizes (outer first)
    split = {c_dims[i]: [size for _, size in subs[i]] for i in range(len(subs))}
    new_loop = {}  # old loop -> list of new loop ids
    new_iters = []
    for l in range(n_loops):
        k = len(split.get(l, [1]))
        new_loop[l] = list(range(len(new_iters), len(new_iters) + k))
        new_iters += [iters[l]] * k
    n_new = len(new_iters)
    # c's flat sub-dim index -> new loop id
    flat_to_loop = []
    for i in range(len(subs)):
        flat_to_loop += new_loop[c_dims[i]]

    def expand_operand(v, dims):
        """Expand each dim of v indexed by a split loop; return (value, new dims)."""
        shape = static_shape(v)
        groups, new_shape, new_dims, k = [], [], [], 0
        for d, n in zip(dims, shape):
            sizes = split.get(d, [n]) if d in split else [n]
            if d in split and prod(sizes) != n:
                raise AssertionError("broadcast operand over a split loop (refused by match)")
            groups.append(list(range(k, k + len(sizes))))
            new_shape += sizes
            new_dims += new_loop[d]
            k += len(sizes)
        if new_shape == shape:
            return v, new_dims
        et = ir.RankedTensorType(v.type).element_type
        rtype = ir.RankedTensorType.get(new_shape, et)
        return result_value(tensor.expand_shape(rtype, v, reassoc_attr(groups), [], new_shape)), new_dims

    def amap(dims_or_consts):
        exprs = [ir.AffineConstantExpr.get(0) if d is None else ir.AffineDimExpr.get(d)
                 for d in dims_or_consts]
        return ir.AffineMap.get(n_new, 0, exprs)

    with ir.InsertionPoint(g), g.location:
        new_ins, new_maps = [], []
        for i, (v, m) in enumerate(zip(ins, maps)):
            if i == operand_index:
                xv = x
                if any(len(sp) > 1 for sp in x_split):
                    groups, k, shape = [], 0, []
                    for sp in x_split:
                        groups.append(list(range(k, k + len(sp))))
                        k += len(sp)
                        shape += sp
                    et = ir.RankedTensorType(x.type).element_type
                    xv = result_value(tensor.expand_shape(ir.RankedTensorType.get(shape, et), x,
                                                    reassoc_attr(groups), [], shape))
                new_ins.append(xv)
                new_maps.append(amap([None if d is None else flat_to_loop[d]
                                      for ds in x_idx for d in ds]))
                continue
            nv, nd = expand_operand(v, map_dims(m))
            new_ins.append(nv)
            new_maps.append(amap(nd))
        new_outs, out_types, collapse = [], [], []
        for v, m in zip(outs, maps[len(ins):]):
            dims = map_dims(m)
            nv, nd = expand_operand(v, dims)
            new_outs.append(nv)
            new_maps.append(amap(nd))
            out_types.append(nv.type)
            groups, k = [], 0
            for d in dims:
                n = len(split.get(d, [1])) if d in split else 1
                groups.append(list(range(k, k + n)))
                k += n
            collapse.append(groups)
        new = rebuild_generic(g, new_ins, new_outs, new_maps, new_iters, out_types)
        new.move_before(g)
        for r_old, r_new, groups in zip(g.results, new.results, collapse):
            if r_new.type == r_old.type:
                r_old.replace_all_uses_with(r_new)
            else:
                cv = result_value(tensor.collapse_shape(r_old.type, r_new, reassoc_attr(groups)))
                r_old.replace_all_uses_with(cv)
    g.erase()
