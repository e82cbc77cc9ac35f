"""Run fenced streamed modules (texflow-wstream-fence): one call per model, loads on fences.

A fenced module is the whole model as one asynchronous IREE function.  Its
weights are subspans of two device buffers the session owns: *preload* (filled
once, when the session opens) and *arena* (shared by the streamed groups at
offsets fixed at compile time).  Each streamed group is imported behind a
*ready* fence and each release stage signals a *release* fence (see
`passes/wstream/fence.py`).  A run:

1. starts the loader thread, then invokes the function once: IREE enqueues
   every stage on the device and returns; the device waits on the fences;
2. the loader reads the groups in load order: before a group overwrites arena
   bytes it waits (on the host) for the release fences of the groups that held
   them; it reads straight into the mapped arena with `preadv` (checking each
   group's sha256 the first time), then signals the group's ready fence;
3. the main thread waits for the function's signal fence and reads the outputs.

Several models run in turn: each model's call waits on the previous one's
signal fence, so its loads overlap the previous model's compute.  Memory is
what the compiler laid out (preload + arena + mapped tables per model), checked
against the budget before anything is allocated: a run cannot exceed what the
compiler accepted.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

import numpy as np

from texflow.errors import TexflowError

from .run_common import (ArchiveFiles, Event, RunStats, _allocator_counts_of, _pread_exact,
                         allocator_peak_since, check_chain, map_archive_entry)
from .model import format_bytes, parse_bytes
from .program import StreamedModel


def is_fenced(model: StreamedModel) -> bool:
    return model.program.get("mode") == "fenced"


class _Model:
    """One fenced model's buffers, fences and function."""

    def __init__(self, session: "FencedSession", m: StreamedModel, module):
        rt = session._rt
        self.m, self.module, self.prog = m, module, m.program
        self.fn = module.vm_module.lookup_function(self.prog["function"])
        if self.fn is None:
            raise TexflowError(f"{m.name} has no function {self.prog['function']}")
        self.groups = {g["id"]: g for g in self.prog["groups"]}
        self.release_stages = list(self.prog["release_stages"])
        dev = session.device
        self.buffers, self.host = {}, {}
        for region in ("preload", "arena"):
            n = int(self.prog[f"{region}_bytes"])
            if n:
                self.buffers[region], self.host[region] = session._alloc_mapped(n)
        self.mapped_views, self._mmaps = {}, []
        for g in self.prog["groups"]:
            if g["region"] == "mapped":
                for key in g["keys"]:
                    self.mapped_views[key] = map_archive_entry(session.device, m, key, self._mmaps)
        self.ready = dev.create_semaphore(0)
        self.release = {s: dev.create_semaphore(0) for s in self.release_stages}
        self.done = dev.create_semaphore(0)
        self.verified: set[int] = set()

    def load_group(self, g: dict, fd: int, verify: bool) -> int:
        host = self.host[g["region"]]
        n = 0
        for key in g["keys"]:
            e = self.m.entries[key]
            off = int(g["offsets"][key])
            view = host[off:off + e.length]
            if verify and g["id"] not in self.verified:
                # checked in host memory, then copied: the mapped buffer may be device memory
                # behind the PCIe BAR, whose reads are uncached (hashing it there took 5.7 s
                # for ResNet-50's 69 MB on an H200: the "first-run stall" of issue 19)
                tmp = np.empty(e.length, np.uint8)
                _pread_exact(fd, tmp, e.offset, self.m.archive_path, key)
                if hashlib.sha256(memoryview(tmp)).hexdigest() != e.sha256:
                    raise TexflowError(f"{self.m.archive_path}: weight '{key}' fails its sha256 "
                                       "check (corrupt file)")
                view[:] = tmp
            else:
                _pread_exact(fd, view, e.offset, self.m.archive_path, key)
            n += e.length
        self.verified.add(g["id"])
        return n


