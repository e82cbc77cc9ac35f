"""The kernel-configuration table of a target: for each class of op texflow writes, the loop
sizes it was tuned at and the configuration that ran fastest there.

A class names a loop form that IREE's dispatch keeps as written (no unit loops, contiguous
dimensions already collapsed), so that a `compilation_info` attached to the op reaches the
dispatch unchanged (IREE drops it when it rebuilds the op, e.g. folding unit dimensions).

A shape that was not tuned gets the configuration of the nearest tuned shape of its class whose
tiles divide its loops (nearest: the sum of |log ratio| over the loop sizes), named as such in
the statistics; with no such entry the op keeps IREE's own choice.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from texflow.errors import TexflowError

DATA_DIR = Path(__file__).parent / "data"

# class -> (loop names, iterator kinds).  Batch 1; fo/kb (co): output/input channel blocks of 4,
# fi/k4 (ci): the lanes of a block.
# - conv1x1_nc4hw4: a stride-1 1x1 convolution on channel-packed tensors,
#   out[fo, hw, fi] += x[kb, hw, k4] * w[fo, kb, k4, fi] (hw: the pixels, collapsed);
# - conv1x1_nc4hw4_2d: the same with two pixel loops, out[fo, oh, ow, fi] += x[kb, oh, ow, k4]
#   * w[fo, kb, k4, fi] (IREE keeps them apart when it writes the result into a padded buffer);
# - conv_nc4hw4_s1 / _s2: a KxK (K > 1) convolution of stride 1 / 2 on channel-packed tensors,
#   out[fo, oh, ow, fi] += x[co, s*oh + kh, s*ow + kw, ci] * w[fo, co, kh, kw, ci, fi].
_CONV = (("fo", "oh", "ow", "fi", "co", "kh", "kw", "ci"), ("parallel",) * 4 + ("reduction",) * 4)
KERNEL_CLASSES = {
    "conv1x1_nc4hw4": (("fo", "hw", "fi", "kb", "k4"),
                       ("parallel", "parallel", "parallel", "reduction", "reduction")),
    "conv1x1_nc4hw4_2d": (("fo", "oh", "ow", "fi", "kb", "k4"), ("parallel",) * 4 + ("reduction",) * 2),
    "conv_nc4hw4_s1": _CONV,
    "conv_nc4hw4_s2": _CONV,
}

Shape = tuple[int, ...]


def loops_of(cls: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        return KERNEL_CLASSES[cls]
    except KeyError:
        raise TexflowError(f"unknown kernel class '{cls}' (known: {', '.join(KERNEL_CLASSES)})") from None


@dataclasses.dataclass(frozen=True)
class Config:
    """One SPIR-V configuration: IREE's pipeline name (without the SPIRV prefix), the
    workgroup size (x, y, z: x is the innermost tiled loop) and the tile sizes by level
    (workgroup, invocation, reduction)."""
    pipeline: str
    workgroup_size: tuple[int, int, int]
    tile_sizes: tuple[tuple[int, ...], ...]

    def attr_text(self) -> str:
        """The op's `compilation_info` attribute, as IREE 3.13 parses it."""
        tiles = ", ".join("[" + ", ".join(map(str, t)) + "]" for t in self.tile_sizes)
        wg = ", ".join(map(str, self.workgroup_size))
        return ("#iree_codegen.compilation_info<lowering_config = #iree_codegen.lowering_config<"
                f"tile_sizes = [{tiles}]>, translation_info = #iree_codegen.translation_info<"
                f"pipeline = #iree_gpu.spirv_pipeline<{self.pipeline}> workgroup_size = [{wg}]>>")

    def fits(self, dims: Shape) -> bool:
        """Whether every non-zero tile size divides its loop (IREE's SPIR-V vectorization wants
        whole tiles) and each level's sizes are multiples of the next level's."""
        for level in self.tile_sizes:
            if len(level) > len(dims):
                return False
            if any(t and (t > d or d % t) for t, d in zip(level, dims)):
                return False
        if len(self.tile_sizes) >= 2:
            wg, th = self.tile_sizes[0], self.tile_sizes[1]
            if any(t and w % t for w, t in zip(wg, th)):
                return False
        return True

    def to_json(self) -> dict:
        return {"pipeline": self.pipeline, "workgroup_size": list(self.workgroup_size),
                "tile_sizes": [list(t) for t in self.tile_sizes]}

    @classmethod
    def from_json(cls, d: dict) -> "Config":
        wg = tuple(int(x) for x in d["workgroup_size"])
        if len(wg) != 3 or any(x < 1 for x in wg):
            raise ValueError(f"workgroup_size must be 3 positive numbers, got {d['workgroup_size']}")
        tiles = tuple(tuple(int(x) for x in t) for t in d["tile_sizes"])
        if not tiles or any(x < 0 for t in tiles for x in t):
            raise ValueError("tile_sizes must be lists of non-negative numbers")
        if not str(d["pipeline"]).isidentifier():
            raise ValueError(f"bad pipeline name {d['pipeline']!r}")
        return cls(str(d["pipeline"]), wg, tiles)


