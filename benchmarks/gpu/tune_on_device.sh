#!/usr/bin/env bash
# On the device tool's GPU machine: time the kernel-configuration candidates prepared here
# (`python -m texflow.bench.tune_kernels prepare --dir .gpu/carry/<name>`), write the target's
# kernel table there, and bring back what was measured:
#   carry [".gpu/parts/bundle.part.ac", ".gpu/parts/bundle.sha256", ".gpu/carry"] after the
#   bundle's other parts (compile_on_device.sh), then
#   command: bash benchmarks/gpu/tune_on_device.sh tune tune2
# $OUT/<name>.measured.json comes back for each folder, $OUT/vulkan-nvidia.json is the table;
# `select` here (`--dir .gpu/carry/tune .gpu/carry/tune2`) rebuilds the same table.
set -eo pipefail
source benchmarks/gpu/compile_on_device.sh env
export PYTHONUNBUFFERED=1
name=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1 | sed 's/, / (driver /; s/$/)/')
mkdir -p python/texflow/kernelconfig/data  # empty in git: select writes the table here
dirs=()
for d in "$@"; do
  python3 -m texflow.bench.tune_kernels measure --dir ".gpu/carry/$d" --device vulkan \
    --device-name "$name" --reps "${REPS:-3}"
  cp ".gpu/carry/$d/measured.json" "$OUT/$d.measured.json"
  dirs+=(".gpu/carry/$d")
done
python3 -m texflow.bench.tune_kernels select --dir "${dirs[@]}"
cp python/texflow/kernelconfig/data/vulkan-nvidia.json "$OUT/"
cp python/texflow/kernelconfig/data/vulkan-nvidia.json /tmp/texflow-bundle/vulkan-nvidia.json  # for a later call while warm
