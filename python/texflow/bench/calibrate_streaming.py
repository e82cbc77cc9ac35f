"""Measure a calibration for the cost model on this machine.

    python -m texflow.bench.calibrate_streaming --name host-llvm-cpu [--threads 1]

Compute: IREE llvm-cpu modules run on local-task (a 1024^3 f32 matmul for
FLOP/s, a 8M-element add for memory bandwidth, a 16-element add for the
per-dispatch overhead), median of repeated calls.  Weight reads: a 256 MiB
file written here, evicted from the page cache (posix_fadvise DONTNEED),
read back in 4 MiB blocks.  Writes calibration/<name>.json with device and date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np

from texflow.streaming.costmodel import CALIBRATION_DIR

MATMUL = """
func.func @main(%a: tensor<1024x1024xf32>, %b: tensor<1024x1024xf32>) -> tensor<1024x1024xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1024x1024xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<1024x1024xf32>) -> tensor<1024x1024xf32>
  %r = linalg.matmul ins(%a, %b : tensor<1024x1024xf32>, tensor<1024x1024xf32>)
                     outs(%f : tensor<1024x1024xf32>) -> tensor<1024x1024xf32>
  return %r : tensor<1024x1024xf32>
}"""

ADD = """
func.func @main(%a: tensor<Nxf32>, %b: tensor<Nxf32>) -> tensor<Nxf32> {
  %r = arith.addf %a, %b : tensor<Nxf32>
  return %r : tensor<Nxf32>
}"""


def _time_module(src: str, args, threads: int, reps: int) -> float:
    import iree.compiler as ic
    import iree.runtime as rt
    vmfb = ic.compile_str(src, target_backends=["llvm-cpu"],
                          extra_args=["--iree-llvmcpu-target-cpu=host"])
    cfg = rt.Config("local-task")
    ctx = rt.SystemContext(config=cfg)
    ctx.add_vm_module(rt.VmModule.copy_buffer(ctx.instance, vmfb))
    f = ctx.modules.module["main"]
    f(*args)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f(*args).to_host()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def read_bandwidth(size: int = 256 << 20, block: int = 4 << 20) -> float:
    with tempfile.NamedTemporaryFile(dir=os.environ.get("TMPDIR", "/tmp"), delete=False) as f:
        path = f.name
        buf = os.urandom(block)
        for _ in range(size // block):
            f.write(buf)
        f.flush()
        os.fsync(f.fileno())
    try:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        t0 = time.perf_counter()
        while os.read(fd, block):
            pass
        dt = time.perf_counter() - t0
        os.close(fd)
    finally:
        os.unlink(path)
    return size / dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="host-llvm-cpu")
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    m = rng.standard_normal((1024, 1024), dtype=np.float32)
    t_mm = _time_module(MATMUL, [m, m], 0, a.reps)
    n = 8 << 20
    v = rng.standard_normal(n, dtype=np.float32)
    t_add = _time_module(ADD.replace("N", str(n)), [v, v], 0, a.reps)
    s = np.ones(16, np.float32)
    t_tiny = _time_module(ADD.replace("N", "16"), [s, s], 0, a.reps * 10)
    cal = {
        "name": a.name,
        "device": f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores), "
                  f"IREE llvm-cpu local-task; weights file on {os.environ.get('TMPDIR', '/tmp')}",
        "date": datetime.date.today().isoformat(),
        "flops_per_s": 2 * 1024 ** 3 / max(t_mm - t_tiny, 1e-9),
        "mem_bytes_per_s": 3 * 4 * n / max(t_add - t_tiny, 1e-9),
        "dispatch_s": t_tiny,
        "weight_read_bytes_per_s": read_bandwidth(),
        "method": "texflow.bench.calibrate_streaming: median of IREE calls (1024^3 matmul, 8M add, "
                  "16-element add incl. host round trip); 256 MiB file read after "
                  "posix_fadvise(DONTNEED)",
    }
    out = CALIBRATION_DIR / f"{a.name}.json"
    out.write_text(json.dumps(cal, indent=2) + "\n")
    print(json.dumps(cal, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
