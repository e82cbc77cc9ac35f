"""Compose (Fixed -> Fixed, "eliminate both"): a chain of transforms becomes one, or none.

The chain's maps are composed by index comprehension (texflow.index_expr).  If the composed map
is the identity the chain disappears; if it is a single permutation or a single reshape, one
transform replaces the chain.  Chains whose map is neither are kept (their intermediate layout
is real).  The longest suffix of the chain is tried first: the most transforms removed.  A lone
identity transform (a permutation in order, a reshape to its own shape) is removed too.
"""

from __future__ import annotations

import dataclasses

from iree.compiler import ir

from texflow import index_expr as ie
from texflow.dialects.layout import TransformOp
from texflow.ir.structured import static_shape

from .common import BOTH, LayoutRule, producer_transform


@dataclasses.dataclass
class Plan:
    t: TransformOp
    kind: str  # "identity" (t alone), "cancel", "permute" or "reshape"
    base: object = None  # the chain's source value
    n: int = 1  # transforms the chain's suffix holds
    perm: list | None = None


class ComposeChain(LayoutRule):
    name = "compose"
    actions = BOTH

    def match(self, t: TransformOp):
        chain = [t]
        while True:
            prev = producer_transform(chain[0].source)
            if prev is None:
                break
            chain.insert(0, prev)
        if len(chain) < 2:
            if t.kind == "permute" and t.permutation == list(range(len(t.permutation))):
                return Plan(t, "identity", t.source)
            if t.source_shape == t.result_shape and t.kind == "reshape":
                return Plan(t, "identity", t.source)
            return None
        if not self.permits(chain[-2].operation, t.operation):
            return None
        for start in range(len(chain) - 1):
            base = chain[start].source
            src_shape = static_shape(base)
            m = ie.identity_map(len(src_shape))
            for c in chain[start:]:
                m = ie.compose(m, c.index_map(), c.result_shape)
            n = len(chain) - start
            res_shape = t.result_shape
            perm = ie.as_permutation(m, src_shape, res_shape) if len(src_shape) == len(res_shape) else None
            if perm is not None and perm == list(range(len(perm))) and src_shape == res_shape:
                return Plan(t, "cancel", base, n)
            if perm is not None:
                if n == 1:
                    continue
                return Plan(t, "permute", base, n, perm)
            if n > 1 and (all(c.kind == "reshape" for c in chain[start:])
                          or ie.is_reshape(m, src_shape, res_shape)):
                return Plan(t, "reshape", base, n)
        return None

    def rewrite(self, p: Plan) -> None:
        t = p.t
        if p.kind == "identity":
            self.replace(t, p.base, "identity transforms removed")
        elif p.kind == "cancel":
            self.replace(t, p.base, "transforms cancelled (compose: identity)", p.n)
        else:
            with ir.InsertionPoint(t.operation), t.operation.location:
                new = TransformOp.permute(p.base, p.perm) if p.kind == "permute" \
                    else TransformOp.reshape(p.base, t.result_shape)
            what = "permutation" if p.kind == "permute" else "reshape"
            self.replace(t, new.result, f"transforms composed into one {what}", p.n - 1)
