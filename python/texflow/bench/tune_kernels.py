"""python -m texflow.bench.tune_kernels: measure SPIR-V configurations of texflow's kernels on
the device and write the target's kernel table (`texflow/kernelconfig/data/<target>.json`).

Three steps, because the GPU machine has IREE's runtime but compiling there costs carrying the
compiler (benchmarks/gpu/compile_on_device.sh):

    prepare  (here)    the shapes texflow-configure-kernels would configure in the given models
                       (their dispatches at IREE's executable-sources phase), candidate configurations for each, each
                       candidate compiled alone with IREE's executable-benchmark dump; every dumped
                       benchmark merged into one module, `tune.vmfb`, and `manifest.json`
    measure  (device)  each benchmark timed alone (dispatch_profile.time_dispatches: batches of 16
                       and 256 separate the kernel from the submission) -> `measured.json`
    select   (here)    for each shape, the fastest candidate when it beats IREE's own configuration
                       (candidate 0, no compilation_info) by more than `--min-gain`; the table
                       records both times, the device and the date

A shape where no candidate wins keeps IREE's configuration (no entry): the table never makes a
tuned shape slower than IREE by more than the measurement's noise.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from texflow import kernelconfig
from texflow.kernelconfig.table import Config, Entry, KernelTable

# per invocation: output-channel blocks x pixels (x the 4 lanes); per workgroup: 32-256 threads
THREAD_TILES_F = (1, 2, 4)
THREAD_TILES_P = (1, 2, 4, 5, 7, 8)
THREAD_TILES_ROWS = (1, 2)
THREADS_F = (1, 2, 4, 8, 16, 32)
THREADS_MIN, THREADS_MAX = 32, 256
REDUCTION = (1, 2, 4)
PER_SHAPE = 32  # candidates per shape besides IREE's own


def _divisors(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def _all_candidates(cls: str, dims: tuple[int, ...]) -> list[Config]:
    out = []
    if cls == "conv1x1_nc4hw4":
        # loops fo hw fi | kb k4: threads over (fo, hw), each doing sf x sh pixels x 4 lanes
        f, hw, _, c, _ = dims
        for sf in THREAD_TILES_F:
            for sh in THREAD_TILES_P:
                if f % sf or hw % sh or sf * sh > 16:
                    continue
                for nh in _divisors(hw // sh, THREADS_MAX):
                    for nf in THREADS_F:
                        if not THREADS_MIN <= nf * nh <= THREADS_MAX or f % (sf * nf):
                            continue
                        for kb in REDUCTION:
                            out.append(Config("BaseVectorize", (1, nh, nf),
                                              ((sf * nf, sh * nh, 4), (sf, sh, 4), (0, 0, 0, kb, 4))))
    else:
        # loops fo oh ow fi | co kh kw ci (conv1x1_nc4hw4_2d: fo oh ow fi | kb k4): threads over
        # (oh, ow), each doing sf filter blocks (not distributed, as IREE's own configuration) of
        # soh x sow pixels x 4 lanes
        f, oh, ow = dims[:3]
        red = (lambda kb: (0, 0, 0, 0, kb, 4)) if cls == "conv1x1_nc4hw4_2d" \
            else (lambda kb: (0, 0, 0, 0, kb, 1, 1, 4))
        for sf in THREAD_TILES_F:
            for soh in THREAD_TILES_ROWS:
                for sow in THREAD_TILES_P:
                    if f % sf or oh % soh or ow % sow or sf * soh * sow > 16:
                        continue
                    for nz in _divisors(oh // soh, 32):
                        for ny in _divisors(ow // sow, THREADS_MAX):
                            if not THREADS_MIN <= nz * ny <= THREADS_MAX:
                                continue
                            for kb in REDUCTION:
                                out.append(Config("BaseVectorize", (1, ny, nz),
                                                  ((sf, soh * nz, sow * ny, 4), (0, soh, sow, 4),
                                                   red(kb))))
    return [c for c in out if c.fits(dims)]


def candidates(cls: str, dims: tuple[int, ...], limit: int = PER_SHAPE) -> list[Config]:
    """Valid BaseVectorize configurations for an op of `cls` with loop sizes `dims` (every
    tile divides its loop, 32-256 threads a workgroup), a deterministic sample of at most
    `limit` of them."""
    out = _all_candidates(cls, dims)
    if len(out) > limit:
        rng = np.random.default_rng(list(dims))
        keep = sorted(rng.choice(len(out), size=limit, replace=False).tolist())
        out = [out[i] for i in keep]
    return out


def candidate_mlir(name: str, cls: str, dims: tuple[int, ...], cfg: Config | None) -> str:
    """One function holding the op alone, its operands as arguments (no weights to carry)."""
    attr = f" attrs = {{compilation_info = {cfg.attr_text()}}}" if cfg else ""
    if cls == "conv1x1_nc4hw4":
        f, hw, _, c, _ = dims
        xt, wt, ot = f"tensor<{c}x{hw}x4xf32>", f"tensor<{f}x{c}x4x4xf32>", f"tensor<{f}x{hw}x4xf32>"
        loops = "(d0, d1, d2, d3, d4)"
        maps = [f"affine_map<{loops} -> (d3, d1, d4)>", f"affine_map<{loops} -> (d0, d3, d4, d2)>",
                f"affine_map<{loops} -> (d0, d1, d2)>"]
        its = ["parallel"] * 3 + ["reduction"] * 2
    elif cls == "conv1x1_nc4hw4_2d":
        f, oh, ow, _, c, _ = dims
        xt, wt, ot = f"tensor<{c}x{oh}x{ow}x4xf32>", f"tensor<{f}x{c}x4x4xf32>", f"tensor<{f}x{oh}x{ow}x4xf32>"
        loops = "(d0, d1, d2, d3, d4, d5)"
        maps = [f"affine_map<{loops} -> (d4, d1, d2, d5)>", f"affine_map<{loops} -> (d0, d4, d5, d3)>",
                f"affine_map<{loops} -> (d0, d1, d2, d3)>"]
        its = ["parallel"] * 4 + ["reduction"] * 2
    else:
        s = int(cls.rsplit("_s", 1)[1])
        f, oh, ow, _, c, kh, kw, _ = dims
        hin, win = (oh - 1) * s + kh, (ow - 1) * s + kw
        xt, wt = f"tensor<{c}x{hin}x{win}x4xf32>", f"tensor<{f}x{c}x{kh}x{kw}x4x4xf32>"
        ot = f"tensor<{f}x{oh}x{ow}x4xf32>"
        loops = "(d0, d1, d2, d3, d4, d5, d6, d7)"
        maps = [f"affine_map<{loops} -> (d4, d1 * {s} + d5, d2 * {s} + d6, d7)>",
                f"affine_map<{loops} -> (d0, d4, d5, d6, d7, d3)>",
                f"affine_map<{loops} -> (d0, d1, d2, d3)>"]
        its = ["parallel"] * 4 + ["reduction"] * 4
    its_text = ", ".join(f'"{i}"' for i in its)
    # conv1x1_nc4hw4_2d is the form of a 1x1 convolution whose result IREE writes into a padded
    # buffer: alone, IREE would collapse its pixel loops (rebuilding the op, dropping its
    # configuration), so the candidate returns its result padded as the model's next KxK
    # convolution reads it.
    ret, rt = "%r", ot
    pad = ""
    if cls == "conv1x1_nc4hw4_2d":
        rt = f"tensor<{f}x{oh + 2}x{ow + 2}x4xf32>"
        ret = "%p"
        pad = f"""  %p = tensor.pad %r low[0, 1, 1, 0] high[0, 1, 1, 0] {{
  ^bb0(%i0: index, %i1: index, %i2: index, %i3: index):
    tensor.yield %z : f32
  }} : {ot} to {rt}
