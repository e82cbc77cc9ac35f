"""Where a model's GPU milliseconds go: every dispatch timed on its own (issue 20, item 2).

    python -m texflow.bench.dispatch_profile --models mobilenetv2,corpus:convnext_tiny \
        --target vulkan-nvidia --device vulkan --variants plain,texflow --ncnn --out DIR

Whole-model times say that texflow is slower than ncnn, not why.  This profile says which
kernels take the time, so kernel configurations (item 3) can go where they pay.

For each model and variant (`harness.VARIANTS`: plain IREE, texflow, ...):
1. *Dispatches and how often each runs*: the module compiled to IREE's flow phase
   (`classify.summarize`), an executable dispatched twice counting twice.
2. *Each dispatch alone*: the same compile with `--iree-hal-dump-executable-benchmarks-to`,
   which writes one benchmark module per executable entry point (configured for the target:
   its `translation_info` names the code-generation pipeline and workgroup size, the root op's
   `lowering_config` the tile sizes).  The benchmarks are merged into one module (they share the
   device global and nothing else) so that one `iree-benchmark-module` process times them all.
   A dispatch benchmark records `batch` dispatches with a barrier after each into one command
   buffer and submits it once; google-benchmark divides by the batch.  Timing at two batch
   sizes, t(B) = k + s/B, separates the kernel time k from the submission cost s.
3. *The whole model* in `iree-benchmark-module` with the model's reference inputs, so the report
   can put the sum of the kernels (time x count) beside the model's own time: the difference is
   what the model spends outside its kernels (submission, barriers, transfers).
4. With `--ncnn`: ncnn's whole-call time and its time per layer type, from
   `ncnn_peer.NcnnRunner.layer_times` (prefix extraction: an estimate that holds on ncnn's CPU
   path but not on Vulkan, see there).
Dispatches whose dumped benchmark IREE does not re-compile (`compile_each`) are listed as
untimed with the reason.  On llvm-cpu IREE 3.14 rejects most dumped convolution benchmarks
(stack and vector-size checks), so this is a Vulkan tool.

Each dispatch is reported with its kind (IREE's name for its root op, or the data-movement kind
of `classify`), its shape, pipeline, workgroup size and tile sizes.  The timings are the
device's; the counts and configurations are deterministic.  Writes profile.json and
profile.md into --out.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import corpus, harness
from .classify import label_of, op_family, summarize

BATCHES = (4, 32)
DUMP_FLAG = "--iree-hal-dump-executable-benchmarks-to"

_EXPORT_RE = re.compile(r"hal\.executable\.export public @(\S+) ordinal")
_PIPELINE_RE = re.compile(r"pipeline = #iree_\w+\.\w*pipeline<(\w+)>|pipeline = (\w+)")
_WG_RE = re.compile(r"workgroup_size = \[([\d, ]+)\]")
# SPIR-V: `#iree_codegen.lowering_config<tile_sizes = [[...], ...]>`; CPU: `#iree_cpu.lowering_config<...>`
_TILES_RE = re.compile(r"lowering_config = #iree_codegen\.lowering_config<tile_sizes = (\[.*?\]\])>"
                       r"|lowering_config = #iree_cpu\.lowering_config<(.*?)>")
_DEVICE_RE = re.compile(r"^\s*util\.global private @__device_0 = .*$", re.M)


class ProfileError(RuntimeError):
    """A step of the profile failed (one line, for the report)."""


def configuration(text: str) -> dict:
    """Pipeline, workgroup size and the root op's tile sizes of one dumped benchmark."""
    p = _PIPELINE_RE.search(text)
    wg = _WG_RE.search(text)
    tiles = _TILES_RE.search(text)
    return {"pipeline": (p.group(1) or p.group(2)) if p else None,
            "workgroup_size": [int(x) for x in wg.group(1).split(",")] if wg else None,
            "tile_sizes": (tiles.group(1) or tiles.group(2)) if tiles else None}


