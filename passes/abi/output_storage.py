"""texflow-abi-output-storage: let the caller give each result's storage.

Why: on a discrete GPU through Vulkan a result lives in device memory, so reading it costs a
copy into host memory and a wait after the call (measured on an H200: a one-op call took
1.2 ms with the copy and 0.65 ms without, benchmarks/gpu/h200/calls).  IREE's ABI has the
answer, storage for a result given as an argument (`iree.abi.output`).  texflow imports from
ONNX through IREE's input phase, which has already wrapped the entry points, so this pass does
by hand what IREE's wrapper does for such an argument:

- `X$async(inputs..., wait, signal)` gains one `!hal.buffer` argument per result, after the
  fences. Each result is aliased to its buffer (`hal.tensor.alias`, waiting on `wait`) before
  the barrier that signals `signal`, so the last dispatch writes straight into it.
- `X$into(inputs..., storage...)` is a new synchronous entry point: it calls `X$async` with
  the caller's buffers and waits.  texflow's runtime passes host-local buffers it keeps
  mapped, so one submission per call is all (texflow.runtime._IOBuffers).
- `X` keeps its signature (inputs -> results), for `iree-run-module` and every other caller.
  It allocates the storage itself, device-local, as IREE allocates a result.

Only functions whose results are all statically shaped tensors, each returned once, are
rewritten.  Streamed modules are left alone: their runtime calls `X$async` with its own
arguments.
"""

from __future__ import annotations

import re

import numpy as np
from iree.compiler import ir

from texflow import irutil
from ..registry import Pass, register_pass

INTO = "$into"
_USAGE = ("TransferSource|TransferTarget|Transfer|DispatchStorageRead|DispatchStorageWrite|"
          "DispatchStorage")


def _sym(op) -> str:
    return ir.StringAttr(op.attributes["sym_name"]).value


def _byte_size(t) -> int | None:
    t = ir.RankedTensorType(t)
    if not t.has_static_shape:
        return None
    m = re.fullmatch(r"(?:[su]?i|f|bf)(\d+)", str(t.element_type))
    width = int(m.group(1)) if m else None
    if width is None or width % 8:
        return None  # i1 and sub-byte types: their storage is IREE's to choose
    return int(np.prod(t.shape, dtype=np.int64)) * width // 8


def _recall(call, operands: list) -> None:
    """Replace `call` (a util.call) by the same call on `operands`."""
    a = call.attributes
    with ir.InsertionPoint(call), call.location:
        new = ir.Operation.create(
            "util.call", results=[r.type for r in call.results], operands=operands,
            attributes={a[i].name: a[i].attr for i in range(len(a))})
    for old, r in zip(call.results, new.results):
        old.replace_all_uses_with(r)
    call.erase()


