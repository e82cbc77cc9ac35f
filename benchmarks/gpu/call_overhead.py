"""Where a Vulkan call's time goes outside the kernels (issue 20, item 5).

    here:    python3 benchmarks/gpu/call_overhead.py prepare .gpu/calls [--models mobilenetv2]
    device:  python3 benchmarks/gpu/call_overhead.py measure .gpu/calls OUT --reps 200

`prepare` compiles, for vulkan-nvidia, a one-op module (1x1000 add) twice: as is, and with an
output-storage argument (`iree.abi.output = 0`, IREE's ABI for "write result 0 into this
buffer"); and texflow's build of each model, whose `main_graph$into` is that form
(texflow-abi-output-storage). `measure` times one call in several ways,
interleaved, on one device:

- `module`: texflow.runtime.Module as a user calls it: numpy in, numpy out (since texflow's
  `_IOBuffers`, through mapped inputs and the output storage where the module has it).
- `iree-invoker`: IREE's Python function invoker, as texflow.runtime called it before:
  inputs uploaded, results read back through a staging buffer made per call.
- `invoke`: the input already on the device, the result left there. This is the call's own
  submission and wait.
- `upload+invoke`: numpy in (IREE's function invoker uploads it), the result left on the device.
- `invoke+readback`: device input; the result copied to a host buffer made once, then read.
- `mapped-in+readback`: the input written by the host into a device-local, host-visible buffer
  made once (no upload submission), then as `invoke+readback`.
- `mapped-in+out-arg`: the same input, and the output-storage module writing its result into a
  host-local buffer made once and kept mapped. One submission per call in all.

Each call's outputs are checked against `module`'s. `iree-benchmark-module`'s figure for the same
function is reported beside them, when the runtime wheel has it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ONE_OP = """
func.func @main(%x: tensor<1x1000xf32>) -> tensor<1x1000xf32> {
  %c = arith.constant dense<1.5> : tensor<1x1000xf32>
  %r = arith.addf %x, %c : tensor<1x1000xf32>
  return %r : tensor<1x1000xf32>
}
"""


def with_output_arg(mlir: str) -> str:
    """The same module, its public function taking storage for result 0 as a last `!hal.buffer`
    argument.  Before IREE's ABI wrapping that is the argument attribute `iree.abi.output`;
    after it (texflow's modules come out of the input phase wrapped) the `$async` function
    aliases its result to the storage (`hal.tensor.alias`, as IREE's wrapper would) and the
    synchronous wrapper passes it through."""
    if "iree.abi.stub" not in mlir:
        m = re.search(r"func\.func @(\w+)\(([^)]*)\) ->", mlir)
        return mlir[:m.end(2)] + ", %out_storage: !hal.buffer {iree.abi.output = 0 : index}" + \
            mlir[m.end(2):]
    m = re.search(r"(util\.func public @\w+\$async\(%arg0[^)]*)\)", mlir)
    mlir = mlir[:m.end(1)] + ", %out_storage: !hal.buffer" + mlir[m.end(1):]
    b = re.search(r"(%\w+) = hal\.tensor\.barrier join\((%\w+) : (tensor<[^>]*>)\) => (%\w+) : !hal\.fence", mlir)
    alias = f"%out_alias = hal.tensor.alias {b.group(2)} : {b.group(3)} to %out_storage : !hal.buffer\n    "
    mlir = mlir[:b.start()] + alias + \
        f"{b.group(1)} = hal.tensor.barrier join(%out_alias : {b.group(3)}) => {b.group(4)} : !hal.fence" + \
        mlir[b.end():]
    w = re.search(r"(util\.func public @(\w+)\(%arg0: !hal\.buffer_view)\)", mlir)
    mlir = mlir[:w.end(1)] + ", %out_storage: !hal.buffer" + mlir[w.end(1):]
    c = re.search(r"(util\.call @\w+\$async\(%arg0, %\w+, %\w+)\) : \(([^)]*)\)", mlir)
    mlir = mlir[:c.start()] + c.group(1) + ", %out_storage) : (" + c.group(2) + ", !hal.buffer)" + \
        mlir[c.end():]
    return mlir


def prepare(a) -> int:
    from texflow.compiler import CompileOptions, Compiler
    from texflow.targets import get_target
    d = Path(a.dir)
    d.mkdir(parents=True, exist_ok=True)
    flags = list(get_target(a.target).flags)
    manifest = {"target": a.target, "modules": {}}
    srcs = {"oneop": ONE_OP}
    from texflow.bench import models
    for n in [x for x in a.models.split(",") if x]:
        # texflow's own compile: `main_graph` and, from texflow-abi-output-storage,
        # `main_graph$into` (results into caller storage) in one module
        cm = models.build(n)
        vmfb = Compiler(CompileOptions(target=a.target)).compile_file(str(cm.onnx_path)).vmfb
        (d / f"{n}.vmfb").write_bytes(vmfb)
        manifest["modules"][n] = {"plain": f"{n}.vmfb", "outarg": f"{n}.vmfb",
                                  "outarg_suffix": "$into"}
        np.savez(d / f"{n}.inputs.npz", **{f"in{i}": x for i, x in enumerate(cm.inputs())})
    for n, text in srcs.items():
        for kind, src in (("plain", text), ("outarg", with_output_arg(text))):
            p = d / f"{n}.{kind}.mlir"
            p.write_text(src)
            out = d / f"{n}.{kind}.vmfb"
            subprocess.run(["iree-compile", str(p), "-o", str(out), *flags], check=True)
            p.unlink()
            manifest["modules"].setdefault(n, {})[kind] = out.name
    (d / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return 0


def measure(a) -> int:
    import iree.runtime as rt
    from texflow.runtime import Module
    d = Path(a.dir)
    man = json.loads((d / "manifest.json").read_text())
    out = {"device": None, "reps": a.reps, "models": {}}
    config = rt.Config("vulkan")
    dev = config.device
    MT, BU = rt.MemoryType, rt.BufferUsage
    for n, kinds in man["modules"].items():
        if (d / f"{n}.inputs.npz").exists():
            with np.load(d / f"{n}.inputs.npz") as z:
                xs = [z[f"in{i}"] for i in range(len(z.files))]
        else:
            xs = [np.linspace(-1, 1, 1000, dtype=np.float32).reshape(1, 1000)]
        mod = Module(str(d / kinds["plain"]), driver="vulkan", config=config)
        om = Module(str(d / kinds["outarg"]), driver="vulkan", config=config)
        out["device"] = mod.device_name()
        fname = mod.function_names[0]
        ctx, fn = mod.context.vm_context, mod.vm_module.lookup_function(fname)
        octx = om.context.vm_context
        ofn = om.vm_module.lookup_function(fname + kinds.get("outarg_suffix", ""))
        ref = mod(*xs)
        et = [rt.HalElementType.FLOAT_32 if x.dtype == np.float32 else rt.HalElementType.SINT_64
              for x in xs]
        dev_in = [dev.allocator.allocate_buffer_copy(memory_type=int(MT.DEVICE_LOCAL),
                                                     allowed_usage=int(BU.DEFAULT), device=dev,
                                                     buffer=x, element_type=t)
                  for x, t in zip(xs, et)]
        mapped, mapped_views, keep = [], [], []
        for x, t in zip(xs, et):
            b = dev.allocator.allocate_buffer(memory_type=int(MT.DEVICE_LOCAL | MT.HOST_VISIBLE),
                                              allowed_usage=int(BU.DEFAULT | BU.MAPPING),
                                              allocation_size=x.nbytes)
            mp = b.map()
            keep.append((b, mp))
            mapped.append(mp.asarray(list(x.shape), x.dtype))
            mapped_views.append(rt.HalBufferView(b, list(x.shape), t))
        oshape, odt = list(ref[0].shape), ref[0].dtype
        host_out = dev.allocator.allocate_buffer(
            memory_type=int(MT.HOST_LOCAL | MT.DEVICE_VISIBLE),
            allowed_usage=int(BU.DEFAULT | BU.MAPPING), allocation_size=ref[0].nbytes)
        host_map = host_out.map()
        host_arr = host_map.asarray(oshape, odt)
        sem = dev.create_semaphore(0)
        tick = [0]

        def call(c, f, views):
            args = rt.VmVariantList(len(views))
            for v in views:
                args.push_ref(v)
            ret = rt.VmVariantList(1)
            c.invoke(f, args, ret)
            return ret.get_as_ref(0).deref(rt.HalBufferView)

        def readback(bv):
            tick[0] += 1
            dev.queue_copy(bv.get_buffer(), host_out,
                           wait_semaphores=rt.HalFence.create_at(sem, tick[0] - 1),
                           signal_semaphores=rt.HalFence.create_at(sem, tick[0]))
            rt.HalFence.create_at(sem, tick[0]).wait()
            return np.array(host_arr)

        def mapped_in():
            for m, x in zip(mapped, xs):
                m[...] = x
            return mapped_views

        fns = {
            "module": lambda: mod(*xs)[0],
            "iree-invoker": lambda: mod._staged_copy(
                mod.context.modules.module[fname](*xs)._buffer_view),
            "invoke": lambda: call(ctx, fn, dev_in),
            "upload+invoke": lambda: mod.context.modules.module[fname](*xs),
            "invoke+readback": lambda: readback(call(ctx, fn, dev_in)),
            "mapped-in+readback": lambda: readback(call(ctx, fn, mapped_in())),
            "mapped-in+out-arg": lambda: (call(octx, ofn, mapped_in() + [host_out]),
                                          np.array(host_arr))[1],
        }
        res = {}
        for k in ("module", "iree-invoker", "invoke+readback", "mapped-in+readback",
                  "mapped-in+out-arg"):
            got = fns[k]()
            res[k] = {"max_abs_vs_module": float(np.max(np.abs(np.asarray(got) - ref[0])))}
        for k in ("invoke", "upload+invoke"):
            res[k] = {}
        ts = {k: [] for k in fns}
        for _ in range(3):
            for f in fns.values():
                f()
        for _ in range(a.reps):
            for k, f in fns.items():
                t0 = time.perf_counter()
                f()
                ts[k].append(time.perf_counter() - t0)
        for k, v in ts.items():
            res[k]["median_ms"] = statistics.median(v) * 1e3
            res[k]["ratio_vs_module"] = statistics.median(x / y for x, y in zip(v, ts["module"]))
        res["iree-benchmark-module"] = _ibm(d / kinds["plain"], fname, xs, d, n)
        out["models"][n] = res
        print(n, json.dumps({k: round(v.get("median_ms", 0), 3) for k, v in res.items()
                             if isinstance(v, dict)}), flush=True)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "call_overhead.json").write_text(json.dumps(out, indent=1))
    return 0


def _ibm(vmfb: Path, fname: str, xs, d: Path, n: str) -> dict:
    import shutil
    exe = shutil.which("iree-benchmark-module")
    if not exe:
        return {"error": "iree-benchmark-module not found"}
    ins = []
    for i, x in enumerate(xs):
        p = d / f"{n}.in{i}.npy"
        np.save(p, x)
        ins.append(f"--input=@{p}")
    p = subprocess.run([exe, f"--module={vmfb}", "--device=vulkan", f"--function={fname}", *ins,
                        "--benchmark_repetitions=5", "--benchmark_format=json"],
                       capture_output=True, text=True)
    try:
        js = json.loads(p.stdout)
        med = [b for b in js["benchmarks"] if b.get("aggregate_name") == "median"]
        return {"median_ms": med[0]["real_time"] if med[0]["time_unit"] == "ms"
                else med[0]["real_time"] / 1e6 if med[0]["time_unit"] == "ns"
                else med[0]["real_time"] / 1e3}
    except (ValueError, KeyError, IndexError):
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:200]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("dir")
    pp.add_argument("--models", default="mobilenetv2")
    pp.add_argument("--target", default="vulkan-nvidia")
    pm = sub.add_parser("measure")
    pm.add_argument("dir")
    pm.add_argument("out")
    pm.add_argument("--reps", type=int, default=200)
    a = p.parse_args(argv)
    return prepare(a) if a.cmd == "prepare" else measure(a)


if __name__ == "__main__":
    sys.exit(main())