def dump(onnx_path, target: str, variant: str, workdir: Path) -> tuple[dict, dict[str, Path]]:
    """Compile once to flow (dispatch counts) and once with the benchmark dump.
    Returns ({entry: {"count", "data_movement", "kind"}}, {entry: benchmark file})."""
    v = harness.VARIANTS[variant]
    summary = summarize(harness.flow_text(onnx_path, target, v))
    dispatches: dict[str, dict] = {}
    for item in summary.items:
        d = dispatches.setdefault(item.entry, {"count": 0, "data_movement": item.data_movement,
                                               "kind": item.kind})
        d["count"] += 1
    bench_dir = workdir / f"benchmarks-{variant}"
    bench_dir.mkdir(parents=True, exist_ok=True)
    dumped = dataclasses.replace(v, flags=v.flags + (f"{DUMP_FLAG}={bench_dir}",))
    res = harness.compile_variant(onnx_path, target, dumped, count_dispatches=False)
    (workdir / f"{variant}.vmfb").write_bytes(res["vmfb"])
    files: dict[str, Path] = {}
    for f in sorted(bench_dir.glob("*.mlir")):
        m = _EXPORT_RE.search(f.read_text())
        if m:
            files[m.group(1)] = f
    return dispatches, files


def merge(texts: list[str]) -> str:
    """One module holding every dumped benchmark: the device global once, the rest as is
    (each benchmark's executable, buffer, initializer and function have their own names)."""
    device, bodies = None, []
    for t in texts:
        t = t.strip()
        if not (t.startswith("module {") and t.endswith("}")):
            raise ProfileError("a dumped benchmark is not a plain `module { ... }`")
        body = t[len("module {"):-1]
        m = _DEVICE_RE.search(body)
        if not m:
            raise ProfileError("a dumped benchmark has no @__device_0 global")
        if device is None:
            device = m.group(0)
        elif m.group(0).strip() != device.strip():
            raise ProfileError("dumped benchmarks target different devices")
        bodies.append(body[:m.start()] + body[m.end():])
    return "module {\n" + (device or "") + "\n" + "\n".join(bodies) + "\n}\n"


