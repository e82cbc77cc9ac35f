"""Dispatch counting and the pure data-movement classifier.

Input: a module at IREE's `flow` phase (`CompileOptions(compile_to="flow")` or
`iree-compile --compile-to=flow`), where every dispatch region has been outlined into a
`flow.executable` and the program calls them with `flow.dispatch @exe::@entry(...)`.

Counting
- *dispatches*: the `flow.dispatch` ops of the program, i.e. kernels launched per inference
  (an executable dispatched twice counts twice);
- *executables*: the distinct `flow.executable`s after IREE's deduplication.

Classifier
A dispatch is *pure data movement* when its function body computes no value: every op in it
is one of
  - dispatch tensor load/store, `tensor.empty`, slices, `expand_shape`/`collapse_shape`, `pad`,
    `concat`, `tensor.extract` (gathers), `linalg.pack/unpack`, encodings;
  - `linalg.transpose/copy/broadcast/fill` and `linalg.generic` whose body only yields values
    it read (inputs, or `tensor.extract` results, chosen by `arith.select`);
  - index arithmetic (`arith.*i`, `arith.index_cast`, `arith.cmpi`, `affine.apply`, ...) and
    constants.
Any floating-point arithmetic, math op, type conversion (`arith.extf`, `sitofp`, ...),
reduction or contraction makes the dispatch *compute*.  Integer arithmetic is treated as
index arithmetic, so an elementwise op on integer tensors would be counted as data movement;
the models here have no such dispatch in their hot path (their integer work is position ids).

Each data-movement dispatch also gets a *kind* (first match wins): pack (packs, encodings),
gather (`tensor.extract`), pad (`tensor.pad`, or a copy into part of a splatted tensor),
concat (`tensor.concat`, selects, or a copy into part of any other tensor), transpose (a
permuted indexing map or `linalg.transpose`), broadcast, slice (reads part of its source,
e.g. q/k/v out of a fused projection) and copy (whole-tensor copies, reshapes), and the labels of the
dispatches that consume its result (IREE names each entry point after its root op, e.g.
`batch_matmul_1x8x32x16_f32`), so a report can say "transpose feeding batch_matmul x 8".
"""

from __future__ import annotations

import collections
import dataclasses
import re

DM_OPS = frozenset("""
iree_tensor_ext.dispatch.tensor.load iree_tensor_ext.dispatch.tensor.store
flow.dispatch.tensor.load flow.dispatch.tensor.store
iree_tensor_ext.dispatch.workload.ordinal flow.dispatch.workload.ordinal util.assume.int
tensor.empty tensor.extract_slice tensor.insert_slice tensor.expand_shape tensor.collapse_shape
tensor.reshape tensor.cast tensor.pad tensor.yield tensor.extract tensor.concat tensor.dim
tensor.pack tensor.unpack linalg.pack linalg.unpack
iree_encoding.set_encoding iree_encoding.unset_encoding
linalg.generic linalg.yield linalg.index linalg.transpose linalg.copy linalg.broadcast linalg.fill
arith.constant arith.index_cast arith.index_castui arith.addi arith.subi arith.muli arith.divsi
arith.divui arith.remsi arith.remui arith.floordivsi arith.ceildivsi arith.ceildivui arith.cmpi
arith.select arith.minsi arith.maxsi arith.minui arith.maxui arith.extsi arith.extui arith.trunci
arith.andi arith.ori arith.xori arith.shli arith.shrsi arith.shrui
affine.apply affine.min affine.max affine.delinearize_index affine.linearize_index
func.return return
""".split())

KINDS = ("pack", "gather", "pad", "concat", "transpose", "broadcast", "slice", "copy")

_OP_RE = re.compile(r"^\s*(?:%[\w#:, %]+=\s*)?\"?([a-z_][\w]*(?:\.[\w]+)+)\"?")
_MAP_DEF_RE = re.compile(r"^(#[\w$.]+)\s*=\s*affine_map<(.*)>\s*$", re.M)
_DISPATCH_RE = re.compile(
    r"^\s*(?P<res>%[\w#:]+)?\s*=?\s*flow\.dispatch\s+@(?P<exe>[^:\s]+)::@(?P<entry>[^\s(\[]+)"
    r"(?:\[[^\]]*\])?\((?P<args>[^)]*)\)")
_ASSIGN_RE = re.compile(r"^\s*(%[\w]+)(?::\d+)?\s*=\s*([\w.]+)\s*(.*)$")


@dataclasses.dataclass
class Executable:
    name: str
    entry: str
    body: str  # text of the entry's function
    ops: list[str]
    data_movement: bool
    kind: str | None  # data-movement kind, None for compute
    label: str  # root-op label from the entry name, e.g. "batch_matmul_1x8x32x16_f32"


