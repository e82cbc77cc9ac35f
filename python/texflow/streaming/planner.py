"""The weight-load planner: CP-SAT over a compact O(W + L) model.

Model (see docs/streaming.md).  Streamed groups are read in first-use order,
one chunk after another, so a plan is fully described by
  * p[g]  in {0,1}: group g is preloaded (resident for the whole run),
  * X[s]: chunks streamed by the end of stage s (cumulative),
  * st[s]: chunks read while the program stalls before stage s computes.
With D[s] (streamed chunks first used at or before s) and R[s] (streamed
chunks released before s) both defined by one-term-per-group recurrences,
every constraint has O(1) terms besides those recurrences:
  X[s-1] + st[s] >= D[s]                      loaded before first use
  0 <= X[s] - X[s-1] - st[s] <= cap[s]        load capacity during compute
  X[s] - R[s] + sum_g chunks[g] p[g] <= lim[s]  memory (lim = budget - activations)
Objective: minimise stall chunks first, preloaded chunks second.
FlashMem's per-weight, per-layer chunk counts are dense (a memory row per
layer sums every future weight); this one solves 1,000 stages in about a
second (measured with `python -m texflow.bench.planner_bench`).
"""

from __future__ import annotations

import dataclasses
import math
import time

from texflow.errors import TexflowError

from .model import GroupPlan, Load, Plan, Problem, format_bytes


class InfeasibleBudget(TexflowError):
    """The memory budget is below what any plan needs."""

    def __init__(self, message: str, minimum: int):
        super().__init__(message)
        self.minimum = minimum


@dataclasses.dataclass
class PlannerOptions:
    # CP-SAT deterministic seconds per solve (its work counter, not the clock), with one
    # worker and a fixed seed: the same problem gives the same plan under any machine load
    time_limit_s: float = 10.0
    workers: int = 1
    exact_limit: int = 2000      # above this many stages: LP relaxation + rounding only
    strict_overlap: bool = False  # no stalls allowed (FlashMem's overlap plan)
    use_cpsat: bool = True


# -- helpers shared by all strategies ----------------------------------------

