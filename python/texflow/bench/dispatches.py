"""Layout transformations left in a model, per variant and target (issue 18's report).

    python -m texflow.bench.dispatches --models deit_tiny,swin_small --targets llvm-cpu,vulkan-nvidia \
        --out benchmarks/dispatches

For each corpus model (built and cached by `texflow.bench.corpus`) and target, compile to IREE's
flow phase with plain IREE, texflow's elimination only (`texflow-elim`) and texflow's default, and
count what runs (`texflow.bench.classify`):
  - dispatches, and of them the data-movement ones by kind;
  - of those, *texflow's packs*: `linalg.pack`/`unpack` dispatches, which on llvm-cpu come from
    texflow-pack-matmul (the activations packed for mmt4d), a trade of copies for kernels that
    are 2-5x faster; they are reported apart from the layout transformations elimination is
    meant to remove;
  - *permuting compute*: compute dispatches whose IREE entry name says `transpose` (IREE names a
    dispatch after what its root does; a permuted access in a compute kernel gets `transpose`).
Compile-only and deterministic: the counts do not depend on the machine's load.  Writes
results.json and report.md into --out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from . import corpus, harness
from .classify import summarize

VARIANTS = ("plain", "texflow-elim", "texflow")


def count(text: str) -> dict:
    s = summarize(text)
    compute = [i for i in s.items if not i.data_movement]
    return {"dispatches": s.dispatches, "data_movement": s.data_movement, "by_kind": s.by_kind,
            "packs": s.by_kind.get("pack", 0),
            "permuting_compute": sum("transpose" in i.label for i in compute),
            "feeding": s.feeding}


def measure(names: list[str], targets: list[str], variants=VARIANTS, log=print) -> list[dict]:
    rows = []
    for n in names:
        cm = corpus.build(n, log=log)
        for t in targets:
            row = {"model": n, "target": t, "variants": {}}
            for v in variants:
                log(f"{n} / {t} / {v}")
                try:
                    row["variants"][v] = count(harness.flow_text(cm.onnx_path, t, harness.VARIANTS[v]))
                except Exception as e:  # noqa: BLE001  (a failure is a row of the report)
                    row["variants"][v] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            rows.append(row)
    return rows


def _cell(r: dict) -> str:
    if "error" in r:
        return "FAIL"
    return f"{r['dispatches']} / {r['data_movement'] - r['packs']} + {r['packs']} / {r['permuting_compute']}"


def markdown(rows: list[dict], when: str) -> str:
    L = [f"# Layout transformations left per model ({when})", "",
         "Each cell: dispatches / data-movement dispatches other than packs + texflow's pack and "
         "unpack dispatches / compute dispatches with a permuted access (IREE flow phase; "
         "`python -m texflow.bench.dispatches`).", "",
         "| model | target | " + " | ".join(VARIANTS) + " | texflow's data movement by kind |",
         "|---|---|" + "---|" * len(VARIANTS) + "---|"]
    for r in rows:
        v = r["variants"]
        kinds = v.get("texflow", {}).get("by_kind", {})
        L.append(f"| {r['model']} | {r['target']} | " + " | ".join(_cell(v[x]) for x in VARIANTS if x in v)
                 + " | " + (", ".join(f"{k} {n}" for k, n in kinds.items()) or "–") + " |")
    L += ["", "## Sums per target (data movement other than packs + permuting compute)", "",
          "| target | " + " | ".join(VARIANTS) + " |", "|---|" + "---|" * len(VARIANTS)]
    for t in dict.fromkeys(r["target"] for r in rows):
        sums = []
        for x in VARIANTS:
            ok = [r["variants"][x] for r in rows if r["target"] == t and "error" not in r["variants"].get(x, {"error": 1})]
            sums.append(str(sum(c["data_movement"] - c["packs"] + c["permuting_compute"] for c in ok)))
        L.append(f"| {t} | " + " | ".join(sums) + " |")
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m texflow.bench.dispatches", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="deit_tiny,swin_small,convnext_tiny,distilbert,gpt2")
    p.add_argument("--targets", default="llvm-cpu,vulkan-nvidia")
    p.add_argument("--out", default="benchmarks/dispatches")
    a = p.parse_args(argv)
    rows = measure(corpus.resolve(a.models), a.targets.split(","),
                   log=lambda *x: print(*x, file=sys.stderr, flush=True))
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"date": when, "rows": rows}, indent=1) + "\n")
    (out / "report.md").write_text(markdown(rows, when))
    print(markdown(rows, when))
    return 0


if __name__ == "__main__":
    sys.exit(main())
