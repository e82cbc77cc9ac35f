"""Accuracy of `--precision=f16` against the FP32 reference, per suite model.

    python benchmarks/selection/f16_accuracy.py [--models all] [--target llvm-cpu] [--out FILE]

Each model is compiled by texflow with and without `--precision=f16` and run on the cached
inputs; both outputs are compared with ONNX Runtime's FP32 output.  Reported per model: the
largest absolute difference, that difference relative to the reference's largest magnitude,
the mean relative error, and (for outputs with a class dimension) whether the arg-max agrees
on every row.  Accuracy does not depend on the target's timing, so llvm-cpu is the default.
"""

import argparse
import json
import sys

import numpy as np


def main(argv=None):
    from texflow.bench import harness, models
    from texflow.compiler import CompileOptions, Compiler
    from texflow.runtime import Module
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="all")
    ap.add_argument("--target", default="llvm-cpu")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    rows = {}
    for name in models.resolve(a.models):
        cm = models.build(name)
        x, ref = cm.inputs(), cm.reference()
        row = {}
        for prec in ("f32", "f16"):
            try:
                vmfb = Compiler(CompileOptions(target=a.target, precision=prec)).compile_file(
                    str(cm.onnx_path)).vmfb
                y = Module(vmfb)(*x)
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                row[prec] = {"error": str(e).splitlines()[0][:200]}
                continue
            acc = harness.accuracy(y, ref)
            r, g = np.asarray(ref[0], np.float64), np.asarray(y[0], np.float64)
            acc["non_finite"] = int(np.size(g) - np.count_nonzero(np.isfinite(g)))
            acc["ref_max_abs"] = float(np.max(np.abs(r)))
            if acc["non_finite"]:  # f16 overflowed: the differences mean nothing
                acc.update(max_abs=float("nan"), max_rel=float("nan"))
            acc["mean_rel"] = float(np.mean(np.abs(g - r)) / max(np.mean(np.abs(r)), 1e-30))
            if r.ndim >= 2 and r.shape[-1] > 1:
                acc["argmax_agrees"] = float(np.mean(r.argmax(-1) == g.argmax(-1)))
            row[prec] = acc
        rows[name] = row
        print(name, json.dumps(row), file=sys.stderr, flush=True)
    text = json.dumps({"target": a.target, "models": rows}, indent=1)
    if a.out:
        open(a.out, "w").write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
