"""texflow-bench corpus: `python -m texflow.bench corpus --models all --targets llvm-cpu,vulkan-nvidia`.

For every corpus model (corpus.py) and target it compiles plain IREE (texflow's layout phase
off) and texflow (default options), each in a forked process (an IREE crash, or a compile that
runs past `--compile-timeout`, becomes a one-line error), and records whether each compiled
and the first line of its error.  A texflow compile that fails is tried once more with
`--select-layout=solver=greedy` (the CP-SAT layout solver is not deterministic yet, issue 16)
and both results are kept.

On llvm-cpu both modules run on the model's reference inputs (max abs and max relative
difference from ONNX Runtime's outputs; relative = max |a - b| / max |b|), then are timed
paired and interleaved at one thread (harness.run_modules: the order rotates every
repetition; medians and the median of the per-repetition texflow/plain ratios).  Vulkan
targets are compiled only.

Results go to `--out/results.json` and `--out/report.md`, rewritten after every model, so a
partial run is still a report; `--resume` skips the model/target pairs already there.  With
`--findings FILE`, every texflow failure where plain compiled, and every llvm-cpu slowdown
over `--slow-ratio`, is appended to FILE as it is found (error, command to reproduce, ONNX
path).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from . import harness, models, report

TARGETS = ["llvm-cpu", "vulkan-nvidia", "vulkan-valhall", "vulkan-adreno"]
GREEDY = "solver=greedy"
REL_TOL = 1e-4  # fp32 target of issue 16


def _one_line(e: BaseException | str) -> str:
    s = str(e).strip()
    line = s.splitlines()[0] if s else ""
    return line[:400]


def compile_forked(path, target: str, layout: bool, select_options: str = "",
                   timeout: float = 600) -> dict:
    """Compile in a forked child (texflow.isolation, as `compile_file(..., isolate=True)`),
    with a wall-clock limit; any failure is an entry's "error" text, never an exception."""
    from texflow.compiler import CompileOptions, Compiler
    from texflow.errors import TexflowError
    from texflow.isolation import ChildCrashed, call_forked
    opts = CompileOptions(target=target, layout=layout, select_options=select_options)
    Compiler(opts)  # validate the options here, in the parent

    def compile_one():
        r = Compiler(opts).compile_file(str(path))
        return {"vmfb": r.vmfb, "timings": r.timings}

    t0 = time.perf_counter()
    out = {}
    try:
        value = call_forked(compile_one, timeout)
        out = {"vmfb": value["vmfb"], "vmfb_bytes": len(value["vmfb"]),
               "texflow_s": round(sum(v for k, v in value["timings"].items() if k.startswith("texflow")), 2)}
    except ChildCrashed as e:
        out["error"] = (f"compile timed out after {int(timeout)} s" if e.signal == "SIGALRM"
                        else f"IREE crashed ({e.signal})")
    except TexflowError as e:
        out["error"] = _one_line(e)
    return {"compile_s": round(time.perf_counter() - t0, 2), **out}


def repro(onnx_path, target: str, variant: str) -> str:
    flags = {"plain": ["--no-layout"], "texflow": [], "texflow-greedy": [f"--select-layout={GREEDY}"]}
    return shlex.join(["texflow-compile", str(onnx_path), f"--target={target}", *flags[variant],
                       "-o", "/tmp/m.vmfb"])


def _reps_for(first_s: float, max_reps: int, budget_s: float) -> int:
    """Repetitions of the plain/texflow pair that fit in `budget_s` (at least 5)."""
    if first_s <= 0:
        return max_reps
    return int(max(5, min(max_reps, budget_s / (2 * first_s))))


