"""Gantt chart of a weight-streaming plan (from its `texflow.wstream.plan/1` manifest).

Top panel, time on x: lane "compute" has one bar per stage (coloured by its
capacity class; a red bar before it where the stage stalls waiting for
weights), lane "load" has the chunks each stage reads, one bar per (stage,
group) labelled with the group (hatched where read while stalled);
preloaded groups are read before t = 0.  Bottom panel, same time axis: the
bytes resident during each stage (weights + live activations, stacked)
against the budget.

The timeline is the manifest's: stage s starts when stage s-1 ends, stalls
for its `stall` chunks, then computes for `compute_s` while its `overlap`
chunks are read; a chunk takes chunk_bytes / weight_read_bytes_per_s.
"""

from __future__ import annotations

import io
import os

from texflow.errors import TexflowError

KIND_COLOURS = {"reusable": "#4c72b0", "hierarchical": "#55a868", "elemental": "#8172b2"}


def require_matplotlib() -> str:
    """matplotlib's version; a one-line TexflowError if it is missing (call it before
    compiling, so that --plan-chart fails fast)."""
    _matplotlib()
    import matplotlib
    return matplotlib.__version__


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise TexflowError("--plan-chart needs matplotlib: pip install 'texflow[chart]' "
                           "(or pip install matplotlib)") from None
    # The Agg canvas directly, not pyplot: no global backend switch, no GUI, thread-safe.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    return matplotlib, Figure, FigureCanvasAgg


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def check_chart_path(path: str) -> str:
    """The chart format of `path` (png, svg or pdf); a one-line error otherwise."""
    ext = os.path.splitext(path)[1].lower().lstrip(".") or "png"
    if ext not in ("png", "svg", "pdf"):
        raise TexflowError(f"chart must be .png, .svg or .pdf, got '{path}'")
    return ext


def _write(fig, path: str, ext: str, dpi: int = 120) -> None:
    """Render `fig` and write it to `path` atomically (no half-written chart)."""
    from texflow.atomic_io import write_atomically
    buf = io.BytesIO()
    fig.savefig(buf, format=ext, dpi=dpi)
    write_atomically(path, buf.getvalue())


def timeline(manifest: dict) -> dict:
    """Times (s) of every bar the chart draws; exposed for tests and other tools."""
    try:
        stages = manifest["stages"]
        groups = manifest["groups"]
        cb = manifest["summary"]["chunk_bytes"]
        rate = manifest["calibration"]["weight_read_bytes_per_s"]
    except (KeyError, TypeError) as e:
        raise TexflowError(f"plan manifest lacks {e} (expected texflow.wstream.plan/1)") from None
    chunk_s = cb / rate if rate > 0 else 0.0
    per_stage: list[list[tuple[int, int, int]]] = [[] for _ in stages]  # (group, stall, overlap)
    preload = []
    for g in groups:
        if g.get("preload"):
            preload.append((g["id"], g["chunks"]))
        for ld in g.get("loads", []):
            if not 0 <= ld["stage"] < len(stages):
                raise TexflowError(f"plan manifest: group {g['id']} loads at stage {ld['stage']}, "
                                   f"outside 0..{len(stages) - 1}")
            per_stage[ld["stage"]].append((g["id"], ld["stall"], ld["overlap"]))
    pre_s = sum(c for _, c in preload) * chunk_s
    loads, computes, stalls = [], [], []
    t = 0.0
    x = -pre_s
    for gid, c in preload:
        loads.append({"group": gid, "start": x, "dur": c * chunk_s, "stall": False,
                      "preload": True, "stage": None})
        x += c * chunk_s
    for s, st in enumerate(stages):
        items = sorted(per_stage[s])
        x = t
        for gid, stall, _ in items:
            if stall:
                loads.append({"group": gid, "start": x, "dur": stall * chunk_s, "stall": True,
                              "preload": False, "stage": s})
                x += stall * chunk_s
        stall_s = x - t
        if stall_s > 0:
            stalls.append({"stage": s, "start": t, "dur": stall_s})
        c0 = t + stall_s
        computes.append({"stage": s, "kind": st.get("kind", "?"), "start": c0,
                         "dur": st["compute_s"]})
        x = c0
        for gid, _, over in items:
            if over:
                loads.append({"group": gid, "start": x, "dur": over * chunk_s, "stall": False,
                              "preload": False, "stage": s})
                x += over * chunk_s
        t = c0 + st["compute_s"]
    return {"chunk_s": chunk_s, "preload_s": pre_s, "makespan_s": t, "loads": loads,
            "computes": computes, "stalls": stalls}


