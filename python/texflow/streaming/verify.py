"""Independent plan verifier: replays a plan over the stage list.

Deliberately shares no code with the planner (it reads only the data classes
of `model.py`): it walks the stages in time order, applies each group's loads
and releases, and checks
  * every chunk of every streamed group is read exactly once, none after the
    stage that first uses it has started computing;
  * preloaded groups have no streamed loads;
  * at every stage, resident weights (preloaded + streamed chunks read so far
    and not yet released after their last use) plus live activations fit the
    budget;
  * chunks read during a stage's compute stay within its load capacity and
    within what the link can read in that time;
  * the stall the planner reports equals the replayed stall.
"""

from __future__ import annotations

import dataclasses

from texflow.errors import TexflowError

from .model import Plan, Problem


class PlanError(TexflowError):
    pass


@dataclasses.dataclass
class Replay:
    peak_bytes: int
    peak_stage: int
    stall_chunks: int
    stall_s: float
    makespan_s: float
    resident_bytes: list[int]


def replay(prob: Problem, plan: Plan, check_link: bool = True) -> Replay:
    """Replay `plan`; raise PlanError naming the first violations."""
    errs: list[str] = []
    L, cb = len(prob.stages), prob.chunk_bytes
    caps = plan.capacities if plan.capacities is not None else [s.capacity for s in prob.stages]
    if len(plan.groups) != len(prob.groups):
        raise PlanError(f"plan has {len(plan.groups)} groups, problem has {len(prob.groups)}")
    # per-stage events
    arrive_stall = [[0] * len(prob.groups) for _ in range(L)]
    arrive_overlap = [[0] * len(prob.groups) for _ in range(L)]
    for gi, (g, gp) in enumerate(zip(prob.groups, plan.groups)):
        if prob.preload_first and g.first == 0 and not gp.preload:
            errs.append(f"group {gi} is used by stage 0 but not preloaded")
        if gp.preload:
            if any(l.stall or l.overlap for l in gp.loads):
                errs.append(f"group {gi} is preloaded and streamed")
            continue
        got = 0
        for ld in gp.loads:
            if not (0 <= ld.stage < L):
                errs.append(f"group {gi} loads at stage {ld.stage} outside 0..{L - 1}")
                continue
            if ld.stall < 0 or ld.overlap < 0:
                errs.append(f"group {gi} has a negative load at stage {ld.stage}")
                continue
            if ld.stage > g.first or (ld.stage == g.first and ld.overlap):
                errs.append(f"group {gi} (first used by stage {g.first}) still loading "
                            f"during stage {ld.stage}")
            arrive_stall[ld.stage][gi] += ld.stall
            arrive_overlap[ld.stage][gi] += ld.overlap
            got += ld.stall + ld.overlap
        if got != g.chunks:
            errs.append(f"group {gi} loads {got} chunks, it has {g.chunks}")
    resident_chunks = [0] * len(prob.groups)
    for gi, gp in enumerate(plan.groups):
        if gp.preload:
            resident_chunks[gi] = prob.groups[gi].chunks
    released = [False] * len(prob.groups)
    stall = 0
    time_s = 0.0
    peak, peak_stage, curve = 0, 0, []
    for s, st in enumerate(prob.stages):
        # releases after the previous stage's compute (streamed groups only)
        for gi, g in enumerate(prob.groups):
            if g.last < s and not plan.groups[gi].preload and not released[gi]:
                resident_chunks[gi] = 0
                released[gi] = True
        s_stall = sum(arrive_stall[s])
        s_over = sum(arrive_overlap[s])
        for gi in range(len(prob.groups)):
            resident_chunks[gi] += arrive_stall[s][gi] + arrive_overlap[s][gi]
        # every group used now must be complete (stall loads come before compute)
        for gi, g in enumerate(prob.groups):
            if g.first <= s <= g.last and resident_chunks[gi] - arrive_overlap[s][gi] < g.chunks:
                errs.append(f"stage {s} uses group {gi} before it is fully loaded")
        if s_over > caps[s]:
            errs.append(f"stage {s} reads {s_over} chunks during compute, capacity {caps[s]}")
        if check_link and prob.chunk_s > 0 and s_over * prob.chunk_s > st.compute_s * (1 + 1e-9) + 1e-12:
            errs.append(f"stage {s} reads {s_over} chunks in {st.compute_s:g}s of compute: "
                        f"faster than the link")
        used = sum(resident_chunks) * cb + st.act_bytes
        curve.append(used)
        if used > prob.budget:
            errs.append(f"stage {s} holds {used} bytes, budget {prob.budget}")
        if used > peak:
            peak, peak_stage = used, s
        stall += s_stall
        time_s += s_stall * prob.chunk_s + st.compute_s
    if stall != plan.stall_chunks:
        errs.append(f"plan reports {plan.stall_chunks} stall chunks, replay finds {stall}")
    if errs:
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise PlanError(f"invalid plan: {errs[0]}{more}")
    return Replay(peak, peak_stage, stall, stall * prob.chunk_s, time_s, curve)
