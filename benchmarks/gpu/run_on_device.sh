#!/usr/bin/env bash
# The benchmark suite's Vulkan part on the device tool's NVIDIA machine.
#
# Step 1, here (project root; needs the `bench` extra and network for the wheel):
#     benchmarks/gpu/run_on_device.sh prepare vit,mobilenetv2
#   - runs ../shared/gpu/prepare.sh (or shared/gpu/prepare.sh): .gpu/whl (iree-base-runtime for the
#     device's Python 3.12), .gpu/gl (Vulkan loader + glvnd), .gpu/activate.sh;
#   - compiles the models for vulkan-nvidia (--iree-vulkan-target=ampere; hopper crashes IREE
#     3.13), plain and texflow, into .gpu/bench with their inputs and ONNX Runtime outputs. The
#     weights go once per model into an IREE parameter archive (<model>.irpa) that both variants'
#     small modules read, so a call carries the weights once.
#   .gpu/ is git-ignored; a device call carries at most 64 MiB (the runtime wheel and Vulkan
#   loader take ~20), so prepare at most ~44 MiB of models per call: vit (23 MiB) + mobilenetv2
#   (14), or sdunet (25) alone; resnet18 (47), bert (114), gpt2 (271) and llama (176) do not fit.
#
# Step 2, the device tool's `run` (one call per prepared set), with
#     carry: [".gpu"]
#     command: bash benchmarks/gpu/run_on_device.sh device 50
#   It sources .gpu/activate.sh, runs `python3 -m texflow.bench.gpu run .gpu/bench --out $OUT`
#   with the repository's python/ on PYTHONPATH (only numpy and iree.runtime are imported there),
#   and returns gpu_results.json and gpu_report.md in $OUT.
#
# Step 3, here: copy the returned gpu_report.md / gpu_results.json into benchmarks/gpu/
#   (e.g. benchmarks/gpu/<model-set>.md) and link it from benchmarks/README.md.
set -euo pipefail
root=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
cd "$root"
mode=${1:-}
case "$mode" in
  prepare)
    models=${2:-vit,mobilenetv2}
    prep=""
    for p in shared/gpu/prepare.sh ../shared/gpu/prepare.sh; do [ -f "$p" ] && prep=$p && break; done
    [ -n "$prep" ] || { echo "no shared/gpu/prepare.sh found" >&2; exit 1; }
    bash "$prep"
    rm -rf .gpu/bench
    python3 -m texflow.bench.gpu prepare --models "$models" --dir .gpu/bench
    du -sh .gpu
    echo "now call the device tool: carry [\".gpu\"], command: bash benchmarks/gpu/run_on_device.sh device 50"
    ;;
  device)
    reps=${2:-50}
    # shellcheck disable=SC1091
    source .gpu/activate.sh
    export PYTHONPATH="$root/python:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
    python3 -c "import iree.runtime as rt; print(rt.get_driver('vulkan').query_available_devices())"
    python3 -m texflow.bench.gpu run .gpu/bench --out "${OUT:-.gpu/out}" --reps "$reps"
    ;;
  *)
    echo "usage: $0 prepare [models] | $0 device [reps]" >&2
    exit 2
    ;;
esac
