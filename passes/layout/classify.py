"""texflow-classify-quadrants: annotate ops with their SmartMem quadrant.

Two traits per operator (SmartMem, ASPLOS'24):
  * input-layout dependent (ILD) or independent (ILI): does its speed depend
    on the layout it reads?
  * variable or fixed output layout: can it write any layout by changing its
    index computation?

Classification rules (in order):
  ILD&Fixed : layout.transform, linalg.transpose, a permutation-only
              linalg.generic, tensor.expand_shape/collapse_shape/reshape,
              linalg.copy, linalg.pack/unpack, tensor.pack/unpack
  ILI&Fixed : tensor.extract_slice/insert_slice/pad/concat/gather,
              linalg.broadcast, a linalg.generic that gathers (tensor.extract
              or linalg.index in its body)
  ILD&Var   : linalg.matmul/batch_matmul/matvec/vecmat/dot, every
              linalg.conv_* / depthwise_conv_* / pooling_*, linalg.softmax,
              linalg.reduce, and every linalg.generic with a reduction
              iterator (the generic forms of softmax, layernorm, mean, ...)
  ILI&Var   : all-parallel linalg.generic (elementwise), linalg.map,
              linalg.elementwise -- *unless* an input is read through a
              map that reorders dimensions relative to the output: then its
              speed depends on that operand's layout and it becomes ILD&Var
              (SmartMem: "the same op can change quadrant when its
              operands' layouts differ").
  (none)    : tensor.empty, linalg.fill, constants and other non-compute ops.

Pair rules for a producer -> consumer edge (rows producer, columns consumer),
implemented by `texflow.ir.quadrants.pair_rule`; texflow-eliminate-layout offers each
of its rules only the pairs whose cell that rule implements:

                 | ILD-Var    ILI-Var    ILD-Fixed      ILI-Fixed
      ILD-Var    | keep       try fuse   eliminate 2nd  eliminate 2nd
      ILI-Var    | try fuse   try fuse   eliminate 2nd  eliminate 2nd
      ILD-Fixed  | elim 1st   elim 1st   eliminate both eliminate both
      ILI-Fixed  | elim 1st   elim 1st   eliminate both eliminate both

A fused pair takes the quadrant of the more constrained op (`fused_quadrant`).
The classification itself lives in texflow.ir.quadrants, shared with the elimination rules.
"""

from __future__ import annotations

from texflow import irutil
from texflow.dialects.layout import set_quadrant
from texflow.ir.quadrants import classify
from ..registry import Pass, register_pass


@register_pass
class ClassifyQuadrants(Pass):
    name = "texflow-classify-quadrants"
    undoable = True  # an optimisation: dropped, not fatal, if its result does not verify
    summary = "Annotate every op with its SmartMem quadrant (#layout.quadrant)"

    def apply(self, module) -> None:
        for o in irutil.collect(module):
            q = classify(o)
            if q is not None:
                set_quadrant(o, q)
                self.bump(f"{q.value} ops")
