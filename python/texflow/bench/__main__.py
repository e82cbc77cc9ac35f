"""texflow-bench: `python -m texflow.bench --models vit,gpt2 --targets llvm-cpu --reps 20`.

`python -m texflow.bench corpus --help`: the corpus mode (corpus_run.py), 52 architectures,
plain IREE vs texflow on every target.

For each model and target: build/export the model (cached), compile it with every variant
(plain IREE and texflow, optionally with data tiling), count and classify dispatches, run the
variants against ONNX Runtime's outputs, time them interleaved in this process, time ONNX
Runtime in a child process, and write report.md / results.json / chart.png into
`--out/<date-time>/`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from . import corpus, harness, models, report

DRIVERS = {"llvm-cpu": "local-task"}


class Progress:
    """One line per step with elapsed time; a live counter during timing on a terminal."""

    def __init__(self, total: int):
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.tty = sys.stderr.isatty()

    def step(self, what: str):
        el = time.perf_counter() - self.t0
        print(f"[{self.done}/{self.total} {el:6.0f}s] {what}", file=sys.stderr, flush=True)

    def reps(self, label: str):
        def cb(i, n):
            if self.tty:
                print(f"\r    timing {label}: {i}/{n}", end="" if i < n else "\n",
                      file=sys.stderr, flush=True)
            elif i == n or i % max(1, n // 4) == 0:
                print(f"    timing {label}: {i}/{n}", file=sys.stderr, flush=True)
        return cb


def parse_args(argv):
    p = argparse.ArgumentParser(prog="texflow-bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="default",
                   help=f"comma-separated ({', '.join(models.MODELS)}), 'default' "
                        f"({','.join(models.DEFAULT_MODELS)}) or 'all'; corpus models as "
                        f"corpus:NAME or corpus:FAMILY")
    p.add_argument("--targets", default="llvm-cpu",
                   help="comma-separated texflow targets: llvm-cpu, vulkan-generic, vulkan-nvidia, ...")
    p.add_argument("--variants", default="plain,texflow",
                   help=f"comma-separated of {', '.join(harness.VARIANTS)}")
    p.add_argument("--data-tiling", action="store_true",
                   help="add the +dt variants (IREE --iree-opt-data-tiling)")
    p.add_argument("--reps", type=int, default=20, help="timed repetitions per variant")
    p.add_argument("--vulkan-reps", type=int, default=3,
                   help="repetitions on Vulkan targets (lavapipe is for correctness only)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0,
                   help="threads for IREE local-task and ONNX Runtime (0: all cores)")
    p.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime timing")
    p.add_argument("--mnn", action="store_true",
                   help="also time MNN (PyPI `mnn`, CPU backend, same threads; converted with its "
                        "ONNX converter) as a peer, in its own child process")
    p.add_argument("--ncnn", action="store_true",
                   help="also time ncnn (PyPI `ncnn`, converted from the PyTorch model with "
                        "`pnnx`) in fp32 and with its fp16 defaults, each in a child process: "
                        "on its Vulkan backend for Vulkan targets, its CPU backend for llvm-cpu")
    p.add_argument("--check-cli", action="store_true",
                   help="also count dispatches with iree-import-onnx + iree-compile and compare")
    p.add_argument("--no-dispatch-count", action="store_true")
    p.add_argument("--rebuild", action="store_true", help="re-export the models")
    p.add_argument("--save-vmfb", type=Path, default=None,
                   help="write each compiled module to DIR/<model>.<target>.<variant>.vmfb")
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument("--build-only", action="store_true", help="build and cache the models, no runs")
    return p.parse_args(argv)


def bench_model(name: str, target: str, a, prog: Progress, ort_cache: dict) -> dict:
    cm = corpus.build_any(name, a.rebuild, log=lambda s: prog.step(s.strip()))
    meta = cm.meta
    entry = {"model": name, "target": target, "summary": meta["summary"],
             "parameters": meta["parameters"], "inputs": meta["inputs"], "variants": {}}
    variants = [harness.VARIANTS[v] for v in a.variants]
    vmfbs = {}
    for v in variants:
        prog.step(f"{name} / {target}: compiling {v.name}")
        try:
            r = harness.compile_variant(cm.onnx_path, target, v,
                                        count_dispatches=not a.no_dispatch_count)
        except Exception as e:  # noqa: BLE001
            entry["variants"][v.name] = {"error": f"compile: {type(e).__name__}: "
                                                  f"{str(e).splitlines()[0][:300]}"}
            continue
        vmfbs[v.name] = r.pop("vmfb")
        if a.save_vmfb:
            a.save_vmfb.mkdir(parents=True, exist_ok=True)
            (a.save_vmfb / f"{name}.{target}.{v.name}.vmfb").write_bytes(vmfbs[v.name])
        entry["variants"][v.name] = r
        fl = r.get("flow") or {}
        prog.step(f"{name} / {target}: {v.name} compiled in {r['compile_s']:.1f} s, "
                  f"{fl.get('dispatches', '?')} dispatches ({fl.get('data_movement', '?')} data movement)")
    if a.check_cli and "plain" in entry["variants"] and "flow" in entry["variants"]["plain"]:
        prog.step(f"{name} / {target}: iree-import-onnx + iree-compile --compile-to=flow")
        try:
            c = harness.iree_compile_cli_summary(cm.onnx_path, target)
            pf = entry["variants"]["plain"]["flow"]
            entry["cli_check"] = {"dispatches": c["dispatches"], "data_movement": c["data_movement"],
                                  "executables": c["executables"],
                                  "equal": (c["dispatches"], c["data_movement"], c["executables"])
                                  == (pf["dispatches"], pf["data_movement"], pf["executables"])}
        except Exception as e:  # noqa: BLE001
            entry["cli_check"] = {"error": str(e)[:300]}
    driver = DRIVERS.get(target, "vulkan")
    reps = a.reps if driver == "local-task" else min(a.reps, a.vulkan_reps)
    peers = {}
    wanted = ([] if a.no_ort else ["ort"]) + (["mnn"] if a.mnn else [])
    if driver == "local-task" and vmfbs and reps:
        for rt in wanted:
            try:
                peers[rt] = harness.PeerChild(cm.onnx_path, cm.dir / "inputs.npz", a.threads, rt,
                                              ref_npz=cm.dir / "ref.npz")
            except Exception as e:  # noqa: BLE001
                entry[rt] = {"error": str(e)[:300]}
    if a.ncnn and vmfbs and reps:
        peers.update(ncnn_peers(name, cm, a.threads, driver, entry, prog))
    if vmfbs:
        names = " and ".join(harness.PeerChild.NAMES[k] for k in peers)
        prog.step(f"{name} / {target}: running {', '.join(vmfbs)}"
                  f"{' and ' + names + ' (child processes)' if peers else ''} on {driver}, "
                  f"{reps} reps interleaved")
        try:
            ref = cm.reference()
            runs = harness.run_modules(vmfbs, driver, cm.inputs(), ref, reps, a.warmup,
                                       progress=prog.reps(f"{name}/{target}"), peers=peers or None)
        finally:
            for p in peers.values():
                p.close()
        for k, p in peers.items():
            entry[k] = dict(runs.pop(k), threads=a.threads, interleaved=True, max_abs=p.max_abs,
                            **({"device": p.device_name} if p.device_name else {}))
            if p.max_abs is not None:
                entry[k]["max_rel"] = p.max_abs / max(float(np.abs(ref[0]).max()), 1e-30)
        for k, d in runs.items():
            entry["variants"][k].update(d)
        del vmfbs
    if not a.no_ort and driver == "local-task" and "ort" not in entry:
        if name not in ort_cache:
            prog.step(f"{name}: ONNX Runtime CPU ({a.reps} reps, child process)")
            ort_cache[name] = harness.ort_time(cm.onnx_path, cm.dir / "inputs.npz", a.reps,
                                               a.threads, a.warmup)
        entry["ort"] = ort_cache[name]
    return entry


def ncnn_peers(name: str, cm, threads: int, driver: str, entry: dict, prog: Progress) -> dict:
    """ncnn fp32 and fp16 children for one model; a conversion or load failure is recorded
    in `entry` under the peer's key, one line, and the run goes on without it."""
    from . import ncnn_peer
    try:
        paths = ncnn_peer.convert(cm, corpus.spec_any(name), log=lambda s: prog.step(s.strip()))
    except ncnn_peer.NcnnError as e:
        for k in ("ncnn", "ncnn-fp16"):
            entry[k] = {"error": f"conversion: {e}"}
        return {}
    out = {}
    for k, prec in (("ncnn", "fp32"), ("ncnn-fp16", "fp16")):
        try:
            out[k] = harness.PeerChild(paths[prec][0], cm.dir / "inputs.npz", threads, k,
                                       ref_npz=cm.dir / "ref.npz",
                                       device="vulkan" if driver == "vulkan" else "cpu")
        except Exception as e:  # noqa: BLE001
            entry[k] = {"error": str(e)[:300]}
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "corpus":  # texflow-bench corpus ...: the corpus mode (corpus_run.py)
        from . import corpus_run
        return corpus_run.main(argv[1:])
    a = parse_args(argv)
    names = corpus.resolve_any(a.models)
    a.targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    a.variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    if a.data_tiling:
        a.variants += [v + "+dt" for v in list(a.variants) if "+dt" not in v]
    bad = [v for v in a.variants if v not in harness.VARIANTS]
    if bad:
        sys.exit(f"unknown variant(s): {', '.join(bad)}")
    from texflow.targets import get_target
    for t in a.targets:
        get_target(t)
    prog = Progress(len(names) * len(a.targets))
    if a.build_only:
        for n in names:
            corpus.build_any(n, a.rebuild, log=lambda s: prog.step(s.strip()))
        return 0
    harness.set_threads(a.threads)
    date = dt.datetime.now().astimezone()
    out_dir = a.out / date.strftime("%Y%m%d-%H%M%S")
    run = {"date": date.isoformat(timespec="seconds"), "machine": report.machine(),
           "versions": models.versions(),
           "config": {"command": "python -m texflow.bench " + shlex.join(
               sys.argv[1:] if argv is None else argv), "models": names, "targets": a.targets,
               "variants": a.variants, "reps": a.reps, "vulkan_reps": a.vulkan_reps,
               "warmup": a.warmup, "threads": a.threads},
           "results": []}
    ort_cache: dict = {}
    failed = 0
    for n in names:
        for t in a.targets:
            try:
                e = bench_model(n, t, a, prog, ort_cache)
            except Exception as ex:  # noqa: BLE001
                traceback.print_exc()
                e = {"model": n, "target": t, "error": f"{type(ex).__name__}: "
                                                       f"{str(ex).splitlines()[0][:300] if str(ex) else ''}"}
            failed += bool(e.get("error")) or any(v.get("error") for v in e.get("variants", {}).values())
            run["results"].append(e)
            prog.done += 1
            paths = report.write(run, out_dir)  # after every model: partial runs survive
    prog.step(f"done: {out_dir}/ ({', '.join(p.name for p in paths.values())})")
    print(report.markdown(run))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
