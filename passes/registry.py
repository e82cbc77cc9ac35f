"""Pass base class, registry and textual-pipeline handling."""

from __future__ import annotations

import dataclasses
import enum
import os
import traceback
import typing
from typing import ClassVar

from texflow.errors import TexflowError


class PassOptionError(TexflowError):
    pass


class Pass:
    """Base class of texflow passes.

    Subclasses set `name`, `summary`, optionally an `Options` dataclass whose
    fields are the pass options (bool, int, float, str or Enum), and implement
    `apply(module)` on a `builtin.module` operation.  Raise `TexflowError` for
    user errors; the pass manager turns it into a pass failure.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    @dataclasses.dataclass
    class Options:
        pass

    def __init__(self, **options):
        try:
            self.options = self.Options(**options)
        except TypeError as e:
            raise PassOptionError(f"{self.name}: {e}") from None
        self.statistics: dict[str, int] = {}

    def apply(self, module) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def bump(self, stat: str, n: int = 1) -> None:
        self.statistics[stat] = self.statistics.get(stat, 0) + n

    # -- textual form -------------------------------------------------------
    def pipeline_text(self) -> str:
        opts = dataclasses.asdict(self.options)
        if not opts:
            return self.name
        body = " ".join(f"{k.replace('_', '-')}={_fmt(v)}" for k, v in opts.items())
        return f"{self.name}{{{body}}}"

    @classmethod
    def option_help(cls) -> list[str]:
        out = []
        hints = typing.get_type_hints(cls.Options)
        for f in dataclasses.fields(cls.Options):
            t = hints[f.name]
            tname = getattr(t, "__name__", str(t))
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


def split_pipeline(text: str) -> list[str]:
    """Split a comma-separated pipeline at top level (respecting (), {})."""
    items, depth, cur = [], 0, []
    for ch in text:
        if ch in "({":
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
    if depth != 0:
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
        for kv in rest[:-1].split():
            k, eq, v = kv.partition("=")
            if not eq:
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


def _as_external(p: Pass, print_ir: PrintIR | None, stats_sink: list | None):
    def run(op, pass_):
        try:
            from iree.compiler import ir
            with op.context, ir.Location.unknown(op.context):
                p.apply(op)
        except TexflowError as e:
            _emit_error(op, f"{p.name}: {e}")
            pass_.signal_pass_failure()
            return
        except Exception as e:  # a bug in texflow: still one line, no traceback
            if os.environ.get("TEXFLOW_DEBUG"):
                traceback.print_exc()
            _emit_error(op, f"internal error in {p.name}: {type(e).__name__}: {e} "
                            "(set TEXFLOW_DEBUG=1 for a traceback)")
            pass_.signal_pass_failure()
            return
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
