"""Per-target layout cost model, read from data: what a convolution costs in each activation
layout, and what moving a tensor between layouts costs.

Why data and not rules: SmartMem's rule (write what the consumer reads best, the reduction
dimension contiguous) gives the direction, but the size of each effect depends on the
target's code generator, and on IREE it sometimes points the other way.  Measured here
(`data/llvm-cpu.json`, `data/vulkan-nvidia.json`, made by `python -m texflow.bench.calibrate_layout`): on llvm-cpu a 3x3
convolution is 1.6x slower in NCHW than in NHWC and a depthwise one 8x, while IREE's CPU
code for a channel-packed (NC4HW4) convolution is 31x slower; on an H100 through Vulkan the
packed layout is the fastest in f16 (NCHW 2.2x, NHWC 1.2x).  Mobile targets that cannot be
measured here use published figures (`data/published-mobile.json`), named as such.

Costs are in milliseconds: a convolution's FLOPs divided by the throughput its calibration
case reached in its best layout, times the case's ratio for the layout; a conversion's bytes
divided by the bandwidth of the calibration's transpose.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from texflow.errors import TexflowError

DATA_DIR = Path(__file__).parent / "data"
LAYOUTS = ("nchw", "nhwc", "nc4hw4")
# A convolution with fewer input channels than this is costed like the calibration's stem
# (3 channels, 7x7, stride 2) when the data has that case: its reduction is mostly spatial.
STEM_CHANNELS = 8


# The work in each calibration case (texflow.bench.calibrate_layout) at the CPU sizes (multiply-adds
# x 2 for convolutions, elements moved for the transposes), from which the cost model turns
# medians into throughputs; GPU cases do GPU_SCALE times as much.
WORK = {"conv3x3": 2 * 64 * 64 * 9 * 56 * 56, "dwconv3x3": 2 * 144 * 9 * 56 * 56,
        "convstem": 2 * 64 * 3 * 49 * 112 * 112, "convpatch": 2 * 192 * 3 * 256 * 14 * 14,
        "transpose": 64 * 56 * 56, "transpose_narrow": 3 * 224 * 224}
GPU_SCALE = 16


@dataclasses.dataclass
class CostModel:
    target: str
    source: str  # "measured" or "published"
    device: str
    date: str
    ratios: dict  # elem -> case -> layout -> ratio to the best layout
    gflops: dict  # elem -> case -> GFLOP/s in the best layout
    move_gbps: dict  # elem -> GB/s of a layout conversion (transpose / pack)
    narrow_gbps: dict = dataclasses.field(default_factory=dict)  # elem -> GB/s, to a <8-wide innermost dim

    def _case(self, kind: str, elem: str, in_channels: int | None, patch: bool = False) -> str:
        """Which calibration case costs a convolution: a patch embedding (stride = kernel),
        a stem (few input channels), else the 3x3 case."""
        r = self.ratios.get(elem) or self.ratios["f32"]
        if kind == "conv" and patch and "convpatch" in r:
            return "convpatch"
        if kind == "conv" and in_channels is not None and in_channels < STEM_CHANNELS and "convstem" in r:
            return "convstem"
        return {"conv": "conv3x3", "dwconv": "dwconv3x3"}[kind]

    def layouts(self, kind: str, elem: str, in_channels: int | None = None,
                patch: bool = False) -> list[str]:
        """The layouts a kind of op can be given on this target (the ones calibrated)."""
        return [l for l in LAYOUTS if l in self._ratios(kind, elem, in_channels, patch)]

    def _ratios(self, kind: str, elem: str, in_channels: int | None = None,
                patch: bool = False) -> dict:
        r = self.ratios.get(elem) or self.ratios["f32"]
        return r[self._case(kind, elem, in_channels, patch)]

    def op_ms(self, kind: str, layout: str, flops: float, elem: str,
              in_channels: int | None = None, patch: bool = False) -> float:
        case = self._case(kind, elem, in_channels, patch)
        g = (self.gflops.get(elem) or self.gflops["f32"])[case]
        return flops / (g * 1e6) * self._ratios(kind, elem, in_channels, patch)[layout]

    def move_ms(self, nbytes: float, elem: str, channels: int | None = None) -> float:
        """A conversion of `nbytes`; to or from a layout whose innermost dimension would be
        fewer than STEM_CHANNELS channels, at the calibrated narrow-transpose bandwidth."""
        if channels is not None and channels < STEM_CHANNELS and elem in self.narrow_gbps:
            return nbytes / (self.narrow_gbps[elem] * 1e6)
        return nbytes / ((self.move_gbps.get(elem) or self.move_gbps["f32"]) * 1e6)

    def describe(self) -> str:
        return f"{self.target}: {self.source} on {self.device} ({self.date})"


def _measured(d: dict) -> CostModel:
    """Ratios as stored; throughputs from each case's best median and its work (WORK,
    GPU_SCALE times larger on Vulkan targets)."""
    scale = GPU_SCALE if d["target"].startswith("vulkan") else 1
    ratios, gflops, gbps, narrow = {}, {}, {}, {}
    for elem, cases in d["cases"].items():
        ratios[elem] = {c: {v: e["ratio_to_best"] for v, e in vs.items()} for c, vs in cases.items()}
        gflops[elem] = {c: scale * WORK[c] / (min(e["median_ms"] for e in vs.values()) * 1e6)
                        for c, vs in cases.items() if c.startswith(("conv", "dwconv"))}
        moves = cases["movement"]
        moved = scale * (2 if elem == "f16" else 4) * 2  # bytes per element, read + write
        gbps[elem] = moved * WORK["transpose"] / (moves["transpose"]["median_ms"] * 1e6)
        if "transpose_narrow" in moves:
            narrow[elem] = moved * WORK["transpose_narrow"] / (moves["transpose_narrow"]["median_ms"] * 1e6)
    return CostModel(d["target"], "measured", d["device"], d["date"], ratios, gflops, gbps, narrow)


def _published(d: dict, target: str) -> CostModel:
    t = d["targets"][target]
    ratios = {e: d["ratios"] for e in ("f32", "f16")}
    gflops = {e: {"conv3x3": t["gflops"][e], "dwconv3x3": t["gflops"][e] / 4} for e in ("f32", "f16")}
    gbps = {e: t["gbytes_per_s"] / d["ratios"]["movement"]["transpose"] for e in ("f32", "f16")}
    return CostModel(target, "published", t["device"], d["date"], ratios, gflops, gbps)


def load(target: str, path: str | None = None) -> CostModel:
    """The cost model of `target`: `path` if given, else the measured data of the target, else
    the published mobile figures."""
    p = Path(path) if path else DATA_DIR / f"{target}.json"
    try:
        if p.exists():
            return _measured(json.loads(p.read_text()))
        if path:
            raise TexflowError(f"no such cost model file: {path}")
        pub = json.loads((DATA_DIR / "published-mobile.json").read_text())
    except (json.JSONDecodeError, KeyError, TypeError, ZeroDivisionError) as e:
        raise TexflowError(f"malformed cost model {p}: {type(e).__name__}: {e}") from None
    if target not in pub["targets"]:
        raise TexflowError(f"no cost model for target '{target}' "
                           f"(measured: {', '.join(sorted(q.stem for q in DATA_DIR.glob('*.json') if q.stem != 'published-mobile'))}; "
                           f"published: {', '.join(pub['targets'])})")
    return _published(pub, target)
