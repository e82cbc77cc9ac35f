"""texflow's pipelines: each phase is a list of pass instances with typed options.

As IREE's `buildGlobalOptimizationPassPipeline` and xDSL's `PassPipeline` do, a phase is built
from its choices (target, precision, whether to select layouts or pack matmuls, a memory
budget in bytes) rather than edited as text; upstream MLIR passes (`canonicalize`, `cse`)
appear by name.  `pipeline_text` writes a phase as the textual pipeline `texflow-opt` and
`--layout-pipeline` accept, and `parse_pipeline` reads one back into instances.

The phases, in the order the compiler runs them after IREE's `input` phase:
- texflow-layout (`layout_passes`): raise layout transforms, eliminate them (SmartMem's pair
  rules), select the convolution regions' layouts by the target's cost model and eliminate what
  selection added, lower back to linalg; on llvm-cpu, put attention, softmax and contractions in
  the forms IREE's CPU code runs fastest (docs/cpu.md); with f16, demote first.
- texflow-wstream (`wstream_passes`): split large weights, plan their loads under the budget.
- texflow-finalize (`finalize_passes`): lower the wstream ops (cut the module into segments
  taking their weights as arguments, for the streaming runtime) and check that no texflow op
  reaches IREE.
"""

from __future__ import annotations

import dataclasses


from .cpu.fuse_attention import FuseAttention
from .cpu.pack_matmul import PackMatmul
from .cpu.rewrite_softmax import RewriteSoftmax
from .layout.eliminate import EliminateLayout
from .layout.fold_weight_math import FoldWeightMath
from .layout.lower import LowerLayout
from .layout.raise_layout import RaiseLayout
from .layout.split_grouped_convs import SplitGroupedConvs
from .layout.verify import VerifyLayout
from .precision.demote_f16 import DemoteF16
from .precision.widen_accumulators import WidenAccumulators
from .registry import Pass, parse_pass, split_pipeline
from .abi.output_storage import AbiOutputStorage
from .wstream.lower import WStreamLower
from .wstream.fence import WStreamFence
from .wstream.outline import WStreamOutline
from .wstream.plan import WStreamPlan
from .wstream.split_weights import WStreamSplitWeights
from .wstream.verify_lowered import VerifyLowered

Item = Pass | str  # a texflow pass instance, or an upstream pass by its pipeline text

# A weight above an eighth of the budget (and above 256 KiB: smaller slices would cost more in
# dispatches than they save) is split with its contraction, one stage per slice, so that no
# single weight makes a budget infeasible.
MIN_WEIGHT_SLICE = 256 * 1024
SLICES_PER_BUDGET = 8


def layout_passes(target: str, *, select: bool = True, precision: str = "f32",
                  select_options: str = "", pack: bool = True,
                  pack_tiles: str | None = None, keep_f32: str = "") -> list[Item]:
    """The texflow-layout phase for `target`.

    - On GPUs a contraction writing the layout its consumers want ("eliminate 2nd") costs
      nothing measurable (H200, Vulkan) and removes the head-split transposes IREE leaves as
      data-movement dispatches (LLaMA: 17 -> 5); on llvm-cpu it made small attention blocks
      1.3x slower, so there it stays off.
    - With `select`, texflow-select-layout chooses the convolution regions' layouts with the
      target's cost model (`select_options`: more of its options, as text); a second
      elimination round, configured as the first, composes the selection's conversions with
      the model's own transforms (a conv written NHWC feeding a flatten + transpose to tokens).
    - With `pack` on llvm-cpu, texflow-fuse-attention and texflow-rewrite-softmax put attention
      and softmax in the forms IREE's CPU code runs fastest, and texflow-pack-matmul tiles
      matmuls, attention and convolutions for mmt4d, with the weights packed at compile time;
      `pack_tiles` names its tiles (None: the host's).
    - With precision f16, texflow-demote-f16 runs first so that selection sees 2-byte elements,
      and texflow-widen-accumulators last: sums accumulate in f32 (ResNet-50 overflowed f16);
      the ONNX nodes named in `keep_f32` (comma-separated) stay in f32.
    - texflow-fold-weight-math first computes arithmetic on constants only (NF-ResNet's weight
      standardization) so that the convolutions after it have constant filters to re-lay out.
    - On llvm-cpu, texflow-split-grouped-convs first turns each grouped convolution into one
      convolution per group (IREE 3.13's grouped convolution was 5-16x slower there); on GPUs
      that would mean one dispatch per group, not measured yet, so it stays off.
    - Kernel configurations (texflow-configure-kernels) are not part of this phase: they are
      attached to IREE's dispatches (`Compiler.configures`).
    """
    gpu = target.startswith("vulkan")

    def eliminate() -> EliminateLayout:
        return EliminateLayout(fold_into_producers=gpu, keep_matmul_loops=gpu)

    p: list[Item] = [VerifyLayout(), RaiseLayout(), eliminate()]
    if target == "llvm-cpu" and (select or pack):
        p.insert(1, SplitGroupedConvs())
    if select or (pack and target == "llvm-cpu"):  # packing is llvm-cpu's only
        p.insert(1, FoldWeightMath())
    if select:
        opts = " ".join([f"target={target}"] + ([select_options] if select_options else []))
        p += [parse_pass(f"texflow-select-layout{{{opts}}}"), RaiseLayout(), eliminate()]
    p.append(LowerLayout())
    if pack and target == "llvm-cpu":
        p += [FuseAttention(), RewriteSoftmax(),
              PackMatmul(**({"tiles": pack_tiles} if pack_tiles else {}))]
    if precision == "f16":
        p.insert(0, DemoteF16(keep_f32=keep_f32))
        p.append(WidenAccumulators(contractions=not gpu))
    p += [VerifyLayout(), "canonicalize", "cse"]
    return p


