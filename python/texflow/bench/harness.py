"""Compile variants of a model and time them interleaved (A/B) in one process.

A *variant* is one way of compiling: `plain` (IREE alone, texflow's layout phase off: the
in-process equivalent of `iree-compile`) and `texflow` (layout phase on), each optionally with
IREE data tiling (`+dt`).  All variants of one model and target are loaded in one process and
called in turn within each repetition, the order rotating from one repetition to the next, so
that machine drift (frequency, a neighbour's load) falls on every variant alike.  Reported:
the median of each variant's times and the median of the per-repetition ratios to `plain`.

ONNX Runtime runs in a child process (`python -m texflow.bench.harness serve ...`): two
runtimes with their own thread pools in one process fight over the cores.  The child still
takes its turn inside each repetition (the parent asks it for one timed inference over a
pipe, and only one runtime computes at a time), so ONNX Runtime's figures are interleaved
with IREE's and share their drift; the child reports its own inference time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .classify import summarize

DATA_TILING = "--iree-opt-data-tiling"


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    layout: bool
    flags: tuple[str, ...] = ()
    select: bool = True  # texflow-select-layout in the layout phase
    precision: str = "f32"  # f16: texflow-demote-f16
    select_options: str = ""
    pack: bool = True  # texflow-pack-matmul (llvm-cpu)
    configure: bool = True  # texflow-configure-kernels (Vulkan targets with a kernel table)


VARIANTS = {v.name: v for v in (
    Variant("plain", False),
    Variant("texflow", True),
    Variant("texflow-elim", True, select=False, pack=False),  # elimination only
    Variant("texflow-nopack", True, pack=False),  # elimination and selection, no mmt4d packing
    Variant("texflow-noconf", True, configure=False),  # IREE's kernel configurations (Vulkan)
    Variant("texflow-f16", True, precision="f16"),
    Variant("texflow-elim-f16", True, select=False, precision="f16", pack=False),
    Variant("texflow-nhwc-f16", True, precision="f16", select_options="force=nhwc"),
    Variant("plain+dt", False, (DATA_TILING,)),
    Variant("texflow+dt", True, (DATA_TILING,)),
)}


def set_threads(threads: int) -> None:
    """Limit IREE's local-task executor to `threads` workers (before the first module loads)."""
    if threads:
        import iree.runtime as rt
        rt.flags.parse_flags(f"--task_topology_max_group_count={threads}")


def compile_variant(path, target: str, variant: Variant, count_dispatches: bool = True) -> dict:
    """Compile `path` for `target`; returns vmfb, compile time and the dispatch summary."""
    from texflow.compiler import CompileOptions, Compiler
    out: dict = {"variant": variant.name}
    t0 = time.perf_counter()
    res = Compiler(CompileOptions(target=target, layout=variant.layout, select_layout=variant.select,
                                  precision=variant.precision, select_options=variant.select_options,
                                  pack_matmul=variant.pack, configure_kernels=variant.configure,
                                  iree_flags=list(variant.flags))).compile_file(str(path))
    out["compile_s"] = time.perf_counter() - t0
    out["vmfb"] = res.vmfb
    out["vmfb_bytes"] = len(res.vmfb)
    out["texflow_s"] = sum(v for k, v in res.timings.items() if k.startswith("texflow"))
    out["statistics"] = res.statistics
    if count_dispatches:
        out["flow"] = flow_summary(path, target, variant)
    return out


def flow_text(path, target: str, variant: Variant) -> str:
    from texflow.compiler import CompileOptions, Compiler
    return Compiler(CompileOptions(target=target, layout=variant.layout, compile_to="flow",
                                   select_layout=variant.select, precision=variant.precision,
                                   select_options=variant.select_options, pack_matmul=variant.pack,
                                   configure_kernels=variant.configure,
                                   iree_flags=list(variant.flags))).compile_file(str(path)).mlir


