"""Layout micro-cases and the bundled example on a real GPU through Vulkan.

    here:   python benchmarks/gpu/micro.py prepare .gpu/micro      (compiles for vulkan-nvidia)
    device: python3 benchmarks/gpu/micro.py run .gpu/micro --out $OUT --reps 200

The device half needs only numpy and iree.runtime.  Plain IREE and texflow
modules of each case are loaded side by side, checked against the ONNX
Runtime reference computed here, and timed interleaved (the synchronous entry
point waits for the GPU; results stay on the device while timing).
"""

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PRODUCERS = ("texflow-verify-layout,texflow-raise-layout,"
             "texflow-eliminate-layout{fold-into-producers=true},texflow-lower-layout,"
             "texflow-verify-layout,canonicalize,cse")
# (name, layout phase on, layout pipeline or None for the default)
VARIANTS = (("plain", False, None), ("texflow", True, None), ("producers", True, PRODUCERS))


def prepare(d: Path):
    import onnx
    sys.path.insert(0, str(ROOT / "test" / "pytest"))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import onnx_models as om
    from layout_micro import CASES
    from texflow.bench.classify import summarize
    from texflow.compiler import CompileOptions, Compiler
    d.mkdir(parents=True, exist_ok=True)
    manifest = []
    for i, (name, make) in enumerate(CASES.items()):
        m = make()
        p = d / f"case{i}.onnx"
        onnx.save(m, p)
        x = om.random_inputs(m)
        np.savez(d / f"case{i}.inputs.npz", *x)
        np.savez(d / f"case{i}.ref.npz", *om.ort_reference(m, x))
        entry = {"case": name, "file": f"case{i}", "variants": {}}
        for v, layout, pipe in VARIANTS:
            kw = {"layout_pipeline": pipe} if pipe else {}
            c = Compiler(CompileOptions(target="vulkan-nvidia", layout=layout, **kw))
            (d / f"case{i}.{v}.vmfb").write_bytes(c.compile_file(str(p)).vmfb)
            flow = Compiler(CompileOptions(target="vulkan-nvidia", layout=layout, compile_to="flow",
                                           **kw)).compile_file(str(p)).mlir
            s = summarize(flow)
            entry["variants"][v] = {"dispatches": s.dispatches, "data_movement": s.data_movement}
        p.unlink()
        manifest.append(entry)
    (d / "manifest.json").write_text(json.dumps(manifest, indent=1))


def run(d: Path, out: Path, reps: int):
    sys.path.insert(0, str(ROOT / "python"))
    from texflow.runtime import Module
    manifest = json.loads((d / "manifest.json").read_text())
    rows = []
    for e in manifest:
        f = e["file"]
        with np.load(d / f"{f}.inputs.npz") as z:
            x = [z[k] for k in sorted(z.files)]
        with np.load(d / f"{f}.ref.npz") as z:
            ref = [z[k] for k in sorted(z.files)]
        mods, fns, row = {}, {}, {"case": e["case"]}
        for v in e["variants"]:
            m = Module(str(d / f"{f}.{v}.vmfb"), driver="vulkan")
            y = m(*x)
            row[f"{v}_max_abs"] = float(max(np.abs(a - b).max() for a, b in zip(y, ref)))
            fn = m.context.modules.module[m.resolve_function(None)]
            mods[v] = m
            fns[v] = (lambda fn=fn: fn(*x))
            row[f"{v}_dispatches"] = e["variants"][v]["dispatches"]
            row[f"{v}_data_movement"] = e["variants"][v]["data_movement"]
        for fn in fns.values():
            for _ in range(5):
                fn()
        times = {v: [] for v in fns}
        order = list(fns)
        for r in range(reps):
            for v in (order if r % 2 == 0 else order[::-1]):
                t0 = time.perf_counter()
                fns[v]()
                times[v].append(time.perf_counter() - t0)
        for v in fns:
            row[f"{v}_median_ms"] = statistics.median(times[v]) * 1e3
        for v in fns:
            if v != "plain":
                row[f"{v}_ratio"] = statistics.median(a / b for a, b in zip(times[v], times["plain"]))
        rows.append(row)
        print(row, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_micro.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(Path(sys.argv[2]))
    else:
        out = Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv else Path(".")
        reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 200
        run(Path(sys.argv[2]), out, reps)
