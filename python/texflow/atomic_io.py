"""Writing output files atomically: a failure never leaves half a file.

Every file texflow writes (modules, plans, weight archives, reports, charts, tuning records)
goes through here: it is written beside its destination under a temporary name and renamed
into place only when complete.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

from .errors import TexflowError


@contextlib.contextmanager
def atomic_output(path: str, suffix: str = ".tmp"):
    """Yield a temporary path beside `path`; rename it to `path` only if the
    block succeeds, so a failure never leaves a half-written file."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise TexflowError(f"output folder does not exist: {d}")
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".texflow-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomically(path: str, data: bytes | str) -> None:
    """Write via a temporary file in the same folder, then rename: never half a file."""
    if path == "-":
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        return
    with atomic_output(path) as tmp:
        with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
