"""Capture what C++ code writes to file descriptor 2.

Why: IREE's pipelines emit diagnostics from worker threads; a Python
diagnostic handler called there crashes the interpreter ("PyThreadState_Get:
the function must be called with the GIL held").  So IREE prints its
diagnostics to stderr as usual and texflow captures the file descriptor,
then reduces the text to one line for the user.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile


class Captured:
    text: str = ""

    def errors(self) -> list[str]:
        """'error:' lines, location first, as MLIR prints them."""
        return [l.strip() for l in self.text.splitlines() if re.search(r"\berror:", l)]

    def first_error(self) -> str | None:
        errs = self.errors()
        if not errs:
            return None
        line = errs[0]
        m = re.match(r"(?P<loc>.*?):\s*error:\s*(?P<msg>.*)", line)
        if m and m.group("loc"):
            return f"{m.group('msg')} at {m.group('loc')}"
        return line.split("error:", 1)[-1].strip()


@contextlib.contextmanager
def capture_stderr():
    cap = Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield cap
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            cap.text = tmp.read().decode("utf-8", "replace")
            if os.environ.get("TEXFLOW_DEBUG") and cap.text:
                sys.stderr.write(cap.text)
