"""What the elimination rules share: layout.transform access, the rule base class, and the
compile-time re-layout of constants."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from iree.compiler import ir

from texflow import irutil
from texflow.dialects.layout import TransformOp
from texflow.ir.constants import constant_array, make_constant
from texflow.ir.quadrants import Action, permits
from texflow.ir.rewrite import Pattern
from texflow.ir.structured import is_elementwise, map_dims

T_NAME = TransformOp.OPERATION_NAME


def batch_and_row_loops(maps, iters) -> tuple[list[int], list[int]]:
    """A contraction's batch loops (parallel, indexed by every operand and the result) and row
    loops (parallel, indexed by the left operand and the result only).  IREE's GPU matmul
    configuration wants one of each: it merges neither back once a fold has split them (H200,
    Vulkan: benchmarks/gpu/h200/corpus_vulkan.md)."""
    dims = [map_dims(m) for m in maps]
    lhs, rhs, out = dims[0], dims[1] if len(dims) > 2 else [], dims[-1]
    par = [l for l, it in enumerate(iters) if it == "parallel"]
    return ([l for l in par if all(l in d for d in dims)],
            [l for l in par if l in lhs and l in out and l not in rhs])


def as_transform(o) -> TransformOp | None:
    if o is None or o.name != T_NAME:
        return None
    return o if isinstance(o, TransformOp) else TransformOp(o)


def producer_transform(v) -> TransformOp | None:
    return as_transform(irutil.producer(v))


def transforms(module) -> list[TransformOp]:
    """Every layout.transform of `module` that still has users, in IR order."""
    out = []
    for o in irutil.collect(module, {T_NAME}):
        t = as_transform(o)
        if list(t.result.uses):
            out.append(t)
    return out


def chain_to(value) -> list[TransformOp]:
    """The transforms producing `value`, source first."""
    chain = []
    v = value
    while True:
        t = producer_transform(v)
        if t is None:
            break
        chain.insert(0, t)
        v = t.source
    return chain


def inverse(perm: list[int]) -> list[int]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def users(t: TransformOp) -> list:
    """The operations reading `t`'s result, each once, in use-list order."""
    out = []
    for use in t.result.uses:
        u = use.owner
        if not isinstance(u, (ir.Operation, ir.OpView)):
            continue
        u = u.operation
        if not any(u == x for x in out):
            out.append(u)
    return out


def producer_absorbs_transforms(value) -> bool:
    """Would IREE fuse a transform of `value` into the dispatch producing it?

    IREE's dispatch formation writes a transpose through the producer's output map when the
    producer is elementwise (SmartMem's "eliminate 2nd", done by IREE), so such transforms cost
    no data-movement dispatch and folding them into the consumer instead only makes the
    consumer's reads strided (measured: attention with folded head transposes ran ~20% slower
    on llvm-cpu).  A transform of a function input or of a non-linalg value has no producer to
    hide in: that is where folding pays.  IREE does not fuse a transpose into a contraction's
    or reduction's dispatch (attention's Q/V head transposes after batch_matmul stay separate
    data-movement dispatches)."""
    o = irutil.producer(value)
    return o is not None and o.name == "linalg.generic" and is_elementwise(o)


class LayoutRule(Pattern):
    """An elimination rule: the pass's options and statistics, and the pair-table cells
    (`actions`) it implements."""

    actions: ClassVar[frozenset] = frozenset()

    def __init__(self, options, bump):
        self.options = options
        self.bump = bump

    def permits(self, producer, consumer) -> bool:
        return permits(producer, consumer, self.actions)

    def replace(self, t: TransformOp, value, stat: str, n: int = 1) -> None:
        t.result.replace_all_uses_with(value)
        t.operation.erase()
        self.bump(stat, n)

    def relayout_constant(self, v, dims: list[int]):
        """An operand read with dims out of order: re-lay-out a constant so it is read in order
        (weights offline); other values keep a strided read.  Returns (value, dims)."""
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


FIRST = frozenset({Action.ELIMINATE_FIRST})
SECOND = frozenset({Action.ELIMINATE_SECOND})
BOTH = frozenset({Action.ELIMINATE_BOTH})
