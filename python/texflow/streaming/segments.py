"""Planning a segmented streamed program: the problem its segments pose, and its plan.

Shared by the compiler, which plans a streamed compile at its budget and stores the plan in the
manifest (`plan_segments`), and by the runtime, which reads that plan back (`plan_from_json`) or
plans models run in turn at another budget (`segment_problem`).  Pure planning: no IREE.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from texflow.signature import TensorSpec

from .costmodel import Calibration
from .model import Group, GroupPlan, Load, Plan, Problem, Stage
from .planner import PlannerOptions, plan

_KIND_ORDER = {"hierarchical": 0, "reusable": 1, "elemental": 2}


def segment_problem(models, budget: int):
    """One planning Problem whose stages are the segments of `models` (a list of
    (manifest, program, name)) in turn.  Returns (problem, owners, segments,
    segment offsets): owners[i] = (model index, program group) of group i."""
    cb = max(man["summary"]["chunk_bytes"] for man, _, _ in models)
    stages, groups, owners, segments, seg_off = [], [], [], [], []
    for mi, (man, prog, name) in enumerate(models):
        off = len(stages)
        seg_off.append(off)
        mcb = man["summary"]["chunk_bytes"]
        n = len(man["stages"])
        held = _held_bytes(prog)
        for k, seg in enumerate(prog["segments"]):
            lo, hi = seg["stages"]
            sts = man["stages"][lo:(n - 1 if hi is None else hi) + 1]
            stages.append(Stage(compute_s=sum(s["compute_s"] for s in sts),
                                capacity=sum(s["capacity_chunks"] for s in sts) * mcb // cb,
                                act_bytes=max([s["act_bytes"] for s in sts] + [held[k]]),
                                kind=min((s["kind"] for s in sts), default="reusable",
                                         key=_KIND_ORDER.__getitem__),
                                name=seg["function"]))
            segments.append((mi, seg))
        for pg in prog["groups"]:
            groups.append(Group(chunks=max(1, math.ceil(pg["bytes"] / cb)),
                                first=off + pg["first_segment"], last=off + pg["last_segment"],
                                bytes=pg["bytes"], name=f"{name}:g{pg['id']}"))
            owners.append((mi, pg))
    cal = Calibration(**{k: v for k, v in models[0][0]["calibration"].items()
                         if k in {f.name for f in dataclasses.fields(Calibration)}})
    prob = Problem(stages=stages, groups=groups, budget=budget, chunk_bytes=cb,
                   chunk_s=cal.chunk_s(cb), preload_first=True)
    return prob, owners, segments, seg_off


def plan_segments(manifest: dict, program: dict, time_limit: float = 10.0) -> dict:
    """Compile time: plan the segmented program at its budget (JSON for the manifest,
    so that a run at that budget starts without planning)."""
    prob, _, _, _ = segment_problem([(manifest, program, "")], manifest["summary"]["budget_bytes"])
    p = plan(prob, PlannerOptions(time_limit_s=time_limit))
    return {"budget_bytes": prob.budget, "status": p.status, "stall_chunks": p.stall_chunks,
            "groups": [{"preload": gp.preload, "loads": [dataclasses.asdict(l) for l in gp.loads]}
                       for gp in p.groups]}


def plan_from_json(data: dict) -> Plan:
    return Plan(groups=[GroupPlan(preload=g["preload"], loads=[Load(**l) for l in g["loads"]])
                        for g in data["groups"]], status=data["status"] + " (compile time)",
                stall_chunks=data.get("stall_chunks", 0))


def _held_bytes(prog: dict) -> list[int]:
    """Bytes of inputs and activations the runtime holds while each segment runs
    (its arguments, its results and everything alive across it): exact for the
    runtime's own accounting, where the compile-time estimate is not."""
    K = len(prog["segments"])
    held = [0] * (K + 1)
    for i, t in enumerate(prog["inputs"]):
        spec = TensorSpec.parse(t)
        nbytes = int(np.prod([d or 1 for d in spec.shape])) * _elem_bytes(spec.dtype)
        last = max([k for k, seg in enumerate(prog["segments"])
                    if ["input", i] in seg["args"]] or [0])
        held[0] += nbytes
        held[last + 1] -= nbytes
    for v in prog["values"].values():
        held[v["segment"]] += v["bytes"]
        held[min(v["last_use"], K - 1) + 1] -= v["bytes"]
    out, run = [], 0
    for k in range(K):
        run += held[k]
        out.append(run)
    return out


def _elem_bytes(dtype: str) -> int:
    digits = "".join(c for c in dtype if c.isdigit())
    return max(1, int(digits) // 8) if digits else 4
