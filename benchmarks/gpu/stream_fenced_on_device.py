"""Weight streaming on the device tool's GPU through Vulkan: build, compile and measure there.

    python3 benchmarks/gpu/stream_fenced_on_device.py compile WORK --models resnet50,vit
    python3 benchmarks/gpu/stream_fenced_on_device.py measure WORK OUT --rounds 20
    python3 benchmarks/gpu/stream_fenced_on_device.py cold WORK/<model>/<variant>.vmfb  (one process)

The models are built with the device's torch (no weights travel) and compiled there with
the carried IREE compiler and OR-Tools wheels (`texflow.compiler`), for vulkan-nvidia:

- plain: plain IREE; texflow: texflow, every weight embedded (resident);
- fenced50 / fenced25: streamed at 50% / 25% of the ONNX weight bytes, one function whose
  weight groups load behind fences (texflow-wstream-fence, the default);
- fencedall: the same with a budget of 4x the weights: every weight preloaded, no fence but
  the call's own (what taking the weights as buffers costs by itself);
- seg50: streamed at 50%, cut into segments (texflow-wstream-outline, the earlier design).

`measure` opens every variant of a model on one shared Vulkan device and times them in
interleaved rounds (each call uploads the input and reads every output back); it reports
medians and the median of per-round ratios to texflow resident, checks every output
against ONNX Runtime and the streamed ones bitwise against texflow resident, and times a
cold start (process start to first result, fresh process per variant).
"""

import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

VARIANTS = {"plain": {"layout": False}, "texflow": {},
            "fencedall": {"budget": 4.0},
            "fenced50": {"budget": 0.5}, "fenced25": {"budget": 0.25},
            "seg50": {"budget": 0.5, "stream_mode": "segments"}}


def _distilbert_base():
    import transformers
    from texflow.bench.corpus import _FirstOutput, _tokens
    c = transformers.DistilBertConfig()  # distilbert-base-uncased's shape, 66 M parameters
    c._attn_implementation = "eager"
    m = transformers.DistilBertModel(c)
    w = _FirstOutput.wrap(m, lambda m, ids: m(input_ids=ids, return_dict=False)[0])
    return w, (_tokens(c.vocab_size, 128),), ["input_ids"]


def build(name, root):
    from texflow.bench import models
    from texflow.bench.models import ModelSpec
    spec = None
    if name == "distilbert_base":
        spec = ModelSpec(name, "DistilBERT-base (transformers), 1x128 tokens", _distilbert_base,
                         default=False)
    return models.build(name, spec=spec, root=root)


def weight_bytes(onnx_path) -> int:
    import onnx
    from onnx import numpy_helper
    m = onnx.load(str(onnx_path))
    return sum(numpy_helper.to_array(t).nbytes for t in m.graph.initializer)


def compile_all(work, names):
    from pathlib import Path
    from texflow.compiler import CompileOptions, compile_to_files
    work = Path(work)
    log = []
    for name in names:
        cm = build(name, work / "models")
        wb = weight_bytes(cm.onnx_path)
        d = work / name
        d.mkdir(parents=True, exist_ok=True)
        for var, v in VARIANTS.items():
            kw = dict(target=os.environ.get("TEXFLOW_BENCH_TARGET", "vulkan-nvidia"),
                      layout=v.get("layout", True))
            if "budget" in v:
                kw["memory_budget"] = str(int(wb * v["budget"]))
                kw["stream_mode"] = v.get("stream_mode", "fenced")
            t0 = time.perf_counter()
            try:
                r = compile_to_files(str(cm.onnx_path), CompileOptions(**kw), str(d / f"{var}.vmfb"))
                rec = {"model": name, "variant": var, "compile_s": time.perf_counter() - t0,
                       "weight_bytes": wb, "fallbacks": r.fallbacks,
                       "statistics": {k: v for k, v in r.statistics.items()
                                      if k.startswith("texflow-wstream")}}
            except Exception as e:  # report and go on
                rec = {"model": name, "variant": var, "error": f"{type(e).__name__}: {e}"}
            print(json.dumps(rec), flush=True)
            log.append(rec)
        z_in, z_ref = np.load(cm.dir / "inputs.npz"), np.load(cm.dir / "ref.npz")
        np.savez(d / "io.npz", **{k: z_in[k] for k in z_in.files},
                 **{"ref_" + k: z_ref[k] for k in z_ref.files})
    with open(work / "compile.json", "w") as f:
        json.dump(log, f, indent=1)


