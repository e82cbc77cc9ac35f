"""Markdown, JSON and PNG reports of a benchmark run."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        rev = ""
    try:
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True,
                                    cwd=Path(__file__).parent).stdout.strip())
    except OSError:
        dirty = None
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": mem, "os": platform.platform(),
            "python": platform.python_version(), "texflow_git": rev, "texflow_dirty": dirty,
            "load_at_start": load}


def _f(x, fmt="{:.1f}", none="–"):
    if x is None:
        return none
    try:
        return fmt.format(x)
    except (TypeError, ValueError):
        return str(x)


PEERS = ("ort", "mnn", "ncnn", "ncnn-fp16")
PEER_TITLES = {"ort": "ORT", "mnn": "MNN", "ncnn": "ncnn fp32", "ncnn-fp16": "ncnn fp16"}
FP32_PEERS = ("ort", "mnn", "ncnn")  # texflow runs fp32: its peers at the same precision


def best_peer_ratio(e: dict) -> float | None:
    """texflow's median over the best fp32 peer's (ONNX Runtime, MNN or ncnn fp32): issue 8's
    figure, and issue 20's for ncnn."""
    t = _v(e, "texflow").get("median_ms")
    ps = [(e.get(k) or {}).get("median_ms") for k in FP32_PEERS]
    ps = [x for x in ps if x]
    return t / min(ps) if t and ps else None


def _v(entry: dict, variant: str) -> dict:
    return entry.get("variants", {}).get(variant, {})


def best_ratio(e: dict) -> float | None:
    """min(texflow, texflow+dt) / min(plain, plain+dt) of the medians: texflow against the
    better of the two IREE baselines, as the issue asks."""
    t = [_v(e, v).get("median_ms") for v in ("texflow", "texflow+dt")]
    p = [_v(e, v).get("median_ms") for v in ("plain", "plain+dt")]
    t, p = [x for x in t if x], [x for x in p if x]
    return min(t) / min(p) if t and p else None


def _err(d: dict) -> str | None:
    return d.get("error") if d.get("error") and "median_ms" not in d else None


