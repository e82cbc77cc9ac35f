"""The `wstream` dialect: a weight-streaming plan attached to a program.

    wstream.plan    {budget, chunk_bytes, status, stall_s, ...}   summary (first op)
    wstream.stage   {id, kind, compute_s, capacity_bytes, act_bytes}    a stage starts here
    %t = wstream.load {group, bytes, chunks, preload, schedule} -> !wstream.token
    %w = wstream.wait %t, %cst {group, stage}                  weight ready; the result
                                                               replaces the constant
    wstream.release %t {group, stage}                          after the last use

A load's `schedule` is a flat array of (stage, stall chunks, overlap chunks)
triples: chunks read while the program waits before `stage` computes, and
chunks read during its compute.  Lowering (texflow-wstream-lower) forwards
each wait's operands to its results and erases every op, because IREE
crashes on unregistered ops at dispatch creation.  The IRDL twin is
`wstream.irdl.mlir`.
"""

from __future__ import annotations

from iree.compiler import ir

from .base import TexflowOp, op

TOKEN = "!wstream.token"
KINDS = ("hierarchical", "reusable", "elemental")
STATUSES = ("optimal", "feasible", "lp-rounding", "greedy", "load-next-stage", "preload-all")


def token_type():
    return ir.Type.parse(TOKEN)


def _int(o, name, errs, minimum=None):
    a = o.attr(name)
    if a is None or not isinstance(a, ir.IntegerAttr):
        errs.append(f"requires integer attribute '{name}'")
        return None
    v = ir.IntegerAttr(a).value
    if minimum is not None and v < minimum:
        errs.append(f"attribute '{name}' must be >= {minimum}, got {v}")
    return v


def _str(o, name, errs, allowed=None):
    a = o.attr(name)
    if a is None or not isinstance(a, ir.StringAttr):
        errs.append(f"requires string attribute '{name}'")
        return None
    v = ir.StringAttr(a).value
    if allowed and v not in allowed:
        errs.append(f"attribute '{name}' must be one of {', '.join(allowed)}, got '{v}'")
    return v


def _float(o, name, errs):
    a = o.attr(name)
    if a is None or not isinstance(a, ir.FloatAttr):
        errs.append(f"requires float attribute '{name}'")
        return None
    v = ir.FloatAttr(a).value
    if not v >= 0:
        errs.append(f"attribute '{name}' must be >= 0, got {v}")
    return v


def _is_token(t) -> bool:
    return str(t) == TOKEN


def _load_of(value):
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    o = owner.operation if hasattr(owner, "operation") else owner
    return o if o.name == "wstream.load" else None


@op
class PlanOp(TexflowOp):
    OPERATION_NAME = "wstream.plan"

    def verify_op(self):
        errs = []
        _int(self, "budget", errs, 1)
        _int(self, "chunk_bytes", errs, 1)
        _str(self, "status", errs)
        for f in ("stall_s", "stall_bound_s", "compute_s"):
            _float(self, f, errs)
        for f in ("preloaded_bytes", "streamed_bytes", "peak_bytes"):
            _int(self, f, errs, 0)
        if len(self.operation.operands) or len(self.operation.results):
            errs.append("takes no operands and has no results")
        return errs


@op
class StageOp(TexflowOp):
    OPERATION_NAME = "wstream.stage"

    def verify_op(self):
        errs = []
        _int(self, "id", errs, 0)
        _str(self, "kind", errs, KINDS)
        _float(self, "compute_s", errs)
        _int(self, "capacity_bytes", errs, 0)
        _int(self, "act_bytes", errs, 0)
        if len(self.operation.operands) or len(self.operation.results):
            errs.append("takes no operands and has no results")
        return errs


