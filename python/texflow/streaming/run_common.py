"""What both streaming runtimes (segments: executor.py; fenced: fenced.py) share: the measured
events of a run, its statistics, exact reads from the archive, checksums and the allocator's
counts."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np

from texflow.errors import TexflowError


@dataclasses.dataclass
class Event:
    kind: str      # load | stall | compute
    name: str
    t0: float
    t1: float
    bytes: int = 0


@dataclasses.dataclass
class RunStats:
    latency_s: float = 0.0
    stall_s: float = 0.0
    compute_s: float = 0.0
    loaded_bytes: int = 0
    peak_accounted: int = 0
    allocator_peak: int | None = None
    events: list[Event] = dataclasses.field(default_factory=list)


def _allocator_counts_of(device) -> tuple[int, int] | None:
    """(peak, live) bytes of the process's allocator statistics; None where there are none
    (not meaningful on Vulkan, whose peak is cumulative)."""
    try:
        st = device.allocator.statistics
    except (RuntimeError, AttributeError):
        return None
    peak = int(st.get("device_bytes_peak", 0)) + int(st.get("host_bytes_peak", 0))
    live = sum(int(st.get(f"{k}_bytes_allocated", 0)) - int(st.get(f"{k}_bytes_freed", 0))
               for k in ("device", "host"))
    return peak, live


def _pread_exact(fd: int, host: np.ndarray, offset: int, path: str, key: str) -> None:
    mv = memoryview(host).cast("B")
    done = 0
    while done < len(mv):
        n = os.preadv(fd, [mv[done:]], offset + done)
        if n <= 0:
            raise TexflowError(f"{path} is truncated (weight '{key}')")
        done += n


def _check_sha(host: np.ndarray, e, path: str) -> None:
    if hashlib.sha256(memoryview(host).cast("B")).hexdigest() != e.sha256:
        raise TexflowError(f"{path}: weight '{e.key}' fails its sha256 check (corrupt file)")


def allocator_peak_since(device, driver: str, base) -> int | None:
    """The most bytes IREE's allocator held since `base` (`_allocator_counts_of` when a session
    began), beyond what was live then; None where that cannot be told: on Vulkan (its peak is
    cumulative), or when the process had peaked higher before (the peak stays the earlier one)."""
    if driver == "vulkan" or base is None:
        return None
    now = _allocator_counts_of(device)
    if now is None:
        return None
    (peak, _), (peak0, live0) = now, base
    if peak <= peak0 and peak0 > live0:
        return None
    return peak - live0


class ArchiveFiles:
    """A session's open archive descriptors (`_fds`), closed by `close` or on leaving `with`."""

    _fds: list

    def close(self) -> None:
        for fd in getattr(self, "_fds", []):
            os.close(fd)
        self._fds = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
