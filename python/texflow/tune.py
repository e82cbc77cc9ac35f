"""Measured tuning (`texflow-compile --tune`): time the candidate compiles, keep the fastest.

texflow's choices (layout selection, mmt4d packing, even running texflow at all) come from
rules and a cost model, and a rule can be wrong for a model it was not written for
(torchvision's ConvNeXt-Tiny ran 0.56x as fast as plain IREE on llvm-cpu).  `--tune` compiles
each candidate below, times them on the device the module is for and keeps the fastest.  The
decision is cached by the model's bytes and every setting that changes the compile, so a second
compile reads it, times nothing, and gives the same module.

Candidates (option overrides of `CompileOptions`; those that coincide on a target are dropped):

    plain             layout=False           plain IREE, as `iree-compile` would compile it
    texflow           (the defaults)
    no-pack-matmul    pack_matmul=False      llvm-cpu only
    no-select-layout  select_layout=False
    elimination-only  select_layout=False, pack_matmul=False   llvm-cpu only

With `--precision=f16` there is no plain candidate (plain IREE has no f16 mode); with
`--select-layout=OPTIONS` those options go to every candidate that selects layouts.

Timing: each candidate is compiled (in a forked process, as texflow-compile compiles), then all
of them are loaded in one fresh Python process (`python -m texflow.tune_timing`) with a fixed number of
local-task workers, fed the same random inputs made from the module's reflected signature
(`texflow.inputs`), warmed up, and called in interleaved rounds (each round calls every
candidate once, in turn, so that load on the machine falls on all of them alike); the median of
the rounds decides.  `device` is an IREE runtime driver (`local-task` for llvm-cpu, `vulkan`
for Vulkan targets): the device must be reachable from the compiling machine through IREE's
runtime.  Lavapipe (Vulkan on the CPU) runs that path, but its times say nothing about a GPU.

The cache: one JSON file per key under `$TEXFLOW_CACHE/tune/` (default `~/.cache/texflow/tune/`),
the key being a sha256 of the model file's bytes, the target, CPU and triple (for `host`: this
CPU's model name and flags), precision, selection options, pass-through IREE flags, the timing
device and threads, and the versions of texflow and IREE.  It records the chosen candidate, its
options, every median, the rounds, the date and the host/device.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile

from .errors import TexflowError

CANDIDATES: tuple[tuple[str, dict], ...] = (
    ("plain", {"layout": False}),
    ("texflow", {}),
    ("no-pack-matmul", {"pack_matmul": False}),
    ("no-select-layout", {"select_layout": False}),
    ("elimination-only", {"select_layout": False, "pack_matmul": False}),
)
DRIVERS = ("local-task", "local-sync", "vulkan")
CACHE_VERSION = 1


@dataclasses.dataclass
class TuneSettings:
    device: str | None = None  # IREE runtime driver; None: the target's (local-task / vulkan)
    threads: int = 1  # local-task workers while timing
    rounds: int = 20  # interleaved rounds (the median decides)
    warmup: int = 2  # calls of each candidate before the rounds
    retune: bool = False  # measure even if the cache has a decision
    cache_dir: str | None = None  # None: $TEXFLOW_CACHE/tune or ~/.cache/texflow/tune


@dataclasses.dataclass
class TuneResult:
    candidate: str
    overrides: dict
    medians_ms: dict[str, float]
    cached: bool
    cache_file: str
    record: dict

    def summary(self) -> str:
        """One line: the medians, the choice and where it came from."""
        r = self.record
        meds = ", ".join(f"{k} {v:.3g} ms" for k, v in sorted(self.medians_ms.items(),
                                                             key=lambda kv: kv[1]))
        how = (f"cached {r['date']}" if self.cached else
               f"{r['rounds']} rounds, {r['device']}"
               + (f", {r['threads']} thread(s)" if r["device"].startswith("local") else ""))
        return f"tune: {meds} -> {self.candidate} ({how})"


# -- candidates and key --------------------------------------------------------------

def check_options(options) -> None:
    """Refuse options that `--tune` cannot honour (it chooses them, or it needs a module)."""
    if not options.layout:
        raise TexflowError("--tune chooses whether texflow runs: drop --no-layout")
    if options.layout_pipeline is not None:
        raise TexflowError("--tune chooses the layout pipeline: drop --layout-pipeline")
    if not options.select_layout or not options.pack_matmul:
        raise TexflowError("--tune chooses --no-select-layout and --no-pack-matmul itself: drop them")
    if options.memory_budget:
        raise TexflowError("--tune does not combine with --memory-budget")
    if options.compile_to != "end" or options.compile_from != "start":
        raise TexflowError("--tune needs a whole compile to a module (no --compile-to/--compile-from)")


def candidates(options) -> list[tuple[str, dict]]:
    """The candidates for these options: (name, CompileOptions overrides); duplicates dropped."""
    from texflow.compiler import Compiler, texflow_phases
    from texflow.passes.pipelines import pipeline_text
    out, seen = [], set()
    for name, over in CANDIDATES:
        if options.precision != "f32" and over.get("layout") is False:
            continue  # plain IREE has no f16 mode
        o = dataclasses.replace(options, **over)
        ident = (o.layout, tuple(pipeline_text(p.pipeline) for p in texflow_phases(o)), Compiler.packs(o))
        if ident in seen:
            continue
        seen.add(ident)
        out.append((name, over))
    return out


def default_device(options) -> str:
    from texflow.targets import get_target
    return get_target(options.target).driver


def _host_cpu() -> str:
    """This machine's CPU: model name and flags (what `--iree-llvmcpu-target-cpu=host` compiles for)."""
    model, flags = platform.machine(), ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.strip() == "model name" and model == platform.machine():
                    model = v.strip()
                elif k.strip() in ("flags", "Features") and not flags:
                    flags = " ".join(sorted(v.split()))
    except OSError:
        pass
    return f"{model} [{hashlib.sha256(flags.encode()).hexdigest()[:12]}]"


