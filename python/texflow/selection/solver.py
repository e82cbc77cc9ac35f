"""Layout selection as a PBQP problem, solved exactly (CP-SAT) or by SmartMem's greedy rule.

Each tensor of a layout region gets one layout from its domain.  The cost is a sum of
*unary* terms (an op's time in the layout it computes in) and *pairwise* terms (an edge
from a producer to a consumer costs a conversion when their layouts differ).  That is the
partitioned Boolean quadratic problem, NP-hard in general (SmartMem notes the same of
layout selection).  `solve()` runs CP-SAT on problems up to `max_exact_nodes` nodes and
reports whether the optimum was proven; larger problems, or a solver that finds nothing
within its limit, fall back to the greedy rule, and the result says which solver produced it.

A compiler must give the same answer whatever the machine's load, so CP-SAT runs with one
worker, a fixed seed and a *deterministic* time limit (`max_deterministic_time`, CP-SAT's
own work counter, roughly seconds on a current core) and no wall-clock limit: the same
problem always stops at the same point of the same search.
"""

from __future__ import annotations

import dataclasses
import time


@dataclasses.dataclass
class Problem:
    domains: list[list[str]]  # node -> allowed layouts
    unary: list[dict[str, float]]  # node -> layout -> cost
    # (producer node, consumer node or None for a fixed consumer, cost of one conversion
    # between differing layouts, fixed layout when consumer is None)
    edges: list[tuple[int, int | None, float, str | None]] = dataclasses.field(default_factory=list)
    # (fixed producer layout, consumer node, conversion cost): inputs from outside the region
    sources: list[tuple[str, int, float]] = dataclasses.field(default_factory=list)

    def conversions(self, a: str, b: str) -> int:
        """Conversions between two layouts: direct to or from the reference layout, else two."""
        if a == b:
            return 0
        return 1 if "nchw" in (a, b) else 2

    def cost(self, x: list[str]) -> float:
        c = sum(self.unary[i][x[i]] for i in range(len(x)))
        for p, q, w, fixed in self.edges:
            c += w * self.conversions(x[p], x[q] if q is not None else fixed)
        for fixed, q, w in self.sources:
            c += w * self.conversions(fixed, x[q])
        return c


@dataclasses.dataclass
class Solution:
    layouts: list[str]
    cost: float
    solver: str  # "cp-sat (optimal)", "cp-sat (feasible)", "greedy", "greedy (fallback ...)"
    seconds: float
    bound: float | None = None  # CP-SAT's lower bound


def _neighbours(pb: Problem):
    nb = [[] for _ in pb.domains]
    for p, q, w, fixed in pb.edges:
        if q is None:
            nb[p].append((None, w, fixed))
        else:
            nb[p].append((q, w, None))
            nb[q].append((p, w, None))
    for fixed, q, w in pb.sources:
        nb[q].append((None, w, fixed))
    return nb


def greedy(pb: Problem) -> list[str]:
    """SmartMem's rule, then local improvement.

    Backwards over the nodes (they are in program order): each node takes the layout that
    minimises its own cost plus the conversions to the consumers already decided, i.e. a
    producer writes what its consumers read best.  Then each node in turn moves to its best
    layout given its neighbours (iterated conditional modes) until nothing improves."""
    nb = _neighbours(pb)
    x: list[str | None] = [None] * len(pb.domains)

    def local(i):
        best, best_c = None, None
        for l in pb.domains[i]:
            c = pb.unary[i][l]
            for j, w, fixed in nb[i]:
                other = fixed if j is None else x[j]
                if other is not None:
                    c += w * pb.conversions(l, other)
            if best_c is None or c < best_c - 1e-12:
                best, best_c = l, c
        return best

    for i in reversed(range(len(x))):
        x[i] = local(i)
    for _ in range(20):
        changed = False
        for i in range(len(x)):
            l = local(i)
            if l != x[i]:
                x[i], changed = l, True
        if not changed:
            break
    return x  # type: ignore[return-value]


