"""Layout micro-benchmarks: the patterns texflow's layout phase targets, plain IREE vs texflow.

    python benchmarks/layout_micro.py [--reps 200] [--threads 1]

Each case is a small ONNX graph at a realistic size; both variants are
compiled in-process, checked against ONNX Runtime, and timed interleaved on
llvm-cpu (medians and the median of per-run ratios).  Prints a Markdown
table and writes results/layout_micro.json.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test" / "pytest"))
import onnx_models as om  # noqa: E402

CASES = {
    "nhwc-elementwise 1x64x56x56": lambda: om.nhwc_elementwise(C=64, H=56),
    "transpose-reshape-transpose-matmul": lambda: om.transpose_reshape_chain(A=8, S=16, B=32, N=64),
    "patchify-matmul (ViT patch embed)": lambda: om.patchify(C=3, H=32, p=4, D=48),
    "attention S=64 D=128 H=4": lambda: om.attention(S=64, D=128, H=4),
    "example.onnx (bundled)": lambda: onnx.load(ROOT / "python/texflow/examples/example.onnx"),
}


def main():
    from texflow.bench.harness import VARIANTS, compile_variant, run_modules, set_threads
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    set_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name, make in CASES.items():
            m = make()
            path = Path(d) / "m.onnx"
            onnx.save(m, path)
            x = om.random_inputs(m)
            ref = om.ort_reference(m, x)
            comp = {v: compile_variant(path, "llvm-cpu", VARIANTS[v]) for v in ("plain", "texflow")}
            runs = run_modules({v: c["vmfb"] for v, c in comp.items()}, "local-task", x, ref, args.reps)
            rows.append({"case": name,
                         **{f"{v}_{k}": comp[v]["flow"][k] for v in comp for k in ("dispatches", "data_movement")},
                         **{f"{v}_median_ms": runs[v].get("median_ms") for v in comp},
                         "ratio": runs["texflow"].get("ratio_vs_plain"),
                         "max_abs_diff": max(runs[v].get("max_abs", float("nan")) for v in comp),
                         "texflow_rules": comp["texflow"]["statistics"].get("texflow-eliminate-layout", {})})
            print(f"done: {name}", file=sys.stderr)
    print(f"llvm-cpu, {args.threads} thread(s), {args.reps} interleaved runs, {date.today()}, "
          f"{platform.machine()} {os.cpu_count()} cores\n")
    print("| case | dispatches plain → texflow | data-movement plain → texflow | median ms plain | median ms texflow | texflow/plain | max abs diff vs ORT |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['plain_dispatches']} → {r['texflow_dispatches']} | "
              f"{r['plain_data_movement']} → {r['texflow_data_movement']} | {r['plain_median_ms']:.3f} | "
              f"{r['texflow_median_ms']:.3f} | {r['ratio']:.2f}x | {r['max_abs_diff']:.1e} |")
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / "layout_micro.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