@register_pass
class AbiOutputStorage(Pass):
    name = "texflow-abi-output-storage"
    summary = "Results written into caller storage: X$into(inputs, buffers); X allocates its own"
    undoable = True  # an optimisation: on an internal error the module stays as it was

    def apply(self, module) -> None:
        body = module.regions[0].blocks[0]
        if "texflow.wstream.program" in module.attributes:
            return
        funcs = {_sym(op): op for op in body.operations if op.operation.name == "util.func"}
        for name, f in funcs.items():
            if not name.endswith("$async") or "iree.abi.stub" not in f.attributes:
                continue
            base = name[:-len("$async")]
            sync = funcs.get(base)
            if sync is None or base + INTO in funcs:
                continue
            plan = self._plan(f)
            if plan is None:
                self.bump("functions left as they were")
                continue
            self._rewrite_async(f, plan)
            self._rewrite_sync(sync, name, plan)
            self._add_into(sync, name, plan)
            self.bump("functions given output storage")

    # -- analysis ------------------------------------------------------------------------
    @staticmethod
    def _plan(f):
        """(barrier, [(barrier operand index, bytes)] per result) or None."""
        blk = f.regions[0].blocks[0]
        ops = list(blk.operations)
        ret = ops[-1]
        if ret.name != "util.return" or len(f.regions[0].blocks) != 1 or not ret.operands:
            return None
        args = list(blk.arguments)
        if len(args) < 2 or any(str(a.type) != "!hal.fence" for a in args[-2:]):
            return None
        barrier, picks = None, []
        for v in ret.operands:
            ex = v.owner
            # `.operation.name`: hal.tensor.export's OpView has a `name` of its own (the
            # result's ABI name attribute)
            if isinstance(ex, ir.Block) or ex.operation.name != "hal.tensor.export" or \
                    len(ex.operands) != 1:
                return None  # dynamic shapes (dims operands) or other results
            src = ex.operands[0]
            b = src.owner
            if isinstance(b, ir.Block) or b.operation.name != "hal.tensor.barrier":
                return None
            if barrier is None:
                barrier = b
            elif b != barrier:
                return None
            if b.operands[-1] != args[-1]:
                return None  # the barrier must signal the function's own signal fence
            idx = next(i for i, r in enumerate(b.results) if r == src)
            size = _byte_size(b.operands[idx].type)
            if size is None or idx in [p for p, _ in picks]:
                return None
            picks.append((idx, size))
        return barrier, picks

    # -- rewriting -----------------------------------------------------------------------
    def _rewrite_async(self, f, plan) -> None:
        barrier, picks = plan
        buf_t = ir.Type.parse("!hal.buffer")
        storages = irutil.append_arguments(f, [buf_t] * len(picks))
        wait = list(f.regions[0].blocks[0].arguments)[-len(picks) - 2]
        for (idx, _), s in zip(picks, storages):
            src = barrier.operands[idx]
            with ir.InsertionPoint(barrier), barrier.location:
                alias = ir.Operation.create(
                    "hal.tensor.alias", results=[src.type], operands=[src, s, wait],
                    attributes={"operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 0, 1, 1])})
            barrier.operands[idx] = alias.results[0]

    @staticmethod
    def _call_of(sync, callee: str):
        calls = [o for o in sync.regions[0].blocks[0].operations if o.operation.name == "util.call"
                 and ir.FlatSymbolRefAttr(o.attributes["callee"]).value == callee]
        return calls[0] if len(calls) == 1 else None

    def _rewrite_sync(self, sync, callee: str, plan):
        """`X` allocates each result's storage (device-local) and passes it on."""
        call = self._call_of(sync, callee)
        _, picks = plan
        lines = ["%c0 = arith.constant 0 : index", "%aff = arith.constant -1 : i64",
                 "%dev = hal.devices.get %c0 : !hal.device",
                 "%alloc = hal.device.allocator<%dev : !hal.device> : !hal.allocator",
                 '%mt = hal.memory_type<"DeviceVisible|DeviceLocal"> : i32',
                 f'%bu = hal.buffer_usage<"{_USAGE}"> : i32']
        for i, (_, size) in enumerate(picks):
            lines += [f"%n{i} = arith.constant {size} : index",
                      f"%b{i} = hal.allocator.allocate<%alloc : !hal.allocator> affinity(%aff) "
                      f"type(%mt) usage(%bu) : !hal.buffer{{%n{i}}}"]
        rets = ", ".join(f"%b{i}" for i in range(len(picks)))
        text = ("util.func private @texflow_alloc() -> (" +
                ", ".join(["!hal.buffer"] * len(picks)) + ") {\n  " + "\n  ".join(lines) +
                f"\n  util.return {rets} : " + ", ".join(["!hal.buffer"] * len(picks)) + "\n}")
        tmp = ir.Module.parse(text, context=sync.context)
        tf = tmp.body.operations[0]
        tblk = tf.regions[0].blocks[0]
        ret = list(tblk.operations)[-1]
        storages = list(ret.operands)
        ret.erase()
        for op in list(tblk.operations):
            op.move_before(call)
        _recall(call, list(call.operands) + storages)

    def _add_into(self, sync, callee: str, plan) -> None:
        """`X$into(inputs..., storage...)`: `X` with the caller's storage instead of its own."""
        clone = sync.operation.clone(ip=ir.InsertionPoint(sync))
        clone.move_after(sync)
        clone.attributes["sym_name"] = ir.StringAttr.get(_sym(sync) + INTO)
        _, picks = plan
        buf_t = ir.Type.parse("!hal.buffer")
        storages = irutil.append_arguments(clone, [buf_t] * len(picks))
        ccall = self._call_of(clone, callee)
        # the clone's call passes the allocations made in `X`: pass the arguments instead
        ops = list(ccall.operands)
        dead = [v.owner for v in ops[-len(picks):]]
        _recall(ccall, ops[:-len(picks)] + storages)
        for d in dead:  # the allocations, then whatever only they used
            self._erase_unused(d)

    def _erase_unused(self, op) -> None:
        if not hasattr(op, "results") or any(list(r.uses) for r in op.results):
            return
        operands = [v.owner for v in op.operands]
        op.erase()
        for o in operands:
            if not isinstance(o, ir.Block):
                self._erase_unused(o)
