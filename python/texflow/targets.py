"""Target presets: short names for the IREE flags of each texflow target.

`subgroup_size` is what the generated SPIR-V assumes; the runtime compares it
with the device's (lavapipe defaults to 8, Valhall is 16, Adreno 64) because a
mismatch gives silently wrong reductions.  None means the target uses no
subgroup operations (IREE's `vp_android_baseline_2022` profile) or is a CPU.

llvm-cpu compiles for the host CPU unless a CPU (an LLVM name: `znver4`, `skylake-avx512`,
`haswell`, `x86-64`, `cortex-a76`, `generic`) or a triple (`aarch64-linux-android`) is named:
`Target.for_cpu` gives the preset with those flags.  A named CPU is checked, and its features
resolved, by asking IREE (`cpu_target`), so a misspelt name is an error rather than LLVM's
warning and code for a generic CPU; texflow-pack-matmul's tiles then follow the named CPU's
vector unit (`pack_tiles`), not the compiling host's.
"""

import dataclasses
import functools
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

from .errors import TexflowError

HOST = "host"


@dataclass(frozen=True)
class Target:
    name: str
    flags: tuple[str, ...]
    driver: str  # IREE runtime driver that runs the module
    subgroup_size: int | None
    summary: str

    @property
    def is_cpu(self) -> bool:
        return self.driver == "local-task"

    def for_cpu(self, cpu: str = HOST, triple: str | None = None) -> "Target":
        """This preset compiled for `cpu` (an LLVM CPU name or 'host') and `triple` (None:
        the host's).  A triple without a CPU means its generic CPU."""
        cpu, triple = normalize_cpu(cpu, triple)
        if cpu == HOST and triple is None:
            return self
        if not self.is_cpu:
            raise TexflowError(f"--target-cpu/--target-triple apply to llvm-cpu, not '{self.name}'")
        cpu_target(cpu, triple)  # a misspelt CPU or triple is an error here
        flags = tuple(f for f in self.flags if not f.startswith(("--iree-llvmcpu-target-cpu=",
                                                                 "--iree-llvmcpu-target-triple=")))
        return dataclasses.replace(self, flags=flags + llvm_cpu_flags(cpu, triple))


def _vulkan(name, iree_target, subgroup, summary):
    return Target(name, ("--iree-hal-target-device=vulkan",
                         f"--iree-vulkan-target={iree_target}"),
                  "vulkan", subgroup, summary)


