#!/usr/bin/env bash
# Running texflow's compiler (and its benchmark peers) on the device tool's GPU machine.
#
# Why: the weights of ResNet-50, DistilBERT and the like do not fit a 64 MiB carry. The device
# has torch, so models are built there, and texflow compiles them there. Only wheels travel:
# iree-base-compiler, OR-Tools and its pure-Python dependencies, ncnn and pnnx for issue 20's
# peer, the runtime wheel and the Vulkan loader. That is about 170 MiB, carried in consecutive
# calls while the machine stays warm (files survive 30 s after a call).
#
#   here:    benchmarks/gpu/compile_on_device.sh pack          # -> .gpu/parts/bundle.part.a{a,b,c}
#   device:  three calls, each carrying one part, the last one then running the job:
#              carry [".gpu/parts/bundle.part.aa"], command: bash benchmarks/gpu/compile_on_device.sh add
#              carry [".gpu/parts/bundle.part.ab"], command: bash benchmarks/gpu/compile_on_device.sh add
#              carry [".gpu/parts/bundle.part.ac", ".gpu/parts/bundle.sha256"],
#                command: source benchmarks/gpu/compile_on_device.sh env && python3 -m texflow.bench ...
#   `env` checks the bundle's sha256, unpacks it once, installs the wheels into /tmp/site{,2}
#   and exports PYTHONPATH (the repository's python/ with texflow.passes/dialects linked in),
#   PATH and VK_DRIVER_FILES.
set -euo pipefail
root=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
cd "$root"
part_mib=${PART_MIB:-58}
case "${1:-}" in
  pack)
    prep=""
    for p in shared/gpu/prepare.sh ../shared/gpu/prepare.sh; do [ -f "$p" ] && prep=$p && break; done
    [ -n "$prep" ] || { echo "no shared/gpu/prepare.sh found" >&2; exit 1; }
    # the runtime wheel and the Vulkan loader (skipped when an earlier run left them)
    if ! ls .gpu/whl/iree_base_runtime-*.whl >/dev/null 2>&1 || ! ls .gpu/gl/libvulkan1_*.deb >/dev/null 2>&1; then
      bash "$prep" >/dev/null
    fi
    b=$(mktemp -d)
    mkdir -p "$b/whl312"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$b/whl312" \
      "iree-base-compiler==$(python3 -c 'import importlib.metadata as m; print(m.version("iree-base-compiler"))')" \
      "ortools==$(python3 -c 'import importlib.metadata as m; print(m.version("ortools"))')" \
      absl-py immutabledict "protobuf==$(python3 -c 'import importlib.metadata as m; print(m.version("protobuf"))')" \
      ncnn pnnx
    cp -r .gpu/whl .gpu/gl "$b/"
    rm -rf .gpu/parts && mkdir -p .gpu/parts
    tar cf - -C "$b" whl312 whl gl | split -b "${part_mib}M" - .gpu/parts/bundle.part.
    cat .gpu/parts/bundle.part.* | sha256sum | cut -d' ' -f1 > .gpu/parts/bundle.sha256
    rm -rf "$b"
    ls -la .gpu/parts
    ;;
  add)  # on the device: keep this call's part
    mkdir -p /tmp/texflow-bundle
    cp .gpu/parts/bundle.part.* /tmp/texflow-bundle/
    ls /tmp/texflow-bundle
    ;;
  env)  # on the device, sourced
    if [ ! -f /tmp/texflow-bundle/.installed ]; then
      cp .gpu/parts/bundle.part.* /tmp/texflow-bundle/ 2>/dev/null || true
      want=$(cat .gpu/parts/bundle.sha256)
      got=$(cat /tmp/texflow-bundle/bundle.part.* | sha256sum | cut -d' ' -f1)
      [ "$want" = "$got" ] || { echo "bundle incomplete or corrupt (sha256 $got, want $want): carry every part" >&2; return 1; }
      mkdir -p /tmp/texflow-bundle/x
      cat /tmp/texflow-bundle/bundle.part.* | tar xf - -C /tmp/texflow-bundle/x
      for f in /tmp/texflow-bundle/x/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /tmp/texflow-bundle/x/whl/*.whl
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site2 /tmp/texflow-bundle/x/whl312/*.whl
      touch /tmp/texflow-bundle/.installed
    fi
    ln -sfn "$root/passes" python/texflow/passes
    ln -sfn "$root/dialects" python/texflow/dialects
    export PYTHONPATH=/tmp/site:/tmp/site2:$root/python PATH=/tmp/site/bin:/tmp/site2/bin:$PATH
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    ;;
  *)
    echo "usage: $0 pack | add | env (sourced)" >&2; exit 2 ;;
esac
