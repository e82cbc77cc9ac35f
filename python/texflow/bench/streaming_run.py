"""Benchmark of the streaming runtime on the suite's models (a report, not a test).

    python -m texflow.bench.streaming_run --models vit,gpt2 --fractions 0.5,0.25

For each model and budget (a fraction of its ONNX weight bytes; where that is
below what the plan can meet, the smallest feasible budget, marked "min"):
plain IREE with every weight embedded and resident ("resident") against the
streamed module run three ways: texflow's plan, "load the next segment's
weights" (naive streaming) and "preload everything" (the segmented module with
all weights resident, which isolates what cutting the program costs).

Every configuration runs in its own process (allocator statistics and peak
RSS are per process), compute on one IREE worker so the loader has the other
core.  Warm latency = median of repeated runs with the files in the page
cache.  Cold start = open + first run after evicting the module and archive
from the page cache with posix_fadvise(DONTNEED) (measured, not assumed: the
archive's cold read bandwidth is measured the same way and reported).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

MODELS = ("vit", "gpt2", "sdunet", "llama")


def _env():
    env = dict(os.environ)
    env["IREE_TASK_TOPOLOGY_GROUP_COUNT"] = "1"
    return env


def _compile(onnx_path, out, budget=None) -> tuple[bool, str]:
    cmd = [sys.executable, "-m", "texflow.cli.compile", onnx_path, "-o", out]
    if budget == "plain":
        cmd.append("--no-layout")
    elif budget:
        cmd.append(f"--memory-budget={budget}")
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode == 0, p.stderr.strip()


def _weight_bytes(onnx_path) -> int:
    import onnx
    from onnx import numpy_helper
    m = onnx.load(onnx_path)
    return sum(numpy_helper.to_array(i).nbytes for i in m.graph.initializer)


def _models_dir():
    """The suite's model cache (as texflow.bench.models has it, without importing torch)."""
    d = os.environ.get("TEXFLOW_CACHE")
    return os.path.join(d or os.path.expanduser("~/.cache/texflow"), "models")


def _inputs(name):
    d = os.path.join(_models_dir(), name)
    z = np.load(os.path.join(d, "inputs.npz"))
    return [z[k] for k in z.files]


# -- child processes -------------------------------------------------------------