def ratio(e: dict, a: str, b: str, key: str = "times_ms") -> float | None:
    """Median over repetitions of a_i / b_i (both timed in repetition i)."""
    ta = (_v(e, a) if a not in PEERS else e.get(a) or {}).get(key)
    tb = (_v(e, b) if b not in PEERS else e.get(b) or {}).get(key)
    if not ta or not tb:
        return None
    rs = sorted(x / y for x, y in zip(ta, tb) if y)
    if not rs:
        return None
    n = len(rs)
    return rs[n // 2] if n % 2 else (rs[n // 2 - 1] + rs[n // 2]) / 2


def dispatch_table(rows: list[dict], variants: list[str]) -> list[str]:
    L = ["Dispatches per inference (pure data-movement dispatches in brackets) and compile time "
         "(import + compile, seconds):", ""]
    hdr = ["model", "params M"] + [f"{v} dispatches (DM)" for v in variants] + \
        [f"{v} compile s" for v in variants]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for e in rows:
        if e.get("error"):
            L.append(f"| {e['model']} | failed: {e['error'][:120]} |" + " |" * (len(hdr) - 2))
            continue
        r = [e["model"], _f(e.get("parameters", 0) / 1e6 if e.get("parameters") else None)]
        for v in variants:
            d = _v(e, v)
            fl = d.get("flow") or {}
            r.append("compile failed" if _err(d) and not fl else
                     f"{fl.get('dispatches', '?')} ({fl.get('data_movement', '?')})")
        for v in variants:
            d = _v(e, v)
            r.append("failed" if _err(d) and "compile_s" not in d else _f(d.get("compile_s")))
        L.append("| " + " | ".join(str(x) for x in r) + " |")
    L.append("")
    return L


def latency_table(rows: list[dict], variants: list[str]) -> list[str]:
    timed = [e for e in rows if any("median_ms" in _v(e, v) for v in variants)]
    L = []
    if timed:
        has_ort = any((e.get("ort") or {}).get("median_ms") for e in timed)
        best = "plain+dt" in variants and "texflow+dt" in variants
        L += ["Latency, median ms (fastest repetition in brackets), and paired ratios "
              "(median over repetitions of the two times of one repetition):", ""]
        peers = [k for k in PEERS if any((e.get(k) or {}).get("median_ms") or
                                         (e.get(k) or {}).get("error") for e in timed)]
        hdr = ["model"] + [f"{v} ms" for v in variants] + [f"{PEER_TITLES[k]} ms" for k in peers]
        hdr += ["texflow/plain"] + (["texflow+dt/plain+dt", "best texflow / best IREE"]
                                    if best else [])
        hdr += (["best IREE/ORT"] if has_ort else [])
        hdr += (["texflow / best fp32 peer"] if set(peers) & set(FP32_PEERS) else [])
        L.append("| " + " | ".join(hdr) + " |")
        L.append("|" + "---|" * len(hdr))
        for e in timed:
            r = [e["model"]]
            for v in variants:
                d = _v(e, v)
                r.append("failed" if _err(d) else
                         f"{_f(d.get('median_ms'), '{:.1f}')} ({_f(d.get('min_ms'), '{:.1f}')})")
            o = e.get("ort") or {}
            for k in peers:
                pd = e.get(k) or {}
                r.append(f"{_f(pd.get('median_ms'), '{:.1f}')} ({_f(pd.get('min_ms'), '{:.1f}')})"
                         if pd.get("median_ms") else ("failed" if pd.get("error") else "–"))
            r.append(_f(ratio(e, "texflow", "plain"), "{:.3f}"))
            if best:
                r.append(_f(ratio(e, "texflow+dt", "plain+dt"), "{:.3f}"))
                r.append(_f(best_ratio(e), "{:.3f}"))
            if has_ort:
                ps = [_v(e, v).get("median_ms") for v in ("plain", "plain+dt")]
                ps = [x for x in ps if x]
                om = o.get("median_ms")
                r.append(_f(min(ps) / om if ps and om else None, "{:.2f}x"))
            if set(peers) & set(FP32_PEERS):
                r.append(_f(best_peer_ratio(e), "{:.2f}x"))
            L.append("| " + " | ".join(str(x) for x in r) + " |")
        L.append("")
    checked = [k for k in PEERS if k != "ort" and any("max_rel" in (e.get(k) or {}) or
                                                      (e.get(k) or {}).get("error") for e in rows)]
    cols = variants + [PEER_TITLES[k] for k in checked]
    L += ["Accuracy against ONNX Runtime's CPU outputs (max abs / max rel):", "",
          "| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    failures = []
    for e in rows:
        if e.get("error"):
            continue
        r = [e["model"]]
        for d in [_v(e, v) for v in variants] + [e.get(k) or {} for k in checked]:
            if d.get("error") and "max_abs" not in d:
                r.append("failed")
            elif d.get("max_abs") is not None and "max_rel" in d:
                r.append(f"{d['max_abs']:.1e} / {d['max_rel']:.1e}")
            else:
                r.append("–")
        L.append("| " + " | ".join(r) + " |")
        failures += [f"- {e['model']}, {PEER_TITLES[k]}: {(e.get(k) or {})['error']}"
                     for k in PEERS if (e.get(k) or {}).get("error")]
    L.append("")
    if failures:
        L += ["Peers that could not run a model:", ""] + failures + [""]
    return L


def markdown(run: dict) -> str:
    L = []
    cfg = run["config"]
    m = run["machine"]
    L.append(f"# texflow benchmark — {run['date']}")
    L.append("")
    L.append(f"- Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, {m['os']}, "
             f"Python {m['python']}; texflow git {m.get('texflow_git') or '?'}"
             + (" (with uncommitted changes)" if m.get("texflow_dirty") else "")
             + (f"; load average {m['load_at_start']:.1f} at start" if m.get("load_at_start")
                is not None else ""))
    L.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in run["versions"].items()))
    L.append(f"- Command: `{cfg['command']}`")
    if any(t.startswith("vulkan") for t in cfg["targets"]):
        L.append(f"- Vulkan targets: {cfg.get('vulkan_reps')} timed repetitions (0: one checked call "
                 f"per variant; lavapipe is for correctness only)")
    L.append(f"- Repetitions: {cfg['reps']} (+{cfg['warmup']} warm-up) per variant, interleaved "
             f"A/B in one process; {cfg['threads'] or 'all'} threads for IREE (local-task) and "
             f"ONNX Runtime (in a child process, taking its turn in each repetition)")
    L.append("- Latency: median ms; ratio = median over repetitions of (variant time / plain time "
             "in the same repetition): < 1 means faster than plain IREE.")
    L.append("- Dispatches: `flow.dispatch` ops per inference at IREE's flow phase; DM = pure "
             "data-movement dispatches (copies, transposes, slices, pads, broadcasts, gathers: "
             "see `python/texflow/bench/classify.py`).")
    L.append("- Accuracy: max abs / max rel (to the largest reference magnitude) difference of "
             "any variant's output against ONNX Runtime's CPU output on the cached inputs.")
    L.append("- Peak memory: not tabulated. local-task's allocator statistics (Python's "
             "`allocator.statistics`, and `iree-run-module --print_statistics` alike) showed under "
             "1 MB for MobileNetV2 here: the inputs, outputs and small buffers, not the working set. "
             "The raw value is kept in results.json.")
    L.append("")
    variants = cfg["variants"]
    for target in cfg["targets"]:
        rows = [e for e in run["results"] if e["target"] == target]
        if not rows:
            continue
        L.append(f"## {target}")
        L.append("")
        L += dispatch_table(rows, variants)
        L += latency_table(rows, variants)
        cli = [e for e in rows if e.get("cli_check")]
        if cli:
            L.append("Command-line check (`iree-import-onnx` + `iree-compile --compile-to=flow`, "
                     "same target flags) against the in-process plain path:")
            L.append("")
            for e in cli:
                c = e["cli_check"]
                L.append(f"- {e['model']}: iree-compile {c.get('dispatches')} dispatches "
                         f"({c.get('data_movement')} DM), in-process plain "
                         f"{_v(e, 'plain').get('flow', {}).get('dispatches')} "
                         f"({_v(e, 'plain').get('flow', {}).get('data_movement')} DM): "
                         f"{'equal' if c.get('equal') else 'DIFFERENT'}"
                         + (f" — {c['error']}" if c.get("error") else ""))
            L.append("")
        L.append(f"### Data-movement dispatches ({target})")
        L.append("")
        L.append("Plain IREE's pure data-movement dispatches by kind, what consumes them (IREE "
                 "names each dispatch after its root op), and what texflow leaves:")
        L.append("")
        L.append("| model | plain DM / total | plain by kind | what they feed (kind -> consumer op) | "
                 "texflow DM / total | texflow by kind |")
        L.append("|---|---|---|---|---|---|")
        for e in rows:
            fl = _v(e, "plain").get("flow")
            if not fl:
                continue
            kinds = ", ".join(f"{k} {n}" for k, n in fl["by_kind"].items()) or "none"
            feed = "; ".join(f"{k} ×{n}" for k, n in fl["feeding"].items()) or "–"
            tf = _v(e, "texflow").get("flow") or {}
            tk = ", ".join(f"{k} {n}" for k, n in tf.get("by_kind", {}).items()) or \
                ("none" if tf else "–")
            L.append(f"| {e['model']} | {fl['data_movement']} / {fl['dispatches']} | {kinds} | "
                     f"{feed} | {tf.get('data_movement', '–')} / {tf.get('dispatches', '–')} | {tk} |")
        L.append("")
    errs = [(e["model"], e["target"], k, d.get("error")) for e in run["results"]
            for k, d in [("build", e)] + list(e.get("variants", {}).items()) if d.get("error")]
    if errs:
        L.append("## Failures")
        L.append("")
        for model, target, what, err in errs:
            L.append(f"- {model} / {target} / {what}: {err}")
        L.append("")
    if run.get("notes"):
        L.append("## Notes")
        L.append("")
        L += [f"- {n}" for n in run["notes"]]
        L.append("")
    L.append("## Models")
    L.append("")
    for e in run["results"]:
        if e["target"] == cfg["targets"][0] and e.get("summary"):
            L.append(f"- **{e['model']}**: {e['summary']}")
    L.append("")
    return "\n".join(L)


