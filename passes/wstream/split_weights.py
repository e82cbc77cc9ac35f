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
from texflow.ir.constants import make_constant
from ..registry import Bytes, Pass, register_pass

CONTRACTIONS = ("linalg.matmul", "linalg.batch_matmul")


def _unit_broadcast(op) -> int | None:
    """For a linalg.generic that only adds leading unit dimensions to its single
    input (it yields the input, reads it in order and writes in order), how many
    it adds; None for anything else (a transpose hidden in the maps included)."""
    if op is None or op.name != "linalg.generic" or len(op.operands) != 2:
        return None
    body = list(op.regions[0].blocks[0].operations)
    if len(body) != 1 or body[0].operands[0] != op.regions[0].blocks[0].arguments[0]:
        return None
    lead = _leading_units(ir.RankedTensorType(op.operands[0].type).shape,
                          ir.RankedTensorType(op.results[0].type).shape)
    if lead is None:
        return None
    in_map, out_map = (ir.AffineMapAttr(m).value for m in ir.ArrayAttr(op.attributes["indexing_maps"]))
    n = out_map.n_dims
    reads_in_order = [str(e) for e in in_map.results] == [f"d{lead + i}" for i in range(n - lead)]
    writes_in_order = [str(e) for e in out_map.results] == [f"d{i}" for i in range(n)]
    return lead if reads_in_order and writes_in_order else None


def _leading_units(src_shape, dst_shape) -> int | None:
    """How many leading unit dimensions `dst_shape` adds to `src_shape` (None if
    it differs in any other way)."""
    lead = len(dst_shape) - len(src_shape)
    if not src_shape or lead < 0 or any(x != 1 for x in dst_shape[:lead]) or \
            list(dst_shape[lead:]) != list(src_shape):
        return None
    return lead


def _expand_leading(value, shape: list[int], lead: int):
    """`value` reshaped to `shape`, which adds `lead` leading unit dimensions."""
    i64 = ir.IntegerType.get_signless(64)
    rank = len(shape) - lead
    reassoc = [list(range(lead + 1))] + [[lead + k] for k in range(1, rank)]
    et = ir.RankedTensorType(value.type).element_type
    return tensor.ExpandShapeOp(ir.RankedTensorType.get(shape, et), value, ir.ArrayAttr.get(
        [ir.ArrayAttr.get([ir.IntegerAttr.get(i64, i) for i in r]) for r in reassoc]),
        [], shape).result


@register_pass
class WStreamSplitWeights(Pass):
    name = "texflow-wstream-split-weights"
    summary = "Split contractions whose constant weight exceeds max-bytes along an output dimension"

    @dataclasses.dataclass
    class Options:
        max_bytes: Bytes = dataclasses.field(
            default=Bytes(0), metadata={"help": "largest weight slice, e.g. 32MiB (0: do nothing)"})

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
            # (a unit broadcast of a constant is an expand_shape by now: see below)
            if mid is not None and mid.name == "tensor.expand_shape" and _leading_units(
                    ir.RankedTensorType(mid.operands[0].type).shape,
                    ir.RankedTensorType(mid.results[0].type).shape) is not None:
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
            self.bump("weight slices", len(edges) - 1)

    def _unit_broadcasts_to_reshapes(self, module) -> None:
        """A broadcast that only adds leading unit dimensions to a weight is a
        reshape.  With the weight a constant IREE folds it at compile time; once
        the weight is a segment's argument it would copy it on every call
        (GPT-2's 154 MB head), so it becomes `tensor.expand_shape` here."""
        for op in irutil.collect(module, {"linalg.generic"}):
            lead = _unit_broadcast(op)
            if lead is None:
                continue
            src = op.operands[0]
            d = irutil.producer(src)
            if d is None or d.name != "arith.constant":
                continue
            shape = list(ir.RankedTensorType(op.results[0].type).shape)
            with ir.InsertionPoint(op), op.location:
                new = _expand_leading(src, shape, lead)
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
                    b = _expand_leading(b, list(b_t.shape[:-1]) + [w], b_t.rank - piece.ndim)
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

