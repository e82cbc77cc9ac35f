"""Layout selection and f16 on the device tool's GPU through Vulkan (run there).

    python3 benchmarks/gpu/select_on_device.py DIR OUT.json [ROUNDS]

DIR holds <model>.<variant>.vmfb (compiled here with --target=vulkan-nvidia) and
<model>.npz with `inputs` and `ref` (ONNX Runtime's output in f32).  For each model, every
variant is loaded on one shared Vulkan device (several devices in one process slow each
other down), checked against the reference (max abs and max relative difference), then
timed interleaved: ROUNDS rounds, each calling every variant once in rotating order, with
inputs uploaded once and outputs left on the device.  Writes medians and the median of the
per-round ratios to `plain` (or, without it, to the first variant).  Only numpy and iree.runtime are needed.
"""

import glob
import json
import os
import statistics
import sys
import time

import numpy as np


def main(d, out, rounds=30):
    import iree.runtime as rt
    from texflow.runtime import Module
    config = rt.Config("vulkan")
    res = {}
    models = sorted({os.path.basename(p).split(".")[0] for p in glob.glob(os.path.join(d, "*.vmfb"))})
    for name in models:
        z = np.load(os.path.join(d, name + ".npz"))
        x, ref = z["inputs"], z["ref"]
        calls, entry = {}, {}
        for p in sorted(glob.glob(os.path.join(d, name + ".*.vmfb"))):
            v = os.path.basename(p)[len(name) + 1:-5]
            m = Module(p, driver="vulkan", config=config)
            y = m(x)[0]
            diff = float(np.max(np.abs(y.astype(np.float64) - ref)))
            entry[v] = {"max_abs": diff, "max_rel": diff / float(np.max(np.abs(ref)))}
            f = m.context.modules.module[m.resolve_function(None)]
            arg = rt.asdevicearray(m.device, x)

            def call(f=f, arg=arg):
                t0 = time.perf_counter()
                f(arg)
                return time.perf_counter() - t0
            calls[v] = call
        names = list(calls)
        times = {v: [] for v in names}
        for r in range(-3, rounds):
            k = r % len(names)
            for v in names[k:] + names[:k]:
                t = calls[v]()
                if r >= 0:
                    times[v].append(t * 1e3)
        base = "plain" if "plain" in times else names[0]
        for v in names:
            entry[v]["median_ms"] = statistics.median(times[v])
            entry[v]["ratio_vs_" + base] = statistics.median(a / b for a, b in zip(times[v], times[base]))
        res[name] = entry
        print(name, json.dumps(entry, indent=1), flush=True)
    res["device"] = ", ".join(i["name"] for i in rt.get_driver("vulkan").query_available_devices())
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 30)