@dataclasses.dataclass
class Dispatch:
    executable: str
    entry: str
    label: str
    data_movement: bool
    kind: str | None
    consumers: list[str] = dataclasses.field(default_factory=list)  # labels of consumers


@dataclasses.dataclass
class DispatchSummary:
    dispatches: int
    data_movement: int
    executables: int
    data_movement_executables: int
    by_kind: dict[str, int]  # data-movement dispatches by kind
    feeding: dict[str, int]  # "transpose -> batch_matmul": count
    transfer_ops: dict[str, int]  # flow.tensor.* ops outside dispatches (copies, updates, ...)
    items: list[Dispatch]

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("items")
        d["data_movement_dispatches"] = [
            {"label": i.label, "kind": i.kind, "consumers": i.consumers}
            for i in self.items if i.data_movement]
        return d


def label_of(entry: str) -> str:
    m = re.search(r"_dispatch_\d+_(.*)$", entry)
    return m.group(1) if m else entry


def op_family(label: str) -> str:
    """'batch_matmul_1x8x32x16_f32' -> 'batch_matmul'; 'elementwise_broadcast_1x8_f32' ->
    'elementwise_broadcast'."""
    parts = []
    for p in label.split("_"):
        if re.fullmatch(r"(\d+|D)(x(\d+|D))*|[fiu]\d+|bf16|\d+x.*", p):
            break
        parts.append(p)
    return "_".join(parts) or label


def _block(text: str, start: int) -> tuple[int, int]:
    """Span of the brace-balanced block whose '{' is the first at or after `start`."""
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i, j + 1
    raise ValueError("unbalanced braces in executable")


def _affine_maps(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _MAP_DEF_RE.finditer(text)}


def _parse_map(m: str) -> tuple[list[str], list[str]] | None:
    mm = re.fullmatch(r"\s*\(([^)]*)\)(?:\[[^\]]*\])?\s*->\s*\(([^)]*)\)\s*", m)
    if not mm:
        return None
    dims = [d.strip() for d in mm.group(1).split(",") if d.strip()]
    res = [r.strip() for r in mm.group(2).split(",") if r.strip()]
    return dims, res


def _generic_kinds(body: str, maps: dict[str, str]) -> set[str]:
    """transpose/broadcast/copy for each linalg.generic in a data-movement body."""
    kinds = set()
    for g in re.finditer(r"linalg\.generic\s*\{indexing_maps\s*=\s*\[([^\]]*)\]", body):
        refs = [r.strip() for r in re.split(r",\s*(?=#|affine_map)", g.group(1)) if r.strip()]
        parsed = []
        for r in refs:
            txt = maps.get(r)
            if txt is None:
                am = re.fullmatch(r"affine_map<(.*)>", r)
                txt = am.group(1) if am else None
            p = _parse_map(txt) if txt else None
            if p:
                parsed.append(p)
        for dims, res in parsed:
            plain = [r for r in res if r in dims]  # results that are bare dims
            if len(plain) < len(dims) and len(res) < len(dims):
                kinds.add("broadcast")
            order = [dims.index(r) for r in plain]
            if order != sorted(order):
                kinds.add("transpose")
        if not kinds:
            kinds.add("copy")
    return kinds


def classify_body(body: str, maps: dict[str, str] | None = None) -> tuple[bool, str | None, list[str]]:
    """(is pure data movement, kind, op names) for one dispatch function's text."""
    maps = maps if maps is not None else _affine_maps(body)
    ops = []
    for line in body.splitlines():
        m = _OP_RE.match(line)
        if m:
            ops.append(m.group(1))
    ops = [o for o in ops if o not in ("func.func",)]
    dm = all(o in DM_OPS for o in ops)
    if not dm:
        return False, None, ops
    s = set(ops)
    if s & {"linalg.pack", "linalg.unpack", "tensor.pack", "tensor.unpack",
            "iree_encoding.set_encoding", "iree_encoding.unset_encoding"}:
        kind = "pack"
    elif "tensor.extract" in s:
        kind = "gather"
    elif "tensor.pad" in s:
        kind = "pad"
    elif re.search(r"dispatch\.tensor<readwrite:", body):
        kind = "insert"  # writes into part of a bigger tensor: pad or concat (see summarize)
    elif "tensor.concat" in s or "arith.select" in s or \
            sum(o.endswith("dispatch.tensor.load") for o in ops) > 1 and "linalg.generic" not in s:
        kind = "concat"
    else:
        gk = _generic_kinds(body, maps) if "linalg.generic" in s else set()
        if "linalg.transpose" in s or "transpose" in gk:
            kind = "transpose"
        elif s & {"linalg.broadcast", "linalg.fill"} or "broadcast" in gk:
            kind = "broadcast"
        elif _is_slice(body):
            kind = "slice"
        else:
            kind = "copy"
    return True, kind, ops


