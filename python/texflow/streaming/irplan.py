"""Bridge between IR and the planner: stage analysis -> Problem -> wstream IR."""

from __future__ import annotations

import dataclasses
import json
import math

from iree.compiler import ir

from texflow import irutil
from texflow.errors import TexflowError

from .costmodel import Calibration, auto_chunk_bytes
from .model import Group, Problem, Stage
from .stages import (Analysis, StageInfo, fuse, gather_bound, sink_weight_only,
                     stages_from_markers, tensor_bytes, top_block)

WSTREAM_OPS = ("wstream.plan", "wstream.stage", "wstream.load", "wstream.wait", "wstream.release")


def single_block_functions(module):
    out = []
    for o in module.regions[0].blocks[0].operations:
        if o.operation.name in ("util.func", "func.func") and len(o.regions) and \
                len(o.regions[0].blocks) == 1:
            out.append(o.operation)
    return out


def capacity_bytes(cal: Calibration, s: StageInfo, compute_s: float) -> int:
    from .model import CAPACITY_RATIO
    return int(min(CAPACITY_RATIO[s.kind] * s.traffic, compute_s * cal.weight_read_bytes_per_s))


def analyse(func, min_weight_bytes: int, stages: list[StageInfo] | None = None) -> Analysis:
    block = top_block(func)
    if stages is None:
        stages = stages_from_markers(block)
        if stages is None:
            sink_weight_only(block)
            stages = fuse(block)
    return Analysis(block, stages, min_weight_bytes)


def fresh(stages: list[StageInfo]) -> list[StageInfo]:
    return [StageInfo(ops=list(s.ops), kinds=list(s.kinds)) for s in stages]


@dataclasses.dataclass
class Built:
    analysis: Analysis
    problem: Problem
    members: list[list]           # weight ops of each group
    compute: list[float]


def build_problem(an: Analysis, cal: Calibration, budget: int, chunk_bytes: int,
                  preload_first: bool, map_tables: bool = True) -> Built | None:
    spans = []
    for w in an.weights:
        sp = an.weight_span(w)
        if sp is not None:
            spans.append((w, sp))
    if not an.stages or not spans:
        return None
    total = sum(tensor_bytes(w.results[0].type) for w, _ in spans)
    cb = chunk_bytes or auto_chunk_bytes(total)
    # Weights only gathered from (embedding tables) are mapped by the CPU runtime, each a
    # group of its own that costs the rows it can touch.  Where the runtime reads them whole
    # (Vulkan: no host memory import), they cost all their bytes: the plan counts what the
    # runtime will hold.
    mapped = {}
    for w, _ in spans if map_tables else []:
        b = gather_bound(w.results[0])
        if b is not None:
            mapped[id(w)] = b
    by_first: dict[int, list] = {}
    solo = []
    for w, (f, l) in spans:
        if id(w) in mapped:
            solo.append((f, w, l))
        else:
            by_first.setdefault(f, []).append((w, l))
    entries = [(f, 0, ws) for f, ws in by_first.items()] + \
        [(f, 1 + i, [(w, l)]) for i, (f, w, l) in enumerate(solo)]
    groups, members = [], []
    for f, _, ws in sorted(entries, key=lambda e: (e[0], e[1])):
        full = sum(tensor_bytes(w.results[0].type) for w, _ in ws)
        is_mapped = len(ws) == 1 and id(ws[0][0]) in mapped
        b = mapped[id(ws[0][0])] if is_mapped else full
        groups.append(Group(chunks=max(1, math.ceil(b / cb)), first=f, last=max(l for _, l in ws),
                            bytes=b, name=f"g{len(groups)}", full_bytes=full if is_mapped else 0))
        members.append([w for w, _ in ws])
    stages, compute = [], []
    for i, s in enumerate(an.stages):
        c = cal.compute_s(s.flops, s.traffic)
        compute.append(c)
        stages.append(Stage(compute_s=c, capacity=capacity_bytes(cal, s, c) // cb,
                            act_bytes=s.act_bytes, kind=s.kind, name=s.ops[0].name))
    prob = Problem(stages=stages, groups=groups, budget=budget, chunk_bytes=cb,
                   chunk_s=cal.chunk_s(cb), preload_first=preload_first)
    return Built(an, prob, members, compute)


def _i64(v):
    return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), int(v))


def _f64(v):
    return ir.FloatAttr.get_f64(float(v))


def write_markers(an: Analysis, compute: list[float], cal: Calibration) -> None:
    block = an.block
    for o in list(block.operations):
        if o.operation.name == "wstream.stage":
            o.operation.erase()
    for i, s in enumerate(an.stages):
        with ir.InsertionPoint(s.ops[0]), s.ops[0].location:
            ir.Operation.create("wstream.stage", attributes={
                "id": _i64(i), "kind": ir.StringAttr.get(s.kind), "compute_s": _f64(compute[i]),
                "capacity_bytes": _i64(capacity_bytes(cal, s, compute[i])),
                "act_bytes": _i64(s.act_bytes)})


