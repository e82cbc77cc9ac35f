"""Where ONNX Runtime spends its time on a suite model: its own per-node profile, one thread.

The counterpart of `profile_dispatches.py` for the best CPU peer.  ONNX Runtime writes a
per-node trace when `SessionOptions.enable_profiling` is set; this script runs the model a few
times, takes each node's median kernel time and prints the nodes by time, with their output
shapes, so that a texflow dispatch and the ONNX Runtime kernel doing the same work can be put
side by side (`kernel-gap.md`).

    python benchmarks/cpu-parity/profile_ort.py resnet18 --top 25
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import tempfile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import onnxruntime as ort
    from texflow.bench.models import build
    m = build(args.model)
    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(d, "ort")
        s = ort.InferenceSession(str(m.onnx_path), so, providers=["CPUExecutionProvider"])
        feeds = dict(zip([i.name for i in s.get_inputs()], m.inputs()))
        for _ in range(args.runs):
            s.run(None, feeds)
        with open(s.end_profiling()) as f:
            events = json.load(f)
    per: dict[str, list] = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per[e["name"][:-len("_kernel_time")]].append(e)
    rows = []
    for name, evs in per.items():
        ms = statistics.median(e["dur"] for e in evs[1:] or evs) / 1000  # skip the first (cold) run
        a = evs[0]["args"]
        shape = "x".join(str(x) for o in a.get("output_type_shape", []) for v in o.values() for x in v)
        rows.append((ms, a.get("op_name", "?"), name, shape))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"{args.model} (ONNX Runtime {ort.__version__}, {args.threads} thread(s)): {len(rows)} nodes, "
          f"sum of median node times {total:.1f} ms")
    print("| ms | share | op | node | output |\n|---|---|---|---|---|")
    for ms, op, name, shape in rows[:args.top]:
        print(f"| {ms:.3f} | {100 * ms / total:.1f}% | {op} | `{name}` | {shape} |")


if __name__ == "__main__":
    main()
