"""Where a compiled model spends its time on llvm-cpu: IREE's per-dispatch benchmarks, weighted.

IREE can write every executable as a standalone benchmark module
(`--iree-hal-dump-executable-benchmarks-to`).  This script compiles the model that way (texflow's
default pipeline, or plain IREE with `--plain`), compiles and runs each benchmark with
`iree-benchmark-module` on `local-sync` (one thread), counts how often the model dispatches each
executable (from its `flow` IR) and prints the dispatches by total time.  It is how the
remaining gap to ONNX Runtime was located (docs/cpu.md).

    python benchmarks/cpu-parity/profile_dispatches.py sdunet --top 25
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import os
import re
import subprocess
import tempfile


def strip_attribute(text: str, key: str) -> str:
    """`text` without every `key = #dialect.attr<...>` (angle brackets matched)."""
    out, i = [], 0
    while (j := text.find(key, i)) >= 0:
        p, depth = text.index("#", j), 0
        while True:
            depth += {"<": 1, ">": -1}.get(text[p], 0)
            if text[p] == ">" and depth == 0:
                break
            p += 1
        start, end = j, p + 1
        if text[end:end + 2] == ", ":
            end += 2
        elif text[start - 2:start] == ", ":
            start -= 2
        out.append(text[i:start])
        i = end
    out.append(text[i:])
    return "".join(out).replace("attrs =  {}", "").replace("attributes {}", "")


def bench_one(path: str, flags: list[str]) -> list[tuple[str, float]]:
    vmfb = path[:-5] + ".vmfb"
    p = subprocess.run(["iree-compile", path, *flags, "-o", vmfb], capture_output=True, text=True)
    if p.returncode:
        # IREE 3.13 dumps convolution benchmarks with their configured tile sizes, and some do
        # not compile again from that form ("large vector sizes"); let IREE configure them anew.
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(strip_attribute(strip_attribute(text, "lowering_config ="), "translation_info ="))
        p = subprocess.run(["iree-compile", path, *flags, "-o", vmfb], capture_output=True, text=True)
    if p.returncode:
        print(f"warning: {os.path.basename(path)} did not compile: {p.stderr.strip().splitlines()[:1]}")
        return []
    p = subprocess.run(["iree-benchmark-module", f"--module={vmfb}", "--device=local-sync",
                        "--benchmark_min_time=0.2s"], capture_output=True, text=True)
    if p.returncode:
        print(f"warning: {os.path.basename(path)} did not run: {p.stderr.strip().splitlines()[-1:]}")
    out = []
    for line in p.stdout.splitlines():  # "BM_<fn>/process_time/real_time   0.123 ms ..."
        m = re.match(r"BM_(\S+?)/\S*\s+([\d.]+) (ns|us|ms)", line)
        if m:
            scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0}[m.group(3)]
            out.append((m.group(1), float(m.group(2)) * scale))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    from texflow.bench.models import build
    from texflow.compiler import PACK_IREE_FLAGS, CompileOptions, Compiler
    from texflow.targets import get_target
    m = build(args.model)
    flags = list(get_target("llvm-cpu").flags)
    with tempfile.TemporaryDirectory() as d:
        opts = dict(target="llvm-cpu", layout=not args.plain)
        extra = [] if args.plain else list(PACK_IREE_FLAGS)  # what texflow gives IREE
        Compiler(CompileOptions(**opts, iree_flags=[f"--iree-hal-dump-executable-benchmarks-to={d}"])) \
            .compile_file(str(m.onnx_path))
        flow = Compiler(CompileOptions(**opts, compile_to="flow")).compile_file(str(m.onnx_path)).mlir
        counts: dict[str, int] = {}
        for name in re.findall(r"flow\.dispatch @([\w$]+)::", flow):
            counts[name] = counts.get(name, 0) + 1
        files = sorted(glob.glob(os.path.join(d, "*_benchmark.mlir")))
        rows = []
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
            for res in ex.map(lambda f: bench_one(f, flags + extra), files):
                for fn, ms in res:
                    exe = re.match(r"(.+?_dispatch_\d+)", fn.split("_embedded_elf")[0])
                    n = counts.get(exe.group(1) if exe else "", 1)
                    op = fn.split("_x86_64_")[-1] if "_x86_64_" in fn else fn
                    rows.append((ms * n, ms, n, op))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"{args.model} ({'plain' if args.plain else 'texflow'}): {len(rows)} dispatch functions, "
          f"sum of (time x count) {total:.1f} ms")
    print("| total ms | share | ms per call | calls | dispatch |\n|---|---|---|---|---|")
    for t, ms, n, op in rows[:args.top]:
        print(f"| {t:.2f} | {100 * t / total:.1f}% | {ms:.3f} | {n} | `{op}` |")


if __name__ == "__main__":
    main()
