"""Running compiled modules on IREE's `local-task` and `vulkan` drivers.

Why this wrapper exists:
- IREE 3.13's `DeviceArray.to_host()` fails on Vulkan ("host allocation import
  pointer does not satisfy minImportedHostPointerAlignment 4096"): results are
  read back through a mappable staging buffer instead (`to_numpy`).
- A SPIR-V module compiled for a subgroup size other than the device's gives
  silently wrong reductions.  texflow-compile records the module's subgroup
  size; here it is compared with the device's and a mismatch is refused.  On
  Mesa's lavapipe the subgroup size follows LP_NATIVE_VECTOR_WIDTH (bits / 32),
  so texflow sets it for the module before the driver starts.
- Inputs are checked against the module's declared signature, so a wrong
  shape is a one-line error rather than an IREE abort.
- On Vulkan each call's host round trips are most of a small model's time (issue 20):
  IREE's function invoker allocates and uploads every input through a staging copy,
  and each result needs a copy into host memory and a wait.  Measured on an H200
  (benchmarks/gpu/h200/calls), a one-op call took 2.5 ms that way against 0.6 ms
  for the call alone.  So a texflow module's call on Vulkan (`_IOBuffers`) writes its
  inputs into device-local, host-visible buffers made once and kept mapped (no upload
  submission), and copies its results into host buffers made once, with one wait.
  Where the module has `X$into` (texflow-abi-output-storage, Vulkan targets), the
  results are written straight into host-local buffers instead: one submission a call.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from pathlib import Path

import numpy as np

from .errors import TexflowError
from .signature import DTYPES, TensorSpec, dtype_text, parse_input  # noqa: F401  (the runtime's API)

def lavapipe_subgroup(device_name: str) -> int | None:
    m = re.search(r"llvmpipe.*?(\d+) bits", device_name)
    return int(m.group(1)) // 32 if m else None


def device_subgroup_size(device_name: str) -> int | None:
    """Subgroup size of a Vulkan device from its name (None if unknown)."""
    lp = lavapipe_subgroup(device_name)
    if lp:
        return lp
    name = device_name.lower()
    for key, size in (("nvidia", 32), ("geforce", 32), ("adreno", 64), ("mali", 16),
                      ("radeon", 64), ("intel", 32)):
        if key in name:
            return size
    return None


class Module:
    """A compiled .vmfb loaded on a driver; call it with numpy arrays."""

    def __init__(self, vmfb: str | bytes, driver: str = "local-task",
                 allow_subgroup_mismatch: bool = False, config=None):
        """`config`: an `iree.runtime.Config` to share one device between modules (several
        Vulkan devices in one process slow each other down)."""
        import iree.runtime as rt
        self._rt = rt
        if isinstance(vmfb, (str, Path)):
            if not os.path.exists(vmfb):
                raise TexflowError(f"no such module: {vmfb}")
            path = str(vmfb)

            def load(instance):  # mapped, as iree-run-module does: no copy of the weights
                return rt.VmModule.mmap(instance, path)
        else:
            def load(instance):
                return rt.VmModule.copy_buffer(instance, vmfb)
        if driver not in ("local-task", "local-sync", "vulkan"):
            raise TexflowError(f"unknown driver '{driver}' (local-task, local-sync, vulkan)")
        self.driver = driver
        self.allow_subgroup_mismatch = allow_subgroup_mismatch
        # Parse the flatbuffer with a throwaway instance first so that the
        # module's subgroup size is known before the Vulkan driver starts.
        try:
            probe = load(rt.VmInstance())
        except (RuntimeError, ValueError) as e:
            raise TexflowError(f"not a valid IREE module: {str(e).splitlines()[0]}") from None
        # `X$async` and `X$into` (results into caller storage, texflow-abi-output-storage)
        # are other forms of `X`
        self.function_names = [n for n in probe.function_names
                               if n != "__init" and not n.endswith(("$async", "$into"))]
        # every function's reflection (a fenced streamed module has only `X$async`)
        self.reflection = {n: dict(probe.lookup_function(n).reflection)
                           for n in probe.function_names if n != "__init"}
        self.module_subgroup = max([int(r.get("texflow.subgroup_size", 0))
                                    for r in self.reflection.values()] or [0])
        self.target = next((r["texflow.target"] for r in self.reflection.values()
                            if "texflow.target" in r), None)
        if driver == "vulkan":
            self._prepare_vulkan_env()
        try:
            self.config = config or rt.Config(driver)
        except (RuntimeError, ValueError) as e:
            raise TexflowError(f"cannot start driver '{driver}': {str(e).splitlines()[0]}") from None
        self.device = self.config.device
        if driver == "vulkan":
            self._check_subgroup()
        elif self.target and self.target.startswith("vulkan"):
            raise TexflowError(f"module was compiled for {self.target}; run it with --device=vulkan")
        self._io: dict[str, _IOBuffers] = {}
        try:
            self.vm_module = load(self.config.vm_instance)
            self.context = rt.SystemContext(vm_modules=[self.vm_module], config=self.config)
        except (RuntimeError, ValueError) as e:
            raise TexflowError(f"cannot load module on {driver}: {str(e).splitlines()[0]}") from None

    # -- Vulkan subgroup handling ------------------------------------------
    def _prepare_vulkan_env(self):
        if self.module_subgroup and "LP_NATIVE_VECTOR_WIDTH" not in os.environ:
            # Only lavapipe reads these; a real GPU ignores them.
            os.environ["LP_NATIVE_VECTOR_WIDTH"] = str(max(4, self.module_subgroup) * 32)
            os.environ["MESA_SHADER_CACHE_DISABLE"] = "true"

    def device_name(self) -> str:
        try:
            devs = self._rt.get_driver("vulkan").query_available_devices()
            return devs[0]["name"] if devs else ""
        except (RuntimeError, ValueError):
            return ""

    def _check_subgroup(self):
        if not self.module_subgroup:
            return
        name = self.device_name()
        dev = device_subgroup_size(name)
        if dev is None:
            warnings.warn(f"cannot tell the subgroup size of Vulkan device '{name}'; the module "
                          f"assumes {self.module_subgroup}: reductions may be wrong if they differ")
            return
        if dev != self.module_subgroup:
            if self.allow_subgroup_mismatch:
                warnings.warn(f"subgroup size mismatch: module {self.module_subgroup}, device {dev}")
                return
            raise TexflowError(
                f"module compiled for {self.target} assumes subgroup size {self.module_subgroup} but "
                f"device '{name}' has {dev}: results would be silently wrong"
                + (f" (lavapipe: set LP_NATIVE_VECTOR_WIDTH={self.module_subgroup * 32})"
                   if lavapipe_subgroup(name) else ""))

    # -- calling -------------------------------------------------------------
    def signature(self, function: str) -> tuple[list[TensorSpec], list[TensorSpec]]:
        r = self.reflection.get(function, {})
        ins = [TensorSpec.parse(t) for t in r.get("texflow.inputs", "").split(",") if t]
        outs = [TensorSpec.parse(t) for t in r.get("texflow.outputs", "").split(",") if t]
        return ins, outs

    def resolve_function(self, function: str | None) -> str:
        if function is None:
            if len(self.function_names) != 1:
                raise TexflowError("module has several entry points "
                                   f"({', '.join(self.function_names)}): pass --function")
            return self.function_names[0]
        if function not in self.function_names:
            raise TexflowError(f"no function '{function}' in module "
                               f"(has: {', '.join(self.function_names)})")
        return function

    def check_inputs(self, function: str, inputs) -> None:
        ins, _ = self.signature(function)
        if not ins:
            return  # module not compiled by texflow: IREE checks what it can
        if len(inputs) != len(ins):
            raise TexflowError(f"{function} takes {len(ins)} input(s), got {len(inputs)}")
        for i, (spec, a) in enumerate(zip(ins, inputs)):
            if not spec.matches(a):
                raise TexflowError(f"input {i} of {function}: expected {spec}, got "
                                   f"{dtype_text(a)}")

    def __call__(self, *inputs, function: str | None = None) -> list[np.ndarray]:
        fn_name = self.resolve_function(function)
        inputs = [np.ascontiguousarray(a) for a in inputs]
        self.check_inputs(fn_name, inputs)
        if self.driver == "vulkan" and _IOBuffers.fits(self.signature(fn_name)[0]):
            io = self._io.get(fn_name)
            if io is None:
                io = self._io[fn_name] = _IOBuffers(self, fn_name)
            return io.call(inputs)
        fn = self.context.modules.module[fn_name]
        try:
            results = fn(*inputs)
        except (RuntimeError, ValueError) as e:
            raise TexflowError(f"{fn_name} failed: {str(e).splitlines()[0]}") from None
        if not isinstance(results, (tuple, list)):
            results = [results]
        return [self.to_numpy(r) for r in results]

    def to_numpy(self, r) -> np.ndarray:
        """Device array -> numpy, with a staging copy where to_host() cannot import."""
        if isinstance(r, np.ndarray) or np.isscalar(r):
            return np.asarray(r)
        if self.driver != "vulkan":
            return np.array(r.to_host())
        return self._staged_copy(r._buffer_view)

    def _staged_copy(self, bv) -> np.ndarray:
        rt = self._rt
        src = bv.get_buffer()
        dev = self.device
        host = dev.allocator.allocate_buffer(
            memory_type=int(rt.MemoryType.HOST_LOCAL | rt.MemoryType.DEVICE_VISIBLE),
            allowed_usage=int(rt.BufferUsage.TRANSFER_TARGET | rt.BufferUsage.MAPPING_SCOPED),
            allocation_size=src.byte_length())
        sem = dev.create_semaphore(0)
        dev.queue_copy(src, host, wait_semaphores=rt.HalFence.create_at(sem, 0),
                       signal_semaphores=rt.HalFence.create_at(sem, 1))
        rt.HalFence.create_at(sem, 1).wait()
        dtype = rt.HalElementType.map_to_dtype(bv.element_type)
        return np.array(host.map().asarray(bv.shape, dtype))  # copy: the mapping dies with `host`


def allocate_mapped(device, nbytes: int, memory_types, usage):
    """A buffer of the first of `memory_types` that `device` can allocate with `usage`, or None
    (Vulkan devices differ in which host-visible memory they have)."""
    for mt in memory_types:
        try:
            return device.allocator.allocate_buffer(memory_type=int(mt), allowed_usage=int(usage),
                                                    allocation_size=nbytes)
        except (RuntimeError, ValueError):
            continue
    return None


class _IOBuffers:
    """One function's inputs and results on Vulkan, in buffers made once per module.

    Inputs: device-local, host-visible buffers (the PCIe BAR where the device has one, else
    host memory the device reads), kept mapped; a call copies the numpy inputs in, so no
    upload is submitted.  Results: one host buffer per result, kept mapped; the call's results
    are copied into them with one submission per result and a single wait, then copied out to
    numpy.  The synchronous entry point returns only when the device is done, so the next
    call may overwrite the inputs.  A lock keeps two threads from sharing the buffers."""

    @staticmethod
    def fits(ins: list[TensorSpec]) -> bool:
        """Static shapes and numpy-typed inputs only (others go through IREE's invoker)."""
        return bool(ins) and all(DTYPES.get(t.dtype) is not None and
                                 all(d is not None for d in t.shape) for t in ins)

    def __init__(self, module: "Module", fn_name: str):
        rt = module._rt
        from iree.runtime.array_interop import map_dtype_to_element_type
        self.rt, self.module = rt, module
        self.device = module.device
        self.fn = module.vm_module.lookup_function(fn_name)
        self.name = fn_name
        self.lock = threading.Lock()
        ins, outs = module.signature(fn_name)
        self.inputs = []  # (buffer, mapping, array, view)
        for spec in ins:
            dt = np.dtype(DTYPES[spec.dtype])
            buf = self._alloc(spec, (rt.MemoryType.DEVICE_LOCAL | rt.MemoryType.HOST_VISIBLE,
                                     rt.MemoryType.HOST_LOCAL | rt.MemoryType.DEVICE_VISIBLE))
            mapping = buf.map()
            arr = mapping.asarray(list(spec.shape) or [1], dt)  # a 0-d input: its one element
            view = rt.HalBufferView(buf, list(spec.shape), map_dtype_to_element_type(dt))
            self.inputs.append((buf, mapping, arr, view))
        self.outputs: list = []  # (buffer, mapping, nbytes) per result, made on first use
        self.sem = self.device.create_semaphore(0)
        self.tick = 0
        # A module compiled with texflow-abi-output-storage has `X$into`: its results are
        # written into host-local buffers given here, kept mapped (no copy, no second wait).
        self.storage = None
        into = module.vm_module.lookup_function(fn_name + "$into") \
            if fn_name + "$into" in module.reflection else None
        if into is not None and outs and _IOBuffers.fits(outs):
            self.fn, self.storage = into, []
            for spec in outs:
                buf = self._alloc(spec, (rt.MemoryType.HOST_LOCAL | rt.MemoryType.DEVICE_VISIBLE,))
                self.storage.append((buf, buf.map(), list(spec.shape), np.dtype(DTYPES[spec.dtype])))

    def _alloc(self, spec: TensorSpec, memory_types):
        """A mappable buffer for tensor `spec`, of the first of `memory_types` the device has."""
        nbytes = max(int(np.prod(spec.shape, dtype=np.int64)) * np.dtype(DTYPES[spec.dtype]).itemsize, 1)
        buf = allocate_mapped(self.device, nbytes, memory_types,
                              self.rt.BufferUsage.DEFAULT | self.rt.BufferUsage.MAPPING)
        if buf is None:
            raise TexflowError(f"cannot allocate a {nbytes}-byte host-mapped buffer on this device")
        return buf

    def call(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        rt = self.rt
        with self.lock:
            args = rt.VmVariantList(len(self.inputs))
            for (buf, mapping, arr, view), x in zip(self.inputs, inputs):
                arr[...] = x
                args.push_ref(view)
            for buf, *_ in self.storage or ():
                args.push_ref(buf)
            ret = rt.VmVariantList(4)
            try:
                self.module.context.vm_context.invoke(self.fn, args, ret)
            except (RuntimeError, ValueError) as e:
                raise TexflowError(f"{self.name} failed: {str(e).splitlines()[0]}") from None
            if self.storage is not None:  # the results are in the storage, the call is done
                return [np.array(m.asarray(shape, dt)) for _, m, shape, dt in self.storage]
            views = [ret.get_as_ref(i).deref(rt.HalBufferView) for i in range(len(ret))]
            start = self.tick
            for i, bv in enumerate(views):
                src = bv.get_buffer()
                n = src.byte_length()
                if i >= len(self.outputs) or self.outputs[i][2] < n:
                    host = allocate_mapped(self.device, n,
                                           (rt.MemoryType.HOST_LOCAL | rt.MemoryType.DEVICE_VISIBLE,),
                                           rt.BufferUsage.TRANSFER_TARGET | rt.BufferUsage.MAPPING_SCOPED)
                    if host is None:
                        raise TexflowError(f"cannot allocate a {n}-byte host buffer for result {i}")
                    entry = (host, host.map(), n)
                    if i < len(self.outputs):
                        self.outputs[i] = entry
                    else:
                        self.outputs.append(entry)
                self.tick += 1
                self.device.queue_copy(src, self.outputs[i][0],
                                       wait_semaphores=rt.HalFence.create_at(self.sem, self.tick - 1),
                                       signal_semaphores=rt.HalFence.create_at(self.sem, self.tick))
            if self.tick > start:
                rt.HalFence.create_at(self.sem, self.tick).wait()
            outs = []
            for bv, (host, mapping, n) in zip(views, self.outputs):
                dtype = rt.HalElementType.map_to_dtype(bv.element_type)
                outs.append(np.array(mapping.asarray(list(bv.shape), dtype)))
            return outs


def run(vmfb, *inputs, driver="local-task", function=None) -> list[np.ndarray]:
    """One-shot helper: load `vmfb` and call its (single) entry point."""
    return Module(vmfb, driver=driver)(*inputs, function=function)