@op
class LoadOp(TexflowOp):
    OPERATION_NAME = "wstream.load"

    def schedule(self) -> list[tuple[int, int, int]]:
        a = list(ir.DenseI64ArrayAttr(self.attr("schedule")))
        return [tuple(a[i:i + 3]) for i in range(0, len(a) - len(a) % 3, 3)]

    def verify_op(self):
        errs = []
        _int(self, "group", errs, 0)
        _int(self, "bytes", errs, 0)
        chunks = _int(self, "chunks", errs, 1)
        pre = self.attr("preload")
        if pre is None or not isinstance(pre, ir.BoolAttr):
            errs.append("requires bool attribute 'preload'")
            return errs
        sched = self.attr("schedule")
        if sched is None or not isinstance(sched, ir.DenseI64ArrayAttr):
            errs.append("requires 'schedule' as array<i64: stage, stall, overlap, ...>")
            return errs
        flat = list(ir.DenseI64ArrayAttr(sched))
        if len(flat) % 3:
            errs.append(f"'schedule' length {len(flat)} is not a multiple of 3")
            return errs
        triples = self.schedule()
        if any(v < 0 for t in triples for v in t):
            errs.append("'schedule' has a negative entry")
        moved = sum(t[1] + t[2] for t in triples)
        if ir.BoolAttr(pre).value:
            if triples:
                errs.append("a preloaded group has no streaming schedule")
        elif chunks is not None and moved != chunks:
            errs.append(f"'schedule' moves {moved} chunks, the group has {chunks}")
        stages = [t[0] for t in triples]
        if stages != sorted(set(stages)):
            errs.append("'schedule' stages must be strictly increasing")
        res = self.operation.results
        if len(self.operation.operands) or len(res) != 1 or not _is_token(res[0].type):
            errs.append(f"takes no operands and returns one {TOKEN}")
        return errs


@op
class WaitOp(TexflowOp):
    OPERATION_NAME = "wstream.wait"

    def verify_op(self):
        errs = []
        _int(self, "group", errs, 0)
        _int(self, "stage", errs, 0)
        ops = list(self.operation.operands)
        res = list(self.operation.results)
        if not ops or not _is_token(ops[0].type) or _load_of(ops[0]) is None:
            errs.append("first operand must be the token of a wstream.load")
            return errs
        if len(ops) != 2 or len(res) != 1 or ops[1].type != res[0].type:
            errs.append("takes a token and one weight and returns a value of the weight's type")
        return errs


@op
class ReleaseOp(TexflowOp):
    OPERATION_NAME = "wstream.release"

    def verify_op(self):
        errs = []
        _int(self, "group", errs, 0)
        _int(self, "stage", errs, 0)
        ops = list(self.operation.operands)
        if len(ops) != 1 or not _is_token(ops[0].type) or _load_of(ops[0]) is None:
            errs.append("takes exactly the token of a wstream.load")
        if len(self.operation.results):
            errs.append("has no results")
        return errs


def check_order(block) -> list[str]:
    """Block-level rules the op verifiers cannot see: per token, load before
    wait before every use of the ready weights, release after all of them."""
    errs = []
    pos = {}
    ops = list(block.operations)
    for i, o in enumerate(ops):
        pos[o.operation] = i

    def top(o):  # the ancestor of `o` in this block
        o = o.operation if hasattr(o, "operation") else o
        while o is not None and o not in pos:
            parent = o.parent
            o = parent.operation if parent is not None and hasattr(parent, "operation") else parent
        return o

    for o in ops:
        if o.operation.name != "wstream.load":
            continue
        tok = o.operation.results[0]
        waits = [u.owner for u in tok.uses if u.owner.name == "wstream.wait"]
        rels = [u.owner for u in tok.uses if u.owner.name == "wstream.release"]
        g = ir.IntegerAttr(o.operation.attributes["group"]).value
        if len(rels) != 1:
            errs.append(f"group {g}: {len(rels)} releases (expected 1)")
        last_use = pos[o.operation]
        for w in waits:
            if pos[top(w)] < pos[o.operation]:
                errs.append(f"group {g}: wait before its load")
            for r in w.results:
                for u in r.uses:
                    t = top(u.owner)
                    if t is None or pos[t] < pos[top(w)]:
                        errs.append(f"group {g}: weight used before its wait")
                    elif t is not None:
                        last_use = max(last_use, pos[t])
            last_use = max(last_use, pos[top(w)])
        for r in rels:
            if pos[top(r)] < last_use:
                errs.append(f"group {g}: released before its last use")
    return errs
