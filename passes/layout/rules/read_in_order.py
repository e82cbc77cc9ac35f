"""Read in order (Fixed -> ILI&Var, "eliminate 1st"): an elementwise generic that reads a
permutation's result through the inverse permutation reads the permutation's source in order:
it takes the source with an identity map, and the transform loses that user (SmartMem's fold
into the consumer's index map, kept to the case where the read becomes contiguous, so no kernel
gets a strided read)."""

from __future__ import annotations

from iree.compiler import ir

from texflow.dialects.layout import TransformOp
from texflow.ir.structured import (affine_maps, inputs_of, is_elementwise, map_dims, set_affine_maps,
                                   verifies_changed)

from .common import FIRST, LayoutRule, inverse, users


def _apply(t: TransformOp, user, i: int, maps) -> None:
    set_affine_maps(user, maps)
    user.operands[i] = t.source


class ReadInOrder(LayoutRule):
    name = "read-in-order"
    actions = FIRST

    def match(self, t: TransformOp):
        if t.kind != "permute":
            return None
        perm = t.permutation
        rank = len(perm)
        inv = inverse(perm)
        for user in users(t):
            if not is_elementwise(user) or not self.permits(t.operation, user):
                continue
            maps = affine_maps(user)
            for i, (v, m) in enumerate(zip(inputs_of(user), maps)):
                dims = map_dims(m)
                if v != t.result or dims is None or m.n_dims != rank or len(dims) != rank:
                    continue
                # t.result dim k is the source's dim perm[k], read at loop dims[k]: source dim
                # s is read at loop dims[inv[s]]
                if [dims[inv[s]] for s in range(rank)] != list(range(rank)):
                    continue
                new_maps = list(maps)
                new_maps[i] = ir.AffineMap.get_identity(rank)
                if verifies_changed(user, lambda c: _apply(t, c, i, new_maps)):
                    return t, user, i, new_maps
        return None

    def rewrite(self, plan) -> None:
        t, user, i, maps = plan
        _apply(t, user, i, maps)
        self.bump("permuted reads folded into elementwise operand maps")
