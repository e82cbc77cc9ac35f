"""Weight streaming (FlashMem): stage graphs, cost model, CP-SAT planner, verifier."""

from .model import (CAPACITY_RATIO, CLASSES, Group, GroupPlan, Load, Plan, Problem, Stage,
                    format_bytes, parse_bytes)
from .planner import (InfeasibleBudget, PlannerOptions, check_budget, greedy, load_next_stage,
                      plan, preload_all)
from .verify import PlanError, Replay, replay

__all__ = ["CAPACITY_RATIO", "CLASSES", "Group", "GroupPlan", "InfeasibleBudget", "Load", "Plan",
           "PlanError", "PlannerOptions", "Problem", "Replay", "Stage", "check_budget",
           "format_bytes", "greedy", "load_next_stage", "parse_bytes", "plan", "preload_all",
           "replay"]