def compile_target(cm: models.CachedModel, target: str, a, log=print) -> tuple[dict, dict]:
    """Compile plain and texflow (and, if texflow fails, texflow with the greedy solver) for one
    target; returns the entry and the compiled modules by variant."""
    e: dict = {"model": cm.name, "target": target, "onnx": str(cm.onnx_path), "variants": {}}
    vmfbs: dict[str, bytes] = {}
    for var, layout in (("plain", False), ("texflow", True)):
        log(f"{cm.name} / {target}: compiling {var}")
        r = compile_forked(cm.onnx_path, target, layout, "", a.compile_timeout)
        if var == "texflow" and "error" in r:
            log(f"{cm.name} / {target}: texflow failed ({r['error'][:160]}); retrying with {GREEDY}")
            g = compile_forked(cm.onnx_path, target, True, GREEDY, a.compile_timeout)
            if "vmfb" in g:
                vmfbs["texflow-greedy"] = g.pop("vmfb")
            e["variants"]["texflow-greedy"] = g
        if "vmfb" in r:
            vmfbs[var] = r.pop("vmfb")
        e["variants"][var] = r
        log(f"{cm.name} / {target}: {var} " + (f"compiled in {r['compile_s']} s" if "error" not in r
                                               else f"FAILED: {r['error'][:200]}"))
    return e, vmfbs


def run_cpu(cm: models.CachedModel, e: dict, vmfbs: dict, a, log=print) -> None:
    """Run the llvm-cpu modules against the reference and time them paired (into `e`)."""
    if not vmfbs:
        return
    inputs, ref = cm.inputs(), cm.reference()
    reps = a.reps
    if a.time_budget and "plain" in vmfbs:
        from texflow.runtime import Module
        try:  # two calls of plain to size the repetitions
            m = Module(vmfbs["plain"], driver="local-task")
            m(*inputs)
            t0 = time.perf_counter()
            m(*inputs)
            reps = _reps_for(time.perf_counter() - t0, a.reps, a.time_budget)
            del m
        except Exception:  # noqa: BLE001  (run_modules reports the error)
            pass
    log(f"{cm.name} / llvm-cpu: running {', '.join(vmfbs)} ({reps} reps interleaved, 1 thread)")
    runs = harness.run_modules(vmfbs, "local-task", inputs, ref, reps, a.warmup)
    for k, d in runs.items():
        if not a.keep_times:
            d.pop("times_ms", None)
        if "error" in d:  # it compiled: a failure to run or a wrong shape is kept apart
            d["run_error"] = d.pop("error")
        e["variants"][k].update(d)
    e["reps"] = reps


def run_target(cm: models.CachedModel, target: str, a, log=print) -> dict:
    """Compile (and on llvm-cpu run and time) one model for one target."""
    e, vmfbs = compile_target(cm, target, a, log)
    if target == "llvm-cpu":
        run_cpu(cm, e, vmfbs, a, log)
    del vmfbs
    gc.collect()
    return e


# -- summary helpers ------------------------------------------------------------------------
def texflow_ok(e: dict) -> bool:
    return "error" not in e["variants"].get("texflow", {"error": "missing"})


def plain_ok(e: dict) -> bool:
    return "error" not in e["variants"].get("plain", {"error": "missing"})


def ratio(e: dict) -> float | None:
    """texflow/plain (paired median), from texflow or else its greedy retry."""
    for k in ("texflow", "texflow-greedy"):
        r = e["variants"].get(k, {}).get("ratio_vs_plain")
        if r is not None:
            return r
    return None


def problems(e: dict, slow_ratio: float) -> list[dict]:
    """Every texflow failure where plain compiled, wrong output, and slowdown in one entry."""
    out = []
    if "error" in e:
        return [{"kind": "export", "model": e["model"], "target": e.get("target"), "error": e["error"]}]
    v = e["variants"]
    if plain_ok(e) and not texflow_ok(e):
        g = v.get("texflow-greedy", {})
        out.append({"kind": "texflow-fails", "model": e["model"], "target": e["target"],
                    "error": v["texflow"]["error"], "greedy": g.get("error", "compiled"),
                    "repro": repro(e["onnx"], e["target"], "texflow"),
                    "repro_greedy": repro(e["onnx"], e["target"], "texflow-greedy")})
    for k in ("plain", "texflow", "texflow-greedy"):
        d = v.get(k, {})
        if "vmfb_bytes" not in d:
            continue
        if "run_error" in d:
            out.append({"kind": "run-fails", "model": e["model"], "target": e["target"],
                        "variant": k, "error": d["run_error"]})
        elif d.get("max_rel") is not None and d["max_rel"] > REL_TOL:
            out.append({"kind": "inaccurate", "model": e["model"], "target": e["target"],
                        "variant": k, "max_rel": d["max_rel"], "max_abs": d["max_abs"]})
    r = ratio(e)
    if r is not None and r > slow_ratio:
        out.append({"kind": "slower", "model": e["model"], "target": e["target"], "ratio": r,
                    "plain_ms": v["plain"].get("median_ms"),
                    "texflow_ms": (v.get("texflow", {}).get("median_ms")
                                   or v.get("texflow-greedy", {}).get("median_ms"))})
    return out


