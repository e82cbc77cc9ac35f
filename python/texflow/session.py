"""An IREE compiler session prepared for texflow.

One `iree.compiler.api.Session` owns the MLIRContext that the importer, the
texflow passes and IREE's pipelines all share, so a module never has to be
printed and re-parsed between them.  Diagnostics are captured so that user
errors become one line instead of IREE's multi-line console output.
"""

from __future__ import annotations

import os

import iree.compiler.api as api  # noqa: F401  (registers IREE's passes)
from iree.compiler import ir

from .errors import TexflowError


class Diagnostics:
    """Diagnostics of the last IREE/pass-manager run, from captured stderr.

    (A Python diagnostic handler is not used: IREE calls handlers from its
    worker threads without the GIL, which crashes the interpreter.)
    """

    def __init__(self):
        self.records: list[tuple[str, str, str]] = []

    def set_from(self, captured) -> None:
        import re
        self.records = []
        for line in captured.errors():
            m = re.match(r"(?P<loc>.*?):\s*error:\s*(?P<msg>.*)", line)
            if m:
                self.records.append(("ERROR", m.group("loc"), m.group("msg")))
            else:
                self.records.append(("ERROR", "", line.split("error:", 1)[-1].strip()))

    def errors(self):
        return [r for r in self.records if r[0] == "ERROR"]

    def first_error(self) -> str | None:
        errs = self.errors()
        if not errs:
            return None
        _, loc, msg = errs[0]
        msg = msg.splitlines()[0] if msg else msg
        return f"{msg} at {loc}" if loc and loc not in ('loc(unknown)', 'loc("")') else msg

    def clear(self):
        self.records.clear()


# IREE's sessions share one LLVM thread pool.  A forked child (texflow compiles in one to
# survive IREE crashes) inherits that pool without its threads, and the first parallel step
# (the verifier, a parallel pass) waits forever for workers that do not exist: seen when the
# parent had compiled in-process before forking.  A child therefore compiles single-threaded.
_FORKED_CHILD = {"value": False}


def _mark_forked_child() -> None:
    _FORKED_CHILD["value"] = True


os.register_at_fork(after_in_child=_mark_forked_child)


class CompilerSession:
    """A Session + context with dialects loaded and texflow dialects registered."""

    def __init__(self, flags: list[str] | tuple[str, ...] = ()):
        self.session = api.Session()
        if flags:
            try:
                self.session.set_flags(*flags)
            except ValueError as e:
                raise TexflowError(f"bad IREE flag: {str(e).strip()}") from None
        self.context = self.session.context
        if _FORKED_CHILD["value"]:
            self.context.enable_multithreading(False)
        self.context.load_all_available_dialects()
        self.context.allow_unregistered_dialects = True
        from texflow.dialects import register_all
        register_all(self.context)
        self.diagnostics = Diagnostics()

    def parse(self, text: str, name: str = "<input>"):
        try:
            with self.context:
                return ir.Module.parse(text)
        except ir.MLIRError as e:
            diag = e.error_diagnostics[0] if e.error_diagnostics else None
            detail = f"{diag.message} at {diag.location}" if diag else str(e)
            raise TexflowError(f"cannot parse {name}: {detail}") from None
