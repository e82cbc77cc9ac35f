"""SmartMem's operator quadrants and pair rules, shared by the layout passes.

`classify` puts an op in its quadrant (input-layout dependent or independent, variable or fixed
output layout; the rules are listed in passes/layout/classify.py, the pass that records them as
`#layout.quadrant` attributes).  `pair_rule` is SmartMem's producer/consumer table; the
elimination rules of texflow-eliminate-layout each implement one of its cells and are offered
only the pairs the table sends to that cell.
"""

from __future__ import annotations

import enum

from texflow.dialects.layout import Quadrant
from texflow.ir.structured import (affine_maps, generic_permutation, inputs_of, is_copy_body,
                                   iterator_types, map_dims, uses_index_op)

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


def quadrant(o) -> Quadrant | None:
    """`classify`, with constants as variable-layout producers: a weight is re-laid out at
    compile time, so it can be written in any layout (SmartMem's offline weight transform)."""
    if o is not None and o.name == "arith.constant":
        return Quadrant.ILI_VAR
    return None if o is None else classify(o)


def permits(producer, consumer, actions) -> bool:
    """Does the pair table send the edge producer -> consumer (ops) to one of `actions`?"""
    p, c = quadrant(producer), quadrant(consumer)
    return p is not None and c is not None and pair_rule(p, c) in actions