def _inputs(d):
    z = np.load(os.path.join(d, "io.npz"))
    xs = [z[k] for k in sorted(k for k in z.files if k.startswith("in"))]
    refs = [z[k] for k in sorted(k for k in z.files if k.startswith("ref_"))]
    return xs, refs


DRIVER = os.environ.get("TEXFLOW_BENCH_DRIVER", "vulkan")  # local-task: the same on llvm-cpu


def _open(path, config):
    from texflow.runtime import Module
    from texflow.streaming.executor import StreamingSession
    from texflow.streaming.program import is_streamed_module
    if is_streamed_module(path):
        s = StreamingSession([path], driver=DRIVER, config=config)
        return s, (lambda xs: s.run(*xs))
    m = Module(path, driver=DRIVER, config=config)
    return m, (lambda xs: m(*xs))


def measure(work, out, rounds):
    import iree.runtime as rt
    res = []
    for name in sorted(os.listdir(work)):
        d = os.path.join(work, name)
        if not os.path.isfile(os.path.join(d, "io.npz")):
            continue
        xs, refs = _inputs(d)
        config = None
        runners, objs, first = {}, {}, {}
        for var in VARIANTS:
            p = os.path.join(d, f"{var}.vmfb")
            if not os.path.exists(p):
                continue
            try:
                if config is None:
                    config = rt.Config(DRIVER)
                obj, call = _open(p, config)
                first[var] = call(xs)
                runners[var], objs[var] = call, obj
            except Exception as e:
                res.append({"model": name, "variant": var, "error": f"{type(e).__name__}: {e}"})
                print(json.dumps(res[-1]), flush=True)
        times = {v: [] for v in runners}
        for _ in range(rounds):
            for v, call in runners.items():
                t0 = time.perf_counter()
                ys = call(xs)
                times[v].append(time.perf_counter() - t0)
        base = times.get("texflow")
        for v in runners:
            ys = first[v]
            rec = {"model": name, "variant": v, "median_ms": statistics.median(times[v]) * 1e3,
                   "max_rel_err_vs_ort": max(float(np.abs(y - r).max() / (np.abs(r).max() + 1e-30))
                                             for y, r in zip(ys, refs))}
            if base:
                rec["ratio_vs_texflow"] = statistics.median(a / b for a, b in zip(times[v], base))
                rec["bitwise_vs_texflow"] = all(np.array_equal(a, b) for a, b in
                                                zip(ys, first["texflow"]))
            if "plain" in times:
                rec["ratio_vs_plain"] = statistics.median(a / b for a, b in
                                                          zip(times[v], times["plain"]))
            if hasattr(objs[v], "summary"):
                sm = objs[v].summary()
                loads = [e for e in objs[v].last.events if e.kind == "load"]
                rec["last_run_loads"] = {"n": len(loads), "bytes": sum(e.bytes for e in loads),
                                         "busy_s": sum(e.t1 - e.t0 for e in loads),
                                         "last_end_s": max([e.t1 for e in loads] or [0.0]),
                                         "latency_s": objs[v].last.latency_s}
                rec["summary"] = {k: sm.get(k) for k in (
                    "mode", "segments", "budget_bytes", "weight_bytes", "preloaded_bytes",
                    "streamed_bytes", "arena_bytes", "weight_buffer_bytes", "planned_peak_bytes",
                    "peak_accounted_bytes", "memory_type", "preload_s", "stall_s", "compute_s")}
            res.append(rec)
            print(json.dumps(rec), flush=True)
        for o in objs.values():
            if hasattr(o, "close"):
                o.close()
        del runners, objs
        # cold start: a fresh process per variant, process start to first result
        for var in VARIANTS:
            p = os.path.join(d, f"{var}.vmfb")
            if not os.path.exists(p):
                continue
            walls = []
            for _ in range(2):
                t0 = time.perf_counter()
                cp = subprocess.run([sys.executable, __file__, "cold", p], capture_output=True,
                                    text=True)
                wall = time.perf_counter() - t0
                try:
                    inner = json.loads(cp.stdout.strip().splitlines()[-1])
                except (ValueError, IndexError):
                    inner = {"error": cp.stderr[-500:]}
                walls.append({"process_s": wall, **inner})
            rec = {"model": name, "variant": var, "cold": walls}
            res.append(rec)
            print(json.dumps(rec), flush=True)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "stream_fenced.json"), "w") as f:
        json.dump(res, f, indent=1)


