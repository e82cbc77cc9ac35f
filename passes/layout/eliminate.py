"""texflow-eliminate-layout: remove layout transformations by SmartMem's pair rules.

Works on `layout.transform` ops (run texflow-raise-layout first) and applies
these patterns to a fixed point, counting what each removed:

* compose (Fixed->Fixed, "eliminate both"): a chain of transforms is composed
  by index comprehension (texflow.index_expr).  If the composed map is the
  identity the chain disappears; if it is a single permutation or a single
  reshape, one transform replaces the chain.  Chains whose map is neither
  are kept (their intermediate layout is real).
* fold-into-contraction (Fixed->Var, "eliminate 1st"): a permutation read by
  a contraction (linalg.matmul / batch_matmul through their `indexing_maps`,
  or a linalg.generic with a reduction) is folded into that operand's
  indexing map, so the kernel reads the untransposed tensor directly.
* push-through-elementwise (ILI&Var ops are layout independent): a
  permutation feeding an elementwise linalg.generic is moved below it -- the
  generic is rebuilt to compute in the source layout -- when the chain of
  elementwise ops it starts ends in a transform it composes with, so the two
  meet and cancel.  Other operands are re-indexed; constants among them are
  re-laid out at compile time (never at run time).
* fold-constant (weights offline): a transform of a constant becomes a
  constant in the new layout.

Values with several consumers: a transform is removed only when all its
users absorbed it; otherwise it stays for the others (no computation is ever
duplicated: the patterns only rewrite index maps and move transforms, and an
elementwise op is rebuilt in place, not copied, and only when it has a
single use).  Ops the patterns do not understand (dynamic shapes, generics
using linalg.index, non-float bodies) are left unchanged.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from iree.compiler import ir
from iree.compiler.dialects import tensor

from texflow import index_expr as ie
from texflow import irutil
from texflow.dialects.layout import TransformOp
from texflow.ir.constants import constant_array, make_constant
from texflow.ir.structured import (CONTRACTIONS, affine_maps, contraction_maps, inputs_of, is_elementwise,
                                   iterator_types, map_dims, outputs_of, permutation_map_of,
                                   reads_output as _reads_output, rebuild_generic, set_affine_maps,
                                   static_shape, uses_index_op, verifies as _verifies)
from ..registry import Pass, register_pass, remark

T_NAME = TransformOp.OPERATION_NAME

def as_transform(o) -> TransformOp | None:
    if o is None or o.name != T_NAME:
        return None
    return o if isinstance(o, TransformOp) else TransformOp(o)


def producer_transform(v) -> TransformOp | None:
    return as_transform(irutil.producer(v))


def inverse(perm: list[int]) -> list[int]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


@register_pass
class EliminateLayout(Pass):
    name = "texflow-eliminate-layout"
    undoable = True  # an optimisation: dropped, not fatal, if its result does not verify
    summary = "Compose, cancel and fold layout.transform ops (SmartMem pair rules)"

    @dataclasses.dataclass
    class Options:
        fold_into_producers: bool = dataclasses.field(
            default=False, metadata={"help": "let contractions write the layout a transform chain "
                                             "after them produces (SmartMem 'eliminate 2nd')"})
        fold_into_contractions: bool = dataclasses.field(
            default=True, metadata={"help": "fold permutations into matmul/reduction operand maps"})
        push_through_elementwise: bool = dataclasses.field(
            default=True, metadata={"help": "move permutations below elementwise ops to meet their inverse"})
        max_constant_elements: int = dataclasses.field(
            default=1 << 26, metadata={"help": "largest constant re-laid out at compile time"})

    def apply(self, module) -> None:
        for _ in range(1000):
            if not self.step(module):
                break
        for o in irutil.collect(module, {T_NAME}):
            t = as_transform(o)
            users = sorted({u.owner.operation.name for u in t.result.uses})
            remark(self.name, o, f"kept {t.kind} {t.source_shape}->{t.result_shape} "
                                 f"(users: {', '.join(users) or 'none'})")
        # dead transforms (all users absorbed them), to a fixed point
        dead = True
        while dead:
            dead = [o for o in irutil.collect(module, {T_NAME}) if not list(o.results[0].uses)]
            for o in dead:
                o.erase()

    def step(self, module) -> bool:
        if self.options.fold_into_producers:
            for o in irutil.collect(module, {T_NAME}):
                t = as_transform(o)
                if t.kind == "permute" and list(t.result.uses) and self._fold_into_producer(t):
                    return True
        if self.options.fold_into_contractions and self.expand_fold_chains(module):
            return True
        for o in irutil.collect(module, {T_NAME}):
            t = as_transform(o)
            if not list(t.result.uses):
                continue
            if self.compose_chain(t) or self.fold_constant(t):
                return True
            if t.kind != "permute":
                continue
            if self.options.fold_into_contractions and self.fold_into_contractions(t):
                return True
            if self.options.push_through_elementwise and self.push_through_elementwise(t):
                return True
            if self.read_in_order(t):
                return True
        return False

    # -- a permuted read that undoes the permutation ---------------------------
    def read_in_order(self, t: TransformOp) -> bool:
        """An elementwise generic that reads `t`'s result through the inverse permutation
        reads `t`'s source in order: it takes the source with an identity map, and the
        transform loses that user (SmartMem's fold into the consumer's index map, kept to the
        case where the read becomes contiguous, so no kernel gets a strided read)."""
        perm = t.permutation
        rank = len(perm)
        inv = inverse(perm)
        for use in list(t.result.uses):
            user = use.owner
            if not isinstance(user, (ir.Operation, ir.OpView)):
                continue
            user = user.operation
            if not is_elementwise(user):
                continue
            maps = affine_maps(user)
            ins = inputs_of(user)
            for i, (v, m) in enumerate(zip(ins, maps)):
                dims = map_dims(m)
                if v != t.result or dims is None or m.n_dims != rank or len(dims) != rank:
                    continue
                # t.result dim k is the source's dim perm[k], read at loop dims[k]: source dim
                # s is read at loop dims[inv[s]]
                if [dims[inv[s]] for s in range(rank)] != list(range(rank)):
                    continue
                maps[i] = ir.AffineMap.get_identity(rank)
                set_affine_maps(user, maps)
                user.operands[i] = t.source
                if not _verifies(user):
                    user.operands[i] = t.result
                    maps[i] = m
                    set_affine_maps(user, maps)
                    continue
                self.bump("permuted reads folded into elementwise operand maps")
                return True
        return False

    # -- compose: Fixed -> Fixed ------------------------------------------------
    def compose_chain(self, t: TransformOp) -> bool:
        chain = [t]
        while True:
            prev = producer_transform(chain[0].source)
            if prev is None:
                break
            chain.insert(0, prev)
        if len(chain) < 2:
            if t.kind == "permute" and t.permutation == list(range(len(t.permutation))):
                self._replace(t, t.source, "identity transforms removed")
                return True
            if t.source_shape == t.result_shape and t.kind == "reshape":
                self._replace(t, t.source, "identity transforms removed")
                return True
            return False
        # Try the longest suffix of the chain first: the most transforms removed.
        for start in range(len(chain) - 1):
            base = chain[start].source
            src_shape = static_shape(base)
            m = ie.identity_map(len(src_shape))
            for c in chain[start:]:
                m = ie.compose(m, c.index_map(), c.result_shape)
            n = len(chain) - start
            res_shape = t.result_shape
            perm = ie.as_permutation(m, src_shape, res_shape) if len(src_shape) == len(res_shape) else None
            with ir.InsertionPoint(t.operation), t.operation.location:
                if perm is not None and perm == list(range(len(perm))) and src_shape == res_shape:
                    self._replace(t, base, "transforms cancelled (compose: identity)", n)
                    return True
                if perm is not None:
                    if n == 1:
                        continue
                    new = TransformOp.permute(base, perm)
                    self._replace(t, new.result, "transforms composed into one permutation", n - 1)
                    return True
                if n > 1 and (all(c.kind == "reshape" for c in chain[start:])
                              or ie.is_reshape(m, src_shape, res_shape)):
                    new = TransformOp.reshape(base, res_shape)
                    self._replace(t, new.result, "transforms composed into one reshape", n - 1)
                    return True
        return False

    def _replace(self, t: TransformOp, value, stat: str, n: int = 1) -> None:
        t.result.replace_all_uses_with(value)
        t.operation.erase()
        self.bump(stat, n)

    # -- weights offline --------------------------------------------------------
    def fold_constant(self, t: TransformOp) -> bool:
        cst = irutil.producer(t.source)
        if cst is None or cst.name != "arith.constant":
            return False
        data = constant_array(cst, self.options.max_constant_elements)
        if data is None:
            return False
        if t.kind == "permute":
            new = np.ascontiguousarray(np.transpose(data, t.permutation))
        else:
            new = data.reshape(t.result_shape)
        with ir.InsertionPoint(t.operation), t.operation.location:
            v = make_constant(new, t.result.type)
        self._replace(t, v, "transforms folded into constants")
        return True

    # -- Fixed -> ILD&Var: fold into contractions ------------------------------
    def fold_into_contractions(self, t: TransformOp) -> bool:
        changed = False
        for use in list(t.result.uses):
            user = use.owner
            if not isinstance(user, (ir.Operation, ir.OpView)):
                continue
            user = user.operation
            if user.name in CONTRACTIONS or (user.name == "linalg.generic"
                                             and "reduction" in iterator_types(user)
                                             and not uses_index_op(user)):
                if producer_absorbs_transforms(t.source):
                    continue
                if self._fold_operand(t, user):
                    changed = True
        return changed

    def _fold_operand(self, t: TransformOp, user) -> bool:
        ins = inputs_of(user)
        positions = [i for i, v in enumerate(ins) if v == t.result]
        if not positions:
            return False
        cm = contraction_maps(user)
        if cm is None:
            return False
        old_maps = cm[0]
        maps = list(old_maps)
        for i in positions:
            maps[i] = permutation_map_of(t.permutation, maps[i])
        had = "indexing_maps" in user.attributes
        saved = user.attributes["indexing_maps"] if had else None
        set_affine_maps(user, maps)
        user.replace_uses_of_with(t.result, t.source)
        if not _verifies(user):  # e.g. a map this named op cannot express
            user.replace_uses_of_with(t.source, t.result)
            if had:
                user.attributes["indexing_maps"] = saved
            else:
                del user.attributes["indexing_maps"]
            return False
        self.bump(f"permutations folded into {user.name} operand maps")
        return True

    def _fold_into_producer(self, t: TransformOp) -> bool:
        from .expand_fold import chain_to, try_fold_into_producer
        n = len(chain_to(t.result))
        if try_fold_into_producer(t):
            self.bump("transforms folded into the producing contraction's output", n)
            return True
        return False

    def expand_fold_chains(self, module) -> bool:
        """Chains with a permutation feeding a contraction that no single map
        can absorb: split the contraction's loops (expand_fold)."""
        from .expand_fold import chain_to, try_expand_fold
        for user in irutil.collect(module, {"linalg.generic", *CONTRACTIONS}):
            if user.name == "linalg.generic" and ("reduction" not in iterator_types(user)
                                                 or uses_index_op(user)):
                continue
            for i, v in enumerate(inputs_of(user)):
                chain = chain_to(v)
                if len(chain) < 2:
                    continue  # a lone permutation folds without splitting loops
                if producer_absorbs_transforms(chain[0].source):
                    continue
                try:
                    if try_expand_fold(user, i, min_chain=2):
                        self.bump("transforms folded into contractions (loops split)", len(chain))
                        return True
                except ValueError:
                    continue
        return False

    # -- ILI&Var: push through elementwise ops to meet the inverse -------------
    def push_through_elementwise(self, t: TransformOp) -> bool:
        uses = list(t.result.uses)
        if len(uses) == 1:
            e = uses[0].owner.operation
            if is_elementwise(e) and self._meets_transform(t, e):
                return self._rebuild_in_source_layout(t, e)
        return self._push_through_region(t)

    def _push_through_region(self, t: TransformOp) -> bool:
        """The DAG version: the elementwise ops reachable from `t` (values with
        several users included, e.g. SiLU's x * sigmoid(x)) form a region whose
        every exit is a transform composing with `t` to a permutation.  The
        whole region is rebuilt in `t`'s source layout; at least one exit must
        cancel, so the number of transforms never grows."""
        perm = t.permutation
        rank = len(perm)
        region, exits, work = [], [], [t.result]
        while work:
            v = work.pop()
            for use in list(v.uses):
                u = use.owner.operation
                t2 = as_transform(u)
                if t2 is not None:
                    if t2.kind != "permute" or any(u == x.operation for x in exits):
                        if t2.kind != "permute":
                            return False
                        continue
                    exits.append(t2)
                    continue
                if any(u == r for r in region):
                    continue
                if not is_elementwise(u) or _reads_output(u):
                    return False
                maps = affine_maps(u)
                if map_dims(maps[-1]) != list(range(rank)) or maps[-1].n_dims != rank:
                    return False
                region.append(u)
                if len(region) > 64:
                    return False
                work.append(u.results[0])
        if not region or not exits:
            return False
        gains = 0
        for t2 in exits:
            m = ie.compose(t.index_map(), t2.index_map(), t2.result_shape)
            p2 = ie.as_permutation(m, t.source_shape, t2.result_shape)
            if p2 is None:
                return False
            gains += p2 == list(range(rank))
        if not gains:
            return False
        import functools
        region.sort(key=functools.cmp_to_key(lambda a, b: -1 if a.is_before_in_block(b) else 1))
        mapping = [(t.result, t.source)]

        def mapped(v):
            for old, new in mapping:
                if old == v:
                    return new
            return None

        src_shape = t.source_shape
        new_ops = []
        for e in region:
            maps = affine_maps(e)
            new_ins, new_maps = [], []
            for v, m in zip(inputs_of(e), maps[:-1]):
                dims = map_dims(m)
                if dims is None:
                    return False  # checked by is_elementwise/map_dims above in practice
                nv = mapped(v)
                if nv is not None and dims == list(range(rank)):
                    new_ins.append(nv)
                    new_maps.append(ir.AffineMap.get_identity(rank))
                    continue
                if nv is not None:
                    return False
                nd = [perm[d] for d in dims]
                cv, nd = self._relayout_constant(v, nd)
                new_ins.append(cv)
                new_maps.append(ir.AffineMap.get(rank, 0, [ir.AffineDimExpr.get(d) for d in nd]))
            new_maps.append(ir.AffineMap.get_identity(rank))
            et = ir.RankedTensorType(e.results[0].type).element_type
            with ir.InsertionPoint(e), e.location:
                init = tensor.empty(list(src_shape), et)
                ne = rebuild_generic(e, new_ins, [init], new_maps, iterator_types(e),
                                     [ir.RankedTensorType.get(list(src_shape), et)])
                ne.move_before(e)
            mapping.append((e.results[0], ne.results[0]))
            new_ops.append(ne)
        for t2 in exits:
            nv = mapped(t2.source)
            m = ie.compose(t.index_map(), t2.index_map(), t2.result_shape)
            p2 = ie.as_permutation(m, t.source_shape, t2.result_shape)
            if p2 == list(range(rank)):
                t2.result.replace_all_uses_with(nv)
                self.bump("transforms cancelled (compose: identity)")
            else:
                with ir.InsertionPoint(t2.operation), t2.operation.location:
                    n2 = TransformOp.permute(nv, p2)
                t2.result.replace_all_uses_with(n2.result)
            t2.operation.erase()
        for e in reversed(region):
            e.erase()
        if not list(t.result.uses):
            t.operation.erase()
            self.bump("transforms cancelled (compose: identity)")
        self.bump("permutations pushed through elementwise regions", len(region))
        return True

    def _meets_transform(self, t: TransformOp, e) -> bool:
        """Does the single-use elementwise chain from `e` end in a transform
        that, composed with `t`, gives one permutation or less?"""
        v = e.results[0]
        for _ in range(64):
            uses = list(v.uses)
            if len(uses) != 1:
                return False
            nxt = uses[0].owner.operation
            t2 = as_transform(nxt)
            if t2 is not None:
                src = t.source_shape
                m = ie.compose(t.index_map(), t2.index_map(), t2.result_shape)
                return len(src) == len(t2.result_shape) and \
                    ie.as_permutation(m, src, t2.result_shape) is not None
            if not is_elementwise(nxt) or not any(v == x for x in inputs_of(nxt)):
                return False
            v = nxt.results[0]
        return False

    def _rebuild_in_source_layout(self, t: TransformOp, e) -> bool:
        perm = t.permutation
        rank = len(perm)
        maps = affine_maps(e)
        ins = inputs_of(e)
        outs = outputs_of(e)
        out_map = maps[-1]
        if len(outs) != 1 or map_dims(out_map) != list(range(rank)) or out_map.n_dims != rank:
            return False
        if any(v == outs[0] for v in ins) or _reads_output(e):
            return False
        # The rebuild assumes `e` iterates over `t`'s result layout: its output has `t`'s result
        # shape and it reads `t` in order.  A generic that reads `t` through a permuted map
        # (an earlier push left it reading a transposed value, EfficientNet's SiLU after a
        # squeeze-excitation conv) iterates in another order; rebuilt as if it did not, its
        # maps disagree with its operands' shapes.
        if static_shape(e.results[0]) != list(t.result_shape) or any(
                v == t.result and map_dims(m) != list(range(rank)) for v, m in zip(ins, maps[:-1])):
            return False
        # Old loop k becomes new loop perm[k] (the source layout's order).
        new_maps, new_ins = [], []
        for v, m in zip(ins, maps[:-1]):
            dims = map_dims(m)
            if dims is None:
                return False
            if v == t.result:
                new_ins.append(t.source)
                new_maps.append(ir.AffineMap.get_identity(rank))
                continue
            nd = [perm[d] for d in dims]
            new_v, nd = self._relayout_constant(v, nd)
            new_ins.append(new_v)
            new_maps.append(ir.AffineMap.get(rank, 0, [ir.AffineDimExpr.get(d) for d in nd]))
        new_maps.append(ir.AffineMap.get_identity(rank))
        src_type = ir.RankedTensorType(t.source.type)
        out_et = ir.RankedTensorType(e.results[0].type).element_type
        with ir.InsertionPoint(e), e.location:
            init = tensor.empty(list(src_type.shape), out_et)
            new_e = rebuild_generic(e, new_ins, [init], new_maps, iterator_types(e),
                                    [ir.RankedTensorType.get(list(src_type.shape), out_et)])
        with ir.InsertionPoint(e), e.location:
            new_e.move_before(e)
            t2 = TransformOp.permute(new_e.results[0], perm)
        e.results[0].replace_all_uses_with(t2.result)
        e.erase()
        if not list(t.result.uses):
            t.operation.erase()
        self.bump("permutations pushed through elementwise ops")
        return True

    def _relayout_constant(self, v, dims: list[int]):
        """An operand read with dims out of order: re-lay-out a constant so it
        is read in order (weights offline); other values keep a strided read."""
        if dims == sorted(dims):
            return v, dims
        cst = irutil.producer(v)
        if cst is None or cst.name != "arith.constant":
            return v, dims
        data = constant_array(cst, self.options.max_constant_elements)
        if data is None:
            return v, dims
        order = sorted(range(len(dims)), key=lambda i: dims[i])
        new = np.ascontiguousarray(np.transpose(data, order))
        et = ir.RankedTensorType(v.type).element_type
        with ir.InsertionPoint(cst), cst.location:
            nv = make_constant(new, ir.RankedTensorType.get(list(new.shape), et))
        self.bump("constants re-laid out at compile time")
        return nv, sorted(dims)


# -- helpers -------------------------------------------------------------------
def producer_absorbs_transforms(value) -> bool:
    """Would IREE fuse a transform of `value` into the dispatch producing it?

    IREE's dispatch formation writes a transpose through the producer's
    output map when the producer is elementwise (SmartMem's "eliminate 2nd",
    done by IREE), so such transforms cost no data-movement dispatch and
    folding them into the consumer instead only makes the consumer's reads
    strided (measured: attention with folded head transposes ran ~20% slower
    on llvm-cpu).  A transform of a function input or of a non-linalg value
    has no producer to hide in: that is where folding pays."""
    o = irutil.producer(value)
    # IREE fuses a transpose into an elementwise producer's dispatch, but not
    # into a contraction's or reduction's (measured: attention's Q/V head
    # transposes after batch_matmul stay separate data-movement dispatches).
    return o is not None and o.name == "linalg.generic" and is_elementwise(o)