class _Instance:
    """Precomputed per-stage data of a problem (planner-side, not the verifier's)."""

    def __init__(self, prob: Problem, caps: list[int]):
        prob.validate()
        self.prob = prob
        L = self.L = len(prob.stages)
        self.caps = caps
        self.by_first = [[] for _ in range(L)]
        self.by_release = [[] for _ in range(L + 1)]  # released before stage s
        for i, g in enumerate(prob.groups):
            self.by_first[g.first].append(i)
            self.by_release[g.last + 1].append(i)
        self.forced = [prob.forced(g) for g in prob.groups]
        self.total = sum(g.chunks for g in prob.groups)
        cb = prob.chunk_bytes
        # chunks of weights that fit beside the live activations at each stage
        self.lim = [(prob.budget - s.act_bytes) // cb for s in prob.stages]

    def minimum_budget(self) -> tuple[int, int]:
        """Smallest budget with any valid plan (stream everything not forced,
        just in time), and the stage that needs it."""
        prob, cb = self.prob, self.prob.chunk_bytes
        forced = sum(g.chunks for g, f in zip(prob.groups, self.forced) if f)
        live = [0] * (self.L + 1)
        for g, f in zip(prob.groups, self.forced):
            if not f:
                live[g.first] += g.chunks
                live[g.last + 1] -= g.chunks
        best, where, run = 0, 0, 0
        for s, st in enumerate(prob.stages):
            run += live[s]
            need = st.act_bytes + (forced + run) * cb
            if need > best:
                best, where = need, s
        return best, where

    def asap(self, p: list[bool], lookahead: int | None = None):
        """Given the preload set, stream as early as memory and capacity allow.

        Returns (X, st) lists or None if memory cannot hold the plan.
        `lookahead=k` limits prefetch to the groups of the next k stages (the
        "load next stage" baseline)."""
        L, prob = self.L, self.prob
        PB = sum(g.chunks for g, q in zip(prob.groups, p) if q)
        T = sum(g.chunks for g, q in zip(prob.groups, p) if not q)
        D = [0] * L
        R = [0] * L
        d = r = 0
        for s in range(L):
            d += sum(prob.groups[i].chunks for i in self.by_first[s] if not p[i])
            r += sum(prob.groups[i].chunks for i in self.by_release[s] if not p[i])
            D[s], R[s] = d, r
        # memory envelope: X[s] <= min over t >= s of lim[t] + R[t] - PB
        U = [0] * L
        m = T
        for s in range(L - 1, -1, -1):
            m = min(m, self.lim[s] + R[s] - PB)
            U[s] = m
        X, ST = [0] * L, [0] * L
        prev = 0
        for s in range(L):
            st = max(0, D[s] - prev)
            x = prev + st
            if x > U[s]:
                return None
            hi = min(U[s], x + self.caps[s])
            if lookahead is not None:
                hi = min(hi, D[min(L - 1, s + lookahead)])
            x = max(x, hi)
            X[s], ST[s] = x, st
            prev = x
        return X, ST


def _schedule(inst: _Instance, p: list[bool], X: list[int], ST: list[int]) -> list[GroupPlan]:
    """Turn cumulative counts into per-group loads (first-use order stream)."""
    prob = inst.prob
    plans = [GroupPlan(preload=bool(q)) for q in p]
    order = sorted((i for i, q in enumerate(p) if not q),
                   key=lambda i: (prob.groups[i].first, i))
    pos, left = 0, (prob.groups[order[0]].chunks if order else 0)
    prev = 0
    for s in range(inst.L):
        amounts = (("stall", ST[s]), ("overlap", X[s] - prev - ST[s]))
        prev = X[s]
        for phase, amount in amounts:
            while amount > 0:
                g = order[pos]
                take = min(amount, left)
                gp = plans[g]
                if not gp.loads or gp.loads[-1].stage != s:
                    gp.loads.append(Load(stage=s))
                setattr(gp.loads[-1], phase, getattr(gp.loads[-1], phase) + take)
                amount -= take
                left -= take
                if left == 0:
                    pos += 1
                    left = prob.groups[order[pos]].chunks if pos < len(order) else 0
    return plans


def _plan_from(inst, p, X, ST, status) -> Plan:
    return Plan(groups=_schedule(inst, p, X, ST), status=status, stall_chunks=sum(ST))


# -- LP relaxation -------------------------------------------------------------

def _lp(inst: _Instance, strict: bool):
    """LP relaxation (GLOP), stall-only objective: a lower bound on stall
    chunks, and fractional preload flags for rounding.  None if the solver is
    unavailable or the LP is infeasible."""
    from ortools.linear_solver import pywraplp
    solver = None
    for name in ("HIGHS_LP", "GLOP"):  # HiGHS: 2-3x faster than GLOP at 5,000 stages
        solver = pywraplp.Solver.CreateSolver(name)
        if solver is not None:
            break
    if solver is None:
        return None
    solver.SuppressOutput()
    if name == "HIGHS_LP":  # HiGHS prints a banner on stdout unless told not to
        solver.SetSolverSpecificParametersAsString("output_flag=false")
    prob, L, inf = inst.prob, inst.L, solver.infinity()
    C = inst.total
    p = [solver.NumVar(1.0 if f else 0.0, 1.0, f"p{i}") for i, f in enumerate(inst.forced)]
    X = [solver.NumVar(0, C, f"x{s}") for s in range(L)]
    ST = [solver.NumVar(0, 0 if strict else C, f"st{s}") for s in range(L)]
    D = [solver.NumVar(0, C, f"d{s}") for s in range(L)]
    R = [solver.NumVar(0, C, f"r{s}") for s in range(L)]
    PB = solver.NumVar(0, C, "pb")
    solver.Add(PB == sum(g.chunks * p[i] for i, g in enumerate(prob.groups)))
    total_stream = sum(g.chunks * (1 - p[i]) for i, g in enumerate(prob.groups))
    for s in range(L):
        prevD = D[s - 1] if s else 0
        prevR = R[s - 1] if s else 0
        prevX = X[s - 1] if s else 0
        solver.Add(D[s] == prevD + sum(prob.groups[i].chunks * (1 - p[i]) for i in inst.by_first[s]))
        solver.Add(R[s] == prevR + sum(prob.groups[i].chunks * (1 - p[i]) for i in inst.by_release[s]))
        solver.Add(prevX + ST[s] >= D[s])
        solver.Add(X[s] - prevX - ST[s] >= 0)
        solver.Add(X[s] - prevX - ST[s] <= inst.caps[s])
        solver.Add(X[s] - R[s] + PB <= inst.lim[s])
    if L:
        solver.Add(X[L - 1] <= total_stream)
    solver.Minimize(sum(ST))
    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        return None
    return solver.Objective().Value(), [v.solution_value() for v in p]


def _round(inst: _Instance, frac: list[float]):
    """Round fractional preload flags; drop preloads until memory holds.
    Returns (p, X, ST) of the best rounding, or None."""
    best = None
    for thr in (0.5, 0.999, 0.001):
        order = sorted((i for i, v in enumerate(frac) if v >= thr and not inst.forced[i]),
                       key=lambda i: (frac[i], -i))
        base = [bool(f) for f in inst.forced]

        def with_k(k):  # preload the k groups of highest LP value
            q = list(base)
            for i in order[len(order) - k:] if k else []:
                q[i] = True
            return q
        # feasibility is monotone in dropping preloads: binary search the largest k
        lo, hi = 0, len(order)
        if inst.asap(with_k(0)) is None:
            return None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if inst.asap(with_k(mid)) is not None:
                lo = mid
            else:
                hi = mid - 1
        q = with_k(lo)
        X, ST = inst.asap(q)
        key = (sum(ST), sum(g.chunks for g, v in zip(inst.prob.groups, q) if v))
        if best is None or key < best[0]:
            best = (key, q, X, ST)
    return best[1:] if best else None


# -- CP-SAT ------------------------------------------------------------------

def _cpsat(inst: _Instance, strict: bool, time_limit: float, workers: int, hint=None):
    from ortools.sat.python import cp_model
    prob, L, C = inst.prob, inst.L, inst.total
    m = cp_model.CpModel()
    p = [m.new_constant(1) if f else m.new_bool_var(f"p{i}") for i, f in enumerate(inst.forced)]
    X = [m.new_int_var(0, C, f"x{s}") for s in range(L)]
    ST = [m.new_constant(0) if strict else m.new_int_var(0, C, f"st{s}") for s in range(L)]
    D = [m.new_int_var(0, C, f"d{s}") for s in range(L)]
    R = [m.new_int_var(0, C, f"r{s}") for s in range(L)]
    PB = m.new_int_var(0, C, "pb")
    m.add(PB == sum(g.chunks * p[i] for i, g in enumerate(prob.groups)))
    for s in range(L):
        prevD = D[s - 1] if s else 0
        prevR = R[s - 1] if s else 0
        prevX = X[s - 1] if s else 0
        add_first = [i for i in inst.by_first[s]]
        m.add(D[s] + sum(prob.groups[i].chunks * p[i] for i in add_first)
              == prevD + sum(prob.groups[i].chunks for i in add_first))
        rel = inst.by_release[s]
        m.add(R[s] + sum(prob.groups[i].chunks * p[i] for i in rel)
              == prevR + sum(prob.groups[i].chunks for i in rel))
        m.add(prevX + ST[s] >= D[s])
        m.add(X[s] - prevX - ST[s] >= 0)
        m.add(X[s] - prevX - ST[s] <= inst.caps[s])
        m.add(X[s] - R[s] + PB <= inst.lim[s])
    if L:
        m.add(X[L - 1] + PB <= C)
    weight = C + 1  # lexicographic: any stall chunk outweighs all preloads
    m.minimize(weight * sum(ST) + PB)
    if hint is not None:  # a complete hint: CP-SAT starts from this solution
        hp, hX, hST = hint
        for i, v in enumerate(hp):
            if not inst.forced[i]:
                m.add_hint(p[i], int(v))
        d = r = 0
        for s in range(L):
            d += sum(prob.groups[i].chunks for i in inst.by_first[s] if not hp[i])
            r += sum(prob.groups[i].chunks for i in inst.by_release[s] if not hp[i])
            m.add_hint(D[s], d)
            m.add_hint(R[s], r)
            m.add_hint(X[s], hX[s])
            if not strict:
                m.add_hint(ST[s], hST[s])
        m.add_hint(PB, sum(g.chunks for g, v in zip(prob.groups, hp) if v))
    solver = cp_model.CpSolver()
    # deterministic: a work limit instead of a clock, a fixed seed; with several workers
    # CP-SAT is deterministic only in interleaved mode
    solver.parameters.max_deterministic_time = max(0.05, time_limit)
    solver.parameters.num_workers = max(1, workers)
    solver.parameters.random_seed = 0
    if workers > 1:
        solver.parameters.interleave_search = True
    solver.parameters.add_lp_constraints_lazily = False
    status = solver.solve(m)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        pv = [bool(solver.value(v)) for v in p]
        Xv = [solver.value(v) for v in X]
        STv = [solver.value(v) for v in ST]
        return ("optimal" if status == cp_model.OPTIMAL else "feasible"), pv, Xv, STv
    if status == cp_model.INFEASIBLE:
        return "infeasible", None, None, None
    return "unknown", None, None, None


def _key(inst, p, ST):
    return sum(ST), sum(g.chunks for g, v in zip(inst.prob.groups, p) if v)


# -- entry points ------------------------------------------------------------

def physical_capacity(prob: Problem) -> list[int]:
    """Chunks the link can move during each stage's compute (capacity relaxed)."""
    if prob.chunk_s <= 0:
        return [sum(g.chunks for g in prob.groups)] * len(prob.stages)
    return [max(s.capacity, int(math.floor(s.compute_s / prob.chunk_s + 1e-9)))
            for s in prob.stages]


def check_budget(prob: Problem) -> None:
    inst = _Instance(prob, [s.capacity for s in prob.stages])
    need, where = inst.minimum_budget()
    if prob.budget < need:
        st = prob.stages[where]
        raise InfeasibleBudget(
            f"memory budget {format_bytes(prob.budget)} ({prob.budget} bytes) is below the minimum "
            f"{format_bytes(need)} ({need} bytes) needed at stage {where}"
            f"{' (' + st.name + ')' if st.name else ''}: its weights plus "
            f"{format_bytes(st.act_bytes)} of live activations"
            f"{' plus the always-preloaded first-stage weights' if prob.preload_first else ''}",
            need)


def greedy(prob: Problem) -> Plan:
    """Preload only what must be; stream in first-use order as early as
    capacity and memory allow."""
    inst = _Instance(prob, [s.capacity for s in prob.stages])
    check_budget(prob)
    p = list(inst.forced)
    X, ST = inst.asap(p)
    return _plan_from(inst, p, X, ST, "greedy")


def load_next_stage(prob: Problem) -> Plan:
    """Baseline: during each stage, load only the next stage's weights."""
    inst = _Instance(prob, physical_capacity(prob))
    check_budget(prob)
    p = list(inst.forced)
    X, ST = inst.asap(p, lookahead=1)
    result = _plan_from(inst, p, X, ST, "load-next-stage")
    result.capacities = inst.caps  # it ignores capacity classes: only the link limits it
    return result


def preload_all(prob: Problem) -> Plan | None:
    """Baseline: everything resident before the run; None if it does not fit."""
    cb = prob.chunk_bytes
    total = sum(g.chunks for g in prob.groups) * cb
    if any(total + s.act_bytes > prob.budget for s in prob.stages):
        return None
    return Plan(groups=[GroupPlan(preload=True) for _ in prob.groups], status="preload-all")


def plan(prob: Problem, options: PlannerOptions | None = None) -> Plan:
    """Plan `prob`; raises InfeasibleBudget (one line) when no plan exists.

    Chain: CP-SAT (hinted with the LP-rounded plan) -> LP rounding -> greedy.
    In strict-overlap mode (no stalls, FlashMem's overlap plan) first
    CP-SAT with class capacities, then with capacities relaxed to the link's
    limit, then the stall-allowed chain.
    """
    o = options or PlannerOptions()
    t0 = time.perf_counter()
    check_budget(prob)
    fallbacks: list[str] = []
    result = None
    if o.strict_overlap and prob.stages:
        for relaxed in (False, True):
            caps = physical_capacity(prob) if relaxed else [s.capacity for s in prob.stages]
            inst = _Instance(prob, caps)
            status, pv, Xv, STv = _cpsat(inst, True, o.time_limit_s, o.workers)
            if pv is not None:
                result = _plan_from(inst, pv, Xv, STv, status)
                result.relaxed_capacity = relaxed
                if relaxed:
                    result.capacities = caps
                lp = _lp(inst, True)
                result.stall_bound = lp[0] if lp else 0.0
                break
            fallbacks.append(("relaxed-capacity " if relaxed else "strict-overlap ") + status)
    if result is None:
        inst = _Instance(prob, [s.capacity for s in prob.stages])
        lp = _lp(inst, False)
        rounded = _round(inst, lp[1]) if lp else None
        if lp is None:
            fallbacks.append("lp-failed")
        if o.use_cpsat and inst.L <= o.exact_limit:
            status, pv, Xv, STv = _cpsat(inst, False, o.time_limit_s, o.workers, hint=rounded)
            if pv is not None and (rounded is None or _key(inst, pv, STv) <= _key(inst, *rounded[::2])):
                result = _plan_from(inst, pv, Xv, STv, status)
            elif pv is None:
                fallbacks.append(f"cp-sat {status}")
        elif inst.L > o.exact_limit:
            fallbacks.append(f"cp-sat skipped ({inst.L} stages > exact-limit {o.exact_limit})")
        if result is None and rounded is not None:
            result = _plan_from(inst, *rounded, "lp-rounding")
        if result is None:
            result = _plan_from(inst, list(inst.forced), *inst.asap(list(inst.forced)), "greedy")
        if lp is not None:
            result.stall_bound = lp[0]
        if result.status == "optimal":  # proven: the LP value can only be lower
            result.stall_bound = max(result.stall_bound, 0.0)
    result.fallbacks = fallbacks
    result.solve_s = time.perf_counter() - t0
    return result