def _numel(dims: str) -> int:
    n = 1
    for d in dims.split("x"):
        n *= int(d) if d.isdigit() else 1
    return n


def _is_slice(body: str) -> bool:
    """A load that reads only part of its source tensor (e.g. q/k/v out of a fused qkv)."""
    for m in re.finditer(r"dispatch\.tensor\.load\s[^\n]*sizes = \[([^\]]*)\][^\n]*"
                         r"readonly:tensor<([^>]*)>", body):
        sizes = [x.strip() for x in m.group(1).split(",")]
        src = m.group(2).rsplit("x", 1)[0]
        if all(x.isdigit() for x in sizes) and \
                _numel("x".join(sizes)) < _numel(src):
            return True
    return False


def parse_executables(text: str) -> dict[str, Executable]:
    maps = _affine_maps(text)
    exes = {}
    for m in re.finditer(r"flow\.executable\s+(?:private\s+|public\s+)?@([^\s{]+)\s*\{", text):
        name = m.group(1)
        a, b = _block(text, m.start())
        block = text[a:b]
        em = re.search(r"flow\.executable\.export\s+(?:public\s+)?@([^\s(]+)", block)
        entry = em.group(1) if em else name
        fm = re.search(r"func\.func\s+@" + re.escape(entry) + r"\b", block) or \
            re.search(r"func\.func\s+@", block)
        if fm:
            fa, fb = _block(block, fm.end())
            body = block[fa:fb]
        else:
            body = ""
        dm, kind, ops = classify_body(body, maps)
        exes[name] = Executable(name, entry, body, ops, dm, kind, label_of(entry))
    return exes


def _strip_executables(text: str) -> str:
    out, pos = [], 0
    for m in re.finditer(r"flow\.executable\s+(?:private\s+|public\s+)?@([^\s{]+)\s*\{", text):
        if m.start() < pos:
            continue
        a, b = _block(text, m.start())
        out.append(text[pos:m.start()])
        pos = b
    out.append(text[pos:])
    return "".join(out)


def summarize(text: str) -> DispatchSummary:
    """Count and classify the dispatches of a flow-level module."""
    exes = parse_executables(text)
    program = _strip_executables(text)
    producer: dict[str, int] = {}  # SSA value -> index of the dispatch that made it
    alias: dict[str, str] = {}  # result of a reshape/bitcast -> its source
    items: list[Dispatch] = []
    transfer = collections.Counter()
    splats: set[str] = set()
    for line in program.splitlines():
        dm = _DISPATCH_RE.match(line)
        if dm:
            exe = exes.get(dm.group("exe"))
            entry = dm.group("entry")
            d = Dispatch(dm.group("exe"), entry, label_of(entry),
                         exe.data_movement if exe else False, exe.kind if exe else None)
            srcs = []
            for arg in re.findall(r"%[\w]+", dm.group("args")):
                src = arg
                while src in alias:
                    src = alias[src]
                srcs.append(src)
            for src in srcs:
                if src in producer:
                    items[producer[src]].consumers.append(d.label)
            if d.kind == "insert":
                # a copy into a splatted tensor is a pad; into anything else, part of a concat
                d.kind = "pad" if any(s in splats for s in srcs) else "concat"
            if dm.group("res"):
                producer[dm.group("res").split("#")[0].split(":")[0]] = len(items)
            items.append(d)
            continue
        am = _ASSIGN_RE.match(line)
        if am and am.group(2).startswith("flow.tensor."):
            op = am.group(2)[len("flow.tensor."):]
            args = re.findall(r"%[\w]+", am.group(3))
            if op in ("reshape", "bitcast", "transfer", "barrier") and args:
                alias[am.group(1)] = args[0]
            else:
                transfer[op] += 1
                if op == "splat":
                    splats.add(am.group(1))
        elif am and am.group(2) in ("hal.tensor.barrier",):
            args = re.findall(r"%[\w]+", am.group(3))
            if args:
                alias[am.group(1)] = args[0]
    by_kind = collections.Counter(i.kind for i in items if i.data_movement)
    feeding = collections.Counter()
    for i in items:
        if not i.data_movement:
            continue
        cons = sorted({op_family(c) for c in i.consumers}) or ["(program output)"]
        feeding[f"{i.kind} -> {'+'.join(cons)}"] += 1
    return DispatchSummary(
        dispatches=len(items),
        data_movement=sum(i.data_movement for i in items),
        executables=len(exes),
        data_movement_executables=sum(e.data_movement for e in exes.values()),
        by_kind={k: by_kind[k] for k in KINDS if by_kind[k]},
        feeding=dict(feeding.most_common()),
        transfer_ops=dict(transfer),
        items=items,
    )
