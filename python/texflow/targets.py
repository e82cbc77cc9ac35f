"""Target presets: short names for the IREE flags of each texflow target.

`subgroup_size` is what the generated SPIR-V assumes; the runtime compares it
with the device's (lavapipe defaults to 8, Valhall is 16, Adreno 64) because a
mismatch gives silently wrong reductions.  None means the target uses no
subgroup operations (IREE's `vp_android_baseline_2022` profile) or is a CPU.
"""

from dataclasses import dataclass

from .errors import TexflowError


@dataclass(frozen=True)
class Target:
    name: str
    flags: tuple[str, ...]
    driver: str  # IREE runtime driver that runs the module
    subgroup_size: int | None
    summary: str


def _vulkan(name, iree_target, subgroup, summary):
    return Target(name, ("--iree-hal-target-device=vulkan",
                         f"--iree-vulkan-target={iree_target}"),
                  "vulkan", subgroup, summary)


TARGETS = {
    t.name: t for t in (
        Target("llvm-cpu", ("--iree-hal-target-device=local",
                            "--iree-hal-local-target-device-backends=llvm-cpu",
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
