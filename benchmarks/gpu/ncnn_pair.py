"""plain IREE, texflow and ncnn fp32 on one model, timed interleaved: a carry-sized check of the
Vulkan call path (issue 20) without the compiler on the device.

    here:    python3 benchmarks/gpu/ncnn_pair.py prepare .gpu/pair --model mobilenetv2
    device:  python3 benchmarks/gpu/ncnn_pair.py measure .gpu/pair OUT --reps 50

`prepare` compiles the plain and texflow modules for vulkan-nvidia, converts the model for ncnn
(fp32, `texflow.bench.ncnn_peer`) and copies the ncnn wheel for Python 3.12.  `measure` installs
ncnn from it into /tmp/site-ncnn and runs `texflow.bench.harness.run_modules` with ncnn as a child
peer.  It needs only numpy, iree-base-runtime and that wheel.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def prepare(a) -> int:
    from texflow.bench import corpus, harness, ncnn_peer
    d = Path(a.dir)
    d.mkdir(parents=True, exist_ok=True)
    cm = corpus.build_any(a.model)
    for v in ("plain", "texflow"):
        r = harness.compile_variant(cm.onnx_path, "vulkan-nvidia", harness.VARIANTS[v],
                                    count_dispatches=False)
        (d / f"{v}.vmfb").write_bytes(r["vmfb"])
    paths = ncnn_peer.convert(cm, corpus.spec_any(a.model))
    shutil.copy(paths["fp32"][0], d / "fp32.ncnn.param")
    shutil.copy(paths["fp32"][1], d / "fp32.ncnn.bin")
    for f in ("inputs.npz", "ref.npz"):
        shutil.copy(cm.dir / f, d / f)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--platform", "manylinux_2_28_x86_64", "-d", str(d),
                    "ncnn==1.0.20261020"], check=True)
    (d / "model.json").write_text(json.dumps({"model": a.model}))
    return 0


def measure(a) -> int:
    d = Path(a.dir)
    try:
        import ncnn  # noqa: F401
    except ImportError:
        site = "/tmp/site-ncnn"
        whl = next(d.glob("ncnn-*.whl"))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                        "--target", site, str(whl)], check=True)
        sys.path.insert(0, site)
        os.environ["PYTHONPATH"] = site + os.pathsep + os.environ.get("PYTHONPATH", "")
    import numpy as np

    from texflow.bench import harness
    with np.load(d / "inputs.npz") as z:
        xs = [z[f"in{i}"] for i in range(len(z.files))]
    with np.load(d / "ref.npz") as z:
        ref = [z[f"out{i}"] for i in range(len(z.files))]
    # plain.vmfb may be left out to fit a carry (64 MiB with the runtime wheel)
    vmfbs = {v: (d / f"{v}.vmfb").read_bytes() for v in ("plain", "texflow")
             if (d / f"{v}.vmfb").exists()}
    peer = harness.PeerChild(d / "fp32.ncnn.param", d / "inputs.npz", 0, "ncnn",
                             ref_npz=d / "ref.npz", device="vulkan")
    try:
        out = harness.run_modules(vmfbs, "vulkan", xs, ref, a.reps, 3, peers={"ncnn": peer})
    finally:
        peer.close()
    out["ncnn"]["device"] = peer.device_name
    out["ncnn"]["max_abs"] = peer.max_abs
    out["model"] = json.loads((d / "model.json").read_text())["model"]
    for k in ("plain", "texflow", "ncnn"):
        if a.brief and k in out:
            out[k].pop("times_ms", None)
    texflow_t = out["texflow"]["median_ms"]
    out["texflow_over_ncnn"] = texflow_t / out["ncnn"]["median_ms"]
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / f"pair_{out['model']}.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: (v.get("median_ms"), v.get("max_rel", v.get("max_abs")))
                      if isinstance(v, dict) else v for k, v in out.items()}))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("dir")
    pp.add_argument("--model", default="mobilenetv2")
    pm = sub.add_parser("measure")
    pm.add_argument("dir")
    pm.add_argument("out")
    pm.add_argument("--reps", type=int, default=50)
    pm.add_argument("--brief", action="store_true", help="leave the per-round times out")
    a = p.parse_args(argv)
    return prepare(a) if a.cmd == "prepare" else measure(a)


if __name__ == "__main__":
    sys.exit(main())
