"""Stage formation over texflow-level IR (linalg on tensors, one block).

A stage approximates one IREE dispatch: a *root* op (a contraction or
convolution: "reusable"; a reduction: "hierarchical") followed by the
elementwise ops ("elemental") that consume what the stage produced, as IREE's
producer-consumer fusion would group them.  Elementwise ops that consume
nothing of the current stage start their own stage.  Ops that compute nothing
(constants, tensor.empty, fills, reshapes, HAL/util ops) belong to no stage.
A fused stage's load capacity is the minimum of its parts', so its kind is
the most restrictive of them.  Adaptive fusion may later split a reusable
stage's elementwise tail into its own stage (`split`), never a stage with a
reduction (softmax/layernorm groups stay whole).
"""

from __future__ import annotations

import dataclasses
import math

from iree.compiler import ir

from texflow import irutil

FREE_OPS = {
    "arith.constant", "tensor.empty", "linalg.fill", "tensor.expand_shape",
    "tensor.collapse_shape", "tensor.reshape", "tensor.bitcast", "tensor.cast",
    "flow.tensor.constant", "util.global.load", "hal.tensor.import", "hal.tensor.export",
    "hal.tensor.barrier", "util.return", "func.return", "util.optimization_barrier",
    "tensor.dim",
}
ALIAS_OPS = {"tensor.expand_shape", "tensor.collapse_shape", "tensor.reshape",
             "tensor.bitcast", "tensor.cast", "hal.tensor.barrier",
             "util.optimization_barrier"}
CONTRACTIONS = ("matmul", "matvec", "vecmat", "dot", "contract", "batch_reduce_matmul")
ORDER = {"hierarchical": 0, "reusable": 1, "elemental": 2}