class FencedSession(ArchiveFiles):
    """Run fenced streamed modules in sequence (the `StreamingSession` interface)."""

    def __init__(self, models: list[StreamedModel], memory_budget=None, driver: str = "local-task",
                 policy: str = "plan", time_limit: float = 5.0, verify: bool = True, config=None):
        import iree.runtime as rt
        from texflow.runtime import Module

        if policy != "plan":
            raise TexflowError(f"a fenced streamed module runs its compile-time plan (policy "
                               f"'{policy}' needs a module compiled with --stream-mode=segments)")
        if not all(is_fenced(m) for m in models):
            raise TexflowError("fenced and segmented streamed modules cannot run in one session")
        self._rt = rt
        self.models = models
        self.policy, self.verify, self.driver = policy, verify, driver
        check_chain(models)
        compile_budget = max(m.program["budget_bytes"] for m in models)
        self.budget = parse_bytes(memory_budget) if memory_budget is not None else compile_budget
        self.weights_bytes = sum(m.program["preload_bytes"] + m.program["arena_bytes"] +
                                 m.program["mapped_bytes"] for m in models)
        self.act_bytes = max(m.program["act_bytes"] for m in models)
        need = self.weights_bytes + self.act_bytes
        if need > self.budget:
            raise TexflowError(
                f"memory budget {format_bytes(self.budget)} is below the {format_bytes(need)} "
                f"these modules were laid out for ({format_bytes(self.weights_bytes)} of weight "
                f"buffers + {format_bytes(self.act_bytes)} of activations)")
        self._alloc_base = None
        if driver != "vulkan":
            try:
                self._alloc_base = _allocator_counts_of(rt.get_first_device([driver]))
            except (RuntimeError, ValueError):
                pass
        self.modules = []
        for m in models:
            self.modules.append(Module(m.vmfb_path if not self.modules else m.vmfb, driver=driver,
                                       config=self.modules[0].config if self.modules else config))
        self.device = self.modules[0].device
        self.memory_type = None
        self._fds = [os.open(m.archive_path, os.O_RDONLY) for m in models]
        self.state = [_Model(self, m, mod) for m, mod in zip(models, self.modules)]
        self.run_no = 0
        self.last: RunStats | None = None
        t0 = time.perf_counter()
        for st, fd in zip(self.state, self._fds):
            for g in st.prog["groups"]:
                if g["region"] == "preload":
                    st.load_group(g, fd, verify)
        self.preload_s = time.perf_counter() - t0

    # -- buffers ------------------------------------------------------------------
    def _alloc_mapped(self, nbytes: int):
        """A device buffer the host writes into, kept mapped: device-local and host-visible
        where the device has such memory, else host memory the device reads."""
        from texflow.runtime import allocate_mapped
        rt = self._rt
        buf = allocate_mapped(self.device, nbytes,
                              (rt.MemoryType.DEVICE_LOCAL | rt.MemoryType.HOST_VISIBLE,
                               rt.MemoryType.HOST_LOCAL | rt.MemoryType.DEVICE_VISIBLE),
                              rt.BufferUsage.DEFAULT | rt.BufferUsage.MAPPING)
        if buf is None:
            raise TexflowError(f"cannot allocate a {format_bytes(nbytes)} host-writable weight "
                               "buffer on this device")
        self.memory_type = self.memory_type or int(buf.memory_type())
        mapping = buf.map()
        host = mapping.asarray([nbytes], np.dtype(np.uint8))
        return (buf, mapping), host

    # -- running ------------------------------------------------------------------
    def _args(self, st: _Model, r: int, xs: list, wait):
        """The VM argument list of run `r` (fences at this run's values)."""
        rt = self._rt
        lst = rt.VmVariantList(len(st.prog["args"]))
        base = r * (len(st.prog["waves"]) + 1)
        for a in st.prog["args"]:
            kind = a[0]
            if kind == "input":
                lst.push_ref(xs[a[1]])
            elif kind == "wait":
                lst.push_ref(wait)
            elif kind == "signal":
                lst.push_ref(rt.HalFence.create_at(st.done, r))
            elif kind == "buffer":
                lst.push_ref(st.buffers[a[1]][0])
            elif kind == "mapped":
                lst.push_ref(st.mapped_views[a[1]])
            elif kind == "ready":
                lst.push_ref(rt.HalFence.create_at(st.ready, base + a[1] + 1))
            elif kind == "release":
                lst.push_ref(rt.HalFence.create_at(st.release[a[1]], r))
            else:
                raise TexflowError(f"{st.m.name}: unknown argument kind '{kind}'")
        return lst

    def _loader(self, r: int, events: list, errors: list) -> None:
        try:
            for st, fd in zip(self.state, self._fds):
                base = r * (len(st.prog["waves"]) + 1)
                for w in st.prog["ready_waves"]:  # a wave's fence: all of its groups loaded
                    for gid in st.prog["waves"][w]["groups"]:
                        g = st.groups[gid]
                        for j in g["after"]:  # the groups whose bytes this one overwrites
                            st.release[st.groups[j]["release_stage"]].wait(r)
                        t0 = time.perf_counter()
                        n = st.load_group(g, fd, self.verify)
                        events.append(Event("load", f"{st.m.name}:g{g['id']}", t0,
                                            time.perf_counter(), n))
                    st.ready.signal(base + w + 1)
        except BaseException as e:  # the device must not wait for ever: fail the fences
            errors.append(e)
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            for st in self.state:
                st.ready.fail(msg)

    def run(self, *inputs) -> list[np.ndarray]:
        rt = self._rt
        inputs = self.check_inputs(inputs)
        self.run_no += 1
        r = self.run_no
        stats = RunStats()
        events = stats.events
        errors: list = []
        t_start = time.perf_counter()
        xs = [rt.asdevicearray(self.device, a)._buffer_view for a in inputs]
        loader = threading.Thread(target=self._loader, args=(r, events, errors), daemon=True)
        loader.start()
        wait = rt.HalFence(1)  # inputs are on the device already: an empty fence is signalled
        outs = None
        try:
            for st in self.state:
                ret = rt.VmVariantList(len(st.prog["output_types"]))
                t0 = time.perf_counter()
                try:
                    st.module.context.vm_context.invoke(st.fn, self._args(st, r, xs, wait), ret)
                except (RuntimeError, ValueError) as e:
                    raise TexflowError(f"{st.prog['function']} failed: "
                                       f"{str(e).splitlines()[0]}") from None
                xs = [ret.get_as_object(i, rt.HalBufferView) for i in range(len(ret))]
                wait = rt.HalFence.create_at(st.done, r)
                events.append(Event("compute", f"{st.m.name}:enqueue", t0, time.perf_counter()))
            t0 = time.perf_counter()
            try:
                wait.wait()
            except (RuntimeError, ValueError) as e:
                loader.join()
                if errors:
                    raise errors[0] if isinstance(errors[0], TexflowError) else \
                        TexflowError(str(errors[0])) from None
                raise TexflowError(f"{self.state[-1].prog['function']} failed: "
                                   f"{str(e).splitlines()[0]}") from None
            events.append(Event("compute", f"{self.state[-1].m.name}:device", t0,
                                time.perf_counter()))
            loader.join()
            if errors:
                raise errors[0] if isinstance(errors[0], TexflowError) else TexflowError(str(errors[0]))
            outs = [self.modules[-1].to_numpy(rt.DeviceArray(self.device, v)) for v in xs]
        finally:
            loader.join()
        stats.latency_s = time.perf_counter() - t_start
        stats.stall_s = None  # the device waits on the fences: not observable from the host
        stats.compute_s = sum(e.t1 - e.t0 for e in events if e.kind == "compute")
        stats.loaded_bytes = sum(e.bytes for e in events if e.kind == "load")
        # one accounting with the compiler: weight buffers + the laid-out activations (which
        # cover the inputs and outputs the session holds)
        held = sum(a.nbytes for a in inputs) + sum(o.nbytes for o in outs)
        stats.peak_accounted = self.weights_bytes + max(self.act_bytes, held)
        stats.allocator_peak = self.allocator_peak()
        for e in events:
            e.t0 -= t_start
            e.t1 -= t_start
        self.last = stats
        return outs

    def allocator_peak(self) -> int | None:
        return allocator_peak_since(self.device, self.driver, self._alloc_base)

    def summary(self) -> dict:
        s = self.last
        groups = [g for st in self.state for g in st.prog["groups"]]
        return {
            "policy": self.policy, "mode": "fenced", "budget_bytes": self.budget,
            "weight_bytes": sum(g["bytes"] for g in groups),
            "preloaded_bytes": sum(g["bytes"] for g in groups if g["region"] == "preload"),
            "streamed_bytes": sum(g["bytes"] for g in groups if g["region"] == "arena"),
            "arena_bytes": sum(st.prog["arena_bytes"] for st in self.state),
            "weight_buffer_bytes": self.weights_bytes,
            "segments": len(self.state), "plan_status": "compile-time",
            "planned_peak_bytes": self.weights_bytes + self.act_bytes,
            "preload_s": self.preload_s, "memory_type": self.memory_type,
            **({} if s is None else {
                "latency_s": s.latency_s, "stall_s": s.stall_s, "compute_s": s.compute_s,
                "loaded_bytes": s.loaded_bytes, "peak_accounted_bytes": s.peak_accounted,
                "allocator_peak_bytes": s.allocator_peak}),
        }

    def trace(self) -> dict:
        """The last run's measured events (`texflow.wstream.trace/1`): loads on the loader
        thread, each model's enqueue and the wait for the device."""
        import dataclasses
        if self.last is None:
            raise TexflowError("no run to trace yet")
        return {
            "format": "texflow.wstream.trace/1",
            "models": [m.name for m in self.models],
            "summary": self.summary(),
            "chunk_bytes": 0, "chunk_s": 0.0,  # the plan's load chunks are not in the module
            "groups": [{"id": g["id"], "bytes": g["bytes"], "preload": g["region"] != "arena",
                        "first_segment": g["first_stage"], "last_segment": g["last_stage"]}
                       for st in self.state for g in st.prog["groups"]],
            "plan": [{"segment": f"stage{i}", "compute_s": s["compute_s"], "loads": []}
                     for st in self.state for i, s in enumerate(st.prog["stages"])],
            "events": [dataclasses.asdict(e) for e in self.last.events],
        }


__all__ = ["FencedSession", "is_fenced"]