@dataclasses.dataclass
class Entry:
    dims: Shape
    config: Config
    measured: dict  # what the tuning measured (us of the best and of IREE's default, ...)


@dataclasses.dataclass
class KernelTable:
    target: str
    device: str
    date: str
    source: str  # "measured"
    entries: dict[str, list[Entry]]

    def describe(self) -> str:
        return f"{self.target}: {self.source} on {self.device} ({self.date})"

    def lookup(self, cls: str, dims: Shape) -> tuple[Config, str] | None:
        """(configuration, "tuned" | "nearest AxBx...") for an op of `cls` with loop sizes
        `dims`, or None (IREE's own configuration)."""
        dims = tuple(dims)
        cands = self.entries.get(cls, [])
        for e in cands:
            if e.dims == dims and e.config.fits(dims):
                return e.config, "tuned"
        best = None
        for e in cands:
            if len(e.dims) != len(dims) or not e.config.fits(dims):
                continue
            d = sum(abs(math.log(a / b)) for a, b in zip(e.dims, dims))
            key = (d, e.dims)  # ties broken by the shape: deterministic
            if best is None or key < best[0]:
                best = (key, e)
        if best is None:
            return None
        return best[1].config, "nearest " + "x".join(map(str, best[1].dims))

    def to_json(self) -> dict:
        return {"target": self.target, "device": self.device, "date": self.date,
                "source": self.source,
                "classes": {c: [{"dims": list(e.dims), "config": e.config.to_json(),
                                 "measured": e.measured}
                                for e in sorted(es, key=lambda e: e.dims)]
                            for c, es in sorted(self.entries.items())}}

    @classmethod
    def from_json(cls, d: dict) -> "KernelTable":
        entries: dict[str, list[Entry]] = {}
        for c, es in d["classes"].items():
            names, _ = loops_of(c)
            for e in es:
                dims = tuple(int(x) for x in e["dims"])
                if len(dims) != len(names) or any(x < 1 for x in dims):
                    raise ValueError(f"{c}: dims {e['dims']} do not match loops {names}")
                entries.setdefault(c, []).append(Entry(dims, Config.from_json(e["config"]),
                                                       dict(e.get("measured", {}))))
        return cls(d["target"], d["device"], d["date"], d.get("source", "measured"), entries)


def has_table(target: str) -> bool:
    """Whether texflow ships a measured kernel table for `target`."""
    return (DATA_DIR / f"{target}.json").exists()


def load(target: str, path: str | None = None) -> KernelTable | None:
    """`path`, else the target's measured table, else None (no table: IREE configures)."""
    p = Path(path) if path else DATA_DIR / f"{target}.json"
    if not p.exists():
        if path:
            raise TexflowError(f"no such kernel configuration file: {path}")
        return None
    try:
        return KernelTable.from_json(json.loads(p.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise TexflowError(f"malformed kernel configuration table {p}: {type(e).__name__}: {e}") from None