def flow_summary(path, target: str, variant: Variant) -> dict:
    return summarize(flow_text(path, target, variant)).to_json()


def iree_compile_cli_summary(path, target: str, flags=()) -> dict:
    """Dispatch summary of the command-line tools (iree-import-onnx | iree-compile), to check
    that the in-process plain path equals them."""
    import tempfile
    from texflow.targets import get_target
    with tempfile.TemporaryDirectory() as d:
        mlir = os.path.join(d, "m.mlir")
        subprocess.run(["iree-import-onnx", str(path), "-o", mlir], check=True,
                       capture_output=True)
        flow = os.path.join(d, "m.flow.mlir")
        subprocess.run(["iree-compile", mlir, "--compile-to=flow", "-o", flow,
                        *get_target(target).flags, *flags], check=True, capture_output=True)
        return summarize(Path(flow).read_text()).to_json()


def accuracy(outs: list[np.ndarray], ref: list[np.ndarray]) -> dict:
    abs_d, rel_d = 0.0, 0.0
    for a, b in zip(outs, ref):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            return {"max_abs": float("inf"), "max_rel": float("inf"),
                    "error": f"shape {a.shape} != reference {b.shape}"}
        d = float(np.max(np.abs(a - b))) if a.size else 0.0
        abs_d = max(abs_d, d)
        rel_d = max(rel_d, d / max(float(np.max(np.abs(b))), 1e-30))
    return {"max_abs": abs_d, "max_rel": rel_d}