"""
    return f"""func.func @{name}(%x: {xt}, %w: {wt}) -> {rt} {{
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : {ot}
  %i = linalg.fill ins(%z : f32) outs(%e : {ot}) -> {ot}
  %r = linalg.generic {{indexing_maps = [{", ".join(maps)}], iterator_types = [{its_text}]}}
      ins(%x, %w : {xt}, {wt}) outs(%i : {ot}){attr} {{
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %o, %m : f32
    linalg.yield %s : f32
  }} -> {ot}
{pad}  return {ret} : {rt}
}}
"""


def model_shapes(onnx_path: str, target: str) -> list[tuple[str, tuple[int, ...]]]:
    """(class, loop sizes) of every kernel texflow-configure-kernels would configure in the
    model: its dispatches at IREE's executable-sources phase, compiled without a table."""
    from texflow.compiler import CompileOptions, Compiler
    from texflow.passes.gpu.configure_kernels import dispatch_kernels
    c = Compiler(CompileOptions(target=target, compile_to="executable-sources", configure_kernels=False))
    res = c.compile_file(str(onnx_path))
    with c.session.context:
        m = c.session.parse(res.mlir, str(onnx_path))
        out = [(cls, dims) for _, cls, dims in dispatch_kernels(m)]
    return out


def _keeps_config(benchmark: str, cfg: Config) -> bool:
    """Whether a dumped benchmark's kernel carries `cfg` (IREE drops an op's compilation_info
    when it rebuilds the op: then the candidate would time IREE's own configuration)."""
    wg = ", ".join(map(str, cfg.workgroup_size))
    tiles = ", ".join("[" + ", ".join(map(str, t)) + "]" for t in cfg.tile_sizes)
    return (f"spirv_pipeline<{cfg.pipeline}> workgroup_size = [{wg}]" in benchmark
            and f"tile_sizes = [{tiles}]" in benchmark)


