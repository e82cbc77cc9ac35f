"""Streamed modules on the device tool's GPU through Vulkan (run there; see README.md beside).

    python3 benchmarks/gpu/stream_on_device.py DIR OUT

DIR holds <name>.vmfb (+ .irpa, .plan.json, compiled here with --target=vulkan-nvidia
--memory-budget=...) and <name>.npz with `inputs` and `ref` (ONNX Runtime's output).
For each module and policy (plan, next-stage, preload-all) it runs the streaming
runtime on Vulkan and writes OUT/stream_gpu.json: median latency of 10 warm runs,
stall, the session's accounted peak against the budget, and the difference to
ONNX Runtime.  Only numpy and iree.runtime are needed there (no OR-Tools: the
compile-time segment plan is reused at the compile-time budget).
"""

import glob
import json
import os
import statistics
import sys

import numpy as np

from texflow.streaming.executor import StreamingSession


def main(d, out):
    res = []
    for vm in sorted(glob.glob(os.path.join(d, "*.vmfb"))):
        name = os.path.basename(vm)[:-5]
        z = np.load(os.path.join(d, name + ".npz"))
        xs, ref = [z["inputs"]], z["ref"]
        order = ("plan", "next-stage", "preload-all")
        if os.environ.get("REVERSE"):
            order = order[::-1]
        for pol in order:
            try:
                s = StreamingSession([vm], driver="vulkan", policy=pol,
                                     memory_budget=None if pol != "preload-all" else 10 ** 12)
                y = s.run(*xs)[0]
                lat, stall = [], []
                for _ in range(10):
                    s.run(*xs)
                    lat.append(s.last.latency_s)
                    stall.append(s.last.stall_s)
                sm = s.summary()
                r = {"model": name, "policy": pol, "median_ms": statistics.median(lat) * 1e3,
                     "stall_ms": statistics.median(stall) * 1e3,
                     "peak_accounted_bytes": sm["peak_accounted_bytes"],
                     "budget_bytes": sm["budget_bytes"], "segments": sm["segments"],
                     "streamed_bytes": sm["streamed_bytes"],
                     "max_abs_diff_vs_ort": float(np.abs(y - ref).max())}
                s.close()
            except Exception as e:  # report and go on with the next configuration
                r = {"model": name, "policy": pol, "error": f"{type(e).__name__}: {e}"}
            print(json.dumps(r), flush=True)
            res.append(r)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "stream_gpu.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