def time_interleaved(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2,
                     progress: Callable[[int, int], None] | None = None) -> dict[str, list[float]]:
    """Call every function once per repetition, rotating the order; seconds per call."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times = {n: [] for n in names}
    for r in range(reps):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            t0 = time.perf_counter()
            got = fns[n]()
            dt = time.perf_counter() - t0
            # a function that times itself (the ONNX Runtime child) returns its seconds
            times[n].append(got if isinstance(got, float) else dt)
        if progress:
            progress(r + 1, reps)
    return times


def stats(ts: list[float]) -> dict:
    ms = sorted(t * 1e3 for t in ts)
    if not ms:
        return {}
    q = lambda p: ms[min(len(ms) - 1, int(round(p * (len(ms) - 1))))]  # noqa: E731
    return {"median_ms": statistics.median(ms), "p10_ms": q(0.1), "p90_ms": q(0.9),
            "min_ms": ms[0], "n": len(ms)}


def paired_ratio(a: list[float], b: list[float]) -> float | None:
    """Median over repetitions of a[i] / b[i] (both timed in the same repetition)."""
    rs = [x / y for x, y in zip(a, b) if y > 0]
    return statistics.median(rs) if rs else None


def run_modules(vmfbs: dict[str, bytes], driver: str, inputs: list[np.ndarray],
                ref: list[np.ndarray] | None, reps: int, warmup: int = 2,
                progress=None, peers: dict[str, Callable[[], float]] | None = None,
                loader: Callable[[str, bytes], Callable] | None = None) -> dict[str, dict]:
    """Load each module (with `loader(name, vmfb)`, default texflow.runtime.Module), check it
    against `ref`, time them (and `peers`, e.g. a PeerChild) interleaved, read the allocator's
    statistics."""
    from texflow.runtime import Module
    mods, out = {}, {}
    for name, vmfb in vmfbs.items():
        try:
            m = loader(name, vmfb) if loader else Module(vmfb, driver=driver)
            res = m(*inputs)
            out[name] = accuracy(res, ref) if ref is not None else {}
            mods[name] = m
        except Exception as e:  # noqa: BLE001
            out[name] = {"error": f"run: {type(e).__name__}: {str(e).splitlines()[0][:300]}"}
    if reps and mods:
        fns = {n: (lambda m=m: m(*inputs)) for n, m in mods.items()}
        for n, f in (peers or {}).items():
            fns[n] = f
            out[n] = {}
        times = time_interleaved(fns, reps, warmup, progress)
        base = "plain" if "plain" in times else next(iter(times))
        for n, ts in times.items():
            out[n].update(stats(ts))
            out[n]["times_ms"] = [round(t * 1e3, 4) for t in ts]
            if n != base:
                out[n]["ratio_vs_" + base] = paired_ratio(ts, times[base])
    for n, m in mods.items():
        if driver == "local-task" and not loader:
            try:
                s = m.device.allocator.statistics
                out[n]["allocator_peak_bytes"] = int(s.get("device_bytes_peak", 0)) + \
                    int(s.get("host_bytes_peak", 0))
            except Exception:  # noqa: BLE001
                pass
    return out


class PeerChild:
    """A peer runtime (ONNX Runtime or MNN) in a child process that runs one timed inference
    per request.  Its first output's largest difference from the reference is in `max_abs`."""

    NAMES = {"ort": "ONNX Runtime", "mnn": "MNN", "ncnn": "ncnn fp32", "ncnn-fp16": "ncnn fp16"}

    def __init__(self, onnx_path, inputs_npz, threads: int, runtime: str = "ort", ref_npz=None,
                 device: str = "cpu"):
        """`onnx_path`: the model file the runtime reads (for ncnn its .ncnn.param, the .bin
        beside it); `device`: "vulkan" runs ncnn on its Vulkan backend (the others are CPU)."""
        import tempfile
        self.runtime = runtime
        # the child's stderr goes to a file: a converter's chatter would fill a pipe nobody
        # reads and block the child
        self._err = tempfile.TemporaryFile(mode="w+")
        self.p = subprocess.Popen(
            [sys.executable, "-m", "texflow.bench.harness", "serve", runtime, str(onnx_path),
             str(inputs_npz), str(threads), str(ref_npz or ""), device],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True,
            bufsize=1)
        line = self.p.stdout.readline().strip()
        if not line.startswith("ready"):
            self.close()
            self._err.seek(0)
            err = self._err.read().strip().splitlines()
            raise RuntimeError(f"{self.NAMES[runtime]} child failed: {(err or [line])[-1][:300]}")
        parts = line.split(maxsplit=2)
        self.max_abs = float(parts[1]) if len(parts) > 1 and parts[1] != "nan" else None
        self.device_name = parts[2] if len(parts) > 2 else None

    def __call__(self) -> float:
        self.p.stdin.write("run\n")
        self.p.stdin.flush()
        return float(self.p.stdout.readline())

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("quit\n")
                self.p.stdin.flush()
                self.p.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        self._err.close()


class _StdoutToStderr:
    """Point fd 1 (the child's protocol pipe) at stderr: MNN prints from C++ on load."""

    def __enter__(self):
        sys.stdout.flush()
        self.saved = os.dup(1)
        os.dup2(2, 1)

    def __exit__(self, *exc):
        import ctypes
        ctypes.CDLL(None).fflush(None)  # C stdio may still hold some of it
        os.dup2(self.saved, 1)
        os.close(self.saved)


def _mnn_runner(onnx_path: str, inputs: list[np.ndarray], threads: int):
    """MNN (PyPI `mnn`, CPU backend, high precision) on the model converted by MNN's own ONNX
    converter, called through its compiled `_tools` module: the `mnnconvert` script and the
    `MNN.tools` package pip-install a logging package and send usage data (docs/known-issues.md)."""
    mnn_path = os.path.splitext(onnx_path)[0] + ".mnn"
    if not os.path.exists(mnn_path):
        import _tools  # MNN's converter
        tmp = mnn_path + ".tmp"
        ok = _tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", onnx_path,
                                "--MNNModel", tmp, "--bizCode", "texflow"])
        if not ok or not os.path.exists(tmp):
            raise RuntimeError("MNN's converter failed")
        os.replace(tmp, mnn_path)
    import MNN.expr as F
    import MNN.nn as nn
    rt = nn.create_runtime_manager(({"backend": "CPU", "numThread": max(threads, 1),
                                     "precision": "high"},))
    net = nn.load_module_from_file(mnn_path, [], [], runtime_manager=rt)
    args = []
    for x in inputs:
        if x.dtype.kind == "f":
            args.append(F.const(x.astype(np.float32), list(x.shape), F.NCHW))
        else:
            args.append(F.const(x.astype(np.int32), list(x.shape), F.NCHW, F.int))

    def run():
        out = net.forward(args)
        out = out if isinstance(out, list) else [out]
        return [np.array(F.convert(o, F.NCHW).read()) for o in out]
    return run


