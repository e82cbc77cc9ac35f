#!/usr/bin/env bash
# Builds texflow's wheel, installs it (not editable) with its dependencies in a fresh virtual
# environment, and compiles and runs the bundled example from outside the source tree with
# the installed texflow-compile and texflow-run: what a user's `pip install texflow` gets.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip wheel -q --disable-pip-version-check --no-deps . -w "$work/dist"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$work"/dist/texflow-*.whl
src=$(pwd)
cd "$work"  # nothing of the source tree on the path
SRC="$src" "$work/venv/bin/python" - <<'PY'
import os, pathlib, texflow
assert "site-packages" in texflow.__file__, texflow.__file__
# every module of the source tree is in the wheel (a new folder without packaging would be lost)
src, inst = pathlib.Path(os.environ["SRC"]), pathlib.Path(texflow.__file__).parent
roots = {"python/texflow": inst, "passes": inst / "passes", "dialects": inst / "dialects"}
missing = [f"{root}/{f.relative_to(src / root)}" for root, dest in roots.items()
           for f in (src / root).rglob("*.py") if "__pycache__" not in f.parts
           and not (root == "python/texflow" and f.relative_to(src / root).parts[0] in ("passes", "dialects"))
           and not (dest / f.relative_to(src / root)).exists()]
assert not missing, f"modules missing from the wheel: {missing}"
import texflow.selection.costmodel, texflow.streaming.planner, texflow.passes, texflow.dialects
assert list(pathlib.Path(texflow.dialects.__file__).parent.glob("*.irdl.mlir")), "irdl files missing"
PY
ex=$("$work/venv/bin/python" -c 'import texflow.examples, pathlib; print(pathlib.Path(texflow.examples.__file__).parent)')
"$work/venv/bin/texflow-compile" "$ex/example.onnx" -o "$work/m.vmfb"
"$work/venv/bin/texflow-compile" "$ex/example.onnx" --memory-budget=1MiB -o "$work/s p/m.vmfb" 2>/dev/null \
  && { echo "wheel check: an output folder that does not exist was accepted"; exit 1; } || true
mkdir -p "$work/s p"
"$work/venv/bin/texflow-compile" "$ex/example.onnx" --memory-budget=1MiB -o "$work/s p/m.vmfb"
for m in "$work/m.vmfb" "$work/s p/m.vmfb"; do
  "$work/venv/bin/texflow-run" "$m" --input=@"$ex/example_input.npy" --output=@"$work/y.npy"
  "$work/venv/bin/python" -c "
import numpy as np, sys
err = float(np.abs(np.load('$work/y.npy') - np.load('$ex/example_ref.npy')).max())
sys.exit(f'wheel check: output differs from the reference by {err}' if err > 1e-4 else 0)"
done
echo "wheel check: the installed wheel compiles and runs the example (plain and streamed)"