def chart(run: dict, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    target = run["config"]["targets"][0]
    rows = [e for e in run["results"] if e["target"] == target and "plain" in e.get("variants", {})]
    if not rows:
        return False
    names = [e["model"] for e in rows]
    variants = [v for v in run["config"]["variants"]]
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(18, 4.8))
    w = 0.8 / (len(variants) + 1)
    xs = range(len(rows))
    for i, v in enumerate(variants):
        ys = []
        for e in rows:
            pm, vm = _v(e, "plain").get("median_ms"), _v(e, v).get("median_ms")
            ys.append(pm / vm if pm and vm else 0)
        a1.bar([x + i * w for x in xs], ys, w, label=f"{v}")
    ys = []
    for e in rows:
        pm, om = _v(e, "plain").get("median_ms"), (e.get("ort") or {}).get("median_ms")
        ys.append(pm / om if pm and om else 0)
    a1.bar([x + len(variants) * w for x in xs], ys, w, label="ONNX Runtime")
    a1.axhline(1.0, color="k", lw=0.8)
    a1.set_xticks([x + w * len(variants) / 2 for x in xs], names, rotation=30)
    a1.set_ylabel("speed-up over plain IREE (x)")
    a1.set_title(f"latency speed-up, {target}")
    a1.legend(fontsize=8)
    w = 0.8 / len(variants)
    for i, v in enumerate(variants):
        tot = [(_v(e, v).get("flow") or {}).get("dispatches", 0) for e in rows]
        dm = [(_v(e, v).get("flow") or {}).get("data_movement", 0) for e in rows]
        comp = [t - d for t, d in zip(tot, dm)]
        pos = [x + i * w for x in xs]
        a2.bar(pos, comp, w, label=f"{v}: compute", color=f"C{i}")
        a2.bar(pos, dm, w, bottom=comp, label=f"{v}: data movement", color=f"C{i}", alpha=0.45,
               hatch="//")
        a3.bar(pos, dm, w, label=v, color=f"C{i}")
    a2.set_xticks([x + w * (len(variants) - 1) / 2 for x in xs], names, rotation=30)
    a2.set_ylabel("dispatches per inference")
    a2.set_title("dispatches (hatched: pure data movement)")
    a2.legend(fontsize=7)
    a3.set_xticks([x + w * (len(variants) - 1) / 2 for x in xs], names, rotation=30)
    a3.set_ylabel("pure data-movement dispatches per inference")
    a3.set_title("data-movement dispatches (lower is better)")
    a3.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(run: dict, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "md": out_dir / "report.md",
             "png": out_dir / "chart.png"}
    paths["json"].write_text(json.dumps(run, indent=1, default=str))
    paths["md"].write_text(markdown(run))
    if not chart(run, paths["png"]):
        paths.pop("png")
    return paths


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 3:
        sys.exit("usage: python -m texflow.bench.report RESULTS.json OUT_DIR  (re-render a run)")
    print(write(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])))
