#!/usr/bin/env bash
# Runs every test: lit regression tests and pytest (Vulkan tests on lavapipe).
#   scripts/test.sh                 # set-up + all tests (what CI runs)
#   scripts/test.sh --run-slow      # also the slow tests (long property searches)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export TEXFLOW_REQUIRE_VULKAN=${TEXFLOW_REQUIRE_VULKAN:-1}
python3 -c 'import sys, lit.main; sys.argv[0] = "lit"; lit.main.main()' -sv .
python3 -m pytest -q "$@" test/pytest
scripts/wheel_check.sh  # the wheel, installed in a fresh venv, compiles and runs the example
