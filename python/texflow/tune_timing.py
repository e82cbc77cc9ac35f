"""The timing process of `texflow-compile --tune` (`python -m texflow.tune_timing`).

Why a module of its own: the tuner (texflow.tune) compiles candidates and only reads this
process's medians, so the compile side never imports the runtime; the modules are timed here,
in one fresh process with a fixed number of threads, each candidate interleaved with the others
round by round so that a load change on the machine affects them alike.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from .errors import TexflowError
from .runtime import DTYPES, Module


def random_inputs(module, function: str, seed: int = 0):
    """Random arrays for `function`'s reflected signature (texflow.inputs)."""
    ins, _ = module.signature(function)
    if not ins:
        raise TexflowError(f"{function} has no texflow.inputs signature (not compiled by texflow)")
    rng = np.random.default_rng(seed)
    out = []
    for spec in ins:
        if any(d is None for d in spec.shape):
            raise TexflowError(f"cannot time {function}: input {spec} has a dynamic dimension")
        dt = DTYPES.get(spec.dtype)
        if dt is None:
            raise TexflowError(f"cannot time {function}: unsupported input type {spec.dtype}")
        dt = np.dtype(dt)
        if dt.kind == "f":
            a = rng.standard_normal(spec.shape).astype(dt)
        elif dt.kind == "b":
            a = rng.integers(0, 2, spec.shape).astype(dt)
        else:
            a = rng.integers(0, 4, spec.shape).astype(dt)  # small: indices stay in range
        out.append(a)
    return out


def main(argv) -> int:
    import argparse
    import statistics
    import time
    p = argparse.ArgumentParser(prog="python -m texflow.tune_timing")
    p.add_argument("--device", default="local-task")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("paths", help="JSON object: candidate name -> .vmfb path")
    a = p.parse_args(argv)
    import iree.runtime as rt
    if a.device.startswith("local"):
        rt.flags.parse_flags(f"--task_topology_max_group_count={a.threads}")
    paths = json.loads(a.paths)
    config = None
    mods, inputs = {}, None
    for name, vmfb in paths.items():
        m = Module(vmfb, driver=a.device, config=config)
        config = m.config  # one device for all candidates
        fn = m.resolve_function(None)
        mods[name] = (m, fn)
        if inputs is None:
            inputs = random_inputs(m, fn)
    for name, (m, fn) in mods.items():
        for _ in range(a.warmup):
            m(*inputs, function=fn)
    times: dict[str, list[float]] = {n: [] for n in mods}
    for _ in range(a.rounds):
        for name, (m, fn) in mods.items():
            t0 = time.perf_counter()
            m(*inputs, function=fn)
            times[name].append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({n: statistics.median(t) for n, t in times.items()}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except TexflowError as e:
        print(f"texflow-tune: error: {e}", file=sys.stderr)
        sys.exit(1)
