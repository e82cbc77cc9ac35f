"""The main job: compile the bundled example with plain IREE and with texflow,
run both side by side, and show what texflow changed.

    python -m texflow.demo [--targets llvm-cpu,vulkan-valhall] [--reps 50]

For each target: dispatches and pure data-movement dispatches (from IREE's
flow-level IR), compile time, latency (median of interleaved A/B runs in one
process, and the median of per-run ratios), and the largest difference from
the ONNX Runtime reference stored beside the model.  Vulkan runs on whatever
device the loader finds (Mesa's lavapipe on CPU-only machines: correct, but
far slower than llvm-cpu, so its timings only show that it runs).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# lavapipe: subgroup size 16 so Valhall-targeted modules are correct (read at driver start)
os.environ.setdefault("LP_NATIVE_VECTOR_WIDTH", "512")
os.environ.setdefault("MESA_SHADER_CACHE_DISABLE", "true")

import numpy as np  # noqa: E402

EXAMPLES = Path(__file__).parent / "examples"


def vulkan_available() -> bool:
    try:
        import iree.runtime as rt
        return bool(rt.get_driver("vulkan").query_available_devices())
    except Exception:  # noqa: BLE001
        return False


def main(argv=None) -> int:
    from texflow.bench.harness import VARIANTS, compile_variant, run_modules, set_threads
    from texflow.targets import get_target

    ap = argparse.ArgumentParser(prog="python -m texflow.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(EXAMPLES / "example.onnx"))
    ap.add_argument("--targets", default="llvm-cpu,vulkan-valhall")
    ap.add_argument("--reps", type=int, default=50, help="timed runs per variant on llvm-cpu")
    ap.add_argument("--vulkan-reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="llvm-cpu worker threads")
    args = ap.parse_args(argv)

    model = Path(args.model)
    x = np.load(model.with_name(model.stem + "_input.npy"))
    ref = [np.load(model.with_name(model.stem + "_ref.npy"))]
    set_threads(args.threads)
    print(f"model: {model.name}  input {'x'.join(map(str, x.shape))}  (reference: ONNX Runtime)")
    rows, stats = [], {}
    for target in args.targets.split(","):
        t = get_target(target)
        if t.driver == "vulkan" and not vulkan_available():
            print(f"{target}: skipped (no Vulkan device; apt-get install mesa-vulkan-drivers)")
            continue
        compiled = {v: compile_variant(model, target, VARIANTS[v]) for v in ("plain", "texflow")}
        stats = compiled["texflow"]["statistics"] or stats
        reps = args.reps if t.driver == "local-task" else args.vulkan_reps
        runs = run_modules({v: c["vmfb"] for v, c in compiled.items()}, t.driver, [x], ref, reps)
        for v, c in compiled.items():
            r = runs[v]
            rows.append((target, v, c["flow"]["dispatches"], c["flow"]["data_movement"],
                         c["compile_s"], r.get("median_ms"), r.get("ratio_vs_plain"),
                         r.get("max_abs"), r.get("error")))

    print()
    hdr = f"{'target':15s} {'variant':8s} {'dispatches':>10s} {'data-mov.':>9s} {'compile s':>9s} " \
          f"{'median ms':>10s} {'vs plain':>8s} {'max |diff|':>10s}"
    print(hdr)
    print("-" * len(hdr))
    ok = True
    for target, v, nd, ndm, cs, med, ratio, diff, err in rows:
        if err:
            print(f"{target:15s} {v:8s} ERROR {err}")
            ok = False
            continue
        good = diff is not None and diff < 1e-3
        ok &= good
        print(f"{target:15s} {v:8s} {nd:10d} {ndm:9d} {cs:9.2f} {med:10.3f} "
              f"{(f'{ratio:.2f}x' if ratio else '-'):>8s} {diff:10.2e}{'' if good else '  MISMATCH'}")
    if stats:
        print("\nwhat texflow's layout phase did:")
        for p, s in stats.items():
            for k, n in s.items():
                print(f"  {p}: {n} {k}")
    print("\n'vs plain' is the median of per-run time ratios texflow/plain (below 1 is faster);"
          " lavapipe timings are not performance figures.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