def findings_lines(p: dict, onnx: str | None) -> list[str]:
    m, t = p["model"], p.get("target")
    if p["kind"] == "export":
        return [f"- **{m}**: not exported: `{p['error']}`"]
    if p["kind"] == "texflow-fails":
        return [f"- **{m} / {t}**: texflow fails, plain compiles: `{p['error']}`",
                f"  - with `--select-layout={GREEDY}`: "
                + ("compiles" if p["greedy"] == "compiled" else f"`{p['greedy']}`"),
                f"  - repro: `{p['repro']}`", f"  - ONNX: `{onnx}`"]
    if p["kind"] == "run-fails":
        return [f"- **{m} / {t}**: {p['variant']} compiles but fails to run: `{p['error']}`",
                f"  - repro: `{repro(onnx, t, p['variant'])}` then `texflow-run`",
                f"  - ONNX: `{onnx}`"]
    if p["kind"] == "inaccurate":
        return [f"- **{m} / {t}**: {p['variant']} output off: max rel {p['max_rel']:.2e} "
                f"(max abs {p['max_abs']:.2e}) > {REL_TOL:g}",
                f"  - repro: `{repro(onnx, t, p['variant'])}`", f"  - ONNX: `{onnx}`"]
    return [f"- **{m} / {t}**: texflow/plain = {p['ratio']:.3f} (paired median, 1 thread; "
            f"plain {report._f(p['plain_ms'], '{:.2f}')} ms, texflow "
            f"{report._f(p['texflow_ms'], '{:.2f}')} ms)",
            f"  - repro: `{repro(onnx, t, 'texflow')}` vs `{repro(onnx, t, 'plain')}`",
            f"  - ONNX: `{onnx}`"]


# -- report -----------------------------------------------------------------------------------
def _mark(d: dict | None) -> str:
    if d is None:
        return "–"
    return "ok" if "error" not in d else "FAIL"


def _tf_mark(e: dict) -> str:
    v = e["variants"]
    if texflow_ok(e):
        return "ok"
    g = v.get("texflow-greedy")
    return "FAIL (greedy ok)" if g is not None and "error" not in g else "FAIL"


