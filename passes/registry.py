"""Pass base class, registry and textual-pipeline handling."""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
import traceback
import typing
from typing import ClassVar

from texflow.errors import TexflowError


class PassOptionError(TexflowError):
    pass


class Bytes(int):
    """A size option: its text is a byte count or a size such as 256MiB or 1.5GB; 0: none."""


class Pass:
    """Base class of texflow passes.

    Subclasses set `name`, `summary`, optionally an `Options` dataclass whose
    fields are the pass options (bool, int, float, str or Enum), and implement
    `apply(module)` on a `builtin.module` operation.  Raise `TexflowError` for
    user errors; the pass manager turns it into a pass failure.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # An optimisation whose result may be dropped: when it raises an internal error or leaves
    # IR that does not verify (with TEXFLOW_STRICT set, as in the tests, that is an error instead)
    # IR that does not verify, the module is put back as it was before the pass and the
    # compile goes on (a statistic records it).  Passes whose result the user asked for
    # (a memory budget's plan, half precision) or that later passes rely on are not undoable.
    undoable: ClassVar[bool] = False

    @dataclasses.dataclass
    class Options:
        pass

    def __init__(self, **options):
        try:
            self.options = self.Options(**options)
        except TypeError as e:
            raise PassOptionError(f"{self.name}: {e}") from None
        self.statistics: dict[str, int] = {}
        self.undone: str | None = None  # why the pass was undone (undoable passes only)

    def apply(self, module) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def bump(self, stat: str, n: int = 1) -> None:
        self.statistics[stat] = self.statistics.get(stat, 0) + n

    # -- textual form -------------------------------------------------------
    def pipeline_text(self, defaults: bool = True) -> str:
        """`name{opt=value ...}`; without `defaults`, only options that differ from them."""
        opts = dataclasses.asdict(self.options)
        if not defaults:
            base = dataclasses.asdict(self.Options())
            opts = {k: v for k, v in opts.items() if v != base[k]}
        if not opts:
            return self.name
        body = " ".join(f"{k.replace('_', '-')}={quote_option(_fmt(v))}" for k, v in opts.items())
        return f"{self.name}{{{body}}}"

    @classmethod
    def option_help(cls) -> list[str]:
        out = []
        hints = typing.get_type_hints(cls.Options)
        for f in dataclasses.fields(cls.Options):
            t = hints[f.name]
            tname = "size" if t is Bytes else getattr(t, "__name__", str(t))
            if isinstance(t, type) and issubclass(t, enum.Enum):
                tname = "|".join(m.value for m in t)
            out.append(f"{f.name.replace('_', '-')}=<{tname}> (default {_fmt(f.default)})"
                       + (f": {f.metadata['help']}" if "help" in f.metadata else ""))
        return out


def _fmt(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, enum.Enum):
        return v.value
    return str(v)


_REGISTRY: dict[str, type[Pass]] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    assert cls.name and cls.summary, cls
    assert cls.name not in _REGISTRY, cls.name
    _REGISTRY[cls.name] = cls
    return cls


def registered_passes() -> dict[str, type[Pass]]:
    return dict(_REGISTRY)


def get_pass(name: str) -> type[Pass]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise TexflowError(f"unknown texflow pass '{name}'") from None


def _convert(cls: type[Pass], key: str, text: str):
    hints = typing.get_type_hints(cls.Options)
    fields = {f.name: f for f in dataclasses.fields(cls.Options)}
    attr = key.replace("-", "_")
    if attr not in fields:
        raise PassOptionError(f"pass '{cls.name}' has no option '{key}'"
                              f" (options: {', '.join(k.replace('_', '-') for k in fields) or 'none'})")
    t = hints[attr]
    if t is Bytes:
        if text.strip() in ("", "0"):
            return Bytes(0)
        from texflow.streaming.model import parse_bytes
        try:
            return Bytes(parse_bytes(text, f"option '{key}'"))
        except TexflowError as e:
            raise PassOptionError(f"pass '{cls.name}': {e}") from None
    try:
        if t is bool:
            if text not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text in ("true", "1")
        if isinstance(t, type) and issubclass(t, enum.Enum):
            return t(text)
        return t(text)
    except ValueError:
        raise PassOptionError(f"pass '{cls.name}': option '{key}' expects "
                              f"{getattr(t, '__name__', t)}, got '{text}'") from None


def quote_option(value: str) -> str:
    """An option value as pipeline text: bare when it has no space, quote, brace, comma or
    `=`, else in double quotes (backslash escapes `"` and `\\`), as MLIR's option parser
    accepts it."""
    if value and not any(c in value for c in ' \t"\'{}(),=\\'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_options(text: str) -> list[tuple[str, str | None]]:
    """`k=v k2="a b" k3={x y}` -> [(k, v), (k2, 'a b'), (k3, 'x y')]; a key without `=`
    gives (key, None).  Quoted values may hold spaces, `=`, braces and commas."""
    out, i, n = [], 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        j = i
        while j < n and not text[j].isspace() and text[j] != "=":
            j += 1
        key = text[i:j]
        if j >= n or text[j] != "=":
            out.append((key, None))
            i = j
            continue
        j += 1
        if j < n and text[j] == '"':
            val, j = [], j + 1
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                val.append(text[j])
                j += 1
            if j >= n:
                raise TexflowError(f"unterminated quoted value of option '{key}'")
            out.append((key, "".join(val)))
            i = j + 1
        elif j < n and text[j] == "{":
            depth, k = 0, j
            while k < n:
                depth += {"{": 1, "}": -1}.get(text[k], 0)
                if depth == 0:
                    break
                k += 1
            if k >= n:
                raise TexflowError(f"unbalanced braces in the value of option '{key}'")
            out.append((key, text[j + 1:k]))
            i = k + 1
        else:
            k = j
            while k < n and not text[k].isspace():
                k += 1
            out.append((key, text[j:k]))
            i = k
    return out


def split_pipeline(text: str) -> list[str]:
    """Split a comma-separated pipeline at top level (respecting (), {} and quoted values)."""
    items, depth, cur, quoted, escaped = [], 0, [], False, False
    for ch in text:
        if quoted:
            cur.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
            if depth < 0:
                raise TexflowError(f"unbalanced pipeline '{text}'")
        if ch == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if depth != 0 or quoted:
        raise TexflowError(f"unbalanced pipeline '{text}'")
    if "".join(cur).strip():
        items.append("".join(cur).strip())
    return [i for i in items if i]


def parse_pass(item: str) -> Pass | None:
    """Parse `name{k=v ...}` into a texflow pass instance; None if not ours."""
    name, _, rest = item.partition("{")
    name = name.strip()
    if name not in _REGISTRY:
        if name.startswith("texflow-"):
            get_pass(name)  # raises the unknown-pass error
        return None
    cls = _REGISTRY[name]
    opts = {}
    if rest:
        if not rest.endswith("}"):
            raise TexflowError(f"malformed options in '{item}'")
        for k, v in split_options(rest[:-1]):
            if v is None:
                raise PassOptionError(f"pass '{name}': option '{k}' needs a value")
            opts[k.replace("-", "_")] = _convert(cls, k, v)
    return cls(**opts)


_REMARKS = {"stream": None}


def set_remark_stream(stream) -> None:
    """Where passes report what they left alone and why (None: silent).

    The tools point this at a duplicate of stderr (`--texflow-verbose`):
    fd 2 itself is captured while pass managers run."""
    _REMARKS["stream"] = stream


def remark(pass_name: str, op, message: str) -> None:
    s = _REMARKS["stream"]
    if s is not None:
        print(f"remark: {pass_name}: {message} at {op.location}", file=s)
        s.flush()


class PrintIR:
    """Where to print the IR after each texflow pass (None: don't)."""

    def __init__(self, stream=None):
        self.stream = stream


def _emit_error(op, message: str) -> None:
    """Report through MLIR's diagnostics so callers see it like IREE's own errors."""
    with op.context:
        op.location.emit_error(message)


def snapshot_module(module):
    """A detached copy of `module` (its ops and attributes) to restore from."""
    return module.clone()


def restore_module(module, snapshot) -> None:
    """Put `snapshot`'s body and attributes back into `module` (in place: the pass manager
    holds `module`).  Top-level ops of a module use no SSA values of each other, so the
    body can be erased op by op and refilled from the snapshot's."""
    body = module.regions[0].blocks[0]
    for o in reversed(list(body.operations)):
        o.operation.erase()
    for o in list(snapshot.regions[0].blocks[0].operations):
        o.operation.detach_from_parent()
        body.append(o.operation)
    for n in list(module.attributes):  # iterating an attribute map gives the names
        if n not in snapshot.attributes:
            del module.attributes[n]
    for n in list(snapshot.attributes):
        module.attributes[n] = snapshot.attributes[n]
    snapshot.erase()


def _verify_error(op) -> str | None:
    """None if `op` verifies, else its first diagnostic on one line."""
    from iree.compiler import ir
    try:
        op.verify()
    except ir.MLIRError as e:
        d = e.error_diagnostics
        return (f"{d[0].message} at {d[0].location}" if d else str(e).splitlines()[0])
    return None


def disabled_passes() -> set[str]:
    """TEXFLOW_DISABLE_PASSES=name,name: those texflow passes run as no-ops wherever a pipeline
    holds them (every compile of the process and of the processes it starts).  For bisecting a
    miscompile to a pass, and for the mutation runs (scripts/pytest_mutation.py) that ask which
    tests still pass without a pass."""
    return {n.strip() for n in os.environ.get("TEXFLOW_DISABLE_PASSES", "").split(",") if n.strip()}


def _as_external(p: Pass, print_ir: PrintIR | None, stats_sink: list | None):
    def run(op, pass_):
        from iree.compiler import ir
        if p.name in disabled_passes():
            if stats_sink is not None:
                stats_sink.append(p)
            return
        snapshot = snapshot_module(op) if p.undoable else None
        undo_why = None
        try:
            with op.context, ir.Location.unknown(op.context):
                p.apply(op)
        except TexflowError as e:
            if snapshot is not None:
                snapshot.erase()
            _emit_error(op, f"{p.name}: {e}")
            pass_.signal_pass_failure()
            return
        except Exception as e:  # a bug in texflow: undone if we can, else one line
            if os.environ.get("TEXFLOW_DEBUG"):
                traceback.print_exc()
            if snapshot is None:
                _emit_error(op, f"internal error in {p.name}: {type(e).__name__}: {e} "
                                "(set TEXFLOW_DEBUG=1 for a traceback)")
                pass_.signal_pass_failure()
                return
            undo_why = f"internal error {type(e).__name__}: {e}"
        if undo_why is None:
            err = _verify_error(op)
            if err is not None:
                if snapshot is None:
                    _emit_error(op, f"{p.name} produced IR that does not verify: {err}")
                    pass_.signal_pass_failure()
                    return
                undo_why = f"result did not verify: {err}"
                if os.environ.get("TEXFLOW_DEBUG"):  # keep the broken IR for a reproducer
                    import tempfile
                    fd, dump = tempfile.mkstemp(prefix=f"{p.name}-unverified-", suffix=".mlir")
                    with os.fdopen(fd, "w") as f:
                        f.write(op.get_asm(assume_verified=True))
                    print(f"{p.name}: IR that did not verify written to {dump}", file=sys.stderr)
        if undo_why is not None:
            with op.context:
                restore_module(op, snapshot)
            if os.environ.get("TEXFLOW_STRICT"):  # the tests: an undone optimisation is a bug
                _emit_error(op, f"{p.name} was undone (TEXFLOW_STRICT is set): {undo_why}")
                pass_.signal_pass_failure()
                return
            p.undone = undo_why
            p.statistics = {"pass undone (module kept as before it)": 1}
            remark(p.name, op, f"undone, the module is kept as before the pass: {undo_why}")
        elif snapshot is not None:
            snapshot.erase()
        if print_ir is not None and print_ir.stream is not None:
            print(f"// -----// IR Dump After {p.name} //----- //", file=print_ir.stream)
            print(op.get_asm(large_elements_limit=16), file=print_ir.stream)
        if stats_sink is not None:
            stats_sink.append(p)
    run.__name__ = p.name.replace("-", "_")
    return run


def add_passes(pm, pipeline, *, print_ir: PrintIR | None = None,
               stats_sink: list | None = None) -> list[Pass]:
    """Append a pipeline of texflow (and IREE/MLIR) passes to `pm`.

    `pipeline` is either text (`"texflow-a,util.func(canonicalize),texflow-b{x=1}"`)
    or a list of `Pass` instances.  Texflow passes become external passes;
    everything else is handed to MLIR's pipeline parser unchanged.  This is
    the API for embedding texflow between IREE's own pipelines.
    Returns the texflow pass instances added (their `.statistics` fill in
    when the pass manager runs).
    """
    added = []
    items = split_pipeline(pipeline) if isinstance(pipeline, str) else list(pipeline)
    for item in items:
        p = item if isinstance(item, Pass) else parse_pass(item)
        if p is None:
            try:
                pm.add(item)
            except ValueError as e:
                msg = str(e).splitlines()
                detail = next((l for l in msg if "error:" in l), msg[0] if msg else "")
                raise TexflowError(f"cannot add '{item}' to the pipeline: "
                                   f"{detail.split('error:')[-1].strip()}") from None
            continue
        pm.add(_as_external(p, print_ir, stats_sink), name=p.name, argument=p.name,
               description=p.summary)
        added.append(p)
    return added
