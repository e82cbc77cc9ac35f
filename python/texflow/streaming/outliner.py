"""Cutting a planned function into segments (texflow-wstream-outline) and the plan as the IR
carries it (`Outliner.analyse_groups`, shared with texflow-wstream-fence, whose fallback where
its arena cannot fit the budget is this outline)."""


from __future__ import annotations

import json

from iree.compiler import ir

from texflow import irutil
from texflow.errors import TexflowError
from texflow.ir.structured import type_text
from texflow.streaming.archive import weight_key
from texflow.streaming.irplan import func_name, single_block_functions
from texflow.streaming.program import PROGRAM_FORMAT, program_digest
from texflow.streaming.stages import classify, external_operands, tensor_bytes, weight_only_ops

PROGRAM_ATTR = "texflow.wstream.program"
# Ops that are the function's interface or the plan itself: never cloned.
INTERFACE = ("hal.tensor.import", "hal.tensor.export", "hal.tensor.barrier",
             "util.return", "func.return")


def _int_attr(op, name):
    return ir.IntegerAttr(op.attributes[name]).value


def is_compute(op) -> bool:
    return classify(op) is not None and not op.name.startswith("wstream.")


def _owner(value):
    """Defining op of `value` (None for block arguments)."""
    return irutil.producer(value)


def _remap(top, env: dict) -> None:
    """Replace, in `top` and its nested ops, every operand found in `env`."""
    def visit(o):
        for v in list(o.operands):
            if v in env:
                o.replace_uses_of_with(v, env[v])
        return ir.WalkResult.ADVANCE
    top.walk(visit, ir.WalkOrder.PRE_ORDER)