def emit_plan(built: Built, plan, replay) -> None:
    """Insert wstream.plan/load/wait/release for `plan` (markers already written)."""
    an, prob = built.analysis, built.problem
    block = an.block
    ops = list(block.operations)
    markers = [o.operation for o in ops if o.operation.name == "wstream.stage"]
    first_op = ops[0].operation
    summ = plan.summary(prob)
    with ir.InsertionPoint(first_op), first_op.location:
        ir.Operation.create("wstream.plan", attributes={
            "budget": _i64(prob.budget), "chunk_bytes": _i64(prob.chunk_bytes),
            "status": ir.StringAttr.get(plan.status), "stall_s": _f64(summ["stall_s"]),
            "stall_bound_s": _f64(summ["stall_lower_bound_s"]),
            "compute_s": _f64(summ["compute_s"]),
            "preloaded_bytes": _i64(summ["preloaded_bytes"]),
            "streamed_bytes": _i64(summ["streamed_bytes"]),
            "peak_bytes": _i64(replay.peak_bytes)})
    token = ir.Type.parse("!wstream.token")
    for gi, (g, gp, ws) in enumerate(zip(prob.groups, plan.groups, built.members)):
        pos = {o.operation: i for i, o in enumerate(block.operations)}

        def top(op):
            while op not in pos:
                op = op.parent.operation
            return op
        users = [top(irutil.operation(u.owner))
                 for w in ws for u in w.results[0].uses]
        first_user = min(users, key=pos.__getitem__)
        last_user = max(users, key=pos.__getitem__)
        sched = []
        for ld in gp.loads:
            sched += [ld.stage, ld.stall, ld.overlap]
        if gp.preload:
            at = first_op  # after wstream.plan and earlier preloads, in group order
        else:
            at = markers[gp.start] if gp.start is not None else first_user
            if pos[at] > pos[first_user]:
                at = first_user
        with ir.InsertionPoint(at), at.location:
            attrs = {"group": _i64(gi), "bytes": _i64(g.bytes), "chunks": _i64(g.chunks),
                     "preload": ir.BoolAttr.get(bool(gp.preload)),
                     "schedule": ir.DenseI64ArrayAttr.get(sched)}
            if g.full_bytes:  # mapped: `bytes` is what a gather can touch
                attrs["mapped_bytes"] = _i64(g.full_bytes)
            load = ir.Operation.create("wstream.load", results=[token], attributes=attrs)
        for w in ws:  # weights defined after the wait point move up (they have no operands)
            if pos[w] > pos[first_user]:
                w.move_before(first_user)
        for w in ws:  # one wait per weight, all before the group's first user
            with ir.InsertionPoint(first_user), first_user.location:
                wait = ir.Operation.create(
                    "wstream.wait", results=[w.results[0].type],
                    operands=[load.results[0], w.results[0]],
                    attributes={"group": _i64(gi), "stage": _i64(g.first)})
            w.results[0].replace_all_uses_except(wait.results[0], wait)
        term = block.operations[len(block.operations) - 1].operation
        ip = ir.InsertionPoint(term) if last_user == term else ir.InsertionPoint.after(last_user)
        with ip, last_user.location:
            ir.Operation.create("wstream.release", operands=[load.results[0]],
                                attributes={"group": _i64(gi), "stage": _i64(g.last)})


def manifest(built: Built, plan, replay, cal: Calibration, func_name: str) -> dict:
    prob = built.problem
    return {
        "format": "texflow.wstream.plan/1",
        "function": func_name,
        "calibration": dataclasses.asdict(cal),
        "summary": {**plan.summary(prob), "peak_bytes": replay.peak_bytes,
                    "peak_stage": replay.peak_stage},
        "stages": [{"id": i, "kind": s.kind, "op": s.name, "compute_s": s.compute_s,
                    "capacity_chunks": s.capacity, "act_bytes": s.act_bytes,
                    "resident_bytes": replay.resident_bytes[i]}
                   for i, s in enumerate(prob.stages)],
        "groups": [{"id": i, "bytes": g.bytes, "chunks": g.chunks, "first": g.first,
                    **({"mapped": True, "full_bytes": g.full_bytes} if g.full_bytes else {}),
                    "last": g.last, "preload": gp.preload,
                    "weights": [str(w.location) for w in ws],
                    "loads": [dataclasses.asdict(l) for l in gp.loads]}
                   for i, (g, gp, ws) in enumerate(zip(prob.groups, plan.groups, built.members))],
    }


def write_manifest(path: str, data) -> None:
    from texflow.atomic_io import write_atomically
    write_atomically(path, json.dumps(data, indent=1) + "\n")


def func_name(func) -> str:
    return ir.StringAttr(func.attributes["sym_name"]).value if "sym_name" in func.attributes else "?"


__all__ = ["TexflowError", "WSTREAM_OPS", "analyse", "build_problem", "emit_plan", "fresh",
           "manifest", "single_block_functions", "write_manifest", "write_markers", "func_name"]