def _compile_one(job) -> tuple[str, str | None]:
    name, text, flags, workdir = job
    src = workdir / "src" / f"{name}.mlir"
    src.write_text(text)
    try:
        p = subprocess.run(["iree-compile", str(src), *flags,
                            f"--iree-hal-dump-executable-benchmarks-to={workdir / 'dump' / name}",
                            "-o", os.devnull], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return name, "did not compile in 120 s"
    if p.returncode != 0:
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        return name, (lines or ["?"])[0][:200]
    return name, None


def prepare(models: list[str], target: str, workdir: Path, per_shape: int = PER_SHAPE,
            classes: list[str] | None = None, log=print) -> dict:
    from texflow.targets import get_target
    from . import corpus
    from .dispatch_profile import _EXPORT_RE, merge
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("src", "dump"):
        (workdir / sub).mkdir(exist_ok=True)
    shapes: dict[tuple[str, tuple[int, ...]], list[str]] = {}
    for name in models:
        # a path to an ONNX file (the user's own model), else a suite or corpus name
        path = name if name.endswith(".onnx") else corpus.build_any(name, log=log).onnx_path
        found = model_shapes(path, target)
        log(f"  {name}: {len(found)} ops to configure, {len(set(found))} shapes")
        for d in found:
            if classes and d[0] not in classes:
                continue
            shapes.setdefault(d, [])
            if name not in shapes[d]:
                shapes[d].append(name)
    flags = list(get_target(target).flags)
    jobs, manifest = [], {"target": target, "models": models, "shapes": []}
    for si, (cls, dims) in enumerate(sorted(shapes)):
        cands = [None] + candidates(cls, dims, per_shape)
        entry = {"class": cls, "dims": list(dims), "models": shapes[(cls, dims)], "candidates": []}
        for ci, cfg in enumerate(cands):
            fname = f"s{si}c{ci}"
            jobs.append((fname, candidate_mlir(fname, cls, dims, cfg), flags, workdir))
            entry["candidates"].append({"name": fname, "config": cfg.to_json() if cfg else None})
        manifest["shapes"].append(entry)
    log(f"  compiling {len(jobs)} candidates for {len(shapes)} shapes")
    with cf.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        failed = {n: why for n, why in pool.map(_compile_one, jobs) if why}
    texts = []
    for s in manifest["shapes"]:
        for c in s["candidates"]:
            if c["name"] in failed:
                c["failed"] = failed[c["name"]]
                continue
            files = sorted((workdir / "dump" / c["name"]).glob("*.mlir"))
            if len(files) != 1:
                c["failed"] = f"{len(files)} dumped benchmarks, expected 1"
                continue
            t = files[0].read_text()
            if c["config"] is not None and not _keeps_config(t, Config.from_json(c["config"])):
                c["failed"] = "IREE dropped the configuration (it rebuilt the op)"
                continue
            c["entry"] = _EXPORT_RE.search(t).group(1)
            texts.append(t)
    merged = workdir / "tune.mlir"
    merged.write_text(merge(texts))
    log(f"  compiling the merged module ({len(texts)} benchmarks)")
    p = subprocess.run(["iree-compile", str(merged), "-o", str(workdir / "tune.vmfb")],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"iree-compile of the merged benchmarks failed: {p.stderr.strip()[:300]}")
    (workdir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


# Batch sizes the kernels are timed at.  The fit t(B) = k + s/B over batches of 4 and 32 gave
# non-physical times on an H100 (0.2-0.4 us for 20-80 MFLOP kernels): the submission cost s,
# about a millisecond, swamped k.  At 16 and 256 it is spread over 16x more dispatches.
TUNE_BATCHES = (16, 256)


def measure(workdir: Path, device: str, reps: int, device_name: str, log=print) -> dict:
    from .dispatch_profile import time_dispatches
    times = time_dispatches(workdir / "tune.vmfb", device, reps, batches=TUNE_BATCHES)
    out = {"device": device_name, "driver": device, "reps": reps, "batches": list(TUNE_BATCHES),
           "date": dt.date.today().isoformat(), "times": times}
    (workdir / "measured.json").write_text(json.dumps(out, indent=1, sort_keys=True))
    log(f"  timed {len(times)} benchmarks on {device_name}")
    return out


def select(manifest: dict, measured: dict, min_gain: float = 0.05) -> tuple[KernelTable, list[dict]]:
    """The kernel table from the measurements, and one report row per shape."""
    times = measured["times"]

    def us(c):
        e = c.get("entry")
        t = next((v for k, v in times.items() if e and k.endswith("_" + e)), None)
        return t["us"] if t else None
    entries: dict[str, list[Entry]] = {}
    rows = []
    for s in manifest["shapes"]:
        dims = tuple(s["dims"])
        base = us(s["candidates"][0])
        timed = [(us(c), c) for c in s["candidates"][1:]]
        timed = [(t, c) for t, c in timed if t is not None]
        row = {"class": s["class"], "dims": list(dims), "models": s["models"], "default_us": base,
               "candidates": len(s["candidates"]) - 1, "timed": len(timed)}
        if timed and base is not None:
            t, c = min(timed, key=lambda tc: (tc[0], tc[1]["name"]))
            row.update(best_us=t, best=c["config"])
            if t < base * (1 - min_gain):
                entries.setdefault(s["class"], []).append(Entry(dims, Config.from_json(c["config"]),
                                     {"us": round(t, 2), "iree_default_us": round(base, 2),
                                      "candidates": len(timed)}))
                row["chosen"] = True
        rows.append(row)
    table = KernelTable(manifest["target"], measured["device"], measured["date"], "measured", entries)
    return table, rows


def report(rows: list[dict]) -> str:
    lines = ["| class | loops | models | IREE's own us | best us | speed-up | best configuration |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        best = r.get("best")
        cfg = (f"wg {best['workgroup_size']}, tiles {best['tile_sizes']}" if best else "-")
        sp = (f"{r['default_us'] / r['best_us']:.2f}x" if r.get("best_us") and r.get("default_us") else "-")
        lines.append(f"| {r['class']} | {'x'.join(map(str, r['dims']))} | {', '.join(r['models'])} | "
                     f"{r['default_us'] and round(r['default_us'], 1)} | "
                     f"{r.get('best_us') and round(r['best_us'], 1)} | {sp}"
                     f"{'' if r.get('chosen') else ' (kept IREE)'} | {cfg} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m texflow.bench.tune_kernels", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--models", required=True,
                   help="comma-separated: suite models, corpus:NAME, or paths to .onnx files")
    p.add_argument("--target", default="vulkan-nvidia")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--per-shape", type=int, default=PER_SHAPE)
    p.add_argument("--classes", default="", help="only these kernel classes (default: all)")
    m = sub.add_parser("measure")
    m.add_argument("--dir", required=True, type=Path)
    m.add_argument("--device", default="vulkan")
    m.add_argument("--device-name", default="unknown device")
    m.add_argument("--reps", type=int, default=3)
    s = sub.add_parser("select")
    s.add_argument("--dir", required=True, type=Path, nargs="+",
                   help="prepared and measured folders (their shapes are merged into one table)")
    s.add_argument("--out", type=Path, help="the kernel table to write (default: the target's)")
    s.add_argument("--min-gain", type=float, default=0.05)
    a = ap.parse_args(argv)
    if a.step == "prepare":
        prepare([x for x in a.models.split(",") if x], a.target, a.dir, a.per_shape,
                [x for x in a.classes.split(",") if x] or None)
    elif a.step == "measure":
        measure(a.dir, a.device, a.reps, a.device_name)
    else:
        table, rows = None, []
        for d in a.dir:
            manifest = json.loads((d / "manifest.json").read_text())
            measured = json.loads((d / "measured.json").read_text())
            t, r = select(manifest, measured, a.min_gain)
            rows += r
            if table is None:
                table = t
            elif (t.target, t.device) != (table.target, table.device):
                raise SystemExit(f"{d}: measured for {t.target} on {t.device}, not "
                                 f"{table.target} on {table.device}")
            else:
                for cls, es in t.entries.items():
                    table.entries.setdefault(cls, []).extend(es)
        out = a.out or kernelconfig.table.DATA_DIR / f"{table.target}.json"
        out.write_text(json.dumps(table.to_json(), indent=1, sort_keys=True) + "\n")
        (a.dir[0] / "report.md").write_text(report(rows))
        sys.stdout.write(report(rows))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
