"""Peak memory of plain IREE, IREE's data tiling and texflow on llvm-cpu (issue 8, item 2).

Why peak resident memory: IREE's data tiling packs constant weights at run time, in an
initializer, into new device allocations, while the module's own copy stays mapped; texflow
packs them at compile time, so the module holds one (packed) copy.  The allocator's statistics
see only the first kind of memory, so each variant is loaded and run once in a fresh child
process (module memory-mapped from its file, as `iree-run-module` does) and its peak resident
set (`VmHWM`) is read; a child that imports the runtime and loads nothing gives the
baseline, which is subtracted.

    python benchmarks/cpu-parity/memory.py --models gpt2,vit --out benchmarks/cpu-parity/memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

VARIANTS = {  # name -> CompileOptions keyword arguments
    "plain": {"layout": False},
    "plain+dt": {"layout": False, "iree_flags": ["--iree-opt-data-tiling"]},
    "texflow": {},
}

CHILD = r"""
import sys, numpy as np
import iree.runtime as rt
vmfb, inputs = sys.argv[1], sys.argv[2]
if vmfb != "-":
    rt.flags.parse_flags("--task_topology_max_group_count=1")
    cfg = rt.Config("local-task")
    ctx = rt.SystemContext(config=cfg)
    mod = rt.VmModule.mmap(ctx.instance, vmfb)
    ctx.add_vm_module(mod)
    entry = [n for n in mod.function_names if not n.startswith("__") and not n.endswith("$async")][0]
    f = ctx.modules.module[entry]
    data = np.load(inputs)
    out = f(*[data[k] for k in data.files])
    (out[0] if isinstance(out, (list, tuple)) else out).to_host()
# VmHWM, the peak resident set of this process image: getrusage's ru_maxrss would carry the
# compiling parent's peak across fork and exec
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""


def peak_rss_kib(vmfb: str, inputs: str) -> int:
    p = subprocess.run([sys.executable, "-c", CHILD, vmfb, inputs], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "child failed")
    return int(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="gpt2,vit,bert,mobilenetv2,resnet50")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from texflow.bench.models import build
    from texflow.compiler import CompileOptions, Compiler
    base = peak_rss_kib("-", "-")
    results = {"baseline_kib": base, "models": {}}
    with tempfile.TemporaryDirectory() as d:
        for name in args.models.split(","):
            mdir = str(build(name).dir)
            row = {}
            for v, kw in VARIANTS.items():
                try:
                    vmfb = Compiler(CompileOptions(target="llvm-cpu", **kw)).compile_file(
                        os.path.join(mdir, "model.onnx")).vmfb
                except Exception as e:  # noqa: BLE001
                    row[v] = {"error": str(e).splitlines()[0][:200]}
                    continue
                path = os.path.join(d, f"{name}.{v}.vmfb")
                with open(path, "wb") as f:
                    f.write(vmfb)
                try:
                    kib = peak_rss_kib(path, os.path.join(mdir, "inputs.npz"))
                    row[v] = {"vmfb_mb": round(len(vmfb) / 2**20, 1),
                              "peak_rss_mb": round((kib - base) / 1024, 1)}
                except RuntimeError as e:
                    row[v] = {"vmfb_mb": round(len(vmfb) / 2**20, 1), "error": str(e)[:200]}
                print(name, v, row[v], flush=True)
            results["models"][name] = row
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
