"""texflow-wstream-fence: keep the planned function whole; each weight group
is imported from a device buffer behind a fence the runtime signals once the
group is loaded, and each group's last use signals a fence back.

Why (issue 19): cutting the function into segments (texflow-wstream-outline)
costs a host round trip per segment and the fusion lost at each cut: on an
NVIDIA H200 through Vulkan a segment call costs milliseconds, and streamed
ResNet-50 ran 8x slower than resident even with every weight preloaded.  IREE
already schedules a function's work on device timelines: a
`hal.tensor.import wait(%fence)` becomes a `stream.timepoint.import` that the
first execution reading the weight awaits *on the device*, and a
`hal.tensor.barrier ... => %fence` after a group's last stage becomes a
`stream.timepoint.chain_external` that the device signals.  So one call
enqueues the whole model at once; the runtime's loader thread writes each
group into its place and signals its fence, and waits for a release fence
before it overwrites a group's memory.  The device stalls only where a group
is late, and nothing goes through the host between stages.

Memory is laid out at compile time, so the compiler and the runtime count the
same bytes (issue 19, "one accounting"):
- *preload*: one buffer holding every preloaded group, filled before the first
  run and kept;
- *arena*: one buffer the streamed groups share.  Each group occupies a byte
  range for its lifetime (from the stage the plan starts loading it to its last
  stage); ranges are assigned first-fit in load order, and a group reuses a
  range only after every group that held it was released;
- *mapped*: tables only gathered from (CPU targets) stay separate buffer views
  mapped from the archive.
Offsets are aligned (256 bytes: every Vulkan device's storage-buffer offset
alignment divides it).  The layout, the fence arguments and the groups are
recorded in the program description (`texflow.wstream.program`, mode
"fenced") that the runtime reads from the module.

When preloads + arena + the largest stage's activations exceed the budget
(the plan holds per stage, the arena for the whole run), the pass raises
`ArenaExceedsBudget` and the finalize phase cuts segments instead.
"""

from __future__ import annotations

import dataclasses
import json

from iree.compiler import ir

from texflow import irutil
from texflow.errors import TexflowError
from texflow.ir.structured import type_text
from texflow.streaming.program import PROGRAM_FORMAT
from texflow.streaming.stages import tensor_bytes
from ..registry import Pass, register_pass
from texflow.streaming.outliner import (PROGRAM_ATTR, Outliner, callers_of, erase_plan_ops,
                                        is_compute, outline_module, planned_functions)

ALIGN = 256


class ArenaExceedsBudget(TexflowError):
    """The whole-function layout does not fit the budget (segments may)."""


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


@dataclasses.dataclass
class _Placed:
    gid: int
    lo: int          # first stage it is resident (the plan's start)
    hi: int          # last stage
    off: int
    size: int


def place_groups(groups: list[dict], sizes: dict[int, int],
                 capacity: int | None = None) -> tuple[dict[int, _Placed], int, dict]:
    """First-fit offsets for streamed groups in load order; returns (placement, arena bytes,
    gid -> the earlier groups whose range it reuses, which must be released first).

    A group is resident from the stage the plan starts loading it to its last stage.  With a
    `capacity`, a group that does not fit beside the groups live then starts later (as late as
    its first stage: its load then waits for bytes to be released, as the plan's chunked loads
    do); `ArenaExceedsBudget` when even that does not fit."""
    placed: list[_Placed] = []
    out, after = {}, {}
    for g in groups:
        first, hi, size = g["first_stage"], g["last_stage"], sizes[g["id"]]
        choice = None
        for lo in range(min(g["start_stage"], first), first + 1):
            live = [p for p in placed if p.lo <= hi and lo <= p.hi]
            for cand in sorted({0} | {p.off + p.size for p in live}):
                if all(cand + size <= p.off or p.off + p.size <= cand for p in live):
                    if capacity is None or cand + size <= capacity:
                        choice = (lo, cand, live)
                    break
            if choice is not None:
                break
        if choice is None:
            raise ArenaExceedsBudget(f"weight group {g['id']} ({size} bytes) does not fit an "
                                     f"arena of {capacity} bytes at its first stage {first}")
        lo, off, live = choice
        p = _Placed(g["id"], lo, hi, off, size)
        after[g["id"]] = sorted(q.gid for q in placed if q not in live and
                                off < q.off + q.size and q.off < off + size)
        placed.append(p)
        out[g["id"]] = p
    arena = max([p.off + p.size for p in placed] or [0])
    return out, arena, after


