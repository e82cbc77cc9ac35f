"""Execute weight-streaming plans on IREE: segments compute while groups load.

A streamed module (texflow-wstream-outline) is a list of segment functions
whose weights are arguments.  `StreamingSession` runs one or several such
modules in turn under one memory budget:

- **Plan.**  The manifests' stages and weight groups are concatenated into one
  `Problem` (several models: the next model's first groups may load while the
  previous one finishes) and planned with the same planner as the compiler
  (`policy="plan"`), or with the baselines "load the next stage's weights"
  (`"next-stage"`) and "preload everything" (`"preload-all"`).  A single model
  run at its compile-time budget reuses the compile-time plan.
- **Loader thread.**  Streamed groups are read in first-use order.  A group
  starts when the running segment has reached the stage the plan starts it at
  and the budget has room for it (resident weights + the plan's activation
  bytes for the stages until its first use).  Bytes go from the archive
  straight into mapped device buffers with `preadv` (one copy, as SwapNet
  avoids the double copy through a host staging buffer); where the device has
  no host-visible device memory they go through one staging buffer.  The
  group's sha256 is checked the first time it is read in a session.
- **Main thread.**  Before each segment it waits for the groups the segment
  takes (time waited = stall), calls the segment (IREE releases the GIL while
  it computes, so the loader overlaps), frees the activations and groups whose
  last use this was.
- **Accounting.**  Every byte the session allocates (weights, inputs, held
  activations) is counted; the peak is reported beside the allocator's own
  statistics (local-task) and the process's peak RSS.  Preloaded groups stay
  resident across runs.
- **Trace.**  Measured timestamps of every load, wait and segment call, for a
  Gantt chart of the actual run (`texflow.streaming.chart.trace_chart`).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import numpy as np

from texflow.errors import TexflowError

from .model import format_bytes, parse_bytes
from .run_common import (ArchiveFiles, Event, RunStats, _allocator_counts_of, _check_sha,
                         _pread_exact, allocator_peak_since, check_chain, map_archive_entry)
from .program import StreamedModel, load_streamed
from .segments import plan_from_json, segment_problem

POLICIES = ("plan", "next-stage", "preload-all")


@dataclasses.dataclass
class _Group:
    gid: int                    # global id (problem order)
    model: int
    keys: list[str]
    bytes: int
    first_seg: int              # global segment indices (the planner's stages here)
    last_seg: int
    preload: bool
    start_seg: int              # where the plan starts reading it
    mapped: bool = False        # gathered from only: mapped from the archive, not read
    views: dict = dataclasses.field(default_factory=dict)   # key -> HalBufferView
    ready: threading.Event = dataclasses.field(default_factory=threading.Event)
    verified: bool = False


class StreamingSession(ArchiveFiles):
    """Run streamed modules in sequence under one memory budget.

    Fenced modules (texflow-wstream-fence, the default) are run by
    `texflow.streaming.fenced.FencedSession`, which this constructor returns for them."""

    def __new__(cls, models, memory_budget=None, driver: str = "local-task",
                policy: str = "plan", time_limit: float = 5.0, verify: bool = True, config=None):
        if policy not in POLICIES:
            raise TexflowError(f"unknown streaming policy '{policy}' ({', '.join(POLICIES)})")
        loaded = [m if isinstance(m, StreamedModel) else load_streamed(str(m)) for m in models]
        if not loaded:
            raise TexflowError("no module to run")
        from .fenced import FencedSession, is_fenced
        if any(is_fenced(m) for m in loaded):
            return FencedSession(loaded, memory_budget=memory_budget, driver=driver,
                                 policy=policy, time_limit=time_limit, verify=verify,
                                 config=config)
        self = super().__new__(cls)
        self._loaded = loaded
        return self

    def __init__(self, models, memory_budget=None, driver: str = "local-task",
                 policy: str = "plan", time_limit: float = 5.0, verify: bool = True, config=None):
        """`config`: an `iree.runtime.Config` whose device the session uses (shared with other
        modules in the process: several Vulkan devices in one process slow each other down)."""
        import iree.runtime as rt
        from texflow.runtime import Module

        self._rt = rt
        self.models: list[StreamedModel] = self._loaded
        if not self.models:
            raise TexflowError("no module to run")
        check_chain(self.models)
        self.policy = policy
        self.verify = verify
        self.time_limit = time_limit
        compile_budget = max(m.manifest["summary"]["budget_bytes"] for m in self.models)
        self.budget = parse_bytes(memory_budget) if memory_budget is not None else compile_budget
        # IREE's allocator statistics belong to the process (every device of a driver shares
        # them), so the session's own peak is measured against what was live when it began,
        # before its modules' constants were loaded
        self.driver = driver
        self._alloc_base = None
        if driver != "vulkan":
            try:
                self._alloc_base = _allocator_counts_of(rt.get_first_device([driver]))
            except (RuntimeError, ValueError):
                pass  # Module below reports a driver that does not start
        # Modules on one device: the first one starts the driver, the others share its
        # instance and device (Module's `config`).
        self.modules = []
        for m in self.models:
            self.modules.append(Module(m.vmfb_path if not self.modules else m.vmfb, driver=driver,
                                       config=self.modules[0].config if self.modules else config))
        self.device = self.modules[0].device
        self._plan()
        self._fds = [os.open(m.archive_path, os.O_RDONLY) for m in self.models]
        self._lock = threading.Condition()
        self._resident = 0            # weight bytes allocated (incl. preloads)
        self._acts = 0                # activation/input bytes the session holds
        self._peak = 0
        self._stage_hi = -1           # last stage of the running segment
        self._waiting_for = None
        self._stop = False
        self._error: BaseException | None = None
        self._mappable = True
        self.preload_s = 0.0
        self.last: RunStats | None = None
        t0 = time.perf_counter()
        self._make_mappings()
        for g in self.groups:
            if g.preload:
                self._load(g, None)
        self.preload_s = time.perf_counter() - t0

    # -- planning ---------------------------------------------------------------
    def _plan(self) -> None:
        """Plan loads over the segments of all models, in order (one Problem)."""
        from .planner import PlannerOptions, load_next_stage, plan, preload_all
        from .verify import replay

        self.problem, owners, self.segments, self.seg_off = segment_problem(
            [(m.manifest, m.program, m.name) for m in self.models], self.budget)
        groups = self.problem.groups
        t0 = time.perf_counter()
        cached = self.models[0].manifest.get("segment_plan")
        if self.policy == "plan" and len(self.models) == 1 and cached and \
                cached.get("budget_bytes") == self.budget:
            p = plan_from_json(cached)  # planned at compile time for this budget
        elif self.policy == "plan":
            p = plan(self.problem, PlannerOptions(time_limit_s=self.time_limit))
        elif self.policy == "next-stage":
            p = load_next_stage(self.problem)
        else:
            p = preload_all(self.problem)
            if p is None:
                total = sum(g.bytes for g in groups)
                raise TexflowError(f"preloading all {format_bytes(total)} of weights does not fit "
                                   f"the budget of {format_bytes(self.budget)}")
        self.plan_s = time.perf_counter() - t0
        self.plan = p
        self.replay = replay(self.problem, p, check_link=False)
        self.groups: list[_Group] = []
        for gid, ((mi, pg), G, gp) in enumerate(zip(owners, groups, p.groups)):
            start = gp.start if gp.start is not None else G.first
            self.groups.append(_Group(
                gid=gid, model=mi, keys=list(pg["keys"]), bytes=G.bytes,
                first_seg=G.first, last_seg=G.last, preload=bool(gp.preload),
                start_seg=min(start, G.first), mapped=bool(pg.get("mapped"))))
        self.group_of_key = [{k: g for g in self.groups if g.model == mi for k in g.keys}
                             for mi in range(len(self.models))]
        self.streamed = [g for g in self.groups if not g.preload]
        self.streamed.sort(key=lambda g: (g.first_seg, g.gid))
        self.act_plan = [s.act_bytes for s in self.problem.stages]
        self.released_after = [[g for g in self.streamed if g.last_seg == k]
                               for k in range(len(self.segments))]

    # -- memory accounting --------------------------------------------------------
    def _account(self, weights: int = 0, acts: int = 0) -> None:
        with self._lock:
            self._resident += weights
            self._acts += acts
            self._peak = max(self._peak, self._resident + self._acts)
            if self._resident + self._acts > self.budget:
                self._error = self._error or TexflowError(
                    f"memory budget exceeded at run time: {format_bytes(self._resident)} of "
                    f"weights + {format_bytes(self._acts)} of activations > "
                    f"{format_bytes(self.budget)} at segment {self._stage_hi}")
            self._lock.notify_all()

    # -- loading --------------------------------------------------------------------
    def _alloc_mappable(self, nbytes: int):
        """A device buffer the host can write into, or None where the device has
        no host-visible device memory (remembered: it is not asked again)."""
        rt = self._rt
        if self._mappable:
            try:
                return self.device.allocator.allocate_buffer(
                    memory_type=int(rt.MemoryType.DEVICE_LOCAL | rt.MemoryType.HOST_VISIBLE),
                    allowed_usage=int(rt.BufferUsage.DEFAULT | rt.BufferUsage.MAPPING),
                    allocation_size=max(1, nbytes))
            except (RuntimeError, ValueError):
                self._mappable = False
        return None

    def _load(self, g: _Group, events: list | None) -> None:
        """Read group `g` into device buffers (caller has accounted for it)."""
        from iree.runtime.array_interop import map_dtype_to_element_type
        rt = self._rt
        t0 = time.perf_counter()
        m = self.models[g.model]
        fd = self._fds[g.model]
        self._account(weights=self._cost(g))
        if g.mapped and self.driver != "vulkan":
            self._map(g, m, events, t0)
            return
        views = {}
        for key in g.keys:
            e = m.entries[key]
            # read into mapped device memory, or else one host staging buffer + a copy
            buf = self._alloc_mappable(e.length)
            mapping = buf.map() if buf is not None else None
            host = mapping.asarray([e.length], np.dtype(np.uint8)) if mapping is not None \
                else np.empty(e.length, np.uint8)
            if self.verify and not g.verified and mapping is not None:
                # checked in host memory, then copied: mapped device memory (a PCIe BAR) reads
                # uncached, and hashing it there stalled ResNet-50's first run 5.7 s (H200)
                tmp = np.empty(e.length, np.uint8)
                _pread_exact(fd, tmp, e.offset, m.archive_path, key)
                _check_sha(tmp, e, m.archive_path)
                host[:] = tmp
            else:
                _pread_exact(fd, host, e.offset, m.archive_path, key)
                if self.verify and not g.verified:
                    _check_sha(host, e, m.archive_path)
            if mapping is not None:
                del host, mapping
            else:
                buf = self.device.allocator.allocate_buffer_copy(
                    memory_type=int(rt.MemoryType.DEVICE_LOCAL),
                    allowed_usage=int(rt.BufferUsage.DEFAULT), device=self.device,
                    buffer=host, element_type=rt.HalElementType.UINT_8)
                buf = buf.get_buffer() if hasattr(buf, "get_buffer") else buf
            dt = np.dtype(e.dtype)
            views[key] = rt.HalBufferView(buf, list(e.shape), map_dtype_to_element_type(dt))
        g.views = views
        g.verified = True
        if events is not None:
            events.append(Event("load", f"{m.name}:g{g.gid}", t0,
                                time.perf_counter(), g.bytes))
        g.ready.set()

    def _map(self, g: _Group, m, events, t0) -> None:
        """A weight only gathered from (an embedding table) is mapped from the
        archive and imported without a copy: the gather reads the rows its
        tokens select, page by page.  What it can touch (`g.bytes`, rows x
        pages) is accounted (by `_load`); it is not checksummed (that would read
        it all).  The mappings are made once, at the session's start, and reused."""
        g.views = self._mapped_views[g.gid]
        if events is not None:
            events.append(Event("load", f"{m.name}:g{g.gid} (mapped)", t0, time.perf_counter(), 0))
        g.ready.set()

    def _make_mappings(self) -> None:
        self._mapped_views = {}
        self._mmaps = []  # kept here: the imported HalBuffer did not keep its mapping alive
        if self.driver == "vulkan":
            return
        for g in self.groups:
            if not g.mapped:
                continue
            m = self.models[g.model]
            self._mapped_views[g.gid] = {key: map_archive_entry(self.device, m, key, self._mmaps)
                                         for key in g.keys}

    def _cost(self, g: _Group) -> int:
        """Bytes a loaded group holds: a mapped table what its gathers can touch;
        otherwise (also a table read whole on Vulkan) all of its weights."""
        if g.mapped and self.driver != "vulkan":
            return g.bytes
        return sum(self.models[g.model].entries[k].length for k in g.keys)

    def _release(self, g: _Group) -> None:
        g.views = {}
        g.ready.clear()
        self._account(weights=-self._cost(g))

    def _reserve(self, g: _Group) -> int:
        lo = max(self._stage_hi, 0)
        return max(self.act_plan[lo:g.first_seg + 1] or [0])

    def _loader(self, events: list) -> None:
        try:
            for g in self.streamed:
                with self._lock:
                    while True:
                        if self._error is not None or self._stop:
                            return
                        # Groups load in order: while the run waits for a group, it
                        # and the groups before it are due whatever the plan said.
                        w = self._waiting_for
                        urgent = w is not None and g.first_seg <= w.first_seg
                        started = self._stage_hi >= g.start_seg or urgent
                        # Room for the group and for the activations the plan expects
                        # (>= what the runtime holds) until the group's first use.
                        room = self._resident + g.bytes + max(self._acts, self._reserve(g)) \
                            <= self.budget
                        if started and room:
                            break
                        if urgent and w is g:
                            # The run needs this group now and nothing else will free memory.
                            raise TexflowError(
                                f"memory budget {format_bytes(self.budget)} is too small at run "
                                f"time for group {g.gid} ({format_bytes(g.bytes)}) with "
                                f"{format_bytes(self._resident)} resident")
                        self._lock.wait(0.05)
                self._load(g, events)
        except BaseException as e:  # surfaced by the main thread
            with self._lock:
                self._error = self._error or e
                self._lock.notify_all()
            for g in self.streamed:
                g.ready.set()

    # -- running --------------------------------------------------------------------
    def run(self, *inputs) -> list[np.ndarray]:
        """Run the models in turn (each one's outputs feed the next); numpy outputs."""
        rt = self._rt
        inputs = self.check_inputs(inputs)
        stats = RunStats()
        events = stats.events
        with self._lock:
            self._stage_hi = -1
            self._stop = False
            self._error = None
            self._peak = self._resident + self._acts
        for g in self.streamed:
            g.ready.clear()
        loader = threading.Thread(target=self._loader, args=(events,), daemon=True)
        t_start = time.perf_counter()
        loader.start()
        try:
            held = {("input", i): (rt.asdevicearray(self.device, a), a.nbytes)
                    for i, a in enumerate(inputs)}
            self._account(acts=sum(a.nbytes for a in inputs))
            prev_outputs: list = []
            for mi, m in enumerate(self.models):
                prog = m.program
                if mi > 0:  # the previous model's outputs are this one's inputs
                    held = {("input", i): v for i, v in enumerate(prev_outputs)}
                last_use = self._last_uses(prog)
                mod = self.modules[mi]
                for k, seg in enumerate(prog["segments"]):
                    gi = self.seg_off[mi] + k
                    with self._lock:
                        self._stage_hi = gi  # planner stages are segments here
                        self._lock.notify_all()
                    args = []
                    for kind, key in seg["args"]:
                        if kind == "weight":
                            g = self.group_of_key[mi][key]
                            if not g.ready.is_set():
                                t0 = time.perf_counter()
                                with self._lock:
                                    self._waiting_for = g
                                g.ready.wait()
                                with self._lock:
                                    self._waiting_for = None
                                events.append(Event("stall", f"{m.name}:seg{k}", t0,
                                                    time.perf_counter()))
                            if self._error is not None:
                                raise self._error
                            args.append(g.views[key])
                        else:
                            args.append(held[(kind, key)][0])
                    fn = mod.context.modules.module[seg["function"]]
                    t0 = time.perf_counter()
                    try:
                        res = fn(*args)
                    except (RuntimeError, ValueError) as e:
                        raise TexflowError(f"{seg['function']} failed: "
                                           f"{str(e).splitlines()[0]}") from None
                    events.append(Event("compute", f"{m.name}:seg{k}", t0, time.perf_counter()))
                    res = res if isinstance(res, (list, tuple)) else [res]
                    add = 0
                    for vid, r in zip(seg["results"], res):
                        nb = prog["values"][vid]["bytes"]
                        held[("value", vid)] = (r, nb)
                        add += nb
                    self._account(acts=add)
                    free = 0
                    for key in [h for h in held if last_use.get(h, 10 ** 9) <= k]:
                        free += held.pop(key)[1]
                    self._account(acts=-free)
                    for g in self.released_after[gi]:
                        if g.views:
                            self._release(g)
                    if self._error is not None:
                        raise self._error
                prev_outputs = [held[("value", vid)] for vid in prog["outputs"]]
            outputs = [self.modules[-1].to_numpy(v) for v, _ in prev_outputs]
            # what is still held (the last outputs) is released with the run
            self._account(acts=-sum(nb for _, nb in held.values()))
            held.clear()
        finally:
            with self._lock:
                self._stop = True  # a run that failed leaves the loader waiting
                self._lock.notify_all()
            loader.join()
            for g in self.streamed:  # a failed run may leave groups loaded
                if g.views:
                    self._release(g)
            with self._lock:
                self._acts = 0
        if self._error is not None:
            err, self._error = self._error, None
            raise err if isinstance(err, TexflowError) else TexflowError(str(err))
        stats.latency_s = time.perf_counter() - t_start
        stats.stall_s = sum(e.t1 - e.t0 for e in events if e.kind == "stall")
        stats.compute_s = sum(e.t1 - e.t0 for e in events if e.kind == "compute")
        stats.loaded_bytes = sum(e.bytes for e in events if e.kind == "load")
        stats.peak_accounted = self._peak
        stats.allocator_peak = self.allocator_peak()
        for e in events:
            e.t0 -= t_start
            e.t1 -= t_start
        self.last = stats
        return outputs

    @staticmethod
    def _last_uses(prog) -> dict:
        last: dict = {}
        for k, seg in enumerate(prog["segments"]):
            for kind, key in seg["args"]:
                if kind != "weight":
                    last[(kind, key)] = k
        for vid in prog["outputs"]:
            last[("value", vid)] = 10 ** 9
        return last

    def allocator_peak(self) -> int | None:
        """The most bytes IREE's allocator held for this session (`allocator_peak_since`)."""
        return allocator_peak_since(self.device, self.driver, self._alloc_base)

    def summary(self) -> dict:
        s = self.last
        return {
            "policy": self.policy, "budget_bytes": self.budget,
            "weight_bytes": sum(g.bytes for g in self.groups),
            "preloaded_bytes": sum(g.bytes for g in self.groups if g.preload),
            "streamed_bytes": sum(g.bytes for g in self.streamed),
            "segments": len(self.segments), "plan_status": self.plan.status, "plan_s": self.plan_s,
            "planned_peak_bytes": self.replay.peak_bytes,
            "preload_s": self.preload_s,
            **({} if s is None else {
                "latency_s": s.latency_s, "stall_s": s.stall_s, "compute_s": s.compute_s,
                "loaded_bytes": s.loaded_bytes, "peak_accounted_bytes": s.peak_accounted,
                "allocator_peak_bytes": s.allocator_peak}),
        }

    def trace(self) -> dict:
        """The last run's measured events beside the plan (`texflow.wstream.trace/1`)."""
        if self.last is None:
            raise TexflowError("no run to trace yet")
        prob = self.problem
        planned = []
        for si, st in enumerate(prob.stages):
            loads = []
            for gi, gp in enumerate(self.plan.groups):
                for ld in gp.loads:
                    if ld.stage == si and (ld.stall or ld.overlap):
                        loads.append({"group": gi, "stall_chunks": ld.stall,
                                      "overlap_chunks": ld.overlap})
            planned.append({"segment": st.name, "compute_s": st.compute_s, "loads": loads})
        return {
            "format": "texflow.wstream.trace/1",
            "models": [m.name for m in self.models],
            "summary": self.summary(),
            "chunk_bytes": prob.chunk_bytes, "chunk_s": prob.chunk_s,
            "groups": [{"id": g.gid, "bytes": g.bytes, "preload": g.preload,
                        "first_segment": g.first_seg, "last_segment": g.last_seg}
                       for g in self.groups],
            "plan": planned,
            "events": [dataclasses.asdict(e) for e in self.last.events],
        }


def evict_file(path: str) -> None:
    """Drop `path`'s pages from the page cache (POSIX_FADV_DONTNEED), for a cold start.

    Works without privileges for clean pages; what it evicted is measured by the
    caller (cold read time), not assumed."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


__all__ = ["Event", "POLICIES", "RunStats", "StreamingSession", "evict_file"]
