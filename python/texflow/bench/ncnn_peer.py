"""ncnn (Tencent's mobile-first runtime, pip `ncnn`) as a peer of texflow-bench (issue 20).

A user who targets phones compares texflow with the stacks built for them, and ncnn is the one
that runs the same Vulkan path.  This module converts a benchmark model for ncnn and runs it.

Conversion.  ncnn reads its own graph format, made by pnnx (pip `pnnx`) from TorchScript.  pnnx's
ONNX path fails on 5-D reshapes and Gather, so conversion starts from the PyTorch model.  The
model is rebuilt from the same spec, seed and perturbation as its ONNX export (`models.build`).
It is traced once and converted twice:
- *fp32*: pnnx's `fp16=0`, weights stored in fp32.  The peer runs with every fp16/bf16 option off.
- *fp16*: pnnx's default fp16 weights, and ncnn's default options: fp16 storage and arithmetic
  wherever the device supports them.  This is what a user of ncnn gets.
pnnx always keeps fp16 weights unless told otherwise.  Without `fp16=0`, an "fp32" ResNet-18 is
4.5e-4 off the reference, on ncnn's CPU and Vulkan paths alike.

Results are cached beside the model (`<model dir>/ncnn/`), keyed by pnnx's version.  A model pnnx
cannot convert, or ncnn cannot run, gives `NcnnError`, and its one line goes in the report.

Running.  `NcnnRunner` runs one inference per call: a fresh extractor, the inputs uploaded, every
output extracted to host memory.  IREE's timed calls also upload their inputs and read their
outputs back.  ncnn drops the batch dimension: a 1x3x224x224 input is a 3x224x224 Mat.  Integer
inputs (token ids) go in as int32, which is how ncnn's Embed layer reads them.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

PRECISIONS = ("fp32", "fp16")
_PNNX_TYPES = {"float32": "f32", "float16": "f16", "int64": "i64", "int32": "i32"}


class NcnnError(RuntimeError):
    """ncnn or pnnx failed on a model (one line, for the report)."""


def available() -> str | None:
    """None when ncnn and pnnx import, else why not."""
    for mod in ("ncnn", "pnnx"):
        try:
            __import__(mod)
        except ImportError as e:
            return f"{mod} is not installed ({e}); pip install ncnn pnnx"
    return None


def torch_model(spec):
    """The spec's torch module and example inputs, as `models.build` exported them: the same
    seed before building and the same perturbation after."""
    from . import models
    torch = models.import_torch()
    models.import_torchvision()
    torch.manual_seed(models.SEED)
    module, args, _ = spec.build()
    module.eval()
    models.perturb(module)
    return module, args


def _inputshape(args) -> str:
    parts = []
    for a in args:
        dt = str(a.dtype).replace("torch.", "")
        if dt not in _PNNX_TYPES:
            raise NcnnError(f"pnnx: input dtype {dt} not supported")
        parts.append("[" + ",".join(str(int(s)) for s in a.shape) + "]" + _PNNX_TYPES[dt])
    return ",".join(parts)


def convert(cm, spec, log=print) -> dict[str, tuple[Path, Path]]:
    """Convert cached model `cm` (built from `spec`) for ncnn: {precision: (param, bin)}.
    Cached in cm.dir/ncnn; each file is written under a temporary name, then renamed."""
    why = available()
    if why:
        raise NcnnError(why)
    import pnnx
    version = importlib.metadata.version("pnnx")
    d = Path(cm.dir) / "ncnn"
    stamp = d / "converted.json"
    want = {p: (d / f"{p}.ncnn.param", d / f"{p}.ncnn.bin") for p in PRECISIONS}
    if stamp.exists() and json.loads(stamp.read_text()).get("pnnx") == version and \
            all(a.exists() and b.exists() for a, b in want.values()):
        return want
    if d.exists():
        shutil.rmtree(d)
    work = d / "work"
    work.mkdir(parents=True)
    from . import models
    torch = models.import_torch()
    module, args = torch_model(spec)
    pt = work / "model.pt"
    try:
        with torch.no_grad():
            torch.jit.trace(module, args, check_trace=False).save(str(pt))
    except Exception as e:  # noqa: BLE001  (any tracing failure is the model's, reported)
        raise NcnnError(f"torch.jit.trace: {type(e).__name__}: {str(e).splitlines()[0][:200]}") \
            from None
    shape = _inputshape(args)
    for prec, (param, binf) in want.items():
        tp, tb = work / f"{prec}.param", work / f"{prec}.bin"
        cmd = [pnnx.EXEC_PATH, str(pt), "inputshape=" + shape, "device=cpu",
               f"pnnxparam={work / 'm.pnnx.param'}", f"pnnxbin={work / 'm.pnnx.bin'}",
               f"pnnxpy={work / 'm_pnnx.py'}", f"pnnxonnx={work / 'm.pnnx.onnx'}",
               f"ncnnparam={tp}", f"ncnnbin={tb}", f"ncnnpy={work / 'm_ncnn.py'}"] + \
            ([] if prec == "fp16" else ["fp16=0"])
        log(f"  pnnx ({prec}): {spec.name}")
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
        if p.returncode != 0 or not tp.exists() or not tb.exists():
            lines = [x for x in (p.stderr + p.stdout).splitlines() if x.strip()]
            raise NcnnError(f"pnnx failed (exit {p.returncode}): "
                            f"{(lines or ['no output'])[-1][:200]}")
        os.replace(tp, param)
        os.replace(tb, binf)
    shutil.rmtree(work)
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pnnx": version, "inputshape": shape}))
    os.replace(tmp, stamp)
    return want


def _options(net, precision: str, vulkan: bool, threads: int) -> None:
    o = net.opt
    o.use_vulkan_compute = vulkan
    if threads:
        o.num_threads = threads
    if precision == "fp32":
        for k in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                  "use_bf16_storage", "use_bf16_packed"):
            setattr(o, k, False)
    elif precision != "fp16":
        raise NcnnError(f"unknown ncnn precision '{precision}' ({', '.join(PRECISIONS)})")


class NcnnRunner:
    """One converted model on one device; `run()` returns the outputs as numpy arrays."""

    def __init__(self, param: Path, binf: Path, inputs: list[np.ndarray], precision: str = "fp32",
                 vulkan: bool = True, threads: int = 0):
        import ncnn
        self._ncnn = ncnn
        if vulkan and ncnn.get_gpu_count() == 0:
            raise NcnnError("ncnn finds no Vulkan device")
        self.device = ncnn.get_gpu_info(ncnn.get_default_gpu_index()).device_name() \
            if vulkan else "cpu"
        self.net = ncnn.Net()
        _options(self.net, precision, vulkan, threads)
        if self.net.load_param(str(param)) != 0:
            missing = unknown_layers(param)
            raise NcnnError(f"ncnn has no layer {', '.join(missing)} (pnnx left them in the graph)"
                            if missing else f"ncnn cannot load {param}")
        if self.net.load_model(str(binf)) != 0:
            raise NcnnError(f"ncnn cannot load the weights {binf}")
        self.in_names = list(self.net.input_names())
        self.out_names = list(self.net.output_names())
        if len(self.in_names) != len(inputs):
            raise NcnnError(f"ncnn model takes {len(self.in_names)} inputs, the model "
                            f"{len(inputs)}")
        # a Mat made from a numpy array only views it: the arrays stay referenced here
        self.host = [self._host(x) for x in inputs]
        self.mats = [ncnn.Mat(h) for h in self.host]

    @staticmethod
    def _host(x: np.ndarray) -> np.ndarray:
        x = x[0] if x.ndim > 1 and x.shape[0] == 1 else x  # ncnn has no batch dimension
        if x.dtype.kind in "iu":
            return np.ascontiguousarray(x.astype(np.int32))
        return np.ascontiguousarray(x.astype(np.float32))

    def run(self) -> list[np.ndarray]:
        ex = self.net.create_extractor()
        for n, m in zip(self.in_names, self.mats):
            if ex.input(n, m) != 0:
                raise NcnnError(f"ncnn rejects input {n}")
        outs = []
        for n in self.out_names:
            rc, m = ex.extract(n)
            if rc != 0:
                raise NcnnError(f"ncnn failed extracting {n} (error {rc})")
            outs.append(np.array(m))
        return outs

    __call__ = run

    def _extract_time(self, blob: str, reps: int) -> float:
        import time
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            ex = self.net.create_extractor()
            for n, m in zip(self.in_names, self.mats):
                ex.input(n, m)
            rc, _m = ex.extract(blob)
            if rc != 0:
                raise NcnnError(f"ncnn failed extracting {blob} (error {rc})")
            best = min(best, time.perf_counter() - t0)
        return best * 1e6

    def layer_times(self, reps: int = 5) -> dict:
        """ncnn's time per layer type, estimated by prefix extraction.

        The pip wheel has no per-layer timer (ncnn's NCNN_BENCHMARK is a build option), but an
        extractor computes only what the blob it is asked for needs.  Layer i's time is taken
        as the best-of-`reps` time to extract its first output minus the largest such time of
        the layers before it (never below zero).  Each extraction also reads its blob back, so
        this is an estimate of where the time goes, not a kernel timer.  It is usable on ncnn's
        CPU path; on Vulkan (measured on the H200) each extraction's fixed cost, upload,
        submission and read-back, swamps the per-layer differences and the first layers get
        all the time: there only `model_us` means something."""
        layers = [lay for lay in self.net.layers() if lay.type != "Input" and len(lay.tops)]
        blobs = self.net.blobs()
        self.run()  # warm up: pipelines are created on the first run
        rows, prev = [], 0.0
        for lay in layers:
            t = self._extract_time(blobs[lay.tops[0]].name, reps)
            rows.append({"name": lay.name, "type": lay.type, "us": max(t - prev, 0.0)})
            prev = max(prev, t)
        acc: dict = {}
        for r in rows:
            a = acc.setdefault(r["type"], {"type": r["type"], "layers": 0, "us": 0.0})
            a["layers"] += 1
            a["us"] += r["us"]
        return {"layers": len(rows), "layers_us": sum(r["us"] for r in rows),
                "model_us": self._extract_time(self.out_names[0], reps),
                "by_type": sorted(acc.values(), key=lambda a: -a["us"]), "per_layer": rows}


def unknown_layers(param: Path) -> list[str]:
    """The layer types of an .ncnn.param file that this ncnn does not have (pnnx writes the
    PyTorch ops it cannot map, e.g. `torch.roll`, as layers of their own name)."""
    import ncnn
    lines = Path(param).read_text().splitlines()[2:]  # magic, then the layer and blob counts
    types = sorted({ln.split()[0] for ln in lines if ln.strip()})
    return [t for t in types if ncnn.layer_to_index(t) < 0]


def compare(outs: list[np.ndarray], ref: list[np.ndarray]) -> dict:
    """The first output against the reference's first (ncnn drops unit dimensions)."""
    o, r = np.asarray(outs[0], np.float64), np.asarray(ref[0], np.float64)
    if o.size != r.size:
        raise NcnnError(f"ncnn's first output has {o.size} elements, the reference {r.size}")
    d = np.abs(o.reshape(r.shape) - r)
    return {"max_abs": float(d.max()), "max_rel": float(d.max() / max(np.abs(r).max(), 1e-30))}
