"""texflow-eliminate-layout: remove layout transformations by SmartMem's pair rules.

Works on `layout.transform` ops (run texflow-raise-layout first) and applies these rules
(passes/layout/rules/, one file each) to a fixed point with texflow.ir.rewrite's driver,
counting what each removed.  Each rule implements cells of SmartMem's pair table
(texflow.ir.quadrants) and is offered only the producer/consumer pairs the table sends there:

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
* read-in-order (Fixed->Var): an elementwise read through the inverse permutation reads the
  source in order.
* fold-constant (weights offline): a transform of a constant becomes a
  constant in the new layout.
* expand-fold (Fixed->Var): a chain no single map absorbs folds into a contraction whose
  loops are split; fold-into-producer (Var->Fixed, "eliminate 2nd", GPU targets): a
  contraction writes the layout the chain after it produces.

Values with several consumers: a transform is removed only when all its
users absorbed it; otherwise it stays for the others (no computation is ever
duplicated: the patterns only rewrite index maps and move transforms, and an
elementwise op is rebuilt in place, not copied, and only when it has a
single use).  Ops the patterns do not understand (dynamic shapes, generics
using linalg.index, non-float bodies) are left unchanged.
"""

from __future__ import annotations

import dataclasses

from texflow import irutil
from texflow.ir.rewrite import Stage, apply_patterns
from texflow.ir.structured import CONTRACTIONS
from ..registry import Pass, register_pass, remark
from .rules.common import T_NAME, as_transform, transforms
from .rules.compose import ComposeChain
from .rules.expand_fold import ExpandFold
from .rules.fold_constant import FoldConstant
from .rules.fold_into_contraction import FoldIntoContractions
from .rules.fold_into_producer import FoldIntoProducer
from .rules.push_through_elementwise import PushThroughElementwise
from .rules.read_in_order import ReadInOrder

MAX_REWRITES = 1000


def _contractions(module) -> list:
    return irutil.collect(module, {"linalg.generic", *CONTRACTIONS})


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
        keep_matmul_loops: bool = dataclasses.field(
            default=False, metadata={"help": "expand-fold never splits a contraction's batch or row "
                                             "loops (IREE's GPU matmul configuration then no longer "
                                             "applies: Swin-Small 1.11x slower on an H200); on for GPUs"})
        max_constant_elements: int = dataclasses.field(
            default=1 << 26, metadata={"help": "largest constant re-laid out at compile time"})

    def stages(self) -> list[Stage]:
        """The rules in the order they are tried: folds into producers, then loop-splitting
        folds, then, transform by transform, compose, fold-constant, fold-into-contraction,
        push-through-elementwise and read-in-order."""
        o = self.options

        def rule(cls):
            return cls(o, self.bump)
        per_transform = [rule(ComposeChain), rule(FoldConstant)]
        if o.fold_into_contractions:
            per_transform.append(rule(FoldIntoContractions))
        if o.push_through_elementwise:
            per_transform.append(rule(PushThroughElementwise))
        per_transform.append(rule(ReadInOrder))
        return [Stage(transforms, [rule(FoldIntoProducer)] if o.fold_into_producers else []),
                Stage(_contractions, [rule(ExpandFold)] if o.fold_into_contractions else []),
                Stage(transforms, per_transform)]

    def apply(self, module) -> None:
        result = apply_patterns(module, self.stages(), MAX_REWRITES)
        if not result.converged:
            self.bump("rewrites stopped before a fixed point")
            remark(self.name, module, f"stopped after {result.rewrites} rewrites without reaching "
                                      f"a fixed point ({result.by_pattern})")
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