def compile_each(files: dict[str, Path], workdir: Path, timeout: float = 30) -> dict[str, str]:
    """Compile every dumped benchmark on its own, in parallel: {entry: why} for those that do
    not compile.  IREE 3.14 does not round-trip every configured executable (MobileNetV2's
    SubgroupReduce 1x1000x1280 classifier never finishes compiling again), and one such
    benchmark must not stop the merged module."""
    import concurrent.futures as cf
    workdir.mkdir(parents=True, exist_ok=True)

    def one(item):
        entry, f = item
        try:
            p = subprocess.run(["iree-compile", str(f), "-o", str(workdir / (f.stem + ".vmfb"))],
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return entry, f"its benchmark did not compile in {timeout:.0f} s"
        if p.returncode != 0:
            lines = [x for x in p.stderr.splitlines() if x.strip()]
            return entry, f"its benchmark does not compile: {(lines or ['?'])[0][:160]}"
        return entry, None
    with cf.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return {e: why for e, why in pool.map(one, sorted(files.items())) if why}


def _benchmark_tool() -> str:
    from iree.runtime import _binding  # noqa: F401  (the wheel's tools sit beside it)
    import shutil
    tool = shutil.which("iree-benchmark-module")
    if tool:
        return tool
    import iree._runtime_libs as libs
    path = Path(libs.__file__).parent / "iree-benchmark-module"
    if not path.exists():
        raise ProfileError("iree-benchmark-module not found (pip install iree-base-runtime)")
    return str(path)


def _run_benchmark(args: list[str], timeout: float) -> dict[str, float]:
    """{benchmark function: median real time in us} from one iree-benchmark-module run."""
    p = subprocess.run([_benchmark_tool(), *args, "--benchmark_format=json", "--time_unit=us"],
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        raise ProfileError(f"iree-benchmark-module failed: {(lines or ['no output'])[-1][:200]}")
    out, single = {}, {}
    for b in json.loads(p.stdout)["benchmarks"]:
        name = b.get("run_name", b["name"]).removeprefix("BM_").split("/")[0]
        if b.get("aggregate_name") == "median":
            out[name] = float(b["real_time"])
        elif b.get("run_type", "iteration") == "iteration":
            single.setdefault(name, float(b["real_time"]))
    # one repetition: google-benchmark writes no aggregates, the run itself is the figure
    return out or single


def time_dispatches(vmfb: Path, device: str, reps: int, timeout: float = 600,
                    batches: tuple[int, int] = BATCHES) -> dict[str, dict]:
    """{benchmark function: {"us": kernel time, "submit_us": submission cost}} from timings at
    two batch sizes (t(B) = k + s/B)."""
    b1, b2 = batches
    runs = {b: _run_benchmark([f"--module={vmfb}", f"--device={device}", f"--batch_size={b}",
                               f"--benchmark_repetitions={reps}", "--benchmark_min_time=0.05s"],
                              timeout) for b in batches}
    out = {}
    for name, t1 in runs[b1].items():
        t2 = runs[b2].get(name)
        if t2 is None:
            continue
        k = (b2 * t2 - b1 * t1) / (b2 - b1)
        if k > 0:
            out[name] = {"us": k, "submit_us": max((t1 - k) * b1, 0.0), f"us_at_batch_{b2}": t2}
        else:  # noise larger than the kernel: the larger batch's time is an upper bound
            out[name] = {"us": t2, "submit_us": None, f"us_at_batch_{b2}": t2}
    return out


def time_model(vmfb: Path, function: str, inputs: list[np.ndarray], device: str, reps: int,
               workdir: Path, timeout: float = 600) -> float:
    """Median us of one call of the whole model in iree-benchmark-module."""
    args = [f"--module={vmfb}", f"--device={device}", f"--function={function}",
            f"--benchmark_repetitions={reps}"]
    for i, x in enumerate(inputs):
        f = workdir / f"in{i}.npy"
        np.save(f, x)
        args.append(f"--input=@{f}")
    got = _run_benchmark(args, timeout)
    if len(got) != 1:
        raise ProfileError(f"iree-benchmark-module timed {len(got)} functions, not one")
    return next(iter(got.values()))


def _shape(label: str) -> str:
    m = re.search(r"_((?:\d+|D)(?:x(?:\d+|D))*)(?:_|$)", label)
    return m.group(1) if m else ""


def profile_variant(cm, target: str, variant: str, device: str, reps: int, workdir: Path,
                    log=print) -> dict:
    """One model and variant: every dispatch with its count, configuration and time."""
    workdir.mkdir(parents=True, exist_ok=True)
    dispatches, files = dump(cm.onnx_path, target, variant, workdir)
    texts = {e: f.read_text() for e, f in files.items()}
    failed = compile_each(files, workdir / "each")
    merged = workdir / f"{variant}.benchmarks.mlir"
    merged.write_text(merge([t for e, t in texts.items() if e not in failed]))
    bvmfb = workdir / f"{variant}.benchmarks.vmfb"
    p = subprocess.run(["iree-compile", str(merged), "-o", str(bvmfb)], capture_output=True,
                       text=True)
    if p.returncode != 0:
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        raise ProfileError(f"iree-compile of the benchmarks failed: {(lines or ['?'])[0][:200]}")
    log(f"  {cm.name} / {variant}: timing {len(files)} dispatch benchmarks on {device}")
    times = time_dispatches(bvmfb, device, reps)
    rows = []
    for entry, d in dispatches.items():
        label = label_of(entry)
        text = texts.get(entry)
        t = next((v for k, v in times.items() if k.endswith("_" + entry)), None)
        rows.append({"entry": entry, "label": label,
                     "kind": f"data movement ({d['kind']})" if d["data_movement"] else op_family(label),
                     "shape": _shape(label), "count": d["count"],
                     **(configuration(text) if text else {}),
                     "us": t["us"] if t else None, "submit_us": t["submit_us"] if t else None,
                     **({"untimed": failed[entry]} if entry in failed else {})})
    rows.sort(key=lambda r: -(r["us"] or 0) * r["count"])
    out = {"variant": variant, "dispatches": rows,
           "dispatch_count": sum(r["count"] for r in rows),
           "kernel_us": sum((r["us"] or 0) * r["count"] for r in rows),
           "untimed": [r["entry"] for r in rows if r["us"] is None]}
    try:
        out["model_us"] = time_model(workdir / f"{variant}.vmfb", _function(cm), cm.inputs(),
                                     device, reps, workdir)
    except (ProfileError, subprocess.TimeoutExpired) as e:
        out["model_error"] = str(e)
    return out


def _function(cm) -> str:
    """The module's entry point: IREE's ONNX importer names it after the ONNX graph."""
    import onnx
    return onnx.load(str(cm.onnx_path), load_external_data=False).graph.name


def by_kind(rows: list[dict]) -> list[dict]:
    """Dispatch time summed per (kind, pipeline), largest first."""
    acc: dict = collections.defaultdict(lambda: {"dispatches": 0, "untimed": 0, "us": 0.0})
    for r in rows:
        a = acc[(r["kind"], r.get("pipeline") or "-")]
        a["dispatches"] += r["count"]
        if r["us"] is None:
            a["untimed"] += r["count"]
        else:
            a["us"] += r["us"] * r["count"]
    return sorted(({"kind": k, "pipeline": p, **v} for (k, p), v in acc.items()),
                  key=lambda x: -x["us"])


def profile(names: list[str], target: str, variants: list[str], device: str, reps: int,
            ncnn: bool, workroot: Path, log=print) -> list[dict]:
    rows = []
    for name in names:
        cm = corpus.build_any(name, log=log)
        row = {"model": name, "target": target, "device": device, "variants": {}}
        for v in variants:
            try:
                row["variants"][v] = profile_variant(cm, target, v, device, reps,
                                                     workroot / name / v, log)
            except Exception as e:  # noqa: BLE001  (a failure is a row of the report)
                row["variants"][v] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        if ncnn:
            row["ncnn"] = _ncnn_layers(cm, name, device, reps, log)
        rows.append(row)
    return rows


def _ncnn_layers(cm, name: str, device: str, reps: int, log) -> dict:
    from . import ncnn_peer
    try:
        param, binf = ncnn_peer.convert(cm, corpus.spec_any(name), log=log)["fp32"]
        runner = ncnn_peer.NcnnRunner(param, binf, cm.inputs(), "fp32", vulkan=device == "vulkan")
        return runner.layer_times(reps=max(reps, 3))
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}


def _us(us) -> str:
    return "–" if us is None else f"{us:.1f}"


def _kind_ms(k: dict) -> str:
    ms = _ms(k["us"]) if k["untimed"] < k["dispatches"] else "–"
    return ms + (f" ({k['untimed']} untimed)" if k["untimed"] else "")


def _ms(us) -> str:
    return "–" if us is None else f"{us / 1e3:.3f}"


def markdown(rows: list[dict], when: str, top: int = 12) -> str:
    L = [f"# Per-dispatch profile ({when})", "",
         "Each dispatch timed alone on the device (`python -m texflow.bench.dispatch_profile`; "
         f"IREE's dumped executable benchmarks, kernel time from batches of {BATCHES[0]} and "
         f"{BATCHES[1]}); *kernels* is the sum of time x count, *model* the whole module in "
         "`iree-benchmark-module`. ncnn's per-layer times are prefix-extraction estimates.", ""]
    for r in rows:
        L += [f"## {r['model']} ({r['target']}, {r['device']})", "",
              "| variant | dispatches | kernels ms | model ms | outside kernels ms |", "|---|---|---|---|---|"]
        for v, p in r["variants"].items():
            if "error" in p:
                L.append(f"| {v} | FAIL: {p['error']} | | | |")
                continue
            m = p.get("model_us")
            L.append(f"| {v} | {p['dispatch_count']} | {_ms(p['kernel_us'])} | {_ms(m)} | "
                     f"{_ms(None if m is None else m - p['kernel_us'])} |")
        nc = r.get("ncnn")
        if nc and "error" not in nc:
            L.append(f"| ncnn fp32 | {nc['layers']} layers | {_ms(nc['layers_us'])} (estimate) | "
                     f"{_ms(nc['model_us'])} | |")
        elif nc:
            L.append(f"| ncnn fp32 | FAIL: {nc['error']} | | | |")
        L.append("")
        for v, p in r["variants"].items():
            if "error" in p:
                continue
            L += [f"**{v}, by kind and pipeline**", "", "| kind | pipeline | dispatches | ms |",
                  "|---|---|---|---|"]
            L += [f"| {k['kind']} | {k['pipeline']} | {k['dispatches']} | {_kind_ms(k)} |"
                  for k in by_kind(p["dispatches"])]
            untimed = [d for d in p["dispatches"] if d["us"] is None]
            if untimed:
                L += ["", "Untimed: " + "; ".join(
                    f"{d['label']} x{d['count']} ({d.get('untimed', 'no benchmark')})" for d in untimed)]
            L += ["", f"**{v}, top {top} dispatches**", "",
                  "| dispatch | count | us each | pipeline | workgroup | tiles |", "|---|---|---|---|---|---|"]
            for d in p["dispatches"][:top]:
                L.append(f"| {d['label']} | {d['count']} | "
                         f"{_us(d['us'])} | {d.get('pipeline') or '–'} | "
                         f"{d.get('workgroup_size') or '–'} | `{d.get('tile_sizes') or '–'}` |")
            L.append("")
        if nc and "error" not in nc:
            L += ["**ncnn fp32, by layer type (estimate)**", "", "| layer type | layers | ms |",
                  "|---|---|---|"]
            L += [f"| {t['type']} | {t['layers']} | {_ms(t['us'])} |" for t in nc["by_type"]]
            L.append("")
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m texflow.bench.dispatch_profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="mobilenetv2")
    p.add_argument("--target", default="vulkan-nvidia")
    p.add_argument("--device", default="vulkan", help="IREE runtime driver (vulkan, local-task)")
    p.add_argument("--variants", default="plain,texflow")
    p.add_argument("--reps", type=int, default=5, help="benchmark repetitions (median)")
    p.add_argument("--ncnn", action="store_true", help="also ncnn's per-layer-type times (fp32)")
    p.add_argument("--out", default="benchmarks/gpu/profile")
    a = p.parse_args(argv)
    log = lambda *x: print(*x, file=sys.stderr, flush=True)  # noqa: E731
    names = [n for s in a.models.split(",") if s for n in corpus.resolve_any(s)]
    variants = [v for v in a.variants.split(",") if v]
    bad = [v for v in variants if v not in harness.VARIANTS]
    if bad:
        print(f"error: unknown variant(s) {', '.join(bad)} (known: {', '.join(harness.VARIANTS)})",
              file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="texflow-profile-") as work:
        rows = profile(names, a.target, variants, a.device, a.reps, a.ncnn, Path(work), log)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    doc = {"date": when, "host": os.uname().nodename, "batches": BATCHES, "rows": rows}
    (out / "profile.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "profile.md").write_text(markdown(rows, when))
    print(markdown(rows, when))
    return 0


if __name__ == "__main__":
    sys.exit(main())
