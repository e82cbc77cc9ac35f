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


def map_archive_entry(device, model, key: str, keep: list):
    """A view of weight `key` mapped from `model`'s archive and imported without a copy (a
    table only gathered from: the pages its rows touch are read).  The mapping goes in `keep`:
    the imported buffer does not keep it alive."""
    import iree.runtime as rt
    from iree.runtime.array_interop import map_dtype_to_element_type
    e = model.entries[key]
    mm = np.memmap(model.archive_path, dtype=np.uint8, mode="c", offset=e.offset,
                   shape=(e.length,))
    keep.append(mm)
    buf = device.allocator.import_host_allocation(
        mm, int(rt.MemoryType.HOST_LOCAL | rt.MemoryType.DEVICE_VISIBLE), int(rt.BufferUsage.DEFAULT))
    return rt.HalBufferView(buf, list(e.shape), map_dtype_to_element_type(np.dtype(e.dtype)))


def check_chain(models) -> None:
    """Each model's outputs must be the next one's inputs (checked before any compute)."""
    for a, b in zip(models, models[1:]):
        got, want = a.program["output_types"], b.program["inputs"]
        if list(got) != list(want):
            raise TexflowError(f"{a.name} returns {', '.join(got)} but "
                               f"{b.name} takes {', '.join(want)}")


class ArchiveFiles:
    """What both sessions do the same way: check a run's inputs against the first model, and
    keep the archive descriptors (`_fds`), closed by `close` or on leaving `with`."""

    _fds: list
    models: list

    def check_inputs(self, inputs) -> list[np.ndarray]:
        from texflow.runtime import TensorSpec, dtype_text
        specs = [TensorSpec.parse(t) for t in self.models[0].program["inputs"]]
        inputs = [np.ascontiguousarray(a) for a in inputs]
        if len(inputs) != len(specs):
            raise TexflowError(f"{self.models[0].name} takes {len(specs)} input(s), "
                               f"got {len(inputs)}")
        for i, (s, a) in enumerate(zip(specs, inputs)):
            if not s.matches(a):
                raise TexflowError(f"input {i}: expected {s}, got {dtype_text(a)}")
        return inputs

    def close(self) -> None:
        for fd in getattr(self, "_fds", []):
            os.close(fd)
        self._fds = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
