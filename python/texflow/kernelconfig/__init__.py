"""Kernel configurations per target: the SPIR-V code-generation choices (pipeline, workgroup
and tile sizes) texflow gives the contractions it writes, measured on the target and stored as
data with the device and date (`data/<target>.json`, made by `python -m texflow.bench.tune_kernels`).

Why data and not IREE's heuristics: IREE 3.13's SPIR-V configuration picks *SubgroupReduce*
for a channel-packed (NC4HW4) 1x1 convolution, one 32-thread workgroup per output pixel, because
its innermost loop is a reduction of 4.  On an H200 that ran ResNet-50's 1x1 convolutions at
0.2 TFLOP/s, 7.5 of its 10 kernel milliseconds (benchmarks/gpu/h200/profile/).  The right tiles
depend on the device, so they are measured there, as the layout cost model is.
"""

from .table import KERNEL_CLASSES, Config, KernelTable, Shape, load, loops_of  # noqa: F401
