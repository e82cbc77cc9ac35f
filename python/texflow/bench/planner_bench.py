"""Planner scale benchmark: synthetic 100/1,000/5,000-stage chains and a
GPT-Neo-2.7B-shaped prefill; the plan against its LP bound and baselines.

    python -m texflow.bench.planner_bench [--time-limit 10] [--sizes 100,1000,5000]
"""

from __future__ import annotations

import argparse
import time

from texflow.bench import synthetic_plans as synthetic
from texflow.streaming.planner import PlannerOptions, greedy, load_next_stage, plan, preload_all
from texflow.streaming.verify import replay


def row(name, prob, opts):
    t0 = time.perf_counter()
    p = plan(prob, opts)
    dt = time.perf_counter() - t0
    replay(prob, p)
    s = p.summary(prob)
    g, n = greedy(prob), load_next_stage(prob)
    mk = lambda q: s["compute_s"] + q.stall_chunks * prob.chunk_s  # noqa: E731
    pa = preload_all(prob)
    return (f"| {name} | {len(prob.stages)} | {p.status} | {dt:.2f} | {s['makespan_s']*1e3:.1f} | "
            f"{(s['compute_s'] + s['stall_lower_bound_s'])*1e3:.1f} | {s['makespan_gap']*100:.2f}% | "
            f"{s['simple_bound_s']*1e3:.1f} | {mk(g)*1e3:.1f} | {mk(n)*1e3:.1f} | "
            f"{'fits' if pa else 'does not fit'} |")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--sizes", default="100,1000,5000")
    a = ap.parse_args(argv)
    print("| graph | stages | status | solve s | makespan ms | LP bound ms | gap | "
          "max(load,compute) ms | greedy ms | load-next ms | preload-all |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in (int(x) for x in a.sizes.split(",") if x):
        print(row(f"chain-{n}", synthetic.chain(n), PlannerOptions(time_limit_s=a.time_limit)),
              flush=True)
    for gib in (1, 2):
        print(row(f"gpt-neo-2.7B @{gib}GiB", synthetic.gpt_neo_2_7b(budget=gib << 30),
                  PlannerOptions(time_limit_s=a.time_limit)), flush=True)


if __name__ == "__main__":
    main()
