#!/usr/bin/env python3
"""Snapshot the IR texflow writes, to show a refactoring changes none of it.

Records, as sha256 digests in one JSON file:
- every lit RUN line's first command output (`texflow-opt ... | FileCheck`: the texflow-opt
  part), as lit would run it;
- the module after texflow's phases (`compile_to="texflow-finalize"`) for the test models
  (test/pytest/onnx_models.ALL), the bundled example and the cached corpus models named by
  `--corpus`, on llvm-cpu (with its packing and a fixed CPU, so the host does not matter),
  vulkan-valhall and vulkan-adreno;
- a streamed compile of the example (the plan and the segmented program).

    python3 scripts/ir_snapshot.py before.json
    ... refactor ...
    python3 scripts/ir_snapshot.py after.json --compare before.json   # exit 1 on a difference
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "test" / "pytest"))

import lit_mutation  # noqa: E402  (RUN-line parsing and substitution)

TARGETS = (("llvm-cpu", {"target_cpu": "znver4", "target_triple": "x86_64-linux-gnu"}),
           ("vulkan-valhall", {}), ("vulkan-adreno", {}), ("vulkan-nvidia", {}))
CORPUS = os.path.expanduser("~/.cache/texflow/models/corpus")


def _digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()[:16]


def lit_outputs() -> dict[str, str]:
    out = {}
    for path in sorted((ROOT / "test" / "lit").rglob("*.mlir")):
        if "Inputs" in path.parts:
            continue
        for r in lit_mutation.parse_runs(path):
            with tempfile.TemporaryDirectory() as d:
                text = lit_mutation.tool_output(r.command, path, Path(d) / "t").replace(d, "%T")
            # keyed by the file's content, not its path: a test file moved between folders
            # is the same test
            key = f"lit {_digest(path.read_text())}:{r.lineno} ({path.relative_to(ROOT / 'test' / 'lit')})"
            out[key] = _digest(text.replace(str(path), "%s"))
    return out


def model_outputs(corpus: list[str]) -> dict[str, str]:
    import onnx_models
    from texflow.compiler import CompileOptions, Compiler
    from texflow.errors import TexflowError

    models = {}
    with tempfile.TemporaryDirectory() as d:
        import onnx
        for name in sorted(onnx_models.ALL):
            p = os.path.join(d, name + ".onnx")
            onnx.save(onnx_models.ALL[name](), p)
            models[name] = p
        models["example"] = str(ROOT / "python" / "texflow" / "examples" / "example.onnx")
        for name in corpus:
            models[name] = os.path.join(CORPUS, name, "model.onnx")
        out = {}
        for name, path in models.items():
            for target, extra in TARGETS:
                key = f"{name}@{target}"
                try:
                    res = Compiler(CompileOptions(target=target, compile_to="texflow-finalize",
                                                  **extra)).compile_file(path)
                    out[key] = _digest(res.mlir)
                except TexflowError as e:
                    out[key] = "error: " + str(e)[:200]
                print(key, out[key], flush=True)
        with tempfile.TemporaryDirectory() as d2:
            plan = os.path.join(d2, "plan.json")
            res = Compiler(CompileOptions(target="llvm-cpu", memory_budget="1MiB", plan_manifest=plan,
                                          compile_to="texflow-finalize",
                                          target_cpu="znver4", target_triple="x86_64-linux-gnu")
                           ).compile_file(models["example"])
            out["example@streamed"] = _digest(res.mlir)
            out["example@streamed:plan"] = _digest(Path(plan).read_text())
            out["example@streamed:program"] = _digest(json.dumps(res.program, sort_keys=True))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output")
    ap.add_argument("--compare", help="an earlier snapshot: print differences, exit 1 on any")
    ap.add_argument("--corpus", default="efficientnet_b0,squeezenet,deit_tiny,mobilevit_xxs",
                    help="cached corpus models to include (comma-separated; '' for none)")
    ap.add_argument("--skip-lit", action="store_true")
    a = ap.parse_args()
    corpus = [c for c in a.corpus.split(",") if c and os.path.exists(os.path.join(CORPUS, c, "model.onnx"))]
    snap = {} if a.skip_lit else lit_outputs()
    snap.update(model_outputs(corpus))
    Path(a.output).write_text(json.dumps(snap, indent=1, sort_keys=True) + "\n")
    if not a.compare:
        return 0
    old = json.loads(Path(a.compare).read_text())
    def strip(d):  # the folder named in a lit key is for the reader only
        return {k.split(" (")[0]: (k, v) for k, v in d.items()}
    o, n = strip(old), strip(snap)
    diff = sorted(k for k in set(o) | set(n) if o.get(k, (0, None))[1] != n.get(k, (0, None))[1])
    for k in diff:
        print(f"differs: {(o.get(k) or n.get(k))[0]}: {o.get(k, (0, None))[1]} -> {n.get(k, (0, None))[1]}")
    print(f"{len(snap)} outputs, {len(diff)} differ")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