def form_waves(streamed: list[dict], sizes: dict[int, int], n_stages: int,
               limit: int) -> list[tuple[int, int]]:
    """Consecutive stage ranges ("waves") whose newly used streamed bytes stay under `limit`
    (a stage whose own groups exceed it is a wave of its own).  One ready fence per wave and
    one release fence per wave end: on an NVIDIA H200 through Vulkan every external fence
    costs about a millisecond (ViT-Tiny with a fence per group: 9x resident), so fences come
    per wave, and a wave of `limit` bytes loads while the previous one computes."""
    new = [0] * n_stages
    for g in streamed:
        new[g["first_stage"]] += sizes[g["id"]]
    waves, lo, cur = [], 0, 0
    for st in range(n_stages):
        if cur and cur + new[st] > limit:
            waves.append((lo, st - 1))
            lo, cur = st, 0
        cur += new[st]
    waves.append((lo, n_stages - 1))
    return waves


class _Fencer:
    def __init__(self, func, align: int, fence_s: float = 0.0, load_bps: float = 1e10):
        self.o = Outliner(func)
        self.o.analyse_groups()
        self.align = align
        self.fence_s, self.load_bps = fence_s, max(1.0, load_bps)
        o = self.o
        if not o.name.endswith("$async"):
            raise TexflowError(f"@{o.name}: texflow-wstream-fence needs IREE's asynchronous "
                               "entry point (X$async with wait and signal fences)")
        args = list(o.block.arguments)
        if len(args) < 2 or any(str(a.type) != "!hal.fence" for a in args[-2:]):
            raise TexflowError(f"@{o.name}: the last two arguments are not IREE's wait and "
                               "signal fences")
        self.wait, self.signal = args[-2], args[-1]

    # -- layout ---------------------------------------------------------------------
    def layout(self) -> dict:
        """The buffers' layout and the waves.  With a per-fence cost (`fence_s`, measured per
        target), preloaded groups are moved into the stream, latest first use first, while
        the waves this saves cost more than loading the moved bytes (at `load_bps`): a larger
        arena makes fewer, larger waves.  Without one (CPU targets) the plan's preloads stay."""
        o = self.o
        key_type = {key: v.type for v, key in o.weight_of.items()}
        self.key_bytes = {k: tensor_bytes(t) for k, t in key_type.items()}
        preloaded = [g for g in o.groups if g["preload"] and not g["mapped"]]
        best = self._try_layout({g["id"] for g in preloaded})
        if self.fence_s > 0 and best is not None:
            keep = {g["id"] for g in preloaded}
            for g in sorted(preloaded, key=lambda g: (-g["first_stage"], g["id"])):
                if g["first_stage"] == 0:
                    continue  # the first stage's weights would only make the call wait
                keep = keep - {g["id"]}
                cand = self._try_layout(keep)
                if cand is not None and self._estimate(cand) < self._estimate(best):
                    best = cand
        if best is None:
            self._try_layout({g["id"] for g in preloaded}, strict=True)  # raises, saying why
        for k, v in best.items():
            setattr(self, k, v)
        self.release_stages = sorted(set(self.release_of.values()))
        self.ready_waves = sorted(set(self.wave_of.values()))
        return {"preload_bytes": self.pre_bytes, "arena_bytes": self.arena_bytes,
                "mapped_bytes": self.mapped_bytes, "act_bytes": self.act_bytes,
                "after": self.after, "placement": self.placement}

    def _estimate(self, lay: dict) -> float:
        """Seconds the fences and the loads add, as far as this model can tell: a fence pair
        per wave, plus the streamed bytes at the load bandwidth (the plan's compute hides
        loads; this only compares layouts of one model)."""
        return len(lay["ready_waves_"]) * 2 * self.fence_s + lay["streamed_bytes_"] / self.load_bps

    def _try_layout(self, preload_ids: set, strict: bool = False) -> dict | None:
        o, a = self.o, self.align
        groups = o.groups
        entries = {}   # key -> (region, offset, bytes)
        pre = 0
        for g in groups:
            if g["id"] in preload_ids:
                for k in g["keys"]:
                    entries[k] = ("preload", pre, self.key_bytes[k])
                    pre += _align(self.key_bytes[k], a)
        streamed = sorted((g for g in groups if g["id"] not in preload_ids and not g["mapped"]),
                          key=lambda g: (g["first_stage"], g["id"]))
        sizes = {g["id"]: sum(_align(self.key_bytes[k], a) for k in g["keys"]) for g in streamed}
        mapped_bytes = sum(g["bytes"] for g in groups if g["mapped"])
        # activations: the plan's largest stage, and at least the call's inputs and outputs
        # (the runtime holds both; a packed model's estimate may miss its unpacked results)
        io = sum(tensor_bytes(v.type) for v in list(o.input_of) + list(o.outputs))
        act = max([i["act_bytes"] for i in o.stage_info.values()] + [io])
        capacity = o.budget - pre - mapped_bytes - act if o.budget else None
        if capacity is not None and capacity < 0:
            if not strict:
                return None
            raise ArenaExceedsBudget(
                f"@{o.name}: preloads {pre} + mapped {mapped_bytes} + activations {act} bytes "
                f"exceed the budget {o.budget}")
        # Waves: as large as double buffering in the arena allows, smaller until they fit;
        # with one stage per wave this is a fence per stage group, the finest the plan has.
        limit = max(1, (capacity if capacity is not None else sum(sizes.values())) // 2)
        while True:
            waves = form_waves(streamed, sizes, o.n_stages, limit)
            wave_of_stage = {s: w for w, (lo, hi) in enumerate(waves) for s in range(lo, hi + 1)}
            timed = []
            for g in streamed:
                w0, w1 = wave_of_stage[g["first_stage"]], wave_of_stage[g["last_stage"]]
                timed.append({"id": g["id"], "first_stage": waves[w0][0],
                              "start_stage": waves[max(w0 - 1, 0)][0],
                              "last_stage": waves[w1][1], "wave": w0})
            try:
                placement, arena, after = place_groups(timed, sizes, capacity)
                break
            except ArenaExceedsBudget as e:
                if limit > 1 and len(waves) < o.n_stages:
                    limit //= 2
                    continue
                if not strict:
                    return None
                raise ArenaExceedsBudget(f"@{o.name}: whole-function streaming: {e} (preload "
                                         f"{pre}, mapped {mapped_bytes}, activations {act} of the "
                                         f"budget {o.budget})") from None
        wave_of = {t["id"]: t["wave"] for t in timed}
        streamed = sorted(streamed, key=lambda g: (wave_of[g["id"]], g["first_stage"], g["id"]))
        for g in streamed:
            off = placement[g["id"]].off
            for k in g["keys"]:
                entries[k] = ("arena", off, self.key_bytes[k])
                off += _align(self.key_bytes[k], a)
        mapped_keys = [k for g in groups if g["mapped"] for k in g["keys"]]
        for k in mapped_keys:
            entries[k] = ("mapped", 0, self.key_bytes[k])
        return {"entries": entries, "streamed": streamed, "waves": waves, "wave_of": wave_of,
                "release_of": {t["id"]: t["last_stage"] for t in timed},
                "mapped_keys": mapped_keys, "pre_bytes": pre, "arena_bytes": arena,
                "mapped_bytes": mapped_bytes, "act_bytes": act, "after": after,
                "placement": placement, "ready_waves_": sorted(set(wave_of.values())),
                "streamed_bytes_": sum(sizes.values())}

    # -- rewriting ------------------------------------------------------------------
    def rewrite(self, lay: dict) -> dict:
        o = self.o
        func = o.func
        loc = func.location
        buf_t, fence_t, bv_t = (ir.Type.parse(t) for t in ("!hal.buffer", "!hal.fence",
                                                           "!hal.buffer_view"))
        arg_kinds, arg_types = [], []   # the VM arguments after the function's own, in order

        def add(kind, t):
            arg_kinds.append(kind)
            arg_types.append(t)

        if self.pre_bytes:
            add(["buffer", "preload"], buf_t)
        if self.arena_bytes:
            add(["buffer", "arena"], buf_t)
        for k in self.mapped_keys:
            add(["mapped", k], bv_t)
        for w in self.ready_waves:
            add(["ready", w], fence_t)
        for s in self.release_stages:
            add(["release", s], fence_t)
        # the signature: the function's arguments, then the new ones
        new_args = {tuple(k): v for k, v in
                    zip(arg_kinds, irutil.append_arguments(func, arg_types))}
        # release fences first (the stage map holds the ops as they are now), then the imports
        self._release_barriers(new_args, loc)
        ready_of = {g["id"]: new_args[("ready", self.wave_of[g["id"]])] for g in self.streamed}
        group_of = {k: g for g in o.groups for k in g["keys"]}
        # weights: imports of subspans (or of mapped views) in place of the waits
        idx = ir.IndexType.get()
        for w in irutil.collect(func, {"wstream.wait"}):
            with ir.InsertionPoint(w), loc:
                for r in list(w.results):
                    key = o.weight_of[r]
                    region, off, nbytes = self.entries[key]
                    if region == "mapped":
                        src, fence = new_args[("mapped", key)], []
                    else:
                        c_off, c_len = (ir.Operation.create(
                            "arith.constant", results=[idx],
                            attributes={"value": ir.IntegerAttr.get(idx, n)}).results[0]
                            for n in (off, nbytes))
                        src = ir.Operation.create(
                            "hal.buffer.subspan", results=[buf_t],
                            operands=[new_args[("buffer", region)], c_off, c_len]).results[0]
                        fence = [ready_of[group_of[key]["id"]]] if region == "arena" else []
                    imp = ir.Operation.create(
                        "hal.tensor.import", results=[r.type], operands=[src] + fence,
                        attributes={
                            "operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 0, len(fence), 0]),
                            "target_encoding": ir.TypeAttr.get(r.type)})
                    r.replace_all_uses_with(imp.results[0])
            w.erase()
        return {"args": arg_kinds}


    def _release_barriers(self, new_args, loc) -> None:
        """After the last op of each release stage, one `hal.tensor.barrier` signalling the
        stage's release fence, joined on every tensor that the stages reading the released
        groups produce for later ops (all of those reads are done when it fires); later uses
        read the barrier's results.  Stages approximate IREE's dispatches, so the barrier sits
        where a dispatch ends anyway.

        Ops are told apart by position, recorded as a temporary attribute: the bindings'
        Operation hash changes when an op's operands do, so dictionaries keyed by ops break
        as soon as the first barrier's uses are rewired."""
        o = self.o
        ops = list(o.ops)
        stage_of = [o.stage_at.get(op) for op in ops]
        compute = [is_compute(op) for op in ops]
        value_of = {}
        for v, key in o.weight_of.items():
            value_of.setdefault(key, []).append(v)
        stages_of_release: dict[int, set] = {}
        for g in self.streamed:
            rel = self.release_of[g["id"]]
            used = {rel}
            for k in g["keys"]:
                for v in value_of.get(k, []):
                    used |= {o.stage_at[u] for u in o._top_users(v) if u is not None}
            stages_of_release.setdefault(rel, set()).update(used)
        i64 = ir.IntegerType.get_signless(64)
        for i, op in enumerate(ops):
            op.attributes[_POS] = ir.IntegerAttr.get(i64, i)
        alias: dict = {}   # value -> its latest barrier result (values hash stably)
        for s in self.release_stages:
            stages = stages_of_release[s]
            mine = [i for i, t in enumerate(stage_of) if t == s and compute[i]] or \
                [i for i, t in enumerate(stage_of) if t == s]
            p_last = max(mine)
            joined = []
            for i in range(p_last + 1):
                if stage_of[i] not in stages or not compute[i]:
                    continue
                for r in ops[i].results:
                    cur = alias.get(r, r)
                    if str(r.type).startswith("tensor<") and \
                            any(_pos_of(u.owner) > p_last for u in cur.uses):
                        joined.append(r)
            if not joined:
                joined = [r for r in ops[p_last].results if str(r.type).startswith("tensor<")]
            if not joined:
                raise TexflowError(f"@{o.name}: stage {s} produces no tensor to signal its "
                                   "release after")
            cur = [alias.get(r, r) for r in joined]
            with ir.InsertionPoint(ops[p_last + 1]), loc:
                bar = ir.Operation.create("hal.tensor.barrier", results=[r.type for r in cur],
                                          operands=cur + [new_args[("release", s)]])
            for r, c, b in zip(joined, cur, bar.results):
                for u in list(c.uses):
                    user = irutil.operation(u.owner)
                    if _pos_of(user) > p_last:
                        user.operands[u.operand_number] = b
                alias[r] = b
        for op in ops:
            del op.attributes[_POS]


_POS = "texflow.fence_pos"


def _pos_of(owner) -> int:
    """Position of the function-level op holding `owner` (-1: none, e.g. a new barrier)."""
    for op in (irutil.operation(owner), *irutil.enclosing_ops(owner)):
        if _POS in op.attributes:
            return ir.IntegerAttr(op.attributes[_POS]).value
    return -1


def _program(f: _Fencer, lay: dict, arg_kinds: list) -> dict:
    o = f.o
    inputs = sorted(o.input_of.items(), key=lambda t: t[1])
    n_in = len(o.block.arguments) - len(arg_kinds) - 2
    groups = []
    for g in o.groups:
        region = f.entries[g["keys"][0]][0] if g["keys"] else "preload"
        groups.append({
            **{k: g[k] for k in ("id", "bytes", "mapped", "preload", "keys", "shapes",
                                 "first_stage", "last_stage", "start_stage")},
            "region": region,
            "offsets": {k: f.entries[k][1] for k in g["keys"]},
            "after": lay["after"].get(g["id"], []),
            "wave": f.wave_of.get(g["id"]),
            "release_stage": f.release_of.get(g["id"]),
        })
    return {
        "format": PROGRAM_FORMAT,
        "mode": "fenced",
        "function": o.name,
        "entry": o.public,
        "inputs": [type_text(v.type, static=True) for v, _ in inputs],
        "output_types": [type_text(v.type, static=True) for v in o.outputs],
        "args": [["input", i] for i in range(n_in)] + [["wait"], ["signal"]] + arg_kinds,
        "groups": groups,
        "load_order": [g["id"] for g in f.streamed],
        "waves": [{"first_stage": a, "last_stage": b,
                   "groups": [g["id"] for g in f.streamed if f.wave_of[g["id"]] == w]}
                  for w, (a, b) in enumerate(f.waves)],
        "ready_waves": f.ready_waves,
        "release_stages": f.release_stages,
        "align": f.align,
        "budget_bytes": o.budget,
        **{k: lay[k] for k in ("preload_bytes", "arena_bytes", "mapped_bytes", "act_bytes")},
        "stages": [{"compute_s": o.stage_info.get(s, {}).get("compute_s", 0.0),
                    "act_bytes": o.stage_info.get(s, {}).get("act_bytes", 0)}
                   for s in range(o.n_stages)],
    }


@register_pass
class WStreamFence(Pass):
    name = "texflow-wstream-fence"
    summary = ("Keep a planned function whole: weights imported from device buffers behind "
               "fences the runtime signals as groups load")

    @dataclasses.dataclass
    class Options:
        align: int = dataclasses.field(default=ALIGN, metadata={
            "help": "byte alignment of each weight in the preload and arena buffers"})
        fallback: bool = dataclasses.field(default=True, metadata={
            "help": "cut segments (texflow-wstream-outline) where the arena exceeds the budget"})
        fence_us: float = dataclasses.field(default=0.0, metadata={
            "help": "what one external fence costs on the target (0: fences are free, keep the "
                    "plan's preloads)"})
        load_gbps: float = dataclasses.field(default=10.0, metadata={
            "help": "host-to-device load bandwidth, to weigh streaming more bytes against fences"})

    def apply(self, module) -> None:
        mblock = module.regions[0].blocks[0]
        for func in planned_functions(module):
            f = _Fencer(func, max(1, self.options.align), self.options.fence_us * 1e-6,
                        self.options.load_gbps * 1e9)
            try:
                lay = f.layout()
            except ArenaExceedsBudget as e:
                packed = irutil.collect(func, {"linalg.mmt4d", "linalg.batch_mmt4d"})
                if not self.options.fallback or packed:
                    # segments split weights in their linalg form: a packed model is compiled
                    # again unpacked by the driver (compiler._compile_streamed)
                    raise TexflowError(str(e) + (
                        " (a packed model: compile it unpacked to cut segments)"
                        if packed else "")) from None
                outline_module(module, 0, self.bump)
                self.bump("fell back to segments (arena over the budget)")
                self.fallback_reason = str(e)
                return
            arg_kinds = f.rewrite(lay)["args"]
            program = _program(f, lay, arg_kinds)
            for c in callers_of(mblock, f.o.name):  # the synchronous wrapper: the runtime calls X$async
                c.erase()
            text = json.dumps(program, sort_keys=True)
            refl = {}
            if "iree.reflection" in func.attributes:
                d = ir.DictAttr(func.attributes["iree.reflection"])
                for na in (d[i] for i in range(len(d))):
                    if na.name != "iree.abi.declaration":
                        refl[na.name] = na.attr
            refl[PROGRAM_ATTR] = ir.StringAttr.get(text)
            func.attributes["iree.reflection"] = ir.DictAttr.get(refl)
            if "iree.abi.model" in func.attributes:
                del func.attributes["iree.abi.model"]
            module.attributes[PROGRAM_ATTR] = ir.StringAttr.get(text)
            self.bump("functions kept whole")
            self.bump("weight imports", len(f.entries))
            self.bump("release fences", len(f.release_stages))
            self.bump("ready fences (waves)", len(f.ready_waves))
            self.bump("arena bytes", lay["arena_bytes"])
            self.bump("preload bytes", lay["preload_bytes"])
        erase_plan_ops(module)