def wstream_passes(budget_bytes: int, *, time_limit: float = 10.0, manifest: str = "",
                   target: str = "llvm-cpu") -> list[Item]:
    """The texflow-wstream phase: split weights too large for the budget, then plan.  The plan
    counts what the target's runtime holds: on Vulkan a gathered table is read whole (the CPU
    runtime maps it and holds only the rows a gather can touch)."""
    max_slice = max(MIN_WEIGHT_SLICE, budget_bytes // SLICES_PER_BUDGET)
    return [WStreamSplitWeights(max_bytes=max_slice),
            WStreamPlan(memory_budget=budget_bytes, time_limit=time_limit, manifest=manifest,
                        map_tables=not target.startswith("vulkan"))]


STREAM_MODES = ("fenced", "segments")

# What an external fence costs and how fast weights reach the device, per target family, for
# texflow-wstream-fence's preload/arena trade.  Vulkan: measured on an NVIDIA H200
# (benchmarks/gpu/h200/stream_fenced.md, 2026-12-03: about 1.3 ms per fence, 6.4 GB/s from the
# page cache into host-visible device memory); mobile Vulkan devices were not measured and get
# the same figures.  CPU (local-task): fences are host events, taken as free.
FENCE_COSTS = {"vulkan": {"fence_us": 1300.0, "load_gbps": 6.4}}


def finalize_passes(segments: bool, mode: str = "fenced", target: str = "llvm-cpu",
                    output_storage: bool = True) -> list[Item]:
    """The texflow-finalize phase.  A streamed module (`segments`) is prepared for the
    streaming runtime: "fenced" keeps the function whole, its weights imported behind fences
    the runtime signals (texflow-wstream-fence; one call per run, no host round trip between
    stages); "segments" cuts it into functions taking their weights as arguments
    (texflow-wstream-outline; also fenced's fallback where its arena exceeds the budget).
    Otherwise wstream ops are lowered in place, and on Vulkan (`output_storage`: texflow's
    compile, not plain IREE's) results are written into caller storage."""
    if not segments:
        # Vulkan: results written into caller storage (no read-back copy after each call)
        return [WStreamLower(), VerifyLowered()] + \
            ([AbiOutputStorage()] if output_storage and target.startswith("vulkan") else [])
    if mode not in STREAM_MODES:
        raise ValueError(f"unknown streaming mode '{mode}' ({', '.join(STREAM_MODES)})")
    costs = FENCE_COSTS.get(target.split("-")[0], {})
    return [WStreamFence(**costs) if mode == "fenced" else WStreamOutline(), VerifyLowered()]


def pipeline_text(items: list[Item]) -> str:
    """The textual form of a phase: options only where they differ from the pass's defaults."""
    return ",".join(i if isinstance(i, str) else i.pipeline_text(defaults=False) for i in items)


def parse_pipeline(text: str) -> list[Item]:
    """A textual pipeline as items: texflow passes as instances, anything else as text."""
    return [parse_pass(i) or i for i in split_pipeline(text)]


def with_tiles(items: list[Item], tiles: str | None) -> list[Item]:
    """`items` with texflow-pack-matmul's tiles set to `tiles` where they are 'auto' (the
    host's): a pipeline compiled for a named CPU packs for that CPU."""
    if tiles is None:
        return items
    return [_with_options(i, tiles=tiles) if isinstance(i, PackMatmul) and i.options.tiles == "auto"
            else i for i in items]


def _with_options(p: Pass, **changes) -> Pass:
    return type(p)(**dataclasses.replace(p.options, **changes).__dict__)


def find(items: list[Item], cls: type[Pass]) -> list[Pass]:
    """The instances of `cls` in a phase."""
    return [i for i in items if isinstance(i, cls)]


def default_layout_pipeline(target: str, select: bool = True, precision: str = "f32",
                            select_options: str = "", pack: bool = True) -> str:
    """`layout_passes` as text (a starting point for `--layout-pipeline`)."""
    return pipeline_text(layout_passes(target, select=select, precision=precision,
                                       select_options=select_options, pack=pack))


# The layout phase of GPU targets without selection or packing, as text: elimination that also
# folds transforms into the contractions producing them.
GPU_LAYOUT_PIPELINE = pipeline_text(layout_passes("vulkan-generic", select=False, pack=False))
