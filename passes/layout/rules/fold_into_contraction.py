"""Fold into contractions (Fixed -> ILD&Var, "eliminate 1st"): a permutation read by a
contraction (linalg.matmul / batch_matmul through their `indexing_maps`, or a linalg.generic
with a reduction) is folded into that operand's indexing map, so the kernel reads the
untransposed tensor directly.  Not done when the transform's producer is an elementwise op
(IREE already writes the transform through that producer's output map: folding would only make
the contraction's reads strided), nor for a map the named op cannot express (asked of the
verifier on a detached copy before anything changes)."""

from __future__ import annotations

from texflow.dialects.layout import TransformOp
from texflow.ir.structured import (CONTRACTIONS, contraction_maps, inputs_of, iterator_types,
                                   permutation_map_of, set_affine_maps, uses_index_op,
                                   verifies_changed)

from .common import FIRST, LayoutRule, producer_absorbs_transforms, users


def _folded_maps(t: TransformOp, user):
    """The contraction's maps with each operand reading `t` reading `t`'s source, or None."""
    positions = [i for i, v in enumerate(inputs_of(user)) if v == t.result]
    cm = contraction_maps(user)
    if not positions or cm is None:
        return None
    maps = list(cm[0])
    for i in positions:
        maps[i] = permutation_map_of(t.permutation, maps[i])
    return maps


def _apply(t: TransformOp, user, maps) -> None:
    set_affine_maps(user, maps)
    user.replace_uses_of_with(t.result, t.source)


class FoldIntoContractions(LayoutRule):
    name = "fold-into-contraction"
    actions = FIRST

    def match(self, t: TransformOp):
        if t.kind != "permute" or producer_absorbs_transforms(t.source):
            return None
        plans = []
        for user in users(t):
            if not (user.name in CONTRACTIONS or (user.name == "linalg.generic"
                                                  and "reduction" in iterator_types(user)
                                                  and not uses_index_op(user))):
                continue
            if not self.permits(t.operation, user):
                continue
            maps = _folded_maps(t, user)
            if maps is None or not verifies_changed(user, lambda c: _apply(t, c, maps)):
                continue  # e.g. a map this named op cannot express
            plans.append((user, maps))
        return (t, plans) if plans else None

    def rewrite(self, plan) -> None:
        t, plans = plan
        for user, maps in plans:
            _apply(t, user, maps)
            self.bump(f"permutations folded into {user.name} operand maps")
