"""texflow-compile: an iree-compile-style driver with texflow's phases.

    texflow-compile model.onnx --target=vulkan-valhall -o model.vmfb
    texflow-compile model.onnx --compile-to=texflow-layout      # prints MLIR
    texflow-compile model.onnx --iree-opt-data-tiling -o m.vmfb  # raw IREE flags pass through
"""

from __future__ import annotations

import json
import os
import sys

from texflow.atomic_io import write_atomically
from texflow.compiler import ALL_PHASES, CompileOptions, Compiler, compile_to_files
from texflow.errors import TexflowError
from texflow.targets import TARGETS

from . import run_tool
from .args import ArgumentParser


def build_parser():
    p = ArgumentParser(prog="texflow-compile", description=__doc__.splitlines()[0],
                       epilog="Any --iree-* flag is passed to IREE unchanged.")
    p.add_argument("input", help=".onnx or .mlir file")
    p.add_argument("-o", "--output", default=None, help="output .vmfb (or .mlir with --compile-to); '-' for stdout")
    p.add_argument("--target", default="llvm-cpu", help=f"target preset: {', '.join(TARGETS)}")
    p.add_argument("--target-cpu", default="host", metavar="CPU",
                   help="llvm-cpu: the CPU to compile for, an LLVM name (znver4, skylake-avx512, "
                        "haswell, x86-64, cortex-a76, generic) or 'host' (default)")
    p.add_argument("--target-triple", default=None, metavar="TRIPLE",
                   help="llvm-cpu: the LLVM target triple, e.g. aarch64-linux-android "
                        "(default: the host's; with a triple the CPU defaults to generic)")
    p.add_argument("--compile-to", default="end", metavar="PHASE",
                   help=f"stop after PHASE and print MLIR ({', '.join(ALL_PHASES)})")
    p.add_argument("--compile-from", default="start", choices=["start", "input"],
                   help="'input' if the .mlir is already at IREE's input level")
    p.add_argument("--no-layout", action="store_true", help="skip texflow's layout phase (plain IREE)")
    p.add_argument("--layout-pipeline", default=None,
                   help="texflow passes of the layout phase (default: the target's, see "
                        "texflow.passes.pipelines.default_layout_pipeline)")
    p.add_argument("--no-select-layout", action="store_true",
                   help="elimination only: keep the convolutions' layouts (no texflow-select-layout)")
    p.add_argument("--no-pack-matmul", action="store_true",
                   help="llvm-cpu: keep matmuls, convolutions, softmax and attention in IREE's forms "
                        "(no texflow-pack-matmul, -fuse-attention or -rewrite-softmax)")
    p.add_argument("--no-configure-kernels", action="store_true",
                   help="Vulkan: leave every kernel's configuration to IREE (no texflow-configure-kernels)")
    p.add_argument("--kernel-table", default="", metavar="FILE",
                   help="Vulkan: configure texflow's convolutions from this kernel table (made on "
                        "your device by `python -m texflow.bench.tune_kernels`) instead of the target's")
    p.add_argument("--select-layout", default="", metavar="OPTIONS",
                   help="texflow-select-layout options, e.g. 'force=nc4hw4' or 'solver=greedy layouts=nchw,nhwc'")
    p.add_argument("--layout-report", default=None, metavar="FILE",
                   help="write texflow-select-layout's choices (per tensor: op, shape, layout) as JSON")
    p.add_argument("--precision", default="f32", choices=["f32", "f16"],
                   help="f16: compute in half precision (weights and activations; f32 inputs and outputs)")
    p.add_argument("--keep-f32", default="", metavar="NODES",
                   help="with --precision=f16: comma-separated ONNX node names (op locations) "
                        "that stay in f32")
    p.add_argument("--memory-budget", default=None, metavar="BYTES",
                   help="plan weight streaming under this peak memory (e.g. 64MiB); "
                        "the plan is written beside the output as <output>.plan.json")
    p.add_argument("--plan-chart", default=None, metavar="FILE",
                   help="draw the streaming plan (.png/.svg/.pdf): loads vs compute, memory curve")
    p.add_argument("--stream-mode", default="fenced", choices=["fenced", "segments"],
                   help="with --memory-budget: 'fenced' keeps the model one function whose weight "
                        "groups load behind device fences (one call per run); 'segments' cuts it "
                        "into functions taking their weights (any runtime policy)")
    p.add_argument("--plan-time-limit", type=float, default=10.0, help="CP-SAT time limit (s)")
    p.add_argument("--print-ir-after-all", action="store_true",
                   help="print the IR after each texflow pass to stderr")
    p.add_argument("--texflow-statistics", action="store_true",
                   help="print what each texflow pass changed (stderr)")
    p.add_argument("--no-crash-isolation", action="store_true",
                   help="compile in this process (an IREE crash then kills the tool)")
    p.add_argument("--texflow-verbose", action="store_true",
                   help="remarks (stderr) on IR the texflow passes left unchanged, and why")
    p.add_argument("--timings", action="store_true", help="print phase timings (stderr)")
    t = p.add_argument_group("measured tuning (README: Tuning)")
    t.add_argument("--tune", action="store_true",
                   help="time plain IREE and texflow's variants on the device, compile the fastest; "
                        "the choice is cached ($TEXFLOW_CACHE/tune, default ~/.cache/texflow/tune)")
    t.add_argument("--retune", action="store_true", help="like --tune, but measure even if cached")
    t.add_argument("--tune-device", default=None, metavar="DRIVER",
                   help="IREE runtime driver to time on: local-task (llvm-cpu, default) or vulkan")
    t.add_argument("--tune-threads", type=int, default=None, metavar="N",
                   help="local-task workers while timing (default 1)")
    t.add_argument("--tune-rounds", type=int, default=None, metavar="N",
                   help="interleaved timing rounds; the median decides (default 20)")
    return p


