"""texflow-wstream-plan: plan weight streaming under a memory budget (FlashMem).

Why: a model whose weights exceed the memory budget, or that should start
before all its weights are read, must stream them: each stage waits only for
its own weight group, which was read while earlier stages computed.  This
pass forms stages (or takes texflow-wstream-form-stages' markers), groups
constants by first use, plans with CP-SAT (texflow.streaming.planner), checks
the plan with the independent verifier, and writes it as wstream IR:
wstream.plan, wstream.load (with its chunk schedule), wstream.wait before the
first use, wstream.release after the last.  With `adaptive`, stages whose load
capacity limits the plan get their elementwise tail split off (a fused
kernel's capacity is the minimum of its parts'), and the split is kept when
the planned makespan improves.
"""

from __future__ import annotations

import dataclasses

from texflow.dialects import wstream
from texflow.dialects.base import check_ops
from texflow.errors import TexflowError
from texflow.streaming import irplan
from texflow.streaming.costmodel import load_calibration
from texflow.streaming.model import parse_bytes
from texflow.streaming.planner import PlannerOptions, plan
from texflow.streaming.verify import replay
from ..registry import Bytes, Pass, register_pass


@register_pass
class WStreamPlan(Pass):
    name = "texflow-wstream-plan"
    summary = "Plan weight loads under a memory budget with CP-SAT and attach them as wstream IR"

    @dataclasses.dataclass
    class Options:
        memory_budget: Bytes = dataclasses.field(
            default=Bytes(0), metadata={"help": "peak memory for weights + activations, e.g. 256MiB"})
        time_limit: float = dataclasses.field(default=10.0, metadata={"help": "solver seconds"})
        chunk_bytes: int = dataclasses.field(default=0, metadata={"help": "0: automatic"})
        calibration: str = dataclasses.field(default="", metadata={"help": "name or JSON path"})
        min_weight_bytes: int = dataclasses.field(
            default=1, metadata={"help": "smaller constants stay inline"})
        strict_overlap: bool = dataclasses.field(
            default=False, metadata={"help": "no stalls (FlashMem's overlap plan) before fallbacks"})
        preload_first: bool = dataclasses.field(
            default=True, metadata={"help": "always preload the first stage's weights"})
        adaptive: bool = dataclasses.field(
            default=True, metadata={"help": "split stages where capacity limits the plan"})
        exact_limit: int = dataclasses.field(
            default=2000, metadata={"help": "stages above which only LP rounding runs"})
        manifest: str = dataclasses.field(default="", metadata={"help": "write the plan as JSON"})
        map_tables: bool = dataclasses.field(
            default=True, metadata={"help": "count a table only gathered from by the rows it can "
                                             "touch (the CPU runtime maps it; on Vulkan it is read "
                                             "whole, so Vulkan targets plan with false)"})

    def apply(self, module) -> None:
        o = self.options
        if not o.memory_budget:
            raise TexflowError("texflow-wstream-plan needs memory-budget=<size> (e.g. 256MiB)")
        budget = parse_bytes(o.memory_budget)
        if o.chunk_bytes < 0 or o.time_limit <= 0:
            raise TexflowError("chunk-bytes must be >= 0 and time-limit > 0")
        cal = load_calibration(o.calibration)
        popts = PlannerOptions(time_limit_s=o.time_limit, strict_overlap=o.strict_overlap,
                               exact_limit=o.exact_limit)
        manifests = []
        for func in irplan.single_block_functions(module):
            if any(x.operation.name in ("wstream.plan", "wstream.load")
                   for x in func.regions[0].blocks[0].operations):
                raise TexflowError(f"function @{irplan.func_name(func)} already has a wstream plan")
            an = irplan.analyse(func, o.min_weight_bytes)
            built = irplan.build_problem(an, cal, budget, o.chunk_bytes, o.preload_first, o.map_tables)
            if built is None:
                continue
            p = plan(built.problem, popts)
            if o.adaptive:
                built, p = self._adapt(built, p, cal, budget, popts)
            rep = replay(built.problem, p)  # independent check; raises on a bad plan
            irplan.write_markers(built.analysis, built.compute, cal)
            irplan.emit_plan(built, p, rep)
            errs = wstream.check_order(built.analysis.block)
            if errs:
                raise TexflowError(f"internal: emitted plan is out of order: {errs[0]}")
            manifests.append(irplan.manifest(built, p, rep, cal, irplan.func_name(func)))
            self.bump("functions planned")
            self.bump("stages", len(built.problem.stages))
            self.bump("weight groups", len(built.problem.groups))
            self.bump("groups preloaded", sum(gp.preload for gp in p.groups))
            self.bump(f"plans {p.status}")
        check_ops(module, ("wstream",))
        if o.manifest:
            irplan.write_manifest(o.manifest, manifests[0] if len(manifests) == 1 else manifests)

    def _adapt(self, built, p, cal, budget, popts, rounds: int = 3):
        """Split saturated reusable stages' elementwise tails while it pays."""
        for _ in range(rounds):
            prob = built.problem
            if p.stall_chunks == 0:
                break
            overlap = [0] * len(prob.stages)
            for gp in p.groups:
                for ld in gp.loads:
                    overlap[ld.stage] += ld.overlap
            stages = built.analysis.stages
            cands = [i for i, s in enumerate(stages)
                     if s.split_point() is not None and overlap[i] >= prob.stages[i].capacity]
            if not cands:
                break
            new = []
            for i, s in enumerate(irplan.fresh(stages)):
                k = s.split_point() if i in cands else None
                if k is None:
                    new.append(s)
                else:
                    new.append(type(s)(ops=s.ops[:k], kinds=s.kinds[:k]))
                    new.append(type(s)(ops=s.ops[k:], kinds=s.kinds[k:]))
            an2 = irplan.analyse(built.analysis.block.owner.operation
                                 if hasattr(built.analysis.block.owner, "operation")
                                 else built.analysis.block.owner, self.options.min_weight_bytes,
                                 stages=new)
            b2 = irplan.build_problem(an2, cal, budget, prob.chunk_bytes, prob.preload_first,
                                      self.options.map_tables)
            try:
                p2 = plan(b2.problem, popts)
            except TexflowError:
                break
            old_t = p.summary(prob)["makespan_s"]
            new_t = p2.summary(b2.problem)["makespan_s"]
            if new_t >= old_t:
                break
            self.bump("stages split", len(cands))
            built, p = b2, p2
        return built, p