def _serve_main(argv: list[str]) -> None:
    if argv[0] not in PeerChild.NAMES:  # RUNTIME omitted: ONNX Runtime
        argv = ["ort"] + argv
    runtime, onnx_path, inputs_npz, threads, ref_npz = argv[0], argv[1], argv[2], int(argv[3]), \
        (argv[4] if len(argv) > 4 else "")
    device = argv[5] if len(argv) > 5 else "cpu"
    with np.load(inputs_npz) as z:
        inputs = [z[f"in{i}"] for i in range(len(z.files))]
    device_name = ""
    if runtime.startswith("ncnn"):
        from .ncnn_peer import NcnnRunner
        with _StdoutToStderr():  # ncnn prints its device list from C++
            r = NcnnRunner(onnx_path, os.path.splitext(onnx_path)[0] + ".bin", inputs,
                           "fp16" if runtime == "ncnn-fp16" else "fp32", vulkan=device == "vulkan",
                           threads=threads)
            run = r.run
            run()
        device_name = " " + r.device
    elif runtime == "mnn":
        with _StdoutToStderr():
            run = _mnn_runner(onnx_path, inputs, threads)
            run()  # MNN prints on its first inference too
    else:
        from .models import ort_session
        s = ort_session(onnx_path, threads)
        feed = dict(zip([i.name for i in s.get_inputs()], inputs))

        def run():
            return s.run(None, feed)
    diff = " nan"
    if ref_npz:
        with np.load(ref_npz) as z:
            ref = z["out0"]
        out = np.asarray(run()[0], np.float64)
        diff = " " + repr(float(np.max(np.abs(out.reshape(ref.shape) - ref))))
    print("ready" + diff + device_name, flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        t0 = time.perf_counter()
        run()
        print(repr(time.perf_counter() - t0), flush=True)


def ort_time(onnx_path, inputs_npz, reps: int, threads: int, warmup: int = 2,
             timeout: float = 1800) -> dict:
    """Time ONNX Runtime (CPU) in a child process; returns stats() plus times_ms."""
    cmd = [sys.executable, "-m", "texflow.bench.harness", "ort", str(onnx_path), str(inputs_npz),
           str(reps), str(threads), str(warmup)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _ort_main(argv: list[str]) -> None:
    onnx_path, inputs_npz, reps, threads, warmup = argv[0], argv[1], int(argv[2]), int(argv[3]), \
        int(argv[4])
    from .models import ort_session
    s = ort_session(onnx_path, threads)
    with np.load(inputs_npz) as z:
        inputs = [z[f"in{i}"] for i in range(len(z.files))]
    feed = dict(zip([i.name for i in s.get_inputs()], inputs))
    for _ in range(warmup):
        s.run(None, feed)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        s.run(None, feed)
        ts.append(time.perf_counter() - t0)
    r = stats(ts)
    r["times_ms"] = [round(t * 1e3, 4) for t in ts]
    r["threads"] = threads
    print(json.dumps(r))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "ort":
        _ort_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "serve":
        _serve_main(sys.argv[2:])
    else:
        sys.exit("usage: python -m texflow.bench.harness ort MODEL.onnx INPUTS.npz REPS THREADS WARMUP")