TARGETS = {
    t.name: t for t in (
        Target("llvm-cpu", ("--iree-hal-target-device=local",
                            "--iree-hal-local-target-device-backends=llvm-cpu",
                            # IREE 3.13's debug symbols embed heap addresses in the ELF, so two
                            # identical compiles differ by a few bytes; without them they do not
                            "--iree-llvmcpu-debug-symbols=false",
                            "--iree-llvmcpu-target-cpu=host"),
               "local-task", None, "the host CPU through LLVM"),
        _vulkan("vulkan-generic", "vp_android_baseline_2022", None,
                "any Vulkan 1.1 device (Android baseline 2022 profile, no subgroup ops)"),
        _vulkan("vulkan-valhall", "valhall4", 16, "ARM Mali Valhall GPUs (subgroup 16)"),
        _vulkan("vulkan-adreno", "adreno", 64, "Qualcomm Adreno GPUs (subgroup 64)"),
        _vulkan("vulkan-nvidia", "ampere", 32, "NVIDIA GPUs through Vulkan (Ampere ISA level)"),
    )
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise TexflowError(
            f"unknown target '{name}' (known: {', '.join(TARGETS)})") from None


# -- named CPUs and triples (llvm-cpu) -------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def normalize_cpu(cpu: str | None, triple: str | None) -> tuple[str, str | None]:
    """(cpu, triple) with the defaults filled in: 'host' and the host's triple; a named triple
    without a CPU gets 'generic' (the host's CPU name means nothing for another architecture)."""
    cpu = cpu or HOST
    triple = triple or None
    for what, v in (("--target-cpu", cpu), ("--target-triple", triple)):
        if v is not None and not _NAME.match(v):
            raise TexflowError(f"{what}: not a CPU or triple name: '{v}'")
    if triple is not None and cpu == HOST:
        cpu = "generic"
    return cpu, triple


def llvm_cpu_flags(cpu: str, triple: str | None) -> tuple[str, ...]:
    return (f"--iree-llvmcpu-target-cpu={cpu}",) + \
        ((f"--iree-llvmcpu-target-triple={triple}",) if triple else ())


@dataclass(frozen=True)
class CpuTarget:
    """What IREE makes of a CPU and triple: its executable format and CPU features."""
    cpu: str
    triple: str | None
    format: str  # e.g. "embedded-elf-x86_64", "embedded-elf-arm_64"
    features: tuple[str, ...]  # e.g. ("+avx2", "+avx512f", ...)

    @property
    def avx512(self) -> bool:
        return "+avx512f" in self.features


_PROBE = "func.func @f(%a: tensor<4xf32>) -> tensor<4xf32> {\n" \
         "  %0 = arith.addf %a, %a : tensor<4xf32>\n  return %0 : tensor<4xf32>\n}\n"


@functools.lru_cache(maxsize=None)
def cpu_target(cpu: str, triple: str | None) -> CpuTarget:
    """Ask IREE (an `iree-compile` of a one-op module to its executable sources, in a
    subprocess: an unknown triple crashes it) what it compiles for `cpu` and `triple`."""
    from iree.compiler.tools.binaries import find_tool
    with tempfile.TemporaryDirectory(prefix="texflow-cpu-") as d:
        src = os.path.join(d, "probe.mlir")
        with open(src, "w") as f:
            f.write(_PROBE)
        cmd = [find_tool("iree-compile"), src, "--iree-hal-target-device=local",
               "--iree-hal-local-target-device-backends=llvm-cpu", "--compile-to=executable-sources",
               *llvm_cpu_flags(cpu, triple)]
        p = subprocess.run(cmd, capture_output=True, text=True)
    err = p.stderr
    where = f"for {triple}" if triple else "for this host's architecture"
    if "not a recognized processor" in err or "Unknown CPU" in err:
        m = re.search(r"List of accepted CPUs: (.*)", err)
        known = m.group(1).split(", ") if m else []
        hint = f" (e.g. {', '.join(known[:8])}, ...)" if known else ""
        raise TexflowError(f"unknown CPU '{cpu}' {where}{hint}")
    m = re.search(r'hal\.executable\.target<"llvm-cpu", "([^"]+)", \{([^>]*)', p.stdout)
    if p.returncode != 0 or m is None:
        if triple:
            raise TexflowError(f"IREE cannot compile for target triple '{triple}' "
                               f"(an LLVM triple such as aarch64-linux-android or x86_64-linux-gnu)")
        raise TexflowError(f"IREE cannot compile for CPU '{cpu}': "
                           f"{(err.strip().splitlines() or ['no diagnostic'])[0]}")
    feats = re.search(r'cpu_features = "([^"]*)"', m.group(2))
    return CpuTarget(cpu, triple, m.group(1),
                     tuple(x for x in (feats.group(1) if feats else "").split(",") if x))


def pack_tiles(cpu: str = HOST, triple: str | None = None) -> str | None:
    """texflow-pack-matmul's tiles for a named CPU (IREE's data-tiling shapes for f32: 16x16x1
    with AVX-512, else 8x8x1, as on AVX2 and NEON); None for the host (the pass's 'auto')."""
    cpu, triple = normalize_cpu(cpu, triple)
    if cpu == HOST and triple is None:
        return None
    return "16x16x1" if cpu_target(cpu, triple).avx512 else "8x8x1"
