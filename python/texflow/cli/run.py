"""texflow-run: run a compiled module, iree-run-module style.

    texflow-run model.vmfb --device=vulkan --input=@x.npy --output=@y.npy
    texflow-run model.vmfb --input=2x3xf32="1 2 3 4 5 6"
    texflow-run model.vmfb --memory-budget=64MiB --input=@x.npy      # streamed module
    texflow-run enc.vmfb unet.vmfb dec.vmfb --memory-budget=1GiB ...  # models in turn

A module compiled with `texflow-compile --memory-budget` is executed by the
streaming runtime: weights come from the `.irpa` archive beside it while
earlier segments compute, within the budget (default: the compile-time one).
Several streamed modules run in turn under one budget, each one's outputs
feeding the next, planned jointly.
"""

from __future__ import annotations

import io
import json
import os
import sys

import numpy as np

from texflow.errors import TexflowError

from . import run_tool
from .args import ArgumentParser


def build_parser():
    p = ArgumentParser(prog="texflow-run", description=__doc__.splitlines()[0])
    p.add_argument("modules", nargs="+", metavar="module", help="compiled .vmfb (several: streamed, in turn)")
    p.add_argument("--device", default="local-task", help="local-task, local-sync or vulkan")
    p.add_argument("--function", default=None, help="entry point (default: the only one)")
    p.add_argument("--input", action="append", default=[], help="@x.npy or <shape>x<type>=<values>")
    p.add_argument("--output", action="append", default=[], help="@y.npy per result (else printed)")
    p.add_argument("--allow-subgroup-mismatch", action="store_true",
                   help="run even if the device's subgroup size differs from the module's")
    s = p.add_argument_group("streamed modules")
    s.add_argument("--memory-budget", default=None, metavar="BYTES",
                   help="peak memory for weights and activations (default: the compile-time budget)")
    s.add_argument("--plan", default=None, metavar="FILE",
                   help="plan manifest (default: <module>.plan.json)")
    s.add_argument("--weights", default=None, metavar="FILE",
                   help="weight archive (default: <module>.irpa)")
    s.add_argument("--policy", default="plan", choices=["plan", "next-stage", "preload-all"],
                   help="load policy: the planner's, load the next segment's weights, or preload all")
    s.add_argument("--cold", action="store_true",
                   help="evict the module and archive from the page cache first (cold start)")
    s.add_argument("--repeat", type=int, default=1, help="run this many times (stats of the last)")
    s.add_argument("--stats", action="store_true", help="print the run's memory and time figures")
    s.add_argument("--trace", default=None, metavar="FILE",
                   help="write the measured loads, stalls and segment calls as JSON")
    s.add_argument("--gantt", default=None, metavar="FILE",
                   help="chart of the measured run beside the plan (.png/.svg/.pdf)")
    return p


def _save(dest: str, r) -> None:
    """Write result `r` to `@file.npy` (checked by main_impl before any compute)."""
    from texflow.atomic_io import write_atomically
    buf = io.BytesIO()
    np.save(buf, r, allow_pickle=False)
    write_atomically(dest[1:], buf.getvalue())


def main_impl(argv) -> int:
    from texflow.runtime import Module, dtype_text, parse_input
    from texflow.streaming.program import is_streamed_module

    args = build_parser().parse_args(argv)
    if args.output:
        for dest in args.output:
            if not dest.startswith("@"):
                raise TexflowError(f"--output must be @file.npy, got '{dest}'")
    streaming_opts = [o for o, v in (("--memory-budget", args.memory_budget), ("--plan", args.plan),
                                     ("--weights", args.weights), ("--cold", args.cold),
                                     ("--trace", args.trace), ("--gantt", args.gantt))
                      if v]
    for m in args.modules:
        if not os.path.exists(m):
            raise TexflowError(f"no such module: {m}")
    streamed = [is_streamed_module(m) for m in args.modules]
    if len(args.modules) > 1 and not all(streamed):
        bad = args.modules[streamed.index(False)]
        raise TexflowError(f"several modules run in turn only when streamed: {bad} was not "
                           "compiled with --memory-budget")
    if args.repeat < 1:
        raise TexflowError("--repeat must be >= 1")
    if args.gantt:  # fail before compute
        from texflow.streaming.chart import check_chart_path, require_matplotlib
        require_matplotlib()
        check_chart_path(args.gantt)
    inputs = [parse_input(t) for t in args.input]
    if not any(streamed):
        if streaming_opts:
            raise TexflowError(f"{streaming_opts[0]} needs a module compiled with "
                               "texflow-compile --memory-budget")
        mod = Module(args.modules[0], driver=args.device,
                     allow_subgroup_mismatch=args.allow_subgroup_mismatch)
        for _ in range(args.repeat):
            results = mod(*inputs, function=args.function)
    else:
        results = _run_streamed(args, inputs)
    if args.output and len(args.output) != len(results):
        raise TexflowError(f"{len(results)} result(s) but {len(args.output)} --output given")
    for i, r in enumerate(results):
        if i < len(args.output):
            _save(args.output[i], r)
        else:
            print(f"result[{i}]: {dtype_text(r)}")
            print(np.array2string(r, threshold=64))
    return 0


def _run_streamed(args, inputs):
    from texflow.atomic_io import write_atomically
    from texflow.streaming.executor import StreamingSession, evict_file
    from texflow.streaming.program import load_streamed

    if len(args.modules) > 1 and (args.plan or args.weights):
        raise TexflowError("--plan and --weights name one module's files; with several modules "
                           "each one's sit beside it")
    if args.function:
        raise TexflowError("--function does not apply to a streamed module (it has one program)")
    models = [load_streamed(m, args.plan, args.weights) for m in args.modules]
    if args.cold:
        for m in models:
            evict_file(m.vmfb_path)
            evict_file(m.archive_path)
    session = StreamingSession(models, memory_budget=args.memory_budget, driver=args.device,
                               policy=args.policy)
    try:
        for _ in range(args.repeat):
            results = session.run(*inputs)
    finally:
        session.close()
    summary = session.summary()
    if args.stats:
        print("texflow-run: " + json.dumps({k: (round(v, 6) if isinstance(v, float) else v)
                                            for k, v in summary.items()}), file=sys.stderr)
    trace = session.trace() if args.trace or args.gantt else None
    if args.trace:
        write_atomically(args.trace, json.dumps(trace, indent=1) + "\n")
    if args.gantt:
        from texflow.streaming.chart import trace_chart
        trace_chart(trace, args.gantt)
    return results


def main(argv=None) -> int:
    return run_tool("texflow-run", main_impl, argv)


if __name__ == "__main__":
    sys.exit(main())
