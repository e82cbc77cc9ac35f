"""The suite's Vulkan part on a real GPU (the device tool's NVIDIA machine).

Two halves, because the compiler wheel is too big to carry and the device has no internet:

  here:    python -m texflow.bench.gpu prepare --models vit,mobilenetv2 [--dir .gpu/bench]
           (corpus models as corpus:NAME, e.g. --models corpus:deit_tiny,corpus:distilbert;
           --variants plain,texflow,texflow-elim for more than the two default variants)
           compiles each model for `vulkan-nvidia` (plain and texflow), and writes the .vmfb
           files, reference inputs/outputs and a manifest (with the dispatch counts measured
           here) into a git-ignored folder that the device call carries.
  device:  python3 -m texflow.bench.gpu run .gpu/bench --out "$OUT" --reps 50
           needs only numpy and iree-base-runtime (carried as a wheel); runs every module,
           compares it with ONNX Runtime's CPU outputs, times plain and texflow interleaved,
           and writes gpu_results.json and gpu_report.md into --out.

`benchmarks/gpu/run_on_device.sh` wraps both.  A device call carries at most 64 MiB with the
runtime wheel (~15 MB) and the Vulkan loader beside it, so the weights travel once per model in
an IREE parameter archive (`iree-import-onnx --externalize-params`, tensors of 4,096 elements
and more: smaller ones such as shape constants must stay inline) shared by both variants'
modules, which are then a few hundred KB.  `prepare` prints the size and refuses more than
--max-mib; ViT-Tiny (23 MB), MobileNetV2 (14), SD-UNet-small (25) fit, two at a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import harness

TARGET = "vulkan-nvidia"


def _resolve(spec: str) -> list[tuple[str, str, object]]:
    """`--models`: suite names (vit, ...) and corpus models as `corpus:NAME` or `corpus:FAMILY`
    (texflow.bench.corpus; cached under ~/.cache/texflow/models/corpus).  Returns (name in the
    manifest, file stem, builder) triples; corpus stems are `corpus-NAME` (the suite and the
    corpus both have a gpt2)."""
    from . import corpus
    names = corpus.resolve_any(spec) or corpus.resolve_any("default")
    return [(n, n.replace(corpus.PREFIX, "corpus-"), lambda n=n: corpus.build_any(n))
            for n in names]


def prepare(a) -> int:
    from . import models
    todo = _resolve(a.models)
    d = Path(a.dir)
    d.mkdir(parents=True, exist_ok=True)
    manifest = {"target": a.target, "variants": a.variants, "models": [],
                "prepared": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                "versions": models.versions()}
    for n, stem, build in todo:
        cm = build()
        entry = {"model": n, "stem": stem, "summary": cm.meta["summary"], "variants": {}}
        mlir = d / f"{stem}.mlir"
        subprocess.run(["iree-import-onnx", str(cm.onnx_path), "--externalize-params",
                        "--num-elements-threshold=4096", "--params-scope=model",
                        "--save-params-to", str(d / f"{stem}.irpa"), "-o", str(mlir)], check=True)
        for v in a.variants:
            print(f"compiling {n} / {a.target} / {v}", file=sys.stderr, flush=True)
            r = harness.compile_variant(mlir, a.target, harness.VARIANTS[v])
            (d / f"{stem}.{v}.vmfb").write_bytes(r.pop("vmfb"))
            entry["variants"][v] = {"compile_s": r["compile_s"], "flow": r.get("flow")}
        np.savez(d / f"{stem}.inputs.npz", **{f"in{i}": x for i, x in enumerate(cm.inputs())})
        np.savez(d / f"{stem}.ref.npz", **{f"out{i}": x for i, x in enumerate(cm.reference())})
        manifest["models"].append(entry)
        mlir.unlink()
    (d / "manifest.json").write_text(json.dumps(manifest, indent=1))
    mib = sum(f.stat().st_size for f in d.iterdir()) / 2**20
    print(f"{d}: {mib:.1f} MiB of modules and data", file=sys.stderr)
    if mib > a.max_mib:
        print(f"too big for one device call (> {a.max_mib} MiB with the runtime wheel beside it): "
              f"prepare fewer models per call", file=sys.stderr)
        return 2
    return 0


def _load_npz(p: Path, prefix: str) -> list[np.ndarray]:
    with np.load(p) as z:
        return [z[f"{prefix}{i}"] for i in range(len(z.files))]


class ParamModule:
    """A module whose weights come from a parameter archive, on a shared runtime config.
    Results are read back like texflow.runtime.Module does (a staging copy on Vulkan)."""

    def __init__(self, config, params_module, vmfb: bytes, driver: str):
        import iree.runtime as rt
        from texflow.runtime import Module
        self._rt, self.device, self.driver = rt, config.device, driver
        self._to_numpy = Module.to_numpy
        self._staged_copy = lambda bv: Module._staged_copy(self, bv)
        vm = rt.VmModule.copy_buffer(config.vm_instance, vmfb)
        self.ctx = rt.SystemContext(vm_modules=[params_module, vm], config=config)
        name = [n for n in vm.function_names if n != "__init" and not n.endswith("$async")][0]
        self.fn = self.ctx.modules.module[name]

    def __call__(self, *inputs):
        res = self.fn(*[np.ascontiguousarray(x) for x in inputs])
        res = res if isinstance(res, (list, tuple)) else [res]
        return [self._to_numpy(self, r) for r in res]


def param_loader(config, irpa: Path, driver: str):
    import iree.runtime as rt
    idx = rt.ParameterIndex()
    idx.load(str(irpa))
    pm = rt.create_io_parameters_module(config.vm_instance, idx.create_provider(scope="model"))
    return lambda name, vmfb: ParamModule(config, pm, vmfb, driver)


def run(a) -> int:
    d = Path(a.dir)
    manifest = json.loads((d / "manifest.json").read_text())
    harness.set_threads(0)
    import iree.runtime as rt
    config = rt.Config(a.driver)
    out = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           "host": platform.node(), "target": manifest["target"], "reps": a.reps,
           "prepared_with": manifest.get("versions"), "results": []}
    try:
        import iree.runtime as rt
        out["devices"] = rt.get_driver("vulkan").query_available_devices()
        out["iree_runtime"] = getattr(rt, "__version__", None) or \
            __import__("importlib.metadata").metadata.version("iree-base-runtime")
    except Exception as e:  # noqa: BLE001
        out["devices"] = f"error: {e}"
    failed = 0
    for m in manifest["models"]:
        n, stem = m["model"], m.get("stem", m["model"])
        print(f"{n}: running {', '.join(m['variants'])} on {a.driver} ({a.reps} reps)", file=sys.stderr,
              flush=True)
        vmfbs = {v: (d / f"{stem}.{v}.vmfb").read_bytes() for v in m["variants"]}
        t0 = time.perf_counter()
        try:
            r = harness.run_modules(vmfbs, a.driver, _load_npz(d / f"{stem}.inputs.npz", "in"),
                                    _load_npz(d / f"{stem}.ref.npz", "out"), a.reps, a.warmup,
                                    loader=param_loader(config, d / f"{stem}.irpa", a.driver))
        except Exception as e:  # noqa: BLE001
            r = {"error": str(e)[:300]}
        for v, x in r.items():
            if isinstance(x, dict):
                x.update({k: m["variants"][v].get(k) for k in ("compile_s", "flow")})
        failed += any(isinstance(x, dict) and x.get("error") for x in r.values()) or "error" in r
        out["results"].append({"model": n, "summary": m["summary"], "variants": r,
                               "seconds": round(time.perf_counter() - t0, 1)})
    o = Path(a.out)
    o.mkdir(parents=True, exist_ok=True)
    (o / "gpu_results.json").write_text(json.dumps(out, indent=1, default=str))
    md = markdown(out)
    (o / "gpu_report.md").write_text(md)
    print(md)
    return 1 if failed else 0


def markdown(out: dict) -> str:
    dev = out.get("devices")
    name = dev[0].get("name") if isinstance(dev, list) and dev else dev
    vs = list(dict.fromkeys(v for r in out["results"] for v, x in r["variants"].items()
                            if isinstance(x, dict)))
    others = [v for v in vs if v != "plain"]
    fmt = lambda x, f="{:.2f}": "–" if x is None else f.format(x)  # noqa: E731
    L = [f"## Vulkan on {name} ({out['target']}) — {out['date']}", "",
         f"IREE runtime {out.get('iree_runtime')}; modules compiled here with "
         f"{(out.get('prepared_with') or {}).get('iree-base-compiler')}; {out['reps']} repetitions, "
         f"{', '.join(vs)} interleaved in one process; latency includes reading the result back.", "",
         "| model | dispatches (DM) " + " / ".join(vs) + " | " + " | ".join(f"{v} ms" for v in vs) + " | "
         + " | ".join(f"{v}/plain" for v in others) + " | max rel diff " + " / ".join(vs) + " |",
         "|" + "---|" * (3 + 2 * len(others) + 1)]
    for r in out["results"]:
        v = r["variants"]
        get = lambda k: v.get(k) if isinstance(v.get(k), dict) else {}  # noqa: E731
        fl = lambda k: get(k).get("flow") or {}  # noqa: E731
        err = "; ".join(f"{k}: {x['error']}" for k, x in v.items() if isinstance(x, dict) and x.get("error"))
        if isinstance(v.get("error"), str):
            err = v["error"]
        L.append(f"| {r['model']} | "
                 + " / ".join(f"{fl(k).get('dispatches', '?')} ({fl(k).get('data_movement', '?')})" for k in vs)
                 + " | " + " | ".join(fmt(get(k).get("median_ms")) for k in vs) + " | "
                 + " | ".join(fmt(get(k).get("ratio_vs_plain"), "{:.3f}") for k in others) + " | "
                 + " / ".join(fmt(get(k).get("max_rel"), "{:.1e}") for k in vs) + " |"
                 + (f" error: {err}" if err else ""))
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m texflow.bench.gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare", help="compile modules here for the device")
    pp.add_argument("--models", default="vit,mobilenetv2",
                    help="suite models and corpus:NAME / corpus:FAMILY, comma-separated")
    pp.add_argument("--target", default=TARGET)
    pp.add_argument("--variants", default="plain,texflow")
    pp.add_argument("--dir", default=".gpu/bench")
    pp.add_argument("--max-mib", type=float, default=44.0)
    pr = sub.add_parser("run", help="run prepared modules on the device's Vulkan driver")
    pr.add_argument("dir")
    pr.add_argument("--out", default=".")
    pr.add_argument("--reps", type=int, default=50)
    pr.add_argument("--warmup", type=int, default=3)
    pr.add_argument("--driver", default="vulkan", help="vulkan, or local-task to test a CPU build")
    a = p.parse_args(argv)
    if a.cmd == "prepare":
        a.variants = [v for v in a.variants.split(",") if v]
        return prepare(a)
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
