"""f16 accuracy against the f32 reference, with and without f32 accumulation (issue 20 item 4).

    python benchmarks/precision/accuracy.py --models resnet50,vit,corpus:efficientnet_b0 \
        --target llvm-cpu --out benchmarks/precision/llvm-cpu.json

For each model: texflow's default compile (f32), `--precision=f16`, and `--precision=f16` with
texflow-widen-accumulators disabled (`TEXFLOW_DISABLE_PASSES`, f16 accumulators as IREE compiles
them), each run on the reference inputs; the error is max |y - ref| / max |ref| against ONNX
Runtime's f32 outputs, and NaN/inf outputs are counted.  Each compile runs in a child process
(the environment variable is read at process start).  llvm-cpu computes f16 by conversion on
CPUs without AVX512-FP16, so this measures accuracy, not speed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

VARIANTS = {"f32": ([], {}), "f16": (["--precision=f16"], {}),
            "f16-f16acc": (["--precision=f16"], {"TEXFLOW_DISABLE_PASSES": "texflow-widen-accumulators"})}


def measure(name: str, target: str, work: str) -> dict:
    from texflow.bench import corpus
    from texflow.runtime import Module
    cm = corpus.build_any(name, log=lambda *a: None)
    ins = np.load(cm.dir / "inputs.npz")
    ref = np.load(cm.dir / "ref.npz")
    xs = [ins[k] for k in ins.files]
    refs = [ref[k] for k in ref.files]
    row = {"model": name, "target": target}
    for v, (flags, env) in VARIANTS.items():
        out = os.path.join(work, f"{v}.vmfb")
        p = subprocess.run(["texflow-compile", str(cm.onnx_path), f"--target={target}", *flags, "-o", out],
                           capture_output=True, text=True, env={**os.environ, **env})
        if p.returncode:
            row[v] = {"error": p.stderr.strip().splitlines()[-1][:200]}
            continue
        driver = "vulkan" if target.startswith("vulkan") else "local-task"
        ys = Module(out, driver=driver)(*xs)
        ys = ys if isinstance(ys, (list, tuple)) else [ys]
        errs, bad = [], 0
        for y, r in zip(ys, refs):
            y = np.asarray(y, np.float64)
            bad += int((~np.isfinite(y)).sum())
            scale = float(np.abs(r).max()) or 1.0
            errs.append(float(np.nanmax(np.abs(y - r))) / scale if np.isfinite(y).any() else float("inf"))
        row[v] = {"rel_err": max(errs), "nonfinite": bad}
    return row


def markdown(rows: list[dict]) -> str:
    def cell(d):
        if "error" in d:
            return "fails: " + d["error"][:80]
        t = f"{d['rel_err']:.1e}" if d["rel_err"] != float("inf") else "inf"
        return t + (f" ({d['nonfinite']} NaN/inf)" if d["nonfinite"] else "")
    out = ["| model | target | f32 | f16 (f32 accumulation) | f16 (f16 accumulation) |",
           "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {r['target']} | {cell(r['f32'])} | {cell(r['f16'])} | "
                   f"{cell(r['f16-f16acc'])} |")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True)
    ap.add_argument("--target", default="llvm-cpu")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in a.models.split(","):
            rows.append(measure(name, a.target, work))
            print(json.dumps(rows[-1]), flush=True)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)
    with open(os.path.splitext(a.out)[0] + ".md", "w") as f:
        f.write(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
