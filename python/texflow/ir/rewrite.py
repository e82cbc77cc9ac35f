"""Rewrite patterns and the driver that applies them to a fixed point.

A pattern is one class: `match(op)` reads the IR and returns a plan (any object) or None, and
changes nothing; `rewrite(plan)` carries the plan out.  Everything that can refuse a rewrite
(shapes, maps, what the verifier would say of the rewritten op) is decided in `match`, so a
rewrite never fails halfway and never leaves ops behind.

The driver applies stages in order.  A stage names its candidate ops (`roots`, read afresh
from the module, in IR order) and its patterns; for each candidate in turn each pattern is
matched, and the first plan found is rewritten, after which the driver starts again from the
first stage (a rewrite may open new matches anywhere).  It stops when no pattern matches,
or after `max_rewrites` rewrites, which it reports: a set of patterns that keeps rewriting is
a bug, not something to hide.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, ClassVar


class Pattern:
    """One rewrite rule: `match` (no IR change) then `rewrite`."""

    name: ClassVar[str] = ""

    def match(self, op):  # pragma: no cover - abstract
        raise NotImplementedError

    def rewrite(self, plan) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclasses.dataclass
class Stage:
    roots: Callable[[object], list]  # module -> candidate ops, in IR order
    patterns: list[Pattern]


@dataclasses.dataclass
class DriverResult:
    rewrites: int
    converged: bool
    by_pattern: dict[str, int]


def apply_patterns(module, stages: list[Stage], max_rewrites: int = 1000) -> DriverResult:
    counts: dict[str, int] = {}
    for n in range(max_rewrites):
        applied = _apply_one(module, stages)
        if applied is None:
            return DriverResult(n, True, counts)
        counts[applied] = counts.get(applied, 0) + 1
    return DriverResult(max_rewrites, _apply_one(module, stages, dry=True) is None, counts)


def _apply_one(module, stages: list[Stage], dry: bool = False) -> str | None:
    for stage in stages:
        if not stage.patterns:
            continue
        for op in stage.roots(module):
            for p in stage.patterns:
                plan = p.match(op)
                if plan is None:
                    continue
                if not dry:
                    p.rewrite(plan)
                return p.name
    return None
