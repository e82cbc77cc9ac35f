#!/usr/bin/env bash
# Installs what texflow needs on a fresh Debian machine: the package with its
# test extras (IREE compiler/runtime, ONNX, OR-Tools, ONNX Runtime, pytest,
# hypothesis, lit, filecheck) and Mesa's lavapipe so the Vulkan path runs on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import iree.runtime as r; assert r.get_driver("vulkan").query_available_devices()' 2>/dev/null; then
  if command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null || true
    $SUDO apt-get install -y -qq mesa-vulkan-drivers >/dev/null
  fi
fi
python3 -m pip install -q --disable-pip-version-check -e ".[test]"