def cold(path):
    t0 = time.perf_counter()
    from texflow.streaming.executor import evict_file
    for f in (path, path + ".irpa"):
        if os.path.exists(f):
            evict_file(f)
    xs, _ = _inputs(os.path.dirname(path))
    t1 = time.perf_counter()
    obj, call = _open(path, None)
    t2 = time.perf_counter()
    call(xs)
    t3 = time.perf_counter()
    print(json.dumps({"imports_s": t1 - t0, "open_s": t2 - t1, "first_run_s": t3 - t2,
                      "open_plus_first_s": t3 - t1}))


def report(path):
    """Markdown tables from stream_fenced.json (run here, on the copied result)."""
    res = json.load(open(path))
    warm = [r for r in res if "median_ms" in r]
    cold = {(r["model"], r["variant"]): r["cold"] for r in res if "cold" in r}
    errs = [r for r in res if "error" in r]
    out = ["| model | variant | mode | segments | budget MB | weight buffers MB | streamed MB | "
           "warm ms | x texflow resident | x plain | loads: MB, busy ms | cold: open + first run s | "
           "bitwise vs resident | max rel err vs ORT |", "|" + "---|" * 14]
    for r in warm:
        sm = r.get("summary") or {}
        ld = r.get("last_run_loads") or {}
        c = cold.get((r["model"], r["variant"]), [])
        cs = ", ".join(f"{x.get('open_plus_first_s', float('nan')):.2f}" for x in c)
        mb = (lambda b: f"{b / 1e6:.1f}" if b else "-")
        out.append(
            f"| {r['model']} | {r['variant']} | {sm.get('mode') or ('segments' if sm else '-')} | "
            f"{sm.get('segments', '-')} | {mb(sm.get('budget_bytes'))} | "
            f"{mb(sm.get('weight_buffer_bytes') or sm.get('peak_accounted_bytes'))} | "
            f"{mb(sm.get('streamed_bytes'))} | {r['median_ms']:.1f} | "
            f"{r.get('ratio_vs_texflow', float('nan')):.2f} | {r.get('ratio_vs_plain', float('nan')):.2f} | "
            f"{(mb(ld.get('bytes')) + ', ' + format(ld.get('busy_s', 0) * 1e3, '.1f')) if ld else '-'} | "
            f"{cs} | {r.get('bitwise_vs_texflow')} | {r['max_rel_err_vs_ort']:.1e} |")
    for e in errs:
        out.append(f"\n- {e['model']} {e['variant']}: {e['error'][:300]}")
    print("\n".join(out))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "compile":
        names = sys.argv[sys.argv.index("--models") + 1].split(",")
        compile_all(sys.argv[2], names)
    elif cmd == "measure":
        rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 20
        measure(sys.argv[2], sys.argv[3], rounds)
    elif cmd == "cold":
        cold(sys.argv[2])
    elif cmd == "report":
        report(sys.argv[2])