def _hwm() -> int:
    """Peak RSS of this process image (VmHWM; ru_maxrss would include the parent's
    size before exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(args) -> dict:
    from texflow.streaming.executor import StreamingSession, evict_file
    xs = _inputs(args.model)
    out: dict = {}
    base_rss = _hwm()
    if args.kind == "readbw":
        evict_file(args.path)
        t0 = time.perf_counter()
        n = 0
        with open(args.path, "rb", buffering=0) as f:
            while True:
                b = f.read(8 << 20)
                if not b:
                    break
                n += len(b)
        return {"read_bytes_per_s": n / (time.perf_counter() - t0), "bytes": n}
    if args.kind == "warm":
        return _warm_interleaved(args, xs)
    if args.kind == "resident":
        from texflow.runtime import Module
        evict_file(args.path)
        t0 = time.perf_counter()
        mod = Module(args.path)
        y = mod(*xs)
        out["cold_s"] = time.perf_counter() - t0
        lat = []
        for _ in range(args.runs):
            t = time.perf_counter()
            mod(*xs)
            lat.append(time.perf_counter() - t)
        out["warm_s"] = statistics.median(lat)
    else:
        evict_file(args.path)
        evict_file(args.path + ".irpa")
        t0 = time.perf_counter()
        s = StreamingSession([args.path], memory_budget=args.budget, policy=args.kind)
        y = s.run(*xs)
        out["cold_s"] = time.perf_counter() - t0
        out["cold_summary"] = s.summary()
        lat, stall, peak = [], [], []
        for _ in range(args.runs):
            s.run(*xs)
            lat.append(s.last.latency_s)
            stall.append(s.last.stall_s)
            peak.append(s.last.peak_accounted)
        out["warm_s"] = statistics.median(lat)
        out["warm_stall_s"] = statistics.median(stall)
        out["summary"] = s.summary()
        out["peak_accounted_bytes"] = max(peak + [s.summary()["peak_accounted_bytes"]])
        if args.trace:
            from texflow.streaming.chart import trace_chart
            trace_chart(s.trace(), args.trace)
        s.close()
    np.save(args.output, y[0])
    out["rss_peak_bytes"] = _hwm()
    out["rss_base_bytes"] = base_rss
    return out


def _warm_interleaved(args, xs) -> dict:
    """Warm latency, side by side in one process: each round runs the resident
    module, then the streamed module under each policy, once each; medians of
    the times and of the per-round ratios to the resident run."""
    from texflow.runtime import Module
    from texflow.streaming.executor import StreamingSession
    resident = Module(args.path.split(",")[0])
    streamed = args.path.split(",")[1]
    sessions = {pol: StreamingSession([streamed], memory_budget=args.budget
                                      if pol != "preload-all" else 10 ** 12, policy=pol)
                for pol in ("plan", "next-stage", "preload-all")}
    resident(*xs)
    for s in sessions.values():
        s.run(*xs)
    times = {k: [] for k in ["resident", *sessions]}
    stall = {k: [] for k in sessions}
    for _ in range(args.runs):
        t = time.perf_counter()
        resident(*xs)
        times["resident"].append(time.perf_counter() - t)
        for k, s in sessions.items():
            s.run(*xs)
            times[k].append(s.last.latency_s)
            stall[k].append(s.last.stall_s)
    out = {"runs": args.runs}
    for k, v in times.items():
        out[k] = {"median_s": statistics.median(v)}
        if k != "resident":
            out[k]["ratio"] = statistics.median(a / b for a, b in zip(v, times["resident"]))
            out[k]["stall_s"] = statistics.median(stall[k])
    return out


def _run_child(model, kind, path, budget=None, runs=5, trace=None, output=None) -> dict:
    cmd = [sys.executable, "-m", "texflow.bench.streaming_run", "--child", "--model", model,
           "--kind", kind, "--path", path, "--runs", str(runs), "--output", output or os.devnull]
    if budget:
        cmd += ["--budget", str(budget)]
    if trace:
        cmd += ["--trace", trace]
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


# -- driver ---------------------------------------------------------------------------

def bench_model(name, fractions, runs, work, out_dir) -> dict:
    onnx_path = os.path.join(_models_dir(), name, "model.onnx")
    W = _weight_bytes(onnx_path)
    res = {"model": name, "weight_bytes": W, "budgets": []}
    plain = os.path.join(work, f"{name}.plain.vmfb")
    if not os.path.exists(plain):
        ok, err = _compile(onnx_path, plain, "plain")
        if not ok:
            res["error"] = err
            return res
    ref = os.path.join(work, f"{name}.ref.npy")
    res["resident"] = _run_child(name, "resident", plain, runs=runs, output=ref)
    for frac in fractions:
        budget = int(W * frac)
        entry = {"fraction": frac, "requested_bytes": budget}
        vm = os.path.join(work, f"{name}.{int(frac * 100)}.vmfb")
        ok, err = _compile(onnx_path, vm, budget)
        if not ok:
            m = re.search(r"below the minimum [^(]*\((\d+) bytes\)", err)
            if not m:
                entry["error"] = err
                res["budgets"].append(entry)
                continue
            entry["infeasible"] = err.split("error: ", 1)[-1]
            budget = int(int(m.group(1)) * 1.03)
            ok, err = _compile(onnx_path, vm, budget)
            if not ok:
                entry["error"] = err
                res["budgets"].append(entry)
                continue
            entry["min"] = True
        entry["budget_bytes"] = budget
        entry["warm"] = _run_child(name, "warm", plain + "," + vm, budget=budget, runs=runs)
        if "readbw" not in res:
            res["readbw"] = _run_child(name, "readbw", vm + ".irpa")
        for pol in ("plan", "next-stage", "preload-all"):
            outp = os.path.join(work, f"{name}.{int(frac * 100)}.{pol}.npy")
            trace = os.path.join(out_dir, f"gantt_{name}_{int(frac * 100)}.png") \
                if pol == "plan" else None
            r = _run_child(name, pol, vm, budget=budget if pol != "preload-all" else 10 ** 12,
                           runs=runs, trace=trace, output=outp)
            if "error" not in r and os.path.exists(outp) and os.path.exists(ref):
                a, b = np.load(outp), np.load(ref)
                r["max_abs_diff_vs_resident"] = float(np.abs(a - b).max())
                r["bitwise_vs_resident"] = bool(np.array_equal(a, b))
            entry[pol] = r
        res["budgets"].append(entry)
    return res


def _mb(n):
    return f"{n / 1e6:.1f}"


def report(results, path_md):
    lines = [
        "# Streaming runtime: measured (llvm-cpu, local-task, 1 compute worker, 2 cores)", "",
        "Generated by `python -m texflow.bench.streaming_run`. Budgets are fractions of the ONNX "
        "weight bytes. \"resident\" is plain IREE with every weight embedded and loaded. The "
        "streamed module runs three ways: texflow's plan; \"next-stage\", naive streaming "
        "(load the next segment's weights during the current one); and \"all-resident\", the "
        "segmented module with every weight preloaded, which shows what cutting the program "
        "costs by itself.",
        "",
        "Warm latency is measured side by side in one process: each round runs all four once, "
        "and the ratio is the median of per-round ratios to resident. Cold start is open plus "
        "the first run, in a fresh process, after the module and archive were evicted from the "
        "page cache (`posix_fadvise(DONTNEED)`). Bound = max(weight bytes / the archive's "
        "measured cold read bandwidth, resident warm latency). Peaks come from the same "
        "processes: texflow's own account of what it allocated, the allocator's statistics, and "
        "peak RSS above the process's size before loading. \"bitwise\" compares texflow's plan "
        "output with resident's.",
        "",
        "| model | budget | MB | segments | preloaded MB | streamed MB | warm resident ms | "
        "plan ms (x) | next-stage ms (x) | all-resident ms (x) | plan stall ms | cold resident ms | "
        "cold plan ms (x resident) | cold next-stage ms | cold bound ms | cold plan / bound | "
        "peak accounted MB | allocator peak MB | RSS over base MB | bitwise |",
        "|" + "---|" * 20]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error'][:120]} |" + " |" * 18)
            continue
        res = r["resident"]
        bw = r.get("readbw", {}).get("read_bytes_per_s")
        for b in r["budgets"]:
            tag = f"{int(b['fraction'] * 100)}%" + (" (min)" if b.get("min") else "")
            p = b.get("plan", {})
            if "error" in b or "error" in p or "error" in b.get("warm", {}):
                err = b.get("error") or p.get("error") or b["warm"].get("error")
                lines.append(f"| {r['model']} | {tag} | error: {err[:150]} |" + " |" * 17)
                continue
            w, n = b["warm"], b["next-stage"]
            s = p["summary"]
            bound = max(r["weight_bytes"] / bw if bw else 0, res["warm_s"])

            def x(k):
                return f"{w[k]['median_s'] * 1e3:.1f} ({w[k]['ratio']:.2f}x)"
            lines.append(
                f"| {r['model']} | {tag} | {_mb(b['budget_bytes'])} | {s['segments']} | "
                f"{_mb(s['preloaded_bytes'])} | {_mb(s['streamed_bytes'])} | "
                f"{w['resident']['median_s'] * 1e3:.1f} | {x('plan')} | {x('next-stage')} | "
                f"{x('preload-all')} | {w['plan']['stall_s'] * 1e3:.1f} | {res['cold_s'] * 1e3:.0f} | "
                f"{p['cold_s'] * 1e3:.0f} ({p['cold_s'] / res['cold_s']:.2f}x) | "
                f"{n.get('cold_s', float('nan')) * 1e3:.0f} | {bound * 1e3:.0f} | "
                f"{p['cold_s'] / bound:.2f} | {_mb(p['peak_accounted_bytes'])} | "
                f"{_mb(s['allocator_peak_bytes'] or 0)} | "
                f"{_mb(p['rss_peak_bytes'] - p['rss_base_bytes'])} | "
                f"{p.get('bitwise_vs_resident')} |")
    lines += ["", "Resident plain IREE, RSS over base (MB): " + ", ".join(
        f"{r['model']} {_mb(r['resident']['rss_peak_bytes'] - r['resident']['rss_base_bytes'])}"
        for r in results if "resident" in r and "rss_peak_bytes" in r["resident"]),
        "", "Cold read bandwidth of each archive after eviction (MB/s): " + ", ".join(
            f"{r['model']} {r['readbw']['read_bytes_per_s'] / 1e6:.0f}" for r in results
            if r.get("readbw", {}).get("read_bytes_per_s")), ""]
    for r in results:
        for b in r.get("budgets", []):
            if b.get("infeasible"):
                lines.append(f"- {r['model']} at {int(b['fraction'] * 100)}%: {b['infeasible']}")
    with open(path_md, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model")
    ap.add_argument("--kind")
    ap.add_argument("--path")
    ap.add_argument("--budget")
    ap.add_argument("--trace")
    ap.add_argument("--output")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--fractions", default="0.5,0.25")
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/texflow/streaming"))
    ap.add_argument("--out", default="benchmarks/streaming")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    results = []
    for name in args.models.split(","):
        t0 = time.perf_counter()
        results.append(bench_model(name, [float(f) for f in args.fractions.split(",")],
                                   args.runs, args.work, args.out))
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        report(results, os.path.join(args.out, "report.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