def markdown(run: dict) -> str:
    rs = run["results"]
    names = list(dict.fromkeys(r["model"] for r in rs))
    targets = [t for t in run["config"]["targets"]]
    by = {(r["model"], r.get("target")): r for r in rs}
    exp_fail = [r for r in rs if r.get("kind") == "export"]
    L = [f"# texflow corpus: plain IREE vs texflow ({run['date']})", "",
         f"Command: `{run['config']['command']}`  ",
         f"Machine: {run['machine'].get('cpu')}, {run['machine'].get('cores')} cores; texflow "
         f"{run['machine'].get('texflow_git')}{' (working tree modified)' if run['machine'].get('texflow_dirty') else ''}; "
         + ", ".join(f"{k} {v}" for k, v in run["versions"].items()), "",
         "Every model is a real architecture in a small configuration with random, perturbed "
         "weights (`python/texflow/bench/corpus.py`); references are ONNX Runtime's CPU outputs. "
         f"Compiles run forked, {run['config'].get('jobs', 1)} at a time; a failed texflow compile is retried with "
         f"`--select-layout={GREEDY}`. llvm-cpu: max relative error = max|out - ref| / max|ref| "
         f"(target {REL_TOL:g}); times are medians at 1 thread, plain and texflow interleaved, "
         "ratio = median of per-repetition texflow/plain. Vulkan targets: compile only.", ""]
    # summary
    L += ["## Summary", "", f"Models: {len(names)} ({len(names) - len(exp_fail)} exported, "
          f"{len(exp_fail)} not exported).", "",
          "| target | models | plain compiles | texflow compiles | texflow fails where plain compiles "
          "| of those, greedy compiles | texflow compiles where plain fails | ok within 1e-4 (plain / texflow) |",
          "|---|---|---|---|---|---|---|---|"]
    for t in targets:
        es = [by[(n, t)] for n in names if (n, t) in by and "variants" in by[(n, t)]]
        if not es:
            continue
        po = sum(plain_ok(e) for e in es)
        to = sum(texflow_ok(e) for e in es)
        tf = [e for e in es if plain_ok(e) and not texflow_ok(e)]
        gr = sum("error" not in e["variants"].get("texflow-greedy", {"error": 1}) for e in tf)
        extra = sum(texflow_ok(e) and not plain_ok(e) for e in es)
        acc = "–"
        if t == "llvm-cpu":
            pa = sum((e["variants"]["plain"].get("max_rel") or 1) <= REL_TOL for e in es)
            ta = sum(((e["variants"].get("texflow", {}).get("max_rel")
                       if texflow_ok(e) else None) or 1) <= REL_TOL for e in es)
            acc = f"{pa} / {ta}"
        L.append(f"| {t} | {len(es)} | {po} | {to} | {len(tf)} | {gr} | {extra} | {acc} |")
    L.append("")
    rat = [ratio(by[(n, "llvm-cpu")]) for n in names if (n, "llvm-cpu") in by
           and "variants" in by[(n, "llvm-cpu")]]
    rat = [r for r in rat if r]
    if rat:
        geo = float(np.exp(np.mean(np.log(rat))))
        L += [f"llvm-cpu texflow/plain: geomean {geo:.3f} over {len(rat)} models, "
              f"{sum(r > run['config']['slow_ratio'] for r in rat)} over "
              f"{run['config']['slow_ratio']}, best {min(rat):.3f}, worst {max(rat):.3f}.", ""]
    # llvm-cpu table
    if any(t == "llvm-cpu" for t in targets):
        L += ["## llvm-cpu", "",
              "| model | plain | texflow | rel. err plain | rel. err texflow | plain ms | texflow ms "
              "| texflow/plain | compile s plain / texflow |", "|---|---|---|---|---|---|---|---|---|"]
        for n in names:
            e = by.get((n, "llvm-cpu")) or by.get((n, None))
            if e is None:
                continue
            if "variants" not in e:
                L.append(f"| {n} | not exported | | | | | | | |")
                continue
            v = e["variants"]
            p = v["plain"]
            tk = "texflow" if texflow_ok(e) else "texflow-greedy"
            t_ = v.get(tk, {})
            L.append(f"| {n} | {_mark(p)} | {_tf_mark(e)} | {report._f(p.get('max_rel'), '{:.1e}')} "
                     f"| {report._f(t_.get('max_rel'), '{:.1e}')} | "
                     f"{report._f(p.get('median_ms'), '{:.2f}')} | {report._f(t_.get('median_ms'), '{:.2f}')} "
                     f"| {report._f(ratio(e), '{:.3f}')}{' (greedy)' if tk != 'texflow' and ratio(e) else ''} "
                     f"| {report._f(p.get('compile_s'))} / {report._f(v['texflow'].get('compile_s'))} |")
        L.append("")
    vk = [t for t in targets if t != "llvm-cpu"]
    if vk:
        L += ["## Vulkan targets (compile only)", "",
              "| model | " + " | ".join(f"{t} plain | {t} texflow" for t in vk) + " |",
              "|---|" + "---|" * (2 * len(vk))]
        for n in names:
            cells = []
            for t in vk:
                e = by.get((n, t)) or by.get((n, None))
                if e is None or "variants" not in e:
                    cells += ["–" if e is None else "not exported", ""]
                else:
                    cells += [_mark(e["variants"]["plain"]), _tf_mark(e)]
            L.append(f"| {n} | " + " | ".join(cells) + " |")
        L.append("")
    # problems
    probs = [p for r in rs for p in problems(r, run["config"]["slow_ratio"])]
    onnx = {r["model"]: r.get("onnx") for r in rs}
    L += ["## texflow failures where plain compiles", ""]
    tf = [p for p in probs if p["kind"] == "texflow-fails"]
    L += [x for p in tf for x in findings_lines(p, onnx.get(p["model"]))] or ["None."]
    L += ["", "## Both fail (IREE cannot compile the model for the target)", ""]
    both = [r for r in rs if "variants" in r and not plain_ok(r) and not texflow_ok(r)]
    L += [f"- **{r['model']} / {r['target']}**: plain: `{r['variants']['plain']['error']}`; "
          f"texflow: `{r['variants']['texflow']['error']}`" for r in both] or ["None."]
    L += ["", "## Wrong outputs and run failures (llvm-cpu)", ""]
    bad = [p for p in probs if p["kind"] in ("inaccurate", "run-fails")]
    L += [x for p in bad for x in findings_lines(p, onnx.get(p["model"]))] or ["None."]
    L += ["", f"## texflow slower than plain (> {run['config']['slow_ratio']}, llvm-cpu, 1 thread)", ""]
    sl = sorted([p for p in probs if p["kind"] == "slower"], key=lambda p: -p["ratio"])
    L += [x for p in sl for x in findings_lines(p, onnx.get(p["model"]))] or ["None."]
    L += ["", "## Not exported", ""]
    L += [f"- **{r['model']}**: `{r['error']}`" for r in exp_fail] or ["None."]
    return "\n".join(L) + "\n"