def _versions() -> dict:
    from importlib import metadata
    out = {}
    for pkg in ("texflow", "iree-base-compiler", "iree-base-runtime"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def key_fields(path: str, options, settings: TuneSettings) -> dict:
    """Everything the decision depends on (hashed into the cache key)."""
    from texflow.targets import normalize_cpu
    try:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        raise TexflowError(f"cannot read {path}: {e.strerror}") from None
    cpu, triple = normalize_cpu(options.target_cpu, options.target_triple)
    device = settings.device or default_device(options)
    return {
        "cache_version": CACHE_VERSION,
        "model_sha256": digest,
        "target": options.target,
        "target_cpu": cpu,
        "target_triple": triple,
        "host_cpu": _host_cpu() if cpu == "host" and triple is None else None,
        "precision": options.precision,
        "select_options": options.select_options,
        "iree_flags": list(options.iree_flags),
        "device": device,
        "threads": settings.threads if device.startswith("local") else None,
        "candidates": [n for n, _ in candidates(options)],
        "versions": _versions(),
    }


def cache_dir(settings: TuneSettings) -> str:
    if settings.cache_dir:
        return settings.cache_dir
    root = os.environ.get("TEXFLOW_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "texflow")
    return os.path.join(root, "tune")


def cache_key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


# -- measuring -------------------------------------------------------------------------

def _check_settings(options, settings: TuneSettings) -> str:
    device = settings.device or default_device(options)
    if device not in DRIVERS:
        raise TexflowError(f"--tune-device must be one of {', '.join(DRIVERS)}, not '{device}'")
    if (device == "vulkan") != options.target.startswith("vulkan"):
        raise TexflowError(f"--tune-device={device} cannot run modules for --target={options.target}")
    if settings.threads < 1:
        raise TexflowError(f"--tune-threads must be at least 1, not {settings.threads}")
    if settings.rounds < 1:
        raise TexflowError(f"--tune-rounds must be at least 1, not {settings.rounds}")
    if options.target_triple or options.target_cpu not in ("host", None):
        # a module for another CPU may not run here (and its times would not be the target's)
        from texflow.targets import normalize_cpu
        cpu, triple = normalize_cpu(options.target_cpu, options.target_triple)
        if triple is not None:
            raise TexflowError(f"--tune times on this machine; it cannot run modules for "
                               f"--target-triple={triple} (see README: Tuning)")
    return device


def measure(paths: dict[str, str], device: str, threads: int, rounds: int, warmup: int) -> dict:
    """Time the modules in `paths` (name -> .vmfb) in a fresh process; returns name -> median ms."""
    cmd = [sys.executable, "-m", "texflow.tune_timing", "--device", device, "--threads", str(threads),
           "--rounds", str(rounds), "--warmup", str(warmup), json.dumps(paths)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        err = [ln for ln in (p.stderr or "").splitlines() if ln.strip()]
        raise TexflowError("timing the candidates failed: " + (err[-1] if err else f"exit {p.returncode}"))
    return json.loads(lines[-1])


def tune(path: str, options, settings: TuneSettings | None = None, log=None) -> TuneResult:
    """Choose the fastest candidate for compiling `path` with `options` (a CompileOptions);
    returns it with its overrides, from the cache unless `settings.retune`."""
    from texflow.compiler import compile_isolated
    settings = settings or TuneSettings()
    check_options(options)
    device = _check_settings(options, settings)
    fields = key_fields(path, options, settings)
    cdir = cache_dir(settings)
    cfile = os.path.join(cdir, cache_key(fields) + ".json")
    if not settings.retune and os.path.exists(cfile):
        try:
            with open(cfile) as f:
                rec = json.load(f)
            if rec.get("key") == fields and rec.get("candidate") in dict(candidates(options)):
                return TuneResult(rec["candidate"], dict(candidates(options))[rec["candidate"]],
                                  rec["medians_ms"], True, cfile, rec)
        except (OSError, ValueError, KeyError):
            pass  # unreadable: measure again and rewrite it
    cands = candidates(options)
    with tempfile.TemporaryDirectory(prefix="texflow-tune-") as d:
        paths = {}
        for name, over in cands:
            res = compile_isolated(path, dataclasses.replace(options, **over))
            paths[name] = os.path.join(d, name + ".vmfb")
            with open(paths[name], "wb") as f:
                f.write(res.vmfb)
        medians = measure(paths, device, settings.threads, settings.rounds, settings.warmup)
    order = [n for n, _ in cands]
    best = min(order, key=lambda n: (medians[n], order.index(n)))  # ties: the earlier candidate
    rec = {
        "key": fields,
        "candidate": best,
        "options": dict(cands)[best],
        "medians_ms": medians,
        "rounds": settings.rounds,
        "warmup": settings.warmup,
        "threads": settings.threads,
        "device": device,
        "host": platform.node(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    os.makedirs(cdir, exist_ok=True)
    from texflow.atomic_io import write_atomically
    write_atomically(cfile, json.dumps(rec, indent=1, sort_keys=True) + "\n")
    return TuneResult(best, dict(cands)[best], medians, False, cfile, rec)
