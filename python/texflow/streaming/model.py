"""Data model of weight streaming: stages, weight groups, plans, budgets.

Everything the planner and the verifier exchange is plain data defined here,
so that the verifier (`verify.py`) can replay a plan without sharing any of
the planner's logic.  Memory is counted in *chunks* (`chunk_bytes` each): a
group of `bytes` occupies `ceil(bytes / chunk_bytes)` chunks once fully
loaded, which over-approximates its true size by less than one chunk.
"""

from __future__ import annotations

import dataclasses
import math
import re

from texflow.errors import TexflowError

# Load-capacity classes (FlashMem): how much weight loading a kernel absorbs
# without slowing down, as a fraction of its own memory traffic.
CAPACITY_RATIO = {
    "hierarchical": 0.0,  # softmax, layernorm, reductions: bandwidth-bound
    "reusable": 0.2,      # matmul, conv: compute-bound
    "elemental": 3.0,     # relu, add, ...: short, tolerant
}
CLASSES = tuple(CAPACITY_RATIO)


@dataclasses.dataclass
class Stage:
    """A unit that waits for its weights (about one dispatch)."""
    compute_s: float          # estimated compute time, seconds
    capacity: int             # chunks loadable while it computes, without slowing it
    act_bytes: int = 0        # activations live during the stage
    kind: str = "reusable"    # capacity class
    name: str = ""


@dataclasses.dataclass
class Group:
    """The weights whose first use is one stage (loaded and released together)."""
    chunks: int               # size in chunks
    first: int                # first stage using it
    last: int                 # last stage using it
    bytes: int = 0            # true size (<= chunks * chunk_bytes)
    name: str = ""
    full_bytes: int = 0       # mapped (gathered) weight: its size; `bytes` is what it touches


@dataclasses.dataclass
class Problem:
    stages: list[Stage]
    groups: list[Group]
    budget: int               # bytes
    chunk_bytes: int
    chunk_s: float            # time to read one chunk (seconds)
    preload_first: bool = True  # groups first used by stage 0 are always preloaded

    def validate(self) -> None:
        L = len(self.stages)
        if self.chunk_bytes <= 0:
            raise TexflowError(f"chunk size must be positive, got {self.chunk_bytes}")
        if self.chunk_s < 0 or not math.isfinite(self.chunk_s):
            raise TexflowError(f"chunk load time must be finite and >= 0, got {self.chunk_s}")
        for i, g in enumerate(self.groups):
            if g.chunks < 1 or not (0 <= g.first <= g.last < L):
                raise TexflowError(f"malformed weight group {i}: chunks={g.chunks} "
                                   f"first={g.first} last={g.last} with {L} stages")
        for i, s in enumerate(self.stages):
            if s.capacity < 0 or s.act_bytes < 0 or s.compute_s < 0:
                raise TexflowError(f"malformed stage {i}: {s}")

    def forced(self, g: Group) -> bool:
        return self.preload_first and g.first == 0


@dataclasses.dataclass
class Load:
    """Chunks of one group moved at one stage: `stall` while the program waits
    before the stage computes (full read speed), `overlap` during its compute."""
    stage: int
    stall: int = 0
    overlap: int = 0


@dataclasses.dataclass
class GroupPlan:
    preload: bool
    loads: list[Load] = dataclasses.field(default_factory=list)

    @property
    def start(self) -> int | None:
        return min((l.stage for l in self.loads if l.stall or l.overlap), default=None)


@dataclasses.dataclass
class Plan:
    groups: list[GroupPlan]
    status: str = ""                  # optimal | feasible | lp-rounding | greedy | ...
    stall_chunks: int = 0             # as computed by the planner
    stall_bound: float = 0.0          # LP lower bound on stall chunks
    solve_s: float = 0.0
    fallbacks: list[str] = dataclasses.field(default_factory=list)
    relaxed_capacity: bool = False
    capacities: list[int] | None = None  # capacities the plan respects (if relaxed)

    def summary(self, p: Problem) -> dict:
        compute = sum(s.compute_s for s in p.stages)
        stall = self.stall_chunks * p.chunk_s
        bound = self.stall_bound * p.chunk_s
        streamed = sum(g.chunks for g, gp in zip(p.groups, self.groups) if not gp.preload)
        preloaded = sum(g.chunks for g, gp in zip(p.groups, self.groups) if gp.preload)
        return {
            "status": self.status,
            "fallbacks": list(self.fallbacks),
            "stages": len(p.stages),
            "groups": len(p.groups),
            "budget_bytes": p.budget,
            "chunk_bytes": p.chunk_bytes,
            "preloaded_bytes": preloaded * p.chunk_bytes,
            "streamed_bytes": streamed * p.chunk_bytes,
            "compute_s": compute,
            "stall_s": stall,
            "stall_lower_bound_s": bound,
            "makespan_s": compute + stall,
            "makespan_gap": (stall - bound) / (compute + bound) if compute + bound > 0 else 0.0,
            "simple_bound_s": max(compute, streamed * p.chunk_s),
            "relaxed_capacity": self.relaxed_capacity,
        }


# -- budgets ----------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000 ** 2, "mb": 1000 ** 2,
          "g": 1000 ** 3, "gb": 1000 ** 3, "t": 1000 ** 4, "tb": 1000 ** 4,
          "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4}


def parse_bytes(text: str | int, what: str = "memory budget") -> int:
    """'256MiB', '1.5GB', '1048576' -> bytes; one-line TexflowError otherwise."""
    if isinstance(text, bool):
        raise TexflowError(f"{what} must be a size such as 256MiB, got {text!r}")
    if isinstance(text, int):
        value = text
    else:
        m = re.fullmatch(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*",
                         str(text))
        if not m or m.group(2).lower() not in _UNITS:
            raise TexflowError(f"cannot parse {what} '{text}' (expected e.g. 256MiB, 1.5GB "
                               f"or a byte count)")
        number = float(m.group(1))
        if not math.isfinite(number):
            raise TexflowError(f"{what} '{text}' is not a finite size")
        value = int(math.floor(number * _UNITS[m.group(2).lower()]))
    if value <= 0:
        raise TexflowError(f"{what} must be positive, got '{text}'")
    return value


def format_bytes(n: float) -> str:
    for unit, size in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{int(n)}B"