def write(run: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(run, indent=1, default=str))
    os.replace(tmp, out / "results.json")
    (out / "report.md").write_text(markdown(run))


# -- driver -------------------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(prog="texflow-bench corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="all",
                   help="comma-separated corpus models or families (cnn, vit, hybrid, encoder, "
                        "decoder, diffusion, audio), 'quick' or 'all'")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--reps", type=int, default=20, help="most timed repetitions (llvm-cpu)")
    p.add_argument("--time-budget", type=float, default=20.0,
                   help="seconds of timing per model (fewer repetitions for slow models, at least 5)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--compile-timeout", type=float, default=600.0, help="seconds per compile")
    p.add_argument("--slow-ratio", type=float, default=1.03,
                   help="report texflow/plain above this as a slowdown")
    p.add_argument("--out", type=Path, default=Path("results/corpus"))
    p.add_argument("--resume", action="store_true",
                   help="keep --out/results.json's entries and skip their model/target pairs")
    p.add_argument("--findings", type=Path, default=None,
                   help="append each new failure or slowdown to this markdown file")
    p.add_argument("--keep-times", action="store_true", help="keep every repetition's time")
    p.add_argument("--rebuild", action="store_true", help="re-export the models")
    p.add_argument("--build-only", action="store_true")
    p.add_argument("--jobs", type=int, default=1,
                   help="compile this many model/target pairs at once (each compile forked); "
                        "llvm-cpu timing then runs after all compiles, one model at a time")
    return p.parse_args(argv)