def cpsat(pb: Problem, time_limit: float, hint: list[str] | None = None):
    """`time_limit`: CP-SAT deterministic seconds (see the module docstring)."""
    """Exact PBQP with CP-SAT: one Boolean per (node, layout); an edge's conversion count is
    1 - sum over layouts of [both ends take it] (2 when both avoid NCHW and differ).
    Returns (layouts, status name, bound) or None when no solution was found in time."""
    from ortools.sat.python import cp_model
    S = 1e4  # costs are ms; CP-SAT wants integers: 0.1 us resolution
    m = cp_model.CpModel()
    b = [{l: m.new_bool_var(f"x{i}_{l}") for l in dom} for i, dom in enumerate(pb.domains)]
    for i, d in enumerate(b):
        m.add_exactly_one(d.values())
    obj = []
    for i, d in enumerate(b):
        for l, v in d.items():
            obj.append(int(round(S * pb.unary[i][l])) * v)

    def conv_cost(p_vars: dict, q_vars: dict, w: int):
        """w * conversions(p, q) with both ends variables."""
        same = []
        for l in sorted(set(p_vars) & set(q_vars)):  # sorted: same model in every process
            s = m.new_bool_var("")
            m.add_implication(s, p_vars[l])
            m.add_implication(s, q_vars[l])
            m.add_bool_or([p_vars[l].Not(), q_vars[l].Not(), s])
            same.append(s)
        # conversions = 1 - same + [both non-nchw and differ]
        diff = m.new_bool_var("")
        m.add(diff == 1 - sum(same))
        terms = [w * diff]
        # one more conversion when they differ and neither is NCHW (through NCHW: two)
        p_off = 1 - p_vars["nchw"] if "nchw" in p_vars else 1
        q_off = 1 - q_vars["nchw"] if "nchw" in q_vars else 1
        both_off = m.new_bool_var("")
        m.add(both_off >= diff + p_off + q_off - 2)
        terms.append(w * both_off)
        return terms

    for p, q, w, fixed in pb.edges:
        wi = int(round(S * w))
        if q is None:
            obj += [wi * pb.conversions(l, fixed) * v for l, v in b[p].items()]
        else:
            obj += conv_cost(b[p], b[q], wi)
    for fixed, q, w in pb.sources:
        wi = int(round(S * w))
        obj += [wi * pb.conversions(fixed, l) * v for l, v in b[q].items()]
    m.minimize(sum(obj))
    if hint:
        for i, l in enumerate(hint):
            for l2, v in b[i].items():
                m.add_hint(v, l2 == l)
    s = cp_model.CpSolver()
    s.parameters.max_deterministic_time = time_limit
    s.parameters.num_workers = 1
    s.parameters.random_seed = 0
    st = s.solve(m)
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    x = [next(l for l, v in d.items() if s.value(v)) for d in b]
    return x, ("optimal" if st == cp_model.OPTIMAL else "feasible"), s.best_objective_bound / S


def solve(pb: Problem, solver: str = "auto", time_limit: float = 5.0,
          max_exact_nodes: int = 2000) -> Solution:
    """`solver`: "auto" (CP-SAT up to max_exact_nodes, else greedy), "cpsat" or "greedy".
    `time_limit` is in CP-SAT deterministic seconds; `Solution.seconds` is the wall time
    spent, for the caller's statistics only (it never enters an output file)."""
    t0 = time.perf_counter()
    g = greedy(pb)
    if solver == "greedy" or (solver == "auto" and len(pb.domains) > max_exact_nodes):
        why = "" if solver == "greedy" else f" (fallback: {len(pb.domains)} nodes > {max_exact_nodes})"
        return Solution(g, pb.cost(g), "greedy" + why, time.perf_counter() - t0)
    r = cpsat(pb, time_limit, hint=g)
    if r is None:
        return Solution(g, pb.cost(g), f"greedy (fallback: CP-SAT found nothing within {time_limit} deterministic s)",
                        time.perf_counter() - t0)
    x, status, bound = r
    if pb.cost(g) < pb.cost(x) - 1e-9:  # a time-limited CP-SAT can lose to its own hint
        x, status = g, "feasible, greedy hint kept"
    return Solution(x, pb.cost(x), f"cp-sat ({status})", time.perf_counter() - t0, bound)
