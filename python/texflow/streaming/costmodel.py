"""Cost model: per-stage compute time and per-chunk weight read time.

compute(stage) = max(flops / flops_per_s, traffic / mem_bytes_per_s) + dispatch_s
read(chunk)    = chunk_bytes / weight_read_bytes_per_s
capacity(stage) (chunks readable during its compute without slowing it)
               = min(ratio(kind) * traffic / chunk_bytes,  compute / read(chunk))
with ratio 0 (hierarchical: softmax, norms), 0.2 (reusable: matmul, conv),
3.0 (elemental) of the stage's own memory traffic (FlashMem's load capacity).

Calibrations are data (calibration/*.json): each names the device, the date
and how it was measured.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from texflow.errors import TexflowError

from .model import CAPACITY_RATIO

CALIBRATION_DIR = Path(__file__).with_name("calibration")
DEFAULT_CALIBRATION = "host-llvm-cpu"


@dataclasses.dataclass(frozen=True)
class Calibration:
    name: str
    device: str
    date: str
    flops_per_s: float
    mem_bytes_per_s: float
    dispatch_s: float
    weight_read_bytes_per_s: float
    method: str = ""

    def compute_s(self, flops: float, traffic: float) -> float:
        return max(flops / self.flops_per_s, traffic / self.mem_bytes_per_s) + self.dispatch_s

    def chunk_s(self, chunk_bytes: int) -> float:
        return chunk_bytes / self.weight_read_bytes_per_s

    def capacity_chunks(self, kind: str, traffic: float, compute_s: float, chunk_bytes: int) -> int:
        by_kind = CAPACITY_RATIO[kind] * traffic / chunk_bytes
        by_link = compute_s / self.chunk_s(chunk_bytes)
        return int(math.floor(min(by_kind, by_link) + 1e-9))


def load_calibration(name_or_path: str = "") -> Calibration:
    """A calibration by name (calibration/<name>.json) or by path."""
    name_or_path = name_or_path or DEFAULT_CALIBRATION
    p = Path(name_or_path)
    if not p.suffix:
        p = CALIBRATION_DIR / f"{name_or_path}.json"
    try:
        data = json.loads(p.read_text())
    except OSError:
        known = sorted(q.stem for q in CALIBRATION_DIR.glob("*.json"))
        raise TexflowError(f"no calibration '{name_or_path}' (known: {', '.join(known)})") from None
    except json.JSONDecodeError as e:
        raise TexflowError(f"calibration {p} is not valid JSON: {e}") from None
    fields = {f.name for f in dataclasses.fields(Calibration)}
    try:
        cal = Calibration(**{k: v for k, v in data.items() if k in fields})
    except TypeError as e:
        raise TexflowError(f"calibration {p} is incomplete: {e}") from None
    for k in ("flops_per_s", "mem_bytes_per_s", "weight_read_bytes_per_s"):
        v = getattr(cal, k)
        if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
            raise TexflowError(f"calibration {p}: '{k}' must be a positive number, got {v!r}")
    return cal


def auto_chunk_bytes(total_weight_bytes: int, target_chunks: int = 4096) -> int:
    """A power of two giving about `target_chunks` chunks (64 B .. 16 MiB)."""
    want = max(1, total_weight_bytes // target_chunks)
    return min(16 << 20, max(64, 1 << (want - 1).bit_length()))
