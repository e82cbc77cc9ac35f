"""Issue 8's table from `texflow-bench` results: texflow against plain IREE and the CPU peers.

Every ratio is paired: the median over rounds of (texflow's time / the other's time in the
same round), since `texflow-bench` runs the variants and the peers' child processes in turn in
every round; a shared, noisy machine then moves both sides of a ratio together.  The best peer
of a model is the one with the lower median time.

    python benchmarks/cpu-parity/summarize.py benchmarks/cpu-parity/llvm-cpu-1thread/results.json
"""

from __future__ import annotations

import json
import math
import sys


def paired(a: list[float], b: list[float]) -> float:
    r = sorted(x / y for x, y in zip(a, b))
    n = len(r)
    return r[n // 2] if n % 2 else 0.5 * (r[n // 2 - 1] + r[n // 2])


def rows(path: str, variant: str = "texflow"):
    with open(path) as f:
        data = json.load(f)
    for e in data["results"]:
        v = e["variants"]
        t = v.get(variant, {})
        if "times_ms" not in t:
            continue
        peers = {p: e[p] for p in ("ort", "mnn") if isinstance(e.get(p), dict) and "times_ms" in e[p]}
        best = min(peers, key=lambda p: peers[p]["median_ms"]) if peers else None
        row = {"model": e["model"], "texflow_ms": t["median_ms"],
               "plain_ms": v.get("plain", {}).get("median_ms"),
               "vs_plain": paired(t["times_ms"], v["plain"]["times_ms"]) if "times_ms" in v.get("plain", {}) else None}
        for p, d in peers.items():
            row[p + "_ms"] = d["median_ms"]
            row["vs_" + p] = paired(t["times_ms"], d["times_ms"])
        row["best_peer"] = best
        row["vs_best"] = row.get("vs_" + best) if best else None
        dt = v.get("plain+dt", {})
        row["vs_dt"] = paired(t["times_ms"], dt["times_ms"]) if "times_ms" in dt else None
        yield row


def fmt(x, spec=".3f"):
    return "–" if x is None else format(x, spec)


def main(paths: list[str]) -> None:
    for path in paths:
        rs = list(rows(path))
        print(f"\n{path}\n")
        print("| model | texflow ms | texflow/plain | texflow/plain+dt | texflow/ORT | texflow/MNN | best peer | texflow / best peer |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rs:
            print(f"| {r['model']} | {r['texflow_ms']:.1f} | {fmt(r['vs_plain'])} | {fmt(r['vs_dt'])} | "
                  f"{fmt(r.get('vs_ort'))} | {fmt(r.get('vs_mnn'))} | {r['best_peer'] or '–'} | "
                  f"**{fmt(r['vs_best'], '.2f')}x** |")
        vals = [r["vs_best"] for r in rs if r["vs_best"]]
        if vals:
            g = math.exp(sum(math.log(x) for x in vals) / len(vals))
            print(f"\ngeomean texflow / best peer over {len(vals)} models: {g:.2f}x; "
                  f"worst {max(vals):.2f}x; texflow / plain geomean "
                  f"{math.exp(sum(math.log(r['vs_plain']) for r in rs) / len(rs)):.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