def plan_chart(manifest, path: str, title: str | None = None, dpi: int = 120) -> None:
    """Draw the plan's Gantt chart and memory curve to `path` (.png, .svg, .pdf), atomically.

    `manifest`: the dict the plan pass wrote (a list of them, one per function, draws
    the first)."""
    if isinstance(manifest, list):
        if not manifest:
            raise TexflowError("plan manifest is empty: no function was planned")
        manifest = manifest[0]
    if not isinstance(manifest, dict) or manifest.get("format") != "texflow.wstream.plan/1":
        raise TexflowError("not a texflow.wstream.plan/1 manifest")
    ext = check_chart_path(path)
    tl = timeline(manifest)
    mpl, Figure, Canvas = _matplotlib()
    from matplotlib.patches import Patch

    stages = manifest["stages"]
    summ = manifest["summary"]
    budget = summ.get("budget_bytes")
    n = len(stages)
    fig = Figure(figsize=(max(8.0, min(24.0, 0.35 * n + 6)), 6.5))
    Canvas(fig)
    ax, axm = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1.1, 1.0]}, sharex=True)
    cmap = mpl.colormaps["tab20"]
    # lane 1 (y=1): compute; lane 0 (y=0): loads
    for c in tl["computes"]:
        ax.broken_barh([(c["start"], c["dur"])], (0.6, 0.8),
                       facecolors=KIND_COLOURS.get(c["kind"], "#999999"), edgecolor="white",
                       linewidth=0.5)
        if n <= 40 and tl["makespan_s"] > 0 and c["dur"] / tl["makespan_s"] > 0.02:
            ax.text(c["start"] + c["dur"] / 2, 1.0, str(c["stage"]), ha="center",
                    va="center", fontsize=7, color="white")
    for s in tl["stalls"]:
        ax.broken_barh([(s["start"], s["dur"])], (0.6, 0.8), facecolors="#c44e52")
    for ld in tl["loads"]:
        colour = cmap(ld["group"] % 20)
        ax.broken_barh([(ld["start"], ld["dur"])], (-0.4, 0.8), facecolors=colour,
                       edgecolor="black" if ld["stall"] else "white", linewidth=0.5,
                       hatch="///" if ld["stall"] else ("..." if ld["preload"] else None))
        if len(tl["loads"]) <= 60 and tl["makespan_s"] > 0 and \
                ld["dur"] / max(tl["makespan_s"] + tl["preload_s"], 1e-30) > 0.025:
            ax.text(ld["start"] + ld["dur"] / 2, 0.0, f"g{ld['group']}", ha="center",
                    va="center", fontsize=7)
    if tl["preload_s"] > 0:
        ax.axvline(0.0, color="black", linewidth=0.8, linestyle=":")
    ax.set_yticks([0, 1], ["load", "compute"])
    ax.set_ylim(-0.7, 1.7)
    ax.set_xlim(-tl["preload_s"], max(tl["makespan_s"], 1e-12))
    handles = [Patch(color=v, label=k) for k, v in KIND_COLOURS.items()
               if any(c["kind"] == k for c in tl["computes"])]
    if tl["stalls"]:
        handles.append(Patch(color="#c44e52", label="stall"))
    if tl["preload_s"] > 0:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="...",
                             label="preload (before t=0)"))
    ax.legend(handles=handles, loc="upper right", fontsize=7, ncol=len(handles) or 1)
    ax.set_title(title or (f"@{manifest.get('function', '?')}: {n} stages, "
                           f"{summ.get('groups', len(manifest['groups']))} groups, "
                           f"{summ.get('status', '?')}, makespan "
                           f"{tl['makespan_s'] * 1e3:.3g} ms, stall "
                           f"{summ.get('stall_s', 0.0) * 1e3:.3g} ms"), fontsize=9)

    # memory against the same time axis: each stage holds its resident bytes from
    # the start of its stall to the end of its compute
    resident = [s.get("resident_bytes", 0) for s in stages]
    act = [min(s.get("act_bytes", 0), r) for s, r in zip(stages, resident)]
    weights = [r - a for r, a in zip(resident, act)]
    starts = [c["start"] for c in tl["computes"]]
    stall_at = {s_["stage"]: s_["dur"] for s_ in tl["stalls"]}
    edges = [st - stall_at.get(i, 0.0) for i, st in enumerate(starts)] + [tl["makespan_s"]]
    pre_w = sum(g["bytes"] for g in manifest["groups"] if g.get("preload"))
    if tl["preload_s"] > 0:  # preloading: resident weights grow to the preloaded bytes
        axm.fill_between([-tl["preload_s"], 0.0], [0, pre_w], color="#dd8452", alpha=0.5,
                         linewidth=0)
    axm.stairs(weights, edges, fill=True, color="#dd8452", label="weights resident")
    axm.stairs(resident, edges, baseline=weights, fill=True, color="#937860",
               label="live activations")
    axm.stairs(resident, edges, color="black", linewidth=1.0, label="resident")
    if budget:
        axm.axhline(budget, color="#c44e52", linestyle="--", linewidth=1.2,
                    label=f"budget {_fmt_bytes(budget)}")
    peak = summ.get("peak_bytes")
    ps = summ.get("peak_stage")
    if peak is not None and isinstance(ps, int) and 0 <= ps < n:
        axm.annotate(f"peak {_fmt_bytes(peak)} (stage {ps})",
                     ((edges[ps] + edges[ps + 1]) / 2, peak), textcoords="offset points",
                     xytext=(0, 4), ha="center", fontsize=7)
    top = max([budget or 0] + resident) or 1
    axm.set_ylim(0, top * 1.18)
    axm.yaxis.set_major_formatter(lambda v, _: _fmt_bytes(v))
    axm.set_xlabel("time (s)")
    axm.set_ylabel("memory")
    axm.legend(loc="upper right", fontsize=7, ncol=4)
    fig.tight_layout()
    _write(fig, path, ext, dpi)