def main(argv=None, cached: dict | None = None) -> int:
    """`cached`: name -> CachedModel, models to use instead of building corpus ones (tests)."""
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    from . import corpus
    names = list(cached) if cached else corpus.resolve(a.models)
    a.targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    from texflow.targets import get_target
    for t in a.targets:
        get_target(t)

    def log(s):
        print(f"[{time.strftime('%H:%M:%S')}] {s.strip()}", file=sys.stderr, flush=True)

    if a.build_only:
        bad = 0
        for n in names:
            try:
                corpus.build(n, rebuild=a.rebuild, log=log)
            except corpus.ExportError as ex:
                log(f"{n}: NOT EXPORTED: {ex}")
                bad += 1
        return 1 if bad else 0
    harness.set_threads(1)
    run = None
    if a.resume and (a.out / "results.json").exists():
        run = json.loads((a.out / "results.json").read_text())
        for t in a.targets:
            if t not in run["config"]["targets"]:
                run["config"]["targets"].append(t)
    if run is None:
        date = dt.datetime.now().astimezone()
        run = {"date": date.isoformat(timespec="seconds"), "machine": report.machine(),
               "versions": models.versions(),
               "config": {"command": "python -m texflow.bench corpus " + shlex.join(argv),
                          "targets": a.targets, "reps": a.reps, "time_budget": a.time_budget,
                          "warmup": a.warmup, "threads": 1, "slow_ratio": a.slow_ratio,
                          "compile_timeout": a.compile_timeout, "jobs": a.jobs},
               "results": []}
    done = {(r["model"], r.get("target")) for r in run["results"]}
    failed = 0
    pending = []  # (CachedModel, target)
    for n in names:
        todo = [t for t in a.targets if (n, t) not in done and (n, None) not in done]
        if not todo:
            continue
        try:
            cm = cached[n] if cached else corpus.build(n, rebuild=a.rebuild, log=log)
        except corpus.ExportError as ex:
            log(f"{n}: NOT EXPORTED: {ex}")
            e = {"model": n, "target": None, "kind": "export", "error": str(ex)}
            run["results"].append(e)
            _append_findings(a, e, None)
            write(run, a.out)
            continue
        pending += [(cm, t) for t in todo]

    def record(e, cm):
        nonlocal failed
        run["results"].append(e)
        failed += plain_ok(e) and not texflow_ok(e)
        _append_findings(a, e, str(cm.onnx_path))
        write(run, a.out)

    def broken(cm, t, ex):
        traceback.print_exc()
        msg = f"harness: {type(ex).__name__}: {_one_line(ex)}"
        return {"model": cm.name, "target": t, "onnx": str(cm.onnx_path),
                "variants": {"plain": {"error": msg}, "texflow": {"error": msg}}}

    if a.jobs <= 1:
        for cm, t in pending:
            try:
                e = run_target(cm, t, a, log)
            except Exception as ex:  # noqa: BLE001
                e = broken(cm, t, ex)
            record(e, cm)
    else:
        import concurrent.futures as cf
        cpu = []
        with cf.ThreadPoolExecutor(a.jobs) as pool:
            futs = {pool.submit(compile_target, cm, t, a, log): (cm, t) for cm, t in pending}
            for f in cf.as_completed(futs):
                cm, t = futs[f]
                try:
                    e, vmfbs = f.result()
                except Exception as ex:  # noqa: BLE001
                    e, vmfbs = broken(cm, t, ex), {}
                if t == "llvm-cpu":
                    cpu.append((cm, e, vmfbs))
                    e = dict(e, pending_run=True)
                    run["results"].append(e)  # compile results now, run results later
                    _append_findings(a, {k: v for k, v in e.items()}, str(cm.onnx_path))
                    write(run, a.out)
                else:
                    record(e, cm)
        order = {n: i for i, n in enumerate(names)}
        for cm, e, vmfbs in sorted(cpu, key=lambda x: order.get(x[0].name, 0)):
            try:
                run_cpu(cm, e, vmfbs, a, log)
            except Exception as ex:  # noqa: BLE001
                traceback.print_exc()
                e["run_error"] = f"harness: {type(ex).__name__}: {_one_line(ex)}"
            del vmfbs
            run["results"] = [r for r in run["results"]
                              if not (r["model"] == e["model"] and r.get("target") == "llvm-cpu")]
            run["results"].append(e)
            failed += plain_ok(e) and not texflow_ok(e)
            # the compile failures were appended already: now only what running found
            _append_findings(a, e, str(cm.onnx_path), only=("inaccurate", "run-fails", "slower"))
            write(run, a.out)
            gc.collect()
    log(f"done: {a.out}/report.md")
    print(markdown(run))
    return 1 if failed else 0


def _append_findings(a, e: dict, onnx: str | None, only=None) -> None:
    if not a.findings:
        return
    lines = [x for p in problems(e, a.slow_ratio) if only is None or p["kind"] in only
             for x in findings_lines(p, onnx)]
    if lines:
        with open(a.findings, "a") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
