#!/usr/bin/env bash
# The main job: set-up, then compile the bundled example model with plain IREE
# and with texflow for llvm-cpu and Vulkan (lavapipe here), run both, and print
# dispatch counts, latency and agreement with ONNX Runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
python3 -m texflow.demo "$@"