def _stall_text(stall_s) -> str:
    """A fenced run's stalls happen on the device (it waits on the load fences): unmeasured."""
    return "on the device (not measured)" if stall_s is None else f"{stall_s * 1e3:.1f} ms"


def trace_chart(trace: dict, path: str) -> None:
    """Gantt chart of a measured streaming run (`StreamingSession.trace()`) above
    the plan it executed: lanes "compute" (segment calls, red where the run
    waited for weights) and "load" (group reads, measured on the loader
    thread); the plan's lanes use the calibrated estimates, stage after stage."""
    if trace.get("format") != "texflow.wstream.trace/1":
        raise TexflowError("not a texflow streaming trace")
    ext = check_chart_path(path)
    _, Figure, Canvas = _matplotlib()
    fig = Figure(figsize=(12, 5.5))
    Canvas(fig)
    ax_m, ax_p = fig.subplots(2, 1)
    ev = trace["events"]
    lanes = {"compute": 1, "stall": 1, "load": 0}
    colours = {"compute": "#4c72b0", "stall": "#c44e52", "load": "#dd8452"}
    for e in ev:
        ax_m.barh(lanes[e["kind"]], (e["t1"] - e["t0"]) * 1e3, left=e["t0"] * 1e3, height=0.6,
                  color=colours[e["kind"]], edgecolor="white", linewidth=0.3)
    s = trace["summary"]
    ax_m.set_yticks([0, 1], ["load", "compute"])
    ax_m.set_title(f"measured: {', '.join(trace['models'])} — {s.get('latency_s', 0) * 1e3:.1f} ms, "
                   f"stall {_stall_text(s.get('stall_s', 0))}, peak {_fmt_bytes(s.get('peak_accounted_bytes', 0))}"
                   f" of {_fmt_bytes(s['budget_bytes'])} ({s['policy']})", fontsize=9)
    t, cs = 0.0, trace["chunk_s"]
    for st in trace["plan"]:
        stall = sum(l["stall_chunks"] for l in st["loads"]) * cs
        if stall:
            ax_p.barh(1, stall * 1e3, left=t * 1e3, height=0.6, color=colours["stall"])
        lt = t
        for l in st["loads"]:
            d = (l["stall_chunks"] + l["overlap_chunks"]) * cs
            ax_p.barh(0, d * 1e3, left=lt * 1e3, height=0.6, color=colours["load"],
                      edgecolor="white", linewidth=0.3)
            lt += d
        ax_p.barh(1, st["compute_s"] * 1e3, left=(t + stall) * 1e3, height=0.6,
                  color=colours["compute"], edgecolor="white", linewidth=0.3)
        t += stall + st["compute_s"]
    ax_p.set_yticks([0, 1], ["load", "compute"])
    ax_p.set_title(f"plan ({s.get('plan_status', '')}, calibrated estimates): {t * 1e3:.1f} ms",
                   fontsize=9)
    ax_p.set_xlabel("time (ms)")
    right = max([e["t1"] * 1e3 for e in ev] + [t * 1e3, 1e-3])
    for ax in (ax_m, ax_p):
        ax.set_xlim(0, right * 1.02)
    fig.tight_layout()
    _write(fig, path, ext)


__all__ = ["check_chart_path", "plan_chart", "require_matplotlib", "timeline", "trace_chart"]
