"""Measure the layout cost model of one target: how much a layout choice costs on it.

    python -m texflow.bench.calibrate_layout --target llvm-cpu [--threads 1] [--reps 30]
    python -m texflow.bench.calibrate_layout --target vulkan-nvidia --compile-only DIR   # here
    python -m texflow.bench.calibrate_layout --run DIR                                   # on the GPU

Layout selection trades read and write costs that only a measurement on the target can
give: is a convolution faster reading NCHW, NHWC or channels packed by four (NC4HW4, the
"texel" layout of a mobile GPU's 2.5D texture memory)?  Does a matmul want its reduction
dimension contiguous in the right-hand operand?  What does a transpose cost per byte?
Each case is a small linalg-on-tensors module at realistic sizes (MobileNet/ResNet-style
convolutions, a transformer projection), with every operand a function argument so that
IREE cannot fold a layout change into a constant.  The variants of a case are timed
interleaved (`texflow.bench.harness.time_interleaved`) and stored as medians and as
ratios to the case's fastest variant, with the device, date and IREE version, in
`data/<target>.json`.  `--compile-only` and `--run` split the work for the device tool,
which has IREE's runtime but not its compiler.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

from texflow.selection.costmodel import GPU_SCALE

DATA_DIR = Path(__file__).parent / "data"

# -- cases: name -> {variant: mlir}; sizes in the module text -------------------------
_FILL = """  %z = arith.constant 0.0 : {t}
  %e = tensor.empty() : tensor<{out}x{t}>
  %f = linalg.fill ins(%z : {t}) outs(%e : tensor<{out}x{t}>) -> tensor<{out}x{t}>
"""


def _func(args: list[str], out: str, body: str, t: str) -> str:
    sig = ", ".join(f"%a{i}: tensor<{a}x{t}>" for i, a in enumerate(args))
    return (f"func.func @main({sig}) -> tensor<{out}x{t}> {{\n" + _FILL.format(t=t, out=out)
            + body + f"  return %r : tensor<{out}x{t}>\n}}\n")


def _packed_mac(t: str, args: list[str], out: str, loops: str, maps: list[str],
                n_parallel: int) -> str:
    """A multiply-accumulate `linalg.generic` over channel-packed operands (how texflow writes
    an NC4HW4 convolution): `loops` names the loops, the first `n_parallel` parallel."""
    n = len(loops.split(","))
    its = ", ".join(['"parallel"'] * n_parallel + ['"reduction"'] * (n - n_parallel))
    amaps = ",\n                     ".join(f"affine_map<({loops}) -> ({m})>" for m in maps)
    types = ", ".join(f"tensor<{a}x{t}>" for a in args)
    return _func(args, out, f"""  %r = linalg.generic {{
    indexing_maps = [{amaps}],
    iterator_types = [{its}]}}
    ins(%a0, %a1 : {types})
    outs(%f : tensor<{out}x{t}>) {{
  ^bb0(%x: {t}, %w: {t}, %acc: {t}):
    %m = arith.mulf %x, %w : {t}
    %s = arith.addf %acc, %m : {t}
    linalg.yield %s : {t}
  }} -> tensor<{out}x{t}>
""", t)


def conv_cases(t: str, C: int = 64, F: int = 64, H: int = 56, N: int = 1) -> dict[str, str]:
    """3x3 stride-1 convolution on a pre-padded input, in three activation layouts."""
    P = H + 2
    cases = _nchw_nhwc_conv(t, N, C=C, F=F, K=3, S=1, H=H, P=P)
    c4, f4 = C // 4, F // 4
    packed = _packed_mac(t, [f"{N}x{c4}x{P}x{P}x4", f"{f4}x{c4}x3x3x4x4"], f"{N}x{f4}x{H}x{H}x4",
                         "n, fo, oh, ow, fi, co, kh, kw, ci",
                         ["n, co, oh + kh, ow + kw, ci", "fo, co, kh, kw, ci, fi", "n, fo, oh, ow, fi"], 5)
    return {**cases, "nc4hw4": packed}


def _nchw_nhwc_conv(t: str, N: int, C: int, F: int, K: int, S: int, H: int, P: int) -> dict[str, str]:
    """One convolution (C -> F channels, KxK, stride S, a pre-padded PxP input, HxH output) as
    NCHW (`conv_2d_nchw_fchw`) and as NHWC (`conv_2d_nhwc_hwcf`)."""
    attrs = f"{{dilations = dense<1> : tensor<2xi64>, strides = dense<{S}> : tensor<2xi64>}}"
    nchw = _func([f"{N}x{C}x{P}x{P}", f"{F}x{C}x{K}x{K}"], f"{N}x{F}x{H}x{H}", f"""  %r = linalg.conv_2d_nchw_fchw
    {attrs}
    ins(%a0, %a1 : tensor<{N}x{C}x{P}x{P}x{t}>, tensor<{F}x{C}x{K}x{K}x{t}>)
    outs(%f : tensor<{N}x{F}x{H}x{H}x{t}>) -> tensor<{N}x{F}x{H}x{H}x{t}>