def elem_bytes(t) -> int:
    try:
        return max(1, (t.width + 7) // 8)
    except AttributeError:
        s = str(t)
        return 8 if s in ("index",) else 4


def tensor_bytes(t) -> int:
    """Bytes of a static ranked tensor type (0 for anything else)."""
    try:
        rt = ir.RankedTensorType(t)
    except (ValueError, TypeError):
        return 0
    if not rt.has_static_shape:
        return 0
    return math.prod(rt.shape) * elem_bytes(rt.element_type)


def is_weight(op, min_bytes: int = 1) -> bool:
    """A constant tensor the program reads (streamable weight)."""
    name = op.name
    if name not in ("arith.constant", "flow.tensor.constant", "util.global.load"):
        return False
    if len(op.results) != 1 or tensor_bytes(op.results[0].type) < max(1, min_bytes):
        return False
    if name == "util.global.load":
        return "is_immutable" in op.attributes or True  # texflow's globals are weights
    return True


def classify(op) -> str | None:
    """Capacity class of a compute op; None if it computes nothing."""
    name = op.name
    if name in FREE_OPS or name.startswith(("wstream.", "hal.", "util.", "flow.", "arith.",
                                            "func.", "scf.", "affine.")):
        return None
    if name.startswith("linalg."):
        base = name[len("linalg."):]
        if base.startswith(("conv", "depthwise_conv")) or any(c in base for c in CONTRACTIONS):
            return "reusable"
        if base.startswith(("pooling", "reduce", "softmax")):
            return "hierarchical"
        if base == "generic":
            its = str(op.attributes["iterator_types"]) if "iterator_types" in op.attributes else ""
            if "reduction" not in its:
                return "elemental"
            return "reusable" if _looks_like_contraction(op) else "hierarchical"
        return "elemental"
    return "elemental"  # tensor.pad, tensor.concat, insert_slice, ...


def _looks_like_contraction(op) -> bool:
    body = [o.name for o in op.regions[0].blocks[0].operations]
    ins = len(op.operands) - len(op.results)
    return ins >= 2 and any(n in body for n in ("arith.mulf", "arith.muli")) and \
        any(n in body for n in ("arith.addf", "arith.addi"))


def op_flops(op) -> float:
    outs = [tensor_bytes(r.type) // max(1, elem_bytes(ir.RankedTensorType(r.type).element_type))
            for r in op.results if tensor_bytes(r.type)]
    n_out = sum(outs) or 1
    name = op.name
    try:
        if name == "linalg.generic":
            ranges = {}
            for v, m in zip(op.operands, ir.ArrayAttr(op.attributes["indexing_maps"])):
                try:
                    shape = ir.RankedTensorType(v.type).shape
                except (ValueError, TypeError):
                    continue
                for j, e in enumerate(ir.AffineMapAttr(m).value.results):
                    if isinstance(e, ir.AffineDimExpr):
                        ranges[e.position] = shape[j]
            body = [o for o in op.regions[0].blocks[0].operations if o.name != "linalg.yield"]
            return float(math.prod(ranges.values()) * max(1, len(body)))
        base = name.split(".", 1)[1]
        ins = [ir.RankedTensorType(v.type) for v in op.operands[:len(op.operands) - len(op.results)]]
        if base.startswith(("conv", "depthwise_conv")) and len(ins) >= 2:
            out = ir.RankedTensorType(op.results[0].type).shape
            chan = out[1] if "nchw" in base or "ncw" in base else out[-1]
            return 2.0 * n_out * math.prod(ins[1].shape) / max(1, chan)
        if any(c in base for c in CONTRACTIONS) and len(ins) >= 2:
            out = ir.RankedTensorType(op.results[0].type).shape
            batch = out[0] if base.startswith("batch") and len(out) >= 3 else 1
            k = math.sqrt(math.prod(ins[0].shape) * math.prod(ins[1].shape) / max(1, n_out * batch))
            return 2.0 * n_out * k
    except (ValueError, TypeError, KeyError, IndexError):
        pass
    return float(n_out)


@dataclasses.dataclass
class StageInfo:
    ops: list                     # compute ops in program order
    kinds: list[str]              # kind of each op
    flops: float = 0.0
    traffic: int = 0              # bytes read from outside + written for outside
    act_bytes: int = 0

    @property
    def kind(self) -> str:
        return min(self.kinds, key=ORDER.__getitem__)

    def split_point(self) -> int | None:
        """Where adaptive fusion may split: after the root and its first
        epilogue op, before an elementwise tail.  None if not splittable
        (also when weight-only ops lead the stage)."""
        if "hierarchical" in self.kinds or self.kinds[0] != "reusable":
            return None
        tail = len(self.kinds) - 1
        if tail < 1 or any(k != "elemental" for k in self.kinds[1:]):
            return None
        return 2 if tail >= 2 else 1


def top_block(func):
    return func.regions[0].blocks[0]


PAGE_BYTES = 4096


def gather_bound(value) -> int | None:
    """Bytes a gather can touch in the weight `value`, if all it does is gather
    rows from it (an ONNX Gather as IREE lowers it: `tensor.extract` inside a
    `linalg.generic`, e.g. an embedding table): rows gathered x row bytes,
    each row rounded up to whole pages.  None if any use is not such a gather
    or the bound is not below the weight's size.  The runtime maps such a
    weight instead of loading it: only the rows the tokens select are read."""
    total = tensor_bytes(value.type)
    uses = list(value.uses)
    if not total or not uses:
        return None
    shape = ir.RankedTensorType(value.type).shape
    row_elems = math.prod(shape[1:]) if len(shape) > 1 else 1
    row_bytes = total // max(1, shape[0]) if shape else total
    rows = 0
    for u in uses:
        o = irutil.operation(u.owner)
        parent = o.parent
        if o.name != "tensor.extract" or parent is None or \
                parent.operation.name != "linalg.generic" or o.operands[0] != value:
            return None
        out = parent.operation.results[0].type
        if not tensor_bytes(out):
            return None
        rows += math.ceil(math.prod(ir.RankedTensorType(out).shape) / max(1, row_elems))
    bound = rows * math.ceil(row_bytes / PAGE_BYTES) * PAGE_BYTES
    return bound if bound < total else None


def external_operands(top) -> list:
    """Values `top` (with its regions) uses that are defined outside it, in order."""
    inside, out, seen = set(), [], set()

    def defs(o):
        inside.update(o.results)
        for reg in o.regions:
            for b in reg.blocks:
                inside.update(b.arguments)
        return ir.WalkResult.ADVANCE

    def uses(o):
        for v in o.operands:
            if v not in inside and v not in seen:
                seen.add(v)
                out.append(v)
        return ir.WalkResult.ADVANCE
    top.walk(defs, ir.WalkOrder.PRE_ORDER)
    top.walk(uses, ir.WalkOrder.PRE_ORDER)
    return out


def weight_only_ops(block) -> list:
    """Compute ops whose inputs derive from constants alone (a weight's
    transpose, a bias broadcast), in program order."""
    act = set(block.arguments)
    out = []
    for o in block.operations:
        op = o.operation
        if any(v in act for v in external_operands(op)):
            act.update(op.results)
        elif classify(op) is not None and op.results:
            out.append(op)
    return out


def _top_level(op, block_ops: set):
    """The op of `block_ops` that is `op` or holds it, else None."""
    return next((o for o in (irutil.operation(op), *irutil.enclosing_ops(op)) if o in block_ops),
                None)


def sink_weight_only(block) -> int:
    """Move each weight-only compute op right before its first user.

    IREE fuses such ops into their consumer (or folds them at compile time in
    a module with constant weights); as a stage of their own they would look
    like an activation as large as the weight, live until the consumer (GPT-2:
    the 154 MB transposed embedding), and a weight needed early."""
    moved = 0
    for op in reversed(weight_only_ops(block)):
        ops = [o.operation for o in block.operations]
        pos = {o: i for i, o in enumerate(ops)}
        users = []
        for r in op.results:
            for u in r.uses:
                t = _top_level(u.owner, pos)
                if t is not None:
                    users.append(t)
        if not users:
            continue
        first = min(users, key=pos.__getitem__)
        if pos[first] > pos[op] + 1:
            op.move_before(first)
            moved += 1
    return moved


def fuse(block) -> list[StageInfo]:
    """Group the block's compute ops into stages (dispatch approximation).
    Weight-only ops join the stage of the op after them (their consumer, once
    `sink_weight_only` has run)."""
    stages: list[StageInfo] = []
    produced: set = set()  # values produced by the current stage (and their aliases)
    pending: list = []     # weight-only ops waiting for their consumer's stage
    wo_results = set()
    for op in weight_only_ops(block):
        wo_results.update(op.results)
    for o in block.operations:
        op = o.operation
        kind = classify(op)
        if kind is None:
            if op.name in ALIAS_OPS and op.operands and op.operands[0] in produced:
                produced.update(op.results)
            continue
        if op.results and all(r in wo_results for r in op.results):
            pending.append((op, kind))
            continue
        consumes = any(v in produced for v in op.operands)
        if kind == "elemental" and stages and consumes:
            for p, k in pending:
                stages[-1].ops.append(p)
                stages[-1].kinds.append(k)
            stages[-1].ops.append(op)
            stages[-1].kinds.append(kind)
        else:
            stages.append(StageInfo(ops=[p for p, _ in pending] + [op],
                                    kinds=[k for _, k in pending] + [kind]))
            produced = set()
        for p, _ in pending:
            produced.update(p.results)
        pending = []
        produced.update(op.results)
    if pending and stages:
        for p, k in pending:
            stages[-1].ops.append(p)
            stages[-1].kinds.append(k)
    return stages


def stages_from_markers(block) -> list[StageInfo] | None:
    """Stages as delimited by existing wstream.stage markers (None if none)."""
    if not any(o.operation.name == "wstream.stage" for o in block.operations):
        return None
    stages: list[StageInfo] = []
    for o in block.operations:
        op = o.operation
        if op.name == "wstream.stage":
            stages.append(StageInfo(ops=[], kinds=[]))
            continue
        kind = classify(op)
        if kind is None:
            continue
        if not stages:
            stages.append(StageInfo(ops=[], kinds=[]))
        stages[-1].ops.append(op)
        stages[-1].kinds.append(kind)
    return [s for s in stages if s.ops]


class Analysis:
    """Stages, weights and liveness of one single-block function."""

    def __init__(self, block, stages: list[StageInfo], min_weight_bytes: int = 1):
        self.block = block
        self.stages = stages
        self.stage_of = {}
        for i, s in enumerate(stages):
            for op in s.ops:
                self.stage_of[op] = i
        self.order = {o.operation: i for i, o in enumerate(block.operations)}
        self.weights = [o.operation for o in block.operations
                        if is_weight(o.operation, min_weight_bytes)]
        self._costs()

    def _top(self, op):
        return _top_level(op, self.order)

    def use_stages(self, value, seen=None) -> list[int]:
        """Stages of the compute ops that consume `value` (through free ops);
        a use by the function's terminator or outputs counts as the last stage."""
        out = []
        seen = seen if seen is not None else set()
        for u in value.uses:
            op = self._top(u.owner)
            if op is None or op in seen:
                continue
            seen.add(op)
            if op in self.stage_of:
                out.append(self.stage_of[op])
            elif op.name.startswith("wstream."):
                for r in op.results:
                    out.extend(self.use_stages(r, seen))
            elif op.results:
                for r in op.results:
                    out.extend(self.use_stages(r, seen))
            else:
                out.append(len(self.stages) - 1)
        return out

    def _costs(self) -> None:
        L = len(self.stages)
        weights = set(self.weights)
        live = [0] * (L + 1)
        for i, s in enumerate(self.stages):
            mine = set(s.ops)
            inputs, outputs = set(), 0
            for op in s.ops:
                s.flops += op_flops(op)
                for v in op.operands:
                    d = v.owner
                    d = d.operation if hasattr(d, "operation") else None
                    if d is not None and d in mine:
                        continue
                    if d is not None and d.name in ("tensor.empty", "linalg.fill"):
                        continue  # an init: the output buffer, counted as output
                    inputs.add(v)
                for r in op.results:
                    if any(st != i for st in self.use_stages(r)) or not list(r.uses):
                        outputs += tensor_bytes(r.type)
            s.traffic = sum(tensor_bytes(v.type) for v in inputs) + outputs
        # activations: values crossing stages are live from definition to last use
        for o in self.block.operations:
            op = o.operation
            if op in weights or op.name in ("tensor.empty", "linalg.fill") or op.name in ALIAS_OPS:
                continue
            for r in op.results:
                b = tensor_bytes(r.type)
                if not b:
                    continue
                uses = self.use_stages(r)
                if not uses:
                    continue
                d = self.stage_of.get(op, min(uses))
                last = max(uses)
                if last > d or op not in self.stage_of:
                    live[d] += b
                    live[last + 1] -= b
        for a in self.block.arguments:  # inputs: live from the start to their last use
            b = tensor_bytes(a.type)
            uses = self.use_stages(a) if b else []
            if uses:
                live[0] += b
                live[max(uses) + 1] -= b
        run = 0
        for i, s in enumerate(self.stages):
            run += live[i]
            s.act_bytes = run

    def weight_span(self, w) -> tuple[int, int] | None:
        uses = self.use_stages(w.results[0])
        return (min(uses), max(uses)) if uses else None
