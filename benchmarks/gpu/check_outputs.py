"""On the device: compile corpus models for vulkan-nvidia with named layout pipelines and print
each module's largest error against ONNX Runtime's CPU output (relative to the largest reference
magnitude). Used to narrow down wrong outputs on a GPU (docs/known-issues.md).

    python3 benchmarks/gpu/check_outputs.py [--deadline SECONDS] corpus:gpt2 [corpus:deit_tiny ...]

The first model gets every variant (to narrow down which pass changes the output); the others
get plain IREE and texflow's default. Models are skipped once the deadline has passed, so one
device call returns what it managed.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from texflow.bench import corpus
from texflow.compiler import compile_file
from texflow.passes.pipelines import default_layout_pipeline
from texflow.runtime import Module

TARGET = "vulkan-nvidia"


def _variants(first: bool) -> dict[str, dict]:
    default = default_layout_pipeline(TARGET)
    v = {"plain": dict(layout=False), "texflow": {}}
    if first:
        nofold = default.replace("fold-into-producers=true", "fold-into-producers=false")
        v.update({
            "texflow-no-select": dict(select_layout=False),
            "texflow-nofold": dict(layout_pipeline=nofold),
            "texflow-raise-lower": dict(layout_pipeline=(
                "texflow-verify-layout,texflow-raise-layout,texflow-lower-layout,"
                "texflow-verify-layout,canonicalize,cse")),
        })
    return v


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deadline", type=float, default=1e9, help="seconds after which models are skipped")
    ap.add_argument("models", nargs="+")
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    for i, n in enumerate(a.models):
        if time.monotonic() - t0 > a.deadline:
            print(f"{n}: skipped (deadline)", flush=True)
            continue
        try:
            cm = corpus.build_any(n, False, log=lambda s: None)
        except Exception as e:  # noqa: BLE001
            print(f"{n}: build failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
            continue
        ins = np.load(cm.dir / "inputs.npz")
        ref = np.load(cm.dir / "ref.npz")["out0"]
        xs = [ins[k] for k in sorted(ins.files)]
        for v, opts in _variants(i == 0).items():
            if time.monotonic() - t0 > a.deadline:
                break
            try:
                res = compile_file(str(cm.onnx_path), target=TARGET, **opts)
                got = Module(res.vmfb, driver="vulkan")(*xs)[0]
                err = float(np.abs(got.astype(np.float32) - ref).max() / np.abs(ref).max())
                print(f"{n} {v}: max rel error {err:.2e}", flush=True)
            except Exception as e:  # noqa: BLE001
                print(f"{n} {v}: {type(e).__name__}: {str(e)[:200]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
