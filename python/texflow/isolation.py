"""Running a call in a forked copy of this process, so that a crash in IREE's C++ (a segfault,
an abort) becomes a one-line error instead of killing the caller.

IREE 3.13 segfaults on some inputs (e.g. ONNX `Unique`).  `call_forked` runs the call in a child
made by fork() -- the same in-process Python API, not an `iree-compile` subprocess -- and
pickles its result back through a temporary file; the parent only waits.  Used by the compiler
(`compile_isolated`, texflow-compile's default) and by the corpus runner, which also sets a
wall-clock limit.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import tempfile
import traceback
from pathlib import Path

from .errors import TexflowError


class ChildCrashed(TexflowError):
    """The child died on a signal (`signal`: its name, e.g. SIGSEGV; SIGALRM: the time limit)."""

    def __init__(self, sig: str):
        super().__init__(sig)
        self.signal = sig


class ChildFailed(TexflowError):
    """The call raised an exception that is not a TexflowError (a bug): its type, message and
    the innermost frame, on one line."""


def call_forked(fn, timeout: float | None = None):
    """`fn()` in a forked child: its value, or the TexflowError it raised (re-raised here),
    ChildFailed for any other exception, ChildCrashed when the child died on a signal (SIGALRM
    after `timeout` seconds)."""
    fd, tmp = tempfile.mkstemp(prefix="texflow-forked-", suffix=".pkl")
    os.close(fd)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                if timeout:
                    signal.alarm(max(1, int(timeout)))
                try:
                    payload = ("ok", fn())
                except TexflowError as e:
                    payload = ("error", str(e))
                except Exception as e:  # noqa: BLE001  (a bug: keep where it was)
                    tb = traceback.extract_tb(e.__traceback__)
                    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
                    first = (str(e).strip().splitlines() or [""])[0]
                    payload = ("failed", f"{type(e).__name__}: {first}{where}")
                signal.alarm(0)
                with open(tmp, "wb") as f:
                    pickle.dump(payload, f)
            except BaseException:  # pragma: no cover - reported by the parent
                code = 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            raise ChildCrashed(signal.Signals(os.WTERMSIG(status)).name)
        if os.WEXITSTATUS(status) != 0 or os.path.getsize(tmp) == 0:
            raise ChildFailed(f"the child process failed (exit {os.WEXITSTATUS(status)})")
        with open(tmp, "rb") as f:
            kind, value = pickle.load(f)
        if kind == "error":
            raise TexflowError(value)
        if kind == "failed":
            raise ChildFailed(value)
        return value
    finally:
        os.unlink(tmp)
