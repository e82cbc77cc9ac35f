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
implemented by `pair_rule` and applied by texflow-eliminate-layout:

                 | ILD-Var    ILI-Var    ILD-Fixed      ILI-Fixed
      ILD-Var    | keep       try fuse   eliminate 2nd  eliminate 2nd
      ILI-Var    | try fuse   try fuse   eliminate 2nd  eliminate 2nd
      ILD-Fixed  | elim 1st   elim 1st   eliminate both eliminate both
      ILI-Fixed  | elim 1st   elim 1st   eliminate both eliminate both

A fused pair takes the quadrant of the more constrained op (`fused_quadrant`).
"""

from __future__ import annotations

import enum

from texflow import irutil
from texflow.dialects.layout import Quadrant, set_quadrant
from texflow.ir.structured import (affine_maps, generic_permutation, inputs_of, is_copy_body,
                                   iterator_types, map_dims, uses_index_op)
from ..registry import Pass, register_pass

ILD_FIXED_OPS = {"layout.transform", "linalg.transpose", "tensor.expand_shape",
                 "tensor.collapse_shape", "tensor.reshape", "linalg.copy", "linalg.pack",
                 "linalg.unpack", "tensor.pack", "tensor.unpack"}
ILI_FIXED_OPS = {"tensor.extract_slice", "tensor.insert_slice", "tensor.pad", "tensor.concat",
                 "tensor.gather", "linalg.broadcast"}
ILD_VAR_OPS = {"linalg.matmul", "linalg.batch_matmul", "linalg.matvec", "linalg.vecmat",
               "linalg.dot", "linalg.batch_matvec", "linalg.softmax", "linalg.reduce",
               "linalg.batch_reduce_matmul", "linalg.contract"}
ILI_VAR_OPS = {"linalg.map", "linalg.elementwise"}


def classify(o) -> Quadrant | None:
    name = o.name
    if name in ILD_FIXED_OPS:
        return Quadrant.ILD_FIXED
    if name in ILI_FIXED_OPS:
        return Quadrant.ILI_FIXED
    if name in ILD_VAR_OPS or name.startswith(("linalg.conv_", "linalg.depthwise_conv",
                                               "linalg.pooling_")):
        return Quadrant.ILD_VAR
    if name in ILI_VAR_OPS:
        return Quadrant.ILI_VAR
    if name != "linalg.generic":
        return None
    if generic_permutation(o) is not None:
        return Quadrant.ILD_FIXED
    if uses_index_op(o):
        return Quadrant.ILI_FIXED
    if "reduction" in iterator_types(o):
        return Quadrant.ILD_VAR
    if is_copy_body(o) and len(inputs_of(o)) == 1:
        return Quadrant.ILI_FIXED  # a broadcast written as a generic
    maps = affine_maps(o)
    out_dims = map_dims(maps[-1])
    for m in maps[:len(inputs_of(o))]:
        dims = map_dims(m)
        if dims is None or out_dims is None:
            return Quadrant.ILD_VAR  # non-trivial index arithmetic
        # positions of this operand's dims in the output's order must increase
        pos = [out_dims.index(d) for d in dims if d in out_dims]
        if pos != sorted(pos):
            return Quadrant.ILD_VAR
    return Quadrant.ILI_VAR


class Action(enum.Enum):
    KEEP = "keep both"
    FUSE = "try fuse"
    ELIMINATE_FIRST = "eliminate 1st"
    ELIMINATE_SECOND = "eliminate 2nd"
    ELIMINATE_BOTH = "eliminate both"


def pair_rule(producer: Quadrant, consumer: Quadrant) -> Action:
    """SmartMem's producer/consumer rule table."""
    if not producer.variable and not consumer.variable:
        return Action.ELIMINATE_BOTH
    if not producer.variable:
        return Action.ELIMINATE_FIRST
    if not consumer.variable:
        return Action.ELIMINATE_SECOND
    if producer is Quadrant.ILD_VAR and consumer is Quadrant.ILD_VAR:
        return Action.KEEP
    return Action.FUSE


def fused_quadrant(a: Quadrant, b: Quadrant) -> Quadrant:
    """A fused op is as constrained as its most constrained part."""
    dependent = a.dependent or b.dependent
    variable = a.variable and b.variable
    return {(True, True): Quadrant.ILD_VAR, (True, False): Quadrant.ILD_FIXED,
            (False, True): Quadrant.ILI_VAR, (False, False): Quadrant.ILI_FIXED}[(dependent, variable)]


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
