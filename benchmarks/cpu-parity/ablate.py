"""Ablate texflow-pack-matmul's options on one model: compile each setting, time them interleaved.

How the pass's thresholds were chosen (docs/cpu.md): every setting is compiled with the default
llvm-cpu layout pipeline, `texflow-pack-matmul` replaced by the given options (`none`: without
the pass), checked against the model's ONNX Runtime reference, and timed in turn, round after
round, in this one process.

    python benchmarks/cpu-parity/ablate.py resnet50 none default "max-1x1-conv-rows=256"
"""

from __future__ import annotations

import argparse

import numpy as np


def pipeline(setting: str) -> str:
    from texflow.passes.pipelines import default_layout_pipeline
    base = default_layout_pipeline("llvm-cpu")
    if setting == "default":
        return base
    if setting == "none":
        return base.replace("texflow-pack-matmul,", "")
    return base.replace("texflow-pack-matmul,", f"texflow-pack-matmul{{{setting}}},")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("settings", nargs="+", help="'none', 'default' or texflow-pack-matmul options")
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    from texflow.bench.harness import run_modules, set_threads
    from texflow.bench.models import build
    from texflow.compiler import CompileOptions, Compiler
    set_threads(args.threads)
    m = build(args.model)
    inputs, ref = np.load(m.dir / "inputs.npz"), np.load(m.dir / "ref.npz")
    vmfbs = {s: Compiler(CompileOptions(target="llvm-cpu", layout_pipeline=pipeline(s)))
             .compile_file(str(m.onnx_path)).vmfb for s in args.settings}
    out = run_modules(vmfbs, "local-task", [inputs[k] for k in inputs.files],
                      [ref[k] for k in ref.files], reps=args.reps)
    print(f"| {args.model} setting | median ms | vs first | max rel vs ONNX Runtime |")
    print("|---|---|---|---|")
    first = args.settings[0]
    for s, r in out.items():
        if "error" in r:
            print(f"| {s} | {r['error']} | | |")
            continue
        ratio = r.get(f"ratio_vs_{first}", 1.0) if s != first else 1.0
        print(f"| {s} | {r['median_ms']:.1f} | {ratio:.3f} | {r.get('max_rel', float('nan')):.1e} |")


if __name__ == "__main__":
    main()
