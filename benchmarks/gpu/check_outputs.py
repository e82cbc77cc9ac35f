"""On the device: compile corpus models for vulkan-nvidia with named layout pipelines and print
each module's largest error against ONNX Runtime's CPU output (relative to the largest reference
magnitude). Used to narrow down wrong outputs on a GPU (docs/known-issues.md).

    python3 benchmarks/gpu/check_outputs.py corpus:gpt2
"""
from __future__ import annotations

import sys

import numpy as np

from texflow.bench import corpus
from texflow.compiler import compile_file
from texflow.passes.pipelines import default_layout_pipeline
from texflow.runtime import Module


def main(names: list[str]) -> int:
    target = "vulkan-nvidia"
    variants = {
        "plain": dict(layout=False),
        "texflow": {},
        "texflow+slice": dict(layout_pipeline="texflow-slice-contractions," + default_layout_pipeline(target)),
        "texflow-no-select": dict(select_layout=False),
    }
    for n in names:
        cm = corpus.build_any(n, False, log=lambda s: None)
        ins = np.load(cm.dir / "inputs.npz")
        ref = np.load(cm.dir / "ref.npz")["out0"]
        xs = [ins[k] for k in sorted(ins.files)]
        for v, opts in variants.items():
            try:
                res = compile_file(str(cm.onnx_path), target=target, **opts)
                got = Module(res.vmfb, driver="vulkan")(*xs)[0]
                err = float(np.abs(got.astype(np.float32) - ref).max() / np.abs(ref).max())
                print(f"{n} {v}: max rel error {err:.2e}", flush=True)
            except Exception as e:  # noqa: BLE001
                print(f"{n} {v}: {type(e).__name__}: {str(e)[:200]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
