"""texflow-wstream-split-weights: split a contraction whose weight is too large to
stream into pieces along an output dimension, each with its own slice.

Why: a stage must hold its whole weight, so one weight larger than the budget
makes the budget infeasible whatever the plan (GPT-2's language-model head is
a 154 MB weight, 57% of the model).  Splitting `C = A @ B` along B's last
(output) dimension into `C = concat(A @ B[:, j0:j1], ...)` gives one stage per
slice: each slice streams on its own, and every output element is computed by
the same reduction as before.  The slices are cut from the constant at compile
time (weights offline).

Handled: `linalg.matmul` / `linalg.batch_matmul` whose B is a constant, or a
constant expanded with unit dimensions by a broadcast (`linalg.generic` that
yields its input, as IREE's input conversion writes batch-1 matmuls).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from iree.compiler import ir
from iree.compiler.dialects import linalg, tensor

from texflow import irutil
from texflow.streaming.model import parse_bytes
from texflow.streaming.stages import tensor_bytes
from .layout_eliminate import make_constant
from .registry import Pass, register_pass

CONTRACTIONS = ("linalg.matmul", "linalg.batch_matmul")


def _unit_broadcast(op) -> bool:
    """A linalg.generic that only adds unit dimensions to its single input."""
    if op is None or op.name != "linalg.generic" or len(op.operands) != 2:
        return False
    body = list(op.regions[0].blocks[0].operations)
    if len(body) != 1 or body[0].operands[0] != op.regions[0].blocks[0].arguments[0]:
        return False
    src = ir.RankedTensorType(op.operands[0].type).shape
    dst = ir.RankedTensorType(op.results[0].type).shape
    return [d for d in dst if d != 1] == [d for d in src if d != 1] and len(dst) >= len(src) \
        and list(dst[len(dst) - len(src):]) == list(src)


@register_pass
class WStreamSplitWeights(Pass):
    name = "texflow-wstream-split-weights"
    summary = "Split contractions whose constant weight exceeds max-bytes along an output dimension"

    @dataclasses.dataclass
    class Options:
        max_bytes: str = dataclasses.field(
            default="", metadata={"help": "largest weight slice, e.g. 32MiB (empty: do nothing)"})

    def apply(self, module) -> None:
        self._unit_broadcasts_to_reshapes(module)
        if not self.options.max_bytes:
            return
        limit = parse_bytes(self.options.max_bytes, "max-bytes")
        from texflow.streaming.archive import _weight_array
        for op in irutil.collect(module, set(CONTRACTIONS)):
            b = op.operands[1]
            mid = irutil.producer(b)
            chain = None
            cst = mid
            if _unit_broadcast(mid) or (mid is not None and mid.name == "tensor.expand_shape"):
                chain, cst = mid, irutil.producer(mid.operands[0])
            if cst is None or cst.name != "arith.constant":
                continue
            nbytes = tensor_bytes(cst.results[0].type)
            if nbytes <= limit:
                continue
            data = _weight_array(module, cst)
            n_last = data.shape[-1]
            pieces = min(n_last, math.ceil(nbytes / limit))
            # Slices a power of two wide (the last takes the rest), so that codegen
            # sees the same tile-friendly width in every slice.
            step = 1 << max(0, math.floor(math.log2(n_last / pieces)))
            edges = list(range(0, n_last, step)) + [n_last]
            if len(edges) > 2 and edges[-1] - edges[-2] < step // 2:
                edges.pop(-2)
            self._split(op, chain, data, edges)
            self.bump("contractions split")
            self.bump("weight slices", pieces)

    def _unit_broadcasts_to_reshapes(self, module) -> None:
        """A broadcast that only adds leading unit dimensions to a weight is a
        reshape.  With the weight a constant IREE folds it at compile time; once
        the weight is a segment's argument it would copy it on every call
        (GPT-2's 154 MB head), so it becomes `tensor.expand_shape` here."""
        for op in irutil.collect(module, {"linalg.generic"}):
            if not _unit_broadcast(op):
                continue
            src = op.operands[0]
            d = irutil.producer(src)
            if d is None or d.name != "arith.constant":
                continue
            s_t = ir.RankedTensorType(src.type)
            d_t = ir.RankedTensorType(op.results[0].type)
            lead = d_t.rank - s_t.rank
            if s_t.rank == 0 or any(x != 1 for x in d_t.shape[:lead]):
                continue
            i64 = ir.IntegerType.get_signless(64, context=op.context)
            reassoc = [list(range(lead + 1))] + [[lead + k] for k in range(1, s_t.rank)]
            with ir.InsertionPoint(op), op.location:
                new = tensor.ExpandShapeOp(d_t, src, ir.ArrayAttr.get([ir.ArrayAttr.get(
                    [ir.IntegerAttr.get(i64, i) for i in r]) for r in reassoc]), [],
                    list(d_t.shape)).result
            op.results[0].replace_all_uses_with(new)
            op.erase()
            self.bump("unit broadcasts of weights made reshapes")

    def _split(self, op, chain, data, edges) -> None:
        a, init = op.operands[0], op.operands[2]
        out_t = ir.RankedTensorType(op.results[0].type)
        b_t = ir.RankedTensorType(op.operands[1].type)
        et = b_t.element_type
        rank = out_t.rank
        results = []
        with ir.InsertionPoint(op), op.location:
            for j0, j1 in zip(edges, edges[1:]):
                w = j1 - j0
                piece = np.ascontiguousarray(data[..., j0:j1])
                cst_t = ir.RankedTensorType.get(list(piece.shape), et)
                b = make_constant(piece, cst_t)
                if chain is not None:  # re-add the unit dimensions, as a reshape
                    shape = list(b_t.shape[:-1]) + [w]
                    lead = len(shape) - piece.ndim
                    reassoc = [[i for i in range(lead + 1)]] + \
                        [[lead + k] for k in range(1, piece.ndim)]
                    b = tensor.ExpandShapeOp(ir.RankedTensorType.get(shape, et), b,
                                             ir.ArrayAttr.get([ir.ArrayAttr.get(
                                                 [ir.IntegerAttr.get(ir.IntegerType.get_signless(64), i)
                                                  for i in r]) for r in reassoc]),
                                             [], shape).result
                sizes = list(out_t.shape[:-1]) + [w]
                piece_t = ir.RankedTensorType.get(sizes, out_t.element_type)
                fill = irutil.producer(init)
                if fill is not None and fill.name == "linalg.fill":
                    # a fill of its own: IREE fused a slice of the whole fill into
                    # each slice's dispatch (a 1x128x50257 vector: "large vector sizes")
                    empty = tensor.EmptyOp(sizes, out_t.element_type).result
                    init_p = irutil.result_value(linalg.fill(fill.operands[0], outs=[empty]))
                else:
                    init_p = tensor.ExtractSliceOp(piece_t, init, [], [], [], [0] * (rank - 1) + [j0],
                                                   sizes, [1] * rank).result
                fn = linalg.batch_matmul if op.name == "linalg.batch_matmul" else linalg.matmul
                results.append(irutil.result_value(fn(a, b, outs=[init_p])))
            # each slice's result goes in place into the whole output
            cat = init
            for (j0, j1), r in zip(zip(edges, edges[1:]), results):
                cat = tensor.InsertSliceOp(r, cat, [], [], [], [0] * (rank - 1) + [j0],
                                           list(out_t.shape[:-1]) + [j1 - j0], [1] * rank).result
        op.results[0].replace_all_uses_with(cat)
        op.erase()
        for dead in (chain, ) if chain is not None else ():
            if not list(dead.results[0].uses):
                src = irutil.producer(dead.operands[0])
                dead.erase()
                if src is not None and not list(src.results[0].uses):
                    src.erase()