def main_impl(argv) -> int:
    args, extra = build_parser().parse_known_args(argv)
    bad = [a for a in extra if not a.startswith("--iree-")]
    if bad:
        raise TexflowError(f"unknown option(s): {' '.join(bad)}")
    extra = _cpu_from_iree_flags(args, extra)
    tuning = args.tune or args.retune
    if not tuning and (args.tune_device, args.tune_threads, args.tune_rounds) != (None,) * 3:
        raise TexflowError("--tune-device, --tune-threads and --tune-rounds need --tune")
    if args.plan_chart:
        if not (args.memory_budget and args.output and args.output != "-"):
            raise TexflowError("--plan-chart needs --memory-budget and -o <file>")
        from texflow.streaming.chart import check_chart_path, require_matplotlib
        require_matplotlib()  # fail before compiling
        check_chart_path(args.plan_chart)
    opts = CompileOptions(target=args.target, iree_flags=extra, layout=not args.no_layout,
                          memory_budget=args.memory_budget, plan_time_limit=args.plan_time_limit,
                          stream_mode=args.stream_mode,
                          layout_pipeline=args.layout_pipeline, compile_to=args.compile_to,
                          compile_from=args.compile_from,
                          print_ir_after_all=args.print_ir_after_all,
                          select_layout=not args.no_select_layout, select_options=args.select_layout,
                          precision=args.precision, pack_matmul=not args.no_pack_matmul,
                          keep_f32=tuple(n.strip() for n in args.keep_f32.split(",") if n.strip()),
                          configure_kernels=not args.no_configure_kernels,
                          kernel_table=args.kernel_table,
                          target_cpu=args.target_cpu, target_triple=args.target_triple)
    if args.compile_to == "end" and not args.output:
        raise TexflowError("missing -o <output.vmfb>")
    if tuning:
        import dataclasses
        from texflow.tune import TuneSettings, tune
        Compiler(opts)  # a bad target, CPU or flag is reported before any timing
        choice = tune(args.input, opts, TuneSettings(
            device=args.tune_device, threads=1 if args.tune_threads is None else args.tune_threads,
            rounds=20 if args.tune_rounds is None else args.tune_rounds, retune=args.retune))
        print(f"texflow-compile: {choice.summary()}", file=sys.stderr)
        opts = dataclasses.replace(opts, **choice.overrides)  # then compiled as without --tune
    if args.texflow_verbose:
        from texflow.passes.registry import set_remark_stream
        set_remark_stream(os.fdopen(os.dup(2), "w"))
    result = compile_to_files(args.input, opts, args.output or "-",
                              isolate=not (args.no_crash_isolation or args.print_ir_after_all))
    for why in result.fallbacks:  # what texflow left out to keep the compile going
        print(f"texflow-compile: warning: {why}", file=sys.stderr)
    if args.texflow_statistics:
        for pname, stats in result.statistics.items():
            for k, v in stats.items():
                print(f"texflow-statistics: {pname}: {v} {k}", file=sys.stderr)
    if args.timings:
        print("texflow-timings: " + json.dumps({k: round(v, 4) for k, v in result.timings.items()}),
              file=sys.stderr)
    if args.layout_report:
        write_atomically(args.layout_report, json.dumps(
            result.layout_report or {"functions": {}, "note": "no layout was selected"}, indent=1) + "\n")
    if args.plan_chart and os.path.exists(args.output + ".plan.json"):
        from texflow.streaming.chart import plan_chart
        with open(args.output + ".plan.json") as f:
            plan_chart(json.load(f), args.plan_chart)
    return 0


def _cpu_from_iree_flags(args, extra: list[str]) -> list[str]:
    """`--iree-llvmcpu-target-cpu=X` / `-triple=X` passed through mean --target-cpu/--target-triple
    (so that texflow-pack-matmul's tiles follow them too)."""
    rest = []
    for a in extra:
        for prefix, attr, flag in (("--iree-llvmcpu-target-cpu=", "target_cpu", "--target-cpu"),
                                   ("--iree-llvmcpu-target-triple=", "target_triple", "--target-triple")):
            if a.startswith(prefix):
                v, given = a[len(prefix):], getattr(args, attr)
                if given not in (None, "host") and given != v:
                    raise TexflowError(f"{flag}={given} and {a} disagree")
                setattr(args, attr, v)
                break
        else:
            rest.append(a)
    return rest


def main(argv=None) -> int:
    return run_tool("texflow-compile", main_impl, argv)


if __name__ == "__main__":
    sys.exit(main())