class Outliner:
    def __init__(self, func, segment_bytes: int = 0):
        self.segment_bytes = segment_bytes
        self.func = irutil.operation(func)
        self.block = self.func.regions[0].blocks[0]
        self.name = func_name(self.func)
        self.public = self.name[:-len("$async")] if self.name.endswith("$async") else self.name
        self.ops = [o.operation for o in self.block.operations]
        self.pos = {o: i for i, o in enumerate(self.ops)}

    # -- analysis ---------------------------------------------------------
    def analyse(self) -> None:
        """Groups and stages (`analyse_groups`), then the segments and what each needs."""
        self.analyse_groups()
        self.cuts = self._choose_cuts(self.n_stages)
        self._segment_members()

    def analyse_groups(self) -> None:
        """The plan as the IR carries it: weight groups (keys, first/last/start stage,
        preload, mapped), each op's stage, the function's inputs and outputs.  Shared by
        texflow-wstream-fence, which keeps the function whole."""
        groups: dict[int, dict] = {}
        self.weight_of: dict = {}          # wait result -> key
        self.input_of: dict = {}           # import result -> input index
        args = list(self.block.arguments)
        for i, a in enumerate(args):  # a function without IREE's ABI takes tensors directly
            if str(a.type).startswith("tensor<"):
                self.input_of[a] = i
        order: dict[int, int] = {}
        self.stage_info: dict[int, dict] = {}
        self.budget = 0
        stage_at = {}
        stage = -1
        for op in self.ops:
            n = op.name
            if n == "wstream.stage":
                stage = _int_attr(op, "id")
                self.stage_info[stage] = {
                    "compute_s": ir.FloatAttr(op.attributes["compute_s"]).value,
                    "act_bytes": _int_attr(op, "act_bytes"),
                    "kind": ir.StringAttr(op.attributes["kind"]).value
                    if "kind" in op.attributes else "reusable"}
                continue
            if n == "wstream.plan":
                self.budget = _int_attr(op, "budget")
            stage_at[op] = max(stage, 0)
            if n == "wstream.load":
                g = _int_attr(op, "group")
                sched = irutil.int_array(op.attributes["schedule"])
                starts = [sched[i] for i in range(0, len(sched), 3)
                          if sched[i + 1] or sched[i + 2]]
                groups[g] = {"id": g, "bytes": _int_attr(op, "bytes"),
                             "mapped": "mapped_bytes" in op.attributes,
                             "preload": ir.BoolAttr(op.attributes["preload"]).value,
                             "start_stage": min(starts) if starts else 0, "keys": []}
            elif n == "wstream.wait":
                g = _int_attr(op, "group")
                k = order.get(g, 0)
                order[g] = k + 1
                key = weight_key(self.name, g, k)
                self.weight_of[op.results[0]] = key
                groups[g]["keys"].append(key)
                groups[g]["first_stage"] = _int_attr(op, "stage")
                groups[g].setdefault("shapes", {})[key] = type_text(op.results[0].type, static=True)
            elif n == "wstream.release":
                groups[_int_attr(op, "group")]["last_stage"] = _int_attr(op, "stage")
            elif n == "hal.tensor.import":
                src = op.operands[0]
                if src not in args:
                    raise TexflowError(f"@{self.name}: an import of a computed value cannot be outlined")
                self.input_of[op.results[0]] = args.index(src)
        self.groups = [groups[g] for g in sorted(groups)]
        n_stages = self.n_stages = max([s for s in stage_at.values()] + [0]) + 1
        self._sink_weight_only(stage_at, n_stages)
        for g in self.groups:
            if "first_stage" not in g:
                raise TexflowError(f"@{self.name}: weight group {g['id']} has no wstream.wait")
            g.setdefault("last_stage", g["first_stage"])
        self.stage_at = stage_at
        # Outputs: util.return <- hal.tensor.export <- (hal.tensor.barrier) <- tensor.
        term = self.ops[-1]
        self.outputs = []
        for v in term.operands:
            d = _owner(v)
            if str(v.type).startswith("tensor<"):  # no ABI: the tensor itself
                self.outputs.append(v)
                continue
            if d is None or d.name != "hal.tensor.export":
                raise TexflowError(f"@{self.name}: a result is neither a tensor nor an "
                                   "exported tensor")
            t = d.operands[0]
            b = _owner(t)
            if b is not None and b.name == "hal.tensor.barrier":
                t = b.operands[list(b.results).index(t)]
            self.outputs.append(t)

    def _segment_members(self) -> None:
        stage_at = self.stage_at

        def seg_of_stage(s):
            k = 0
            while k + 1 < len(self.cuts) and self.cuts[k + 1] <= s:
                k += 1
            return k
        # Compute ops belong to the segment of the stage they are in.
        self.members: list[list] = [[] for _ in self.cuts]
        self.seg_of: dict = {}
        for op in self.ops:
            if is_compute(op):
                k = seg_of_stage(stage_at[op])
                self.members[k].append(op)
                self.seg_of[op] = k
        for g in self.groups:
            g["first_segment"] = seg_of_stage(g["first_stage"])
            g["last_segment"] = seg_of_stage(g["last_stage"])
            g["start_segment"] = seg_of_stage(min(g["start_stage"], g["first_stage"]))
        self._plan_segments()

    def _choose_cuts(self, n_stages: int) -> list[int]:
        """Segment boundaries: consecutive stages are merged while the weights
        first used in the segment stay under `segment_bytes` (default: half of
        what the budget leaves after the preloaded weights and the largest
        activations, so one segment computes while the next one's weights
        load).  A segment per stage would cost a call and lost fusion each:
        ViT-Tiny ran 1.9x slower cut at every weight group (198 segments)."""
        new = [0] * n_stages
        for g in self.groups:
            if not g["preload"]:
                new[g["first_stage"]] += g["bytes"]
        limit = self.segment_bytes
        if limit <= 0:
            pre = sum(g["bytes"] for g in self.groups if g["preload"])
            act = max([i["act_bytes"] for i in self.stage_info.values()] or [0])
            limit = max(1, (self.budget - pre - act) // 2)
        act = [self.stage_info.get(s, {}).get("act_bytes", 0) for s in range(n_stages)]
        pre = sum(g["bytes"] for g in self.groups if g["preload"])
        streamed = [g for g in self.groups if not g["preload"]]

        def fits(lo: int, hi: int) -> bool:
            """The segment's weights, the preloaded ones and its activations fit
            (the runtime holds a segment's groups for all of it)."""
            live = sum(g["bytes"] for g in streamed
                       if g["first_stage"] <= hi and g["last_stage"] >= lo)
            return pre + live + max(act[lo:hi + 1]) <= self.budget

        # Cuts go only before a contraction or convolution ("reusable" stages):
        # their inputs are read from memory anyway.  Cutting inside an
        # elementwise chain stops IREE fusing it, and LLVM then cannot contract
        # `a * b + c` into one FMA across the cut: LLaMA's rotary embedding cut
        # there differed by 4.8e-6.  Among those stages the greedy takes the one
        # where the fewest activation bytes are live (between transformer
        # blocks rather than inside attention).  Segment 0 ends before the first
        # streamed weight: whatever it uses is preloaded for good.
        ok = [self.stage_info.get(t, {}).get("kind", "reusable") == "reusable"
              for t in range(n_stages)]

        def allowed_at_or_before(t: int, floor: int) -> int:
            """The latest cut position in (floor, t], else t itself."""
            for u in range(t, floor, -1):
                if ok[u]:
                    return u
            return t

        first = next((s for s in range(n_stages) if new[s]), n_stages)
        if 0 < first < n_stages:
            first = allowed_at_or_before(first, 0)
        cuts = [0] + ([first] if 0 < first < n_stages else [])
        cur, s = (new[first] if first < n_stages else 0), first + 1
        while s < n_stages:
            lo = cuts[-1]
            if cur > 0 and (cur + new[s] > limit or not fits(lo, s)):
                cands = [t for t in range(lo + 1, s + 1) if ok[t]] or [s]
                best = min(cands, key=lambda t: (act[t], -t))
                if not fits(best, s):
                    best = allowed_at_or_before(s, lo)
                cuts.append(best)
                cur = sum(new[best:s + 1])
            else:
                cur += new[s]
            s += 1
        return cuts

    def _top_users(self, value) -> list:
        """Top-level compute ops using `value`, through clonable ops and waits;
        None stands for the function's outputs."""
        out, stack, seen = [], [value], set()
        while stack:
            for u in stack.pop().uses:
                o = irutil.operation(u.owner)
                while o is not None and o not in self.pos:
                    o = o.parent.operation if o.parent is not None else None
                if o is None or o in seen:
                    continue
                seen.add(o)
                if is_compute(o):
                    out.append(o)
                elif o.name in INTERFACE:
                    out.append(None)
                else:
                    stack.extend(o.results)
        return out

    def _sink_weight_only(self, stage_at: dict, n_stages: int) -> None:
        """Compute on weights alone (a bias broadcast, a weight reshape) moves to
        its first consumer's stage, so it is compiled with it as in the whole
        program (IREE fuses it there; cutting between them changed rounding),
        and its weights are due no earlier than that consumer.  The groups'
        first and last stages follow."""
        for op in reversed(weight_only_ops(self.block)):
            users = [u for r in op.results for u in self._top_users(r)]
            if users and not any(u is None for u in users):
                stage_at[op] = min(stage_at[u] for u in users)
        value_of = {key: v for v, key in self.weight_of.items()}
        for g in self.groups:
            stages = [n_stages - 1 if u is None else stage_at[u]
                      for key in g["keys"] for u in self._top_users(value_of[key])]
            if stages:
                g["first_stage"], g["last_stage"] = min(stages), max(stages)

    def _classify_value(self, v, k, need, clones):
        """Record how segment k obtains `v` (argument or clone)."""
        if v in self.weight_of:
            need.setdefault(("weight", self.weight_of[v]), v)
            return
        if v in self.input_of:
            need.setdefault(("input", self.input_of[v]), v)
            return
        d = _owner(v)
        if d is None:
            raise TexflowError(f"@{self.name}: a segment uses a function argument directly")
        if d in self.seg_of:
            j = self.seg_of[d]
            if j > k:
                raise TexflowError(f"@{self.name}: internal: value used before its segment")
            if j < k:
                need.setdefault(("value", v), v)
            return
        if d.name in INTERFACE or d.name.startswith("wstream."):
            raise TexflowError(f"@{self.name}: cannot outline a use of {d.name}")
        if d not in clones:
            for u in external_operands(d):
                self._classify_value(u, k, need, clones)
            clones.append(d)

    def _plan_segments(self) -> None:
        K = len(self.cuts)
        self.needs, self.clones = [], []
        for k in range(K):
            need, clones = {}, []
            for op in self.members[k]:
                for v in external_operands(op):
                    self._classify_value(v, k, need, clones)
            if k == K - 1:
                for v in self.outputs:
                    self._classify_value(v, k, need, clones)
            self.needs.append(need)
            self.clones.append(sorted(set(clones), key=self.pos.__getitem__))
        # Op identities by index: the bindings' Operation hash changes when ops move.
        self.member_idx = [{self.pos[o] for o in m} for m in self.members]
        self.clone_idx = [{self.pos[o] for o in c} for c in self.clones]
        # Which values each segment must return.
        self.value_ids: dict = {}
        self.returns: list[list] = [[] for _ in range(K)]
        self.last_use: dict = {}
        self.value_seg: dict = {}
        for k in range(K):
            for (kind, key), v in self.needs[k].items():
                if kind != "value":
                    continue
                j = self.seg_of[_owner(v)]
                self.value_seg[v] = j
                if v not in self.value_ids:
                    self.value_ids[v] = f"v{len(self.value_ids)}"
                    self.returns[j].append(v)
                self.last_use[v] = k
        for v in self.outputs:  # outputs computed in the last segment are returned by it
            if v not in self.value_ids:
                self.value_ids[v] = f"v{len(self.value_ids)}"
                self.value_seg[v] = K - 1
                self.returns[K - 1].append(v)

    # -- rewriting ----------------------------------------------------------
    def build(self) -> tuple[dict, list]:
        K = len(self.cuts)
        loc = self.func.location
        segments, new_funcs = [], []
        for k in range(K):
            arg_keys = sorted(self.needs[k].keys(),
                              key=lambda t: ({"input": 0, "value": 1, "weight": 2}[t[0]],
                                             str(t[1]) if t[0] != "value" else
                                             self.value_ids.get(t[1], "")))
            arg_vals = [self.needs[k][t] for t in arg_keys]
            res_vals = self.returns[k] if k < K - 1 else \
                list(dict.fromkeys(self.returns[k] + self.outputs))
            fname = f"{self.public}$seg{k}"
            ftype = ir.FunctionType.get([v.type for v in arg_vals], [v.type for v in res_vals])
            with ir.InsertionPoint(self.func), loc:
                f = ir.Operation.create("util.func", regions=1, attributes={
                    "sym_name": ir.StringAttr.get(fname),
                    "function_type": ir.TypeAttr.get(ftype)})
            with loc:
                blk = f.regions[0].blocks.append(*[v.type for v in arg_vals])
            env = {v: blk.arguments[i] for i, v in enumerate(arg_vals)}
            with loc:  # everything goes before this placeholder, erased at the end
                anchor = ir.Operation.create("util.optimization_barrier",
                                             ip=ir.InsertionPoint(blk))
            ip = ir.InsertionPoint(anchor)
            # Clones and the segment's own ops (moved), in program order.
            # (by index: the bindings' Operation hash is not stable across moves)
            mine = self.member_idx[k]
            todo = sorted(mine | self.clone_idx[k])
            for i in todo:
                op = self.ops[i]
                if i in mine:
                    op.move_before(anchor)
                    new = op
                else:
                    new = op.clone(ip=ip)
                    for a, b in zip(op.results, new.results):
                        env[a] = b
                _remap(new, env)
                if i in mine:
                    for r in op.results:
                        env[r] = r
            missing = [v for v in res_vals if v not in env]
            if missing:
                d = _owner(missing[0])
                raise TexflowError(f"internal: segment {k} cannot return a value of "
                                   f"{d.name if d is not None else 'an argument'}")
            ir.Operation.create("util.return", operands=[env[v] for v in res_vals], loc=loc, ip=ip)
            anchor.erase()
            new_funcs.append(f)
            segments.append({
                "function": fname,
                "stages": [self.cuts[k], (self.cuts[k + 1] - 1) if k + 1 < K else None],
                "args": [[kind, (self.value_ids[key] if kind == "value" else key)]
                         for kind, key in arg_keys],
                "results": [self.value_ids[v] for v in res_vals],
            })
        if segments:
            segments[-1]["stages"][1] = self.n_stages - 1
        values = {}
        for v, vid in self.value_ids.items():
            values[vid] = {"segment": self.value_seg[v],
                           "last_use": self.last_use.get(v, K), "bytes": tensor_bytes(v.type),
                           "type": type_text(v.type, static=True)}
        inputs = sorted(self.input_of.items(), key=lambda t: t[1])
        program = {
            "format": PROGRAM_FORMAT,
            "function": self.name,
            "entry": self.public,
            "inputs": [type_text(v.type, static=True) for v, _ in inputs],
            "outputs": [self.value_ids[v] for v in self.outputs],
            "output_types": [type_text(v.type, static=True) for v in self.outputs],
            "segments": segments,
            "values": values,
            "groups": [{k: g[k] for k in ("id", "bytes", "mapped", "preload", "keys", "shapes",
                                           "first_stage", "last_stage", "start_stage",
                                           "first_segment", "last_segment", "start_segment")}
                       for g in self.groups],
        }
        return program, new_funcs


def callers_of(module_block, callee: str) -> list:
    out = []
    for o in module_block.operations:
        o = o.operation
        if o.name not in irutil.FUNC_OPS:
            continue
        hit = []
        irutil.walk(o, lambda x: hit.append(x) if x.name in ("util.call", "func.call") and
                    ir.FlatSymbolRefAttr(x.attributes["callee"]).value == callee else None)
        if hit:
            out.append(o)
    return out


def planned_functions(module) -> list:
    """The functions holding a `wstream.plan` (at most one: a runtime runs one program)."""
    planned = [f for f in single_block_functions(module)
               if any(o.operation.name == "wstream.plan"
                      for o in f.regions[0].blocks[0].operations)]
    if len(planned) > 1:
        raise TexflowError("streaming execution supports one planned function per module, "
                           f"found {len(planned)}")
    return planned


def erase_plan_ops(module) -> None:
    """Anything the plan left (e.g. functions without weights) loses its wstream ops."""
    for name in ("wstream.release", "wstream.load", "wstream.stage", "wstream.plan"):
        for o in irutil.collect(module, {name}):
            o.erase()


def outline_module(module, segment_bytes: int, bump) -> None:
    """Cut the planned function into segments (texflow-wstream-outline's work); `bump(stat, n)`
    counts what was done."""
    mblock = module.regions[0].blocks[0]
    programs = []
    for func in planned_functions(module):
        out = Outliner(func, segment_bytes)
        out.analyse()
        program, new_funcs = out.build()
        callers = callers_of(mblock, out.name)
        for c in callers:  # the synchronous wrapper of `X$async`
            c.erase()
        func.erase()
        text, digest = json.dumps(program, sort_keys=True), program_digest(program)
        for i, f in enumerate(new_funcs):  # the full program on the first segment only
            f.attributes["iree.reflection"] = ir.DictAttr.get({
                ("texflow.wstream.program" if i == 0 else "texflow.wstream.digest"):
                ir.StringAttr.get(text if i == 0 else digest)})
        programs.append(program)
        bump("functions outlined", 1)
        bump("segments", len(program["segments"]))
        bump("weight arguments", sum(len(g["keys"]) for g in program["groups"]))
    if programs:
        module.attributes[PROGRAM_ATTR] = ir.StringAttr.get(
            json.dumps(programs[0], sort_keys=True))
    erase_plan_ops(module)
