"""Push through elementwise ops (Fixed -> ILI&Var, "eliminate 1st"; ILI&Var ops are layout
independent): a permutation feeding elementwise linalg.generics is moved below them -- they are
rebuilt to compute in the permutation's source layout -- when the elementwise ops it starts end
in transforms it composes with, so the two meet and cancel.  Other operands are re-indexed;
constants among them are re-laid out at compile time (never at run time).

Two forms: a single-use chain of elementwise ops ending in one transform, and the DAG form (a
region of elementwise ops reachable from the permutation, values with several users included,
e.g. SiLU's x * sigmoid(x)) whose every exit is a permutation, at least one of them cancelling,
so the number of transforms never grows.  No computation is duplicated: each op is rebuilt in
place, not copied."""

from __future__ import annotations

import dataclasses
import functools

from iree.compiler import ir
from iree.compiler.dialects import tensor

from texflow import index_expr as ie
from texflow.dialects.layout import TransformOp
from texflow.ir.structured import (affine_maps, inputs_of, is_elementwise, iterator_types, map_dims,
                                   outputs_of, reads_output, rebuild_generic, static_shape)

from .common import BOTH, FIRST, LayoutRule, as_transform

_MAX_CHAIN = 64  # elementwise ops followed from one permutation


@dataclasses.dataclass
class ChainPlan:
    t: TransformOp
    e: object  # the single elementwise user, rebuilt in the source layout


@dataclasses.dataclass
class RegionPlan:
    t: TransformOp
    region: list  # elementwise ops in block order
    exits: list  # (transform, permutation from t's source: the identity when it cancels)


class PushThroughElementwise(LayoutRule):
    name = "push-through-elementwise"
    actions = FIRST | BOTH  # an elementwise op written as a copy is classified Fixed

    def match(self, t: TransformOp):
        if t.kind != "permute":
            return None
        uses = list(t.result.uses)
        if len(uses) == 1:
            e = uses[0].owner.operation
            if is_elementwise(e) and self._meets_transform(t, e):
                if not self.permits(t.operation, e):
                    return None
                return ChainPlan(t, e) if self._rebuildable(t, e) else None
        return self._region(t)

    # -- the single-use chain ---------------------------------------------------------------
    def _meets_transform(self, t: TransformOp, e) -> bool:
        """Does the single-use elementwise chain from `e` end in a transform that, composed
        with `t`, gives one permutation or less?"""
        v = e.results[0]
        for _ in range(_MAX_CHAIN):
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

    @staticmethod
    def _rebuildable(t: TransformOp, e) -> bool:
        rank = len(t.permutation)
        maps = affine_maps(e)
        ins, outs = inputs_of(e), outputs_of(e)
        out_map = maps[-1]
        if len(outs) != 1 or map_dims(out_map) != list(range(rank)) or out_map.n_dims != rank:
            return False
        if any(v == outs[0] for v in ins) or reads_output(e):
            return False
        # The rebuild assumes `e` iterates over `t`'s result layout: its output has `t`'s result
        # shape and it reads `t` in order.  A generic that reads `t` through a permuted map (an
        # earlier push left it reading a transposed value, EfficientNet's SiLU after a
        # squeeze-excitation conv) iterates in another order; rebuilt as if it did not, its
        # maps would disagree with its operands' shapes.
        if static_shape(e.results[0]) != list(t.result_shape) or any(
                v == t.result and map_dims(m) != list(range(rank)) for v, m in zip(ins, maps[:-1])):
            return False
        return all(map_dims(m) is not None for m in maps[:-1])

    def _rewrite_chain(self, p: ChainPlan) -> None:
        t, e = p.t, p.e
        perm = t.permutation
        rank = len(perm)
        maps = affine_maps(e)
        # Old loop k becomes new loop perm[k] (the source layout's order).
        new_maps, new_ins = [], []
        for v, m in zip(inputs_of(e), maps[:-1]):
            if v == t.result:
                new_ins.append(t.source)
                new_maps.append(ir.AffineMap.get_identity(rank))
                continue
            nd = [perm[d] for d in map_dims(m)]
            new_v, nd = self.relayout_constant(v, nd)
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

    # -- the region -------------------------------------------------------------------------
    def _region(self, t: TransformOp):
        perm = t.permutation
        rank = len(perm)
        region, exits, work = [], [], [t.result]
        while work:
            v = work.pop()
            for use in list(v.uses):
                u = use.owner.operation
                t2 = as_transform(u)
                if t2 is not None:
                    if t2.kind != "permute":
                        return None
                    if not any(u == x.operation for x in exits):
                        exits.append(t2)
                    continue
                if any(u == r for r in region):
                    continue
                if not is_elementwise(u) or reads_output(u):
                    return None
                maps = affine_maps(u)
                if map_dims(maps[-1]) != list(range(rank)) or maps[-1].n_dims != rank:
                    return None
                region.append(u)
                if len(region) > _MAX_CHAIN:
                    return None
                work.append(u.results[0])
        if not region or not exits:
            return None
        planned, gains = [], 0
        for t2 in exits:
            m = ie.compose(t.index_map(), t2.index_map(), t2.result_shape)
            p2 = ie.as_permutation(m, t.source_shape, t2.result_shape)
            if p2 is None:
                return None
            gains += p2 == list(range(rank))
            planned.append((t2, p2))
        if not gains:
            return None
        region.sort(key=functools.cmp_to_key(lambda a, b: -1 if a.is_before_in_block(b) else 1))
        # Every read of a value the rebuild replaces (t's result, a region op's result) must be
        # in order: the new op reads the replacement in the source layout.
        inside = [t.result] + [e.results[0] for e in region]
        for e in region:
            for v, m in zip(inputs_of(e), affine_maps(e)[:-1]):
                dims = map_dims(m)
                if dims is None or (any(v == x for x in inside) and dims != list(range(rank))):
                    return None
        if not all(self.permits(t.operation, u.owner.operation) for u in t.result.uses):
            return None
        return RegionPlan(t, region, planned)

    def _rewrite_region(self, p: RegionPlan) -> None:
        t, region = p.t, p.region
        perm = t.permutation
        rank = len(perm)
        mapping = [(t.result, t.source)]

        def mapped(v):
            for old, new in mapping:
                if old == v:
                    return new
            return None

        src_shape = t.source_shape
        for e in region:
            maps = affine_maps(e)
            new_ins, new_maps = [], []
            for v, m in zip(inputs_of(e), maps[:-1]):
                dims = map_dims(m)
                nv = mapped(v)
                if nv is not None:
                    new_ins.append(nv)
                    new_maps.append(ir.AffineMap.get_identity(rank))
                    continue
                nd = [perm[d] for d in dims]
                cv, nd = self.relayout_constant(v, nd)
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
        for t2, p2 in p.exits:
            nv = mapped(t2.source)
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

    def rewrite(self, plan) -> None:
        if isinstance(plan, ChainPlan):
            self._rewrite_chain(plan)
        else:
            self._rewrite_region(plan)