""", t)
    nhwc = _func([f"{N}x{P}x{P}x{C}", f"{K}x{K}x{C}x{F}"], f"{N}x{H}x{H}x{F}", f"""  %r = linalg.conv_2d_nhwc_hwcf
    {attrs}
    ins(%a0, %a1 : tensor<{N}x{P}x{P}x{C}x{t}>, tensor<{K}x{K}x{C}x{F}x{t}>)
    outs(%f : tensor<{N}x{H}x{H}x{F}x{t}>) -> tensor<{N}x{H}x{H}x{F}x{t}>
""", t)
    return {"nchw": nchw, "nhwc": nhwc}


def stem_cases(t: str, H: int = 112, N: int = 1) -> dict[str, str]:
    """A first convolution on an RGB image (ResNet's stem: 3 -> 64 channels, 7x7, stride 2):
    with 3 input channels the reduction is mostly spatial."""
    return _nchw_nhwc_conv(t, N, C=3, F=64, K=7, S=2, H=H, P=(H - 1) * 2 + 7)


def patch_cases(t: str, N: int = 1) -> dict[str, str]:
    """A patch embedding (ViT: 3 -> 192 channels, 16x16 kernel, stride 16 over 224x224): the
    windows do not overlap, so it is a matmul in disguise and behaves like neither of the
    other convolutions."""
    return _nchw_nhwc_conv(t, N, C=3, F=192, K=16, S=16, H=14, P=224)


def dwconv_cases(t: str, C: int = 144, H: int = 56, N: int = 1) -> dict[str, str]:
    P = H + 2
    nchw = _func([f"{N}x{C}x{P}x{P}", f"{C}x3x3"], f"{N}x{C}x{H}x{H}", f"""  %r = linalg.depthwise_conv_2d_nchw_chw
    {{dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}}
    ins(%a0, %a1 : tensor<{N}x{C}x{P}x{P}x{t}>, tensor<{C}x3x3x{t}>)
    outs(%f : tensor<{N}x{C}x{H}x{H}x{t}>) -> tensor<{N}x{C}x{H}x{H}x{t}>
""", t)
    nhwc = _func([f"{N}x{P}x{P}x{C}", f"3x3x{C}"], f"{N}x{H}x{H}x{C}", f"""  %r = linalg.depthwise_conv_2d_nhwc_hwc
    {{dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}}
    ins(%a0, %a1 : tensor<{N}x{P}x{P}x{C}x{t}>, tensor<3x3x{C}x{t}>)
    outs(%f : tensor<{N}x{H}x{H}x{C}x{t}>) -> tensor<{N}x{H}x{H}x{C}x{t}>
""", t)
    c4 = C // 4
    packed = _packed_mac(t, [f"{N}x{c4}x{P}x{P}x4", f"{c4}x3x3x4"], f"{N}x{c4}x{H}x{H}x4",
                         "n, c0, oh, ow, c1, kh, kw",
                         ["n, c0, oh + kh, ow + kw, c1", "c0, kh, kw, c1", "n, c0, oh, ow, c1"], 5)
    return {"nchw": nchw, "nhwc": nhwc, "nc4hw4": packed}


def matmul_cases(t: str, M: int = 384, K: int = 768, N: int = 768) -> dict[str, str]:
    """Right-hand operand stored K x N (ONNX's MatMul) or N x K (reduction contiguous)."""
    kn = _func([f"{M}x{K}", f"{K}x{N}"], f"{M}x{N}", f"""  %r = linalg.matmul
    ins(%a0, %a1 : tensor<{M}x{K}x{t}>, tensor<{K}x{N}x{t}>) outs(%f : tensor<{M}x{N}x{t}>) -> tensor<{M}x{N}x{t}>
""", t)
    nk = _func([f"{M}x{K}", f"{N}x{K}"], f"{M}x{N}", f"""  %r = linalg.matmul indexing_maps = [
      affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
    ins(%a0, %a1 : tensor<{M}x{K}x{t}>, tensor<{N}x{K}x{t}>) outs(%f : tensor<{M}x{N}x{t}>) -> tensor<{M}x{N}x{t}>
""", t)
    return {"kn": kn, "nk": nk}


def movement_cases(t: str, C: int = 64, H: int = 56, N: int = 1) -> dict[str, str]:
    """A transpose (NCHW -> NHWC) against a plain elementwise copy of the same bytes."""
    tr = (f"func.func @main(%a0: tensor<{N}x{C}x{H}x{H}x{t}>) -> tensor<{N}x{H}x{H}x{C}x{t}> {{\n"
          f"  %e = tensor.empty() : tensor<{N}x{H}x{H}x{C}x{t}>\n"
          f"  %r = linalg.transpose ins(%a0 : tensor<{N}x{C}x{H}x{H}x{t}>) "
          f"outs(%e : tensor<{N}x{H}x{H}x{C}x{t}>) permutation = [0, 2, 3, 1]\n"
          f"  return %r : tensor<{N}x{H}x{H}x{C}x{t}>\n}}\n")
    cp = (f"func.func @main(%a0: tensor<{N}x{C}x{H}x{H}x{t}>) -> tensor<{N}x{C}x{H}x{H}x{t}> {{\n"
          f"  %r = arith.negf %a0 : tensor<{N}x{C}x{H}x{H}x{t}>\n"
          f"  return %r : tensor<{N}x{C}x{H}x{H}x{t}>\n}}\n")
    # a 3-channel image to NHWC: the innermost dimension becomes 3 wide (measured on llvm-cpu:
    # this conversion cost more than the NHWC patch embedding it fed saved)
    W = 224
    narrow = (f"func.func @main(%a0: tensor<{N}x3x{W}x{W}x{t}>) -> tensor<{N}x{W}x{W}x3x{t}> {{\n"
              f"  %e = tensor.empty() : tensor<{N}x{W}x{W}x3x{t}>\n"
              f"  %r = linalg.transpose ins(%a0 : tensor<{N}x3x{W}x{W}x{t}>) "
              f"outs(%e : tensor<{N}x{W}x{W}x3x{t}>) permutation = [0, 2, 3, 1]\n"
              f"  return %r : tensor<{N}x{W}x{W}x3x{t}>\n}}\n")
    return {"transpose": tr, "elementwise": cp, "transpose_narrow": narrow}


CASES = {"conv3x3": conv_cases, "convstem": stem_cases, "convpatch": patch_cases, "dwconv3x3": dwconv_cases, "matmul": matmul_cases,
         "movement": movement_cases}


# WORK and GPU_SCALE (the work in each case) live with the cost model that reads them.


def case_modules(elem: str, gpu: bool = False) -> dict[str, dict[str, str]]:
    """On a GPU the CPU sizes finish in microseconds, below the cost of a submission, so the
    activations get GPU_SCALE times more work there (a batch of 16, or 16x the rows)."""
    if not gpu:
        return {c: f(elem) for c, f in CASES.items()}
    g = GPU_SCALE
    return {"conv3x3": conv_cases(elem, N=g), "convstem": stem_cases(elem, N=g),
            "convpatch": patch_cases(elem, N=g), "dwconv3x3": dwconv_cases(elem, N=g),
            "matmul": matmul_cases(elem, M=384 * g), "movement": movement_cases(elem, N=g)}


def _inputs(mlir: str, seed: int = 0) -> list[np.ndarray]:
    import re
    sig = mlir.split("->")[0]
    rng = np.random.default_rng(seed)
    out = []
    for dims, t in re.findall(r"tensor<([0-9x]+)x(f16|f32)>", sig):
        shape = [int(d) for d in dims.split("x")]
        out.append(rng.standard_normal(shape).astype(np.float16 if t == "f16" else np.float32))
    return out


def compile_cases(target: str, elems: list[str], out_dir: Path) -> None:
    """Compile every case variant for `target` into out_dir/<elem>.<case>.<variant>.vmfb."""
    from texflow.compiler import CompileOptions, Compiler
    out_dir.mkdir(parents=True, exist_ok=True)
    for elem in elems:
        for case, variants in case_modules(elem, gpu=target.startswith("vulkan")).items():
            for v, text in variants.items():
                with tempfile.NamedTemporaryFile("w", suffix=".mlir", delete=False) as f:
                    f.write(text)
                try:
                    res = Compiler(CompileOptions(target=target, layout=False)).compile_file(f.name)
                finally:
                    os.unlink(f.name)
                (out_dir / f"{elem}.{case}.{v}.vmfb").write_bytes(res.vmfb)
                (out_dir / f"{elem}.{case}.{v}.mlir").write_text(text)
                print(f"compiled {elem}.{case}.{v}", file=sys.stderr, flush=True)
    (out_dir / "target.txt").write_text(target)


def _timer(vmfb: Path, driver: str, config):
    """A function that calls the case once and returns its seconds.  Inputs are uploaded
    once and outputs stay on the device: a host read-back would dominate the GPU figures."""
    import time
    import iree.runtime as rt
    from texflow.runtime import Module
    m = Module(str(vmfb), driver=driver, config=config)
    f = m.context.modules.module["main"]
    args = [rt.asdevicearray(m.device, x) for x in _inputs(vmfb.with_suffix(".mlir").read_text())]

    def call() -> float:
        t0 = time.perf_counter()
        f(*args)
        return time.perf_counter() - t0
    return call


def run_cases(d: Path, rounds: int, driver: str, threads: int) -> dict:
    """Time every compiled case in `d`: per round, each variant of a case once (order
    rotating), so that drift falls on all variants alike; medians and median ratios."""
    import statistics
    import iree.runtime as rt
    if driver == "local-task" and threads:
        rt.flags.parse_flags(f"--task_topology_max_group_count={threads}")
    config = rt.Config(driver)  # one device for every module
    groups: dict[tuple[str, str], dict[str, Path]] = {}
    for p in sorted(d.glob("*.vmfb")):
        elem, case, v = p.name[:-5].split(".")
        groups.setdefault((elem, case), {})[v] = p
    results = {}
    for (elem, case), vs in groups.items():
        names = list(vs)
        calls = {v: _timer(p, driver, config) for v, p in vs.items()}
        times = {v: [] for v in names}
        for r in range(-2, rounds):  # two warm-up rounds
            k = r % len(names)
            for v in names[k:] + names[:k]:
                if r >= 0:
                    times[v].append(1e3 * calls[v]())
                else:
                    calls[v]()
        med = {v: statistics.median(ts) for v, ts in times.items()}
        best = min(med, key=med.get)
        entry = {v: {"median_ms": round(med[v], 4),
                     "ratio_to_best": round(statistics.median(
                         a / b for a, b in zip(times[v], times[best])), 3)} for v in names}
        results.setdefault(elem, {})[case] = entry
        print(f"{elem} {case}: " + ", ".join(f"{v} {e['median_ms']} ms ({e['ratio_to_best']}x)"
                                             for v, e in entry.items()), file=sys.stderr, flush=True)
    return results


def _device_name(driver: str) -> str:
    if driver == "vulkan":
        try:
            import iree.runtime as rt
            return ", ".join(i["name"] for i in rt.get_driver("vulkan").query_available_devices())
        except Exception:  # noqa: BLE001
            return "vulkan device"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def record(target: str, driver: str, results: dict, threads: int, rounds: int) -> dict:
    import iree.runtime as rt
    return {"target": target, "source": "measured", "device": _device_name(driver),
            "date": datetime.date.today().isoformat(),
            "iree_runtime": getattr(rt, "version", None) and rt.version.PACKAGE_SUFFIX or "",
            "threads": threads, "rounds": rounds, "cases": results}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m texflow.bench.calibrate_layout", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="llvm-cpu")
    p.add_argument("--elems", default="f32,f16")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=20, help="rounds of all variants")
    p.add_argument("--compile-only", type=Path, help="compile the cases into DIR and stop")
    p.add_argument("--run", type=Path, help="time the cases compiled in DIR (device side)")
    p.add_argument("--out", type=Path, help="JSON to write (default data/<target>.json)")
    a = p.parse_args(argv)
    if a.compile_only:
        compile_cases(a.target, a.elems.split(","), a.compile_only)
        return 0
    if a.run:
        target = (a.run / "target.txt").read_text().strip()
        d = a.run
    else:
        target = a.target
        d = Path(tempfile.mkdtemp())
        compile_cases(target, a.elems.split(","), d)
    from texflow.targets import get_target
    driver = get_target(target).driver
    res = record(target, driver, run_cases(d, a.rounds, driver, a.threads), a.threads, a.rounds)
    out = a.out or DATA_DIR / f"{target}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
