"""texflow-pack-matmul: matmuls with constant weights become `linalg.mmt4d` on weights tiled at compile time.

Why: on CPUs IREE's fast matmul path is data tiling (`--iree-opt-data-tiling`): both operands
are packed into tiles the target's registers hold (16x1 rows by 16x1 columns with AVX-512) and
an `mmt4d` kernel multiplies the tiles.  IREE packs a constant weight at run time, in an
initializer, and keeps the original too: GPT-2-4L's peak grows from 450 to 706 MB.  The
weights are constants, so texflow packs them here, at compile time: the module then holds only
the packed copy, and only the activations are packed at run time (`linalg.pack`, which IREE
fuses with their producers).  Measured on this machine (1 thread, AVX-512): a 64x768 by
768x3072 matmul takes 12.7 ms plain, 3.3 ms with IREE's data tiling and 3.5 ms as mmt4d with
the packed weight (see benchmarks/cpu-parity).

Matched: `linalg.matmul` and `linalg.batch_matmul` whose right-hand side is a float constant,
K x N or N x K, possibly through copies that only broadcast, transpose or reshape it (how ONNX
MatMul on 3-D activations arrives: a broadcast of the weight to 1xKxN; on 4-D ones, Swin's
windows or ConvNeXt's rows, a broadcast to BxKxN, whose B batches become rows of one matmul); with
`dynamic=true`, (batch) matmuls of two computed operands (attention), both packed at run time
into `linalg.batch_mmt4d`.  With `convs=true`, convolutions with a constant filter: a 1x1 NHWC
convolution is the matmul (N*H*W x C) by (C x F) on a (strided) view of its input, a KxK one
that matmul on its im2col patches (`im2col=true`; built from one strided slice per filter tap),
or, when its stride is its kernel (a patch embedding), on a transpose of its input; an NCHW one
filter times patches (the same im2col or transpose, in NCHW order).

Which convolutions: measured, not assumed.  IREE's own NHWC convolution code is good on large
images, and there an im2col matrix (a KH*KW-fold copy of the input) and packing the activations
cost more than mmt4d saves; a 1x1 convolution needs no im2col and wins at any size once its
reduction is long enough; on small images mmt4d wins by far.  On this host (1 thread, medians of
8-12 interleaved runs, ms, none packed -> all packed -> the defaults): MobileNetV2 21.1 -> 25.0
-> 11.7, ResNet-18 154 -> 100 -> 67; ResNet-50 none 812, 1x1 convolutions capped at 256 output
pixels 313, uncapped (the default) 154.  So a convolution is packed when its reduction
(KH*KW*C) is at least `min-reduction` (128) and, for KxK ones, it has at most `max-conv-rows`
(256) output pixels.  NCHW convolutions (those layout selection left NCHW) are written as filter
times patches, whose tiles unpack straight into NCHW.  Matmuls with a constant side are always
packed; matmuls of two computed operands when their reduction is at least 32 (SD-UNet's 8-wide
attention heads lost 1.2x when packed; ViT's 64-wide ones win 5x).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from iree.compiler import ir
from iree.compiler.dialects import arith, linalg, tensor

from texflow import irutil
from texflow.constdata import constant_data
from texflow.errors import TexflowError
from texflow.ir.structured import (affine_maps, build_generic, fill_value, is_copy_body, inputs_of, map_dims,
                                   pack_op, static_shape, unpack_op)
from texflow.ir.constants import make_constant
from ..registry import Pass, register_pass

_FLOATS = ("f32", "f16", "bf16")


def host_tiles() -> tuple[int, int, int]:
    """(M0, N0, K0) of IREE's data tiling for f32 on this host's vector unit: 16x16x1 with
    AVX-512 (one zmm register holds a row of 16 floats), 8x8x1 with AVX2 or NEON.  texflow
    compiles llvm-cpu modules for the host (`--iree-llvmcpu-target-cpu=host`)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        flags = ""
    if " avx512f" in flags:
        return 16, 16, 1
    return 8, 8, 1


def parse_tiles(text: str) -> tuple[int, int, int]:
    if text == "auto":
        return host_tiles()
    try:
        m0, n0, k0 = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise TexflowError(f"tiles must be 'auto' or MxNxK (e.g. 16x16x1), "
                           f"not '{text}'") from None
    if min(m0, n0, k0) < 1:
        raise TexflowError(f"tile sizes must be positive, not '{text}'")
    return m0, n0, k0


# -- compile-time evaluation of a weight ------------------------------------

def weight_value(v, limit: int = 1 << 28):
    """The numpy value of `v` if it is a constant seen through copies that only broadcast,
    transpose or reshape it; else None."""
    op = irutil.producer(v)
    if op is None:
        return None
    name = op.name
    if name == "arith.constant":
        rt = ir.RankedTensorType(op.results[0].type)
        if str(rt.element_type) not in _FLOATS or math.prod(rt.shape) > limit:
            return None
        try:
            return constant_data(op)
        except TexflowError:
            return None
    if name in ("tensor.collapse_shape", "tensor.expand_shape"):
        a = weight_value(op.operands[0], limit)
        shape = static_shape(op.results[0])
        return None if a is None or shape is None else a.reshape(shape)
    if name == "linalg.transpose":
        a = weight_value(op.operands[0], limit)
        return None if a is None else np.transpose(a, irutil.int_array(op.attributes["permutation"]))
    if name == "linalg.generic" and len(inputs_of(op)) == 1 and is_copy_body(op):
        maps = affine_maps(op)
        src, dst = map_dims(maps[0]), map_dims(maps[1])
        out = static_shape(op.results[0])
        if src is None or dst != list(range(len(out or []))) or len(set(src)) != len(src):
            return None
        a = weight_value(inputs_of(op)[0], limit)
        if a is None:
            return None
        # out[d0..dn] = in[d_src0, d_src1, ...]: order the input's axes by output dimension,
        # then insert the broadcast dimensions
        order = sorted(range(len(src)), key=lambda i: src[i])
        a = np.transpose(a, order)
        present = sorted(src)
        shape = [out[d] if d in present else 1 for d in range(len(out))]
        return np.broadcast_to(a.reshape(shape), out)
    return None


def shared_weight(v, B: int) -> np.ndarray | None:
    """The constant [B, ...] value of `v` when all B batches are one weight (a Linear layer on
    a 4-D activation arrives as a batch matmul with the weight broadcast over the batch:
    Swin's windows, ConvNeXt's rows); else None.  Packing it at run time would pack the one
    weight B times, on every call."""
    w = weight_value(v)
    if w is None or w.ndim != 3 or w.shape[0] != B:
        return None
    if w.strides[0] != 0 and not np.array_equal(w, np.broadcast_to(w[:1], w.shape)):
        return None
    return w


# -- building ----------------------------------------------------------------

def pack_lhs(a: np.ndarray, m0: int, k0: int) -> np.ndarray:
    """An MxK constant as mmt4d's left-hand side: [ceil(M/m0), ceil(K/k0), m0, k0], zero padded."""
    M, K = a.shape
    m1, k1 = -(-M // m0), -(-K // k0)
    p = np.zeros((m1 * m0, k1 * k0), a.dtype)
    p[:M, :K] = a
    return np.ascontiguousarray(p.reshape(m1, m0, k1, k0).transpose(0, 2, 1, 3))


def pack_rhs(w: np.ndarray, n0: int, k0: int) -> np.ndarray:
    """A KxN weight as mmt4d's right-hand side, [ceil(N/n0), ceil(K/k0), n0, k0]: mmt4d reads
    its right-hand side transposed, so this is the left-hand-side tiling of the NxK transpose."""
    return pack_lhs(w.T, n0, k0)


def _zero(et):
    return arith.constant(et, 0.0)


def _fill_zero(v) -> bool:
    """Whether `v` is a `linalg.fill` of 0 (a matmul that starts from zero)."""
    return fill_value(v) == 0.0


def _subsample(x, shape: list[int], strides: list[int]):
    """The strided view of `x` a strided 1x1 convolution reads (x itself for unit strides)."""
    if all(st == 1 for st in strides):
        return x
    et = ir.RankedTensorType(x.type).element_type
    return tensor.extract_slice(ir.RankedTensorType.get(shape, et), x, [], [], [],
                                [0] * len(shape), shape, strides)


def _generic(inputs, in_maps, result_type, body):
    """A parallel linalg.generic writing `result_type` (identity output map) from `inputs` read
    through `in_maps`; `body(block arguments)` returns the value to yield."""
    rank = len(result_type.shape)
    return build_generic(inputs, in_maps, tensor.empty(list(result_type.shape), result_type.element_type),
                         ir.AffineMap.get_identity(rank), ["parallel"] * rank, body)


def _add(a, b):
    """Elementwise a + b (same static shape), which IREE fuses with the unpack producing `a`."""
    t = ir.RankedTensorType(a.type)
    idm = ir.AffineMap.get_identity(len(t.shape))
    return _generic([a, b], [idm, idm], t, lambda args: arith.addf(args[0], args[1]))


def _multiply_unpack(lhs_p, rhs_p, lead: list[int], M: int, N: int, m0: int, n0: int, zero):
    """(batch_)mmt4d of packed operands, from a `zero` accumulator, unpacked to [B,] M x N."""
    o, et = len(lead), zero.type
    lt, rt = ir.RankedTensorType(lhs_p.type).shape, ir.RankedTensorType(rhs_p.type).shape
    acc = linalg.fill(zero, outs=[tensor.empty(lead + [lt[o], rt[o], m0, n0], et)])
    r = (linalg.batch_mmt4d if lead else linalg.mmt4d)(lhs_p, rhs_p, outs=[acc])
    return unpack_op(irutil.result_value(r), tensor.empty(lead + [M, N], et), [o, o + 1], [m0, n0])


@register_pass
class PackMatmul(Pass):
    name = "texflow-pack-matmul"
    undoable = True  # an optimisation: dropped, not fatal, if its result does not verify
    summary = ("Rewrite matmuls with constant weights as linalg.mmt4d on weights tiled at compile "
               "time (data tiling without a second weight copy)")

    @dataclasses.dataclass
    class Options:
        tiles: str = dataclasses.field(default="auto", metadata={
            "help": "M0xN0xK0 tile, or auto (the host's: 16x16x1 with AVX-512, else 8x8x1)"})
        min_flops: int = dataclasses.field(default=1 << 20, metadata={
            "help": "leave smaller matmuls alone (packing costs more than it saves)"})
        min_reduction: int = dataclasses.field(default=128, metadata={
            "help": "leave convolutions whose reduction (KH*KW*C) is shorter alone"})
        max_conv_rows: int = dataclasses.field(default=256, metadata={
            "help": "leave convolutions with more output pixels (N*OH*OW) alone; 0: no limit"})
        max_1x1_conv_rows: int = dataclasses.field(default=0, metadata={
            "help": "the same for 1x1 convolutions (no im2col copy); 0: no limit"})
        max_nchw_conv_rows: int = dataclasses.field(default=0, metadata={
            "help": "the same for NCHW convolutions (those layout selection left NCHW); 0: no limit"})
        convs: bool = dataclasses.field(default=True, metadata={
            "help": "also rewrite NHWC convolutions with constant filters"})
        dynamic: bool = dataclasses.field(default=True, metadata={
            "help": "also matmuls whose operands are both computed (attention): both packed at run time"})
        min_dynamic_reduction: int = dataclasses.field(default=32, metadata={
            "help": "with dynamic: leave run-time matmuls with a shorter reduction alone (SD-UNet's "
                    "8-wide attention heads: packing both sides cost more than it saved)"})
        min_dynamic_fill: float = dataclasses.field(default=0.8, metadata={
            "help": "with dynamic: leave run-time matmuls alone when less than this fraction of "
                    "their padded M x N tiles is real (Swin's 49-token windows fill 59% of "
                    "64 x 64: packing both sides cost 2x)"})
        max_result_bytes: int = dataclasses.field(default=1 << 20, metadata={
            "help": "write a chunked result (see chunk-above-bytes) in column chunks of at most "
                    "this many packed bytes; 0: never chunk"})
        chunk_above_bytes: int = dataclasses.field(default=8 << 20, metadata={
            "help": "chunk a constant-weight matmul's result only when its packed bytes exceed "
                    "this (an LM head's logits, which would otherwise exist packed and unpacked "
                    "at once); smaller results are one piece, since each chunk costs a copy "
                    "(ConvNeXt-Tiny's 1-5 MB MLP results: 0.72x -> 0.60x of plain IREE's time); "
                    "never convolutions, whose chunks would re-read the activations"})
        im2col: bool = dataclasses.field(default=True, metadata={
            "help": "with convs: KxK convolutions through an im2col matrix (else only 1x1)"})

    def apply(self, module) -> None:
        self.m0, self.n0, self.k0 = parse_tiles(self.options.tiles)
        for f in irutil.functions(module):
            for op in irutil.collect(f, ("linalg.matmul", "linalg.batch_matmul",
                                         "linalg.conv_2d_nhwc_hwcf", "linalg.conv_2d_nchw_fchw")):
                with op.location, ir.InsertionPoint(op):
                    if op.name == "linalg.conv_2d_nhwc_hwcf":
                        done = self.options.convs and self._conv(op)
                    elif op.name == "linalg.conv_2d_nchw_fchw":
                        done = self.options.convs and self._conv_nchw(op)
                    else:
                        done = self._matmul(op)
                if done:
                    op.erase()

    # -- matmul ----------------------------------------------------------
    def _matmul(self, op) -> bool:
        a, b, c = op.operands[0], op.operands[1], op.operands[2]
        sa, sb, sc = static_shape(a), static_shape(b), static_shape(c)
        if sa is None or sb is None or sc is None:
            return False
        et = ir.RankedTensorType(a.type).element_type
        if str(et) not in _FLOATS:
            return False
        # which dimensions each operand reads: default maps, or a transposed / batch-broadcast
        # right-hand side
        dims = [map_dims(m) for m in affine_maps(op)]
        batch = op.name == "linalg.batch_matmul"
        m, n, k = (1, 2, 3) if batch else (0, 1, 2)
        lead = [0] if batch else []
        if dims[0] != lead + [m, k] or dims[2] != lead + [m, n]:
            self.bump("matmuls left (not a plain left-hand side or result)")
            return False
        B = sa[0] if batch else 1
        M, K, N = sa[-2], sa[-1], sc[-1]
        if 2 * B * M * N * K < self.options.min_flops:
            self.bump("matmuls left (too small)")
            return False
        init = None if _fill_zero(c) else c
        w = weight_value(b) if B == 1 else shared_weight(b, B)
        if w is not None:
            if w.ndim == 3 and dims[1][0] == 0:
                w, bd = w[0], dims[1][1:]
            else:
                bd = dims[1]
            if bd not in ([n, k], [k, n]):
                self.bump("matmuls left (unsupported weight map)")
                return False
            if bd == [n, k]:
                w = w.T
            # one weight for every batch: the batches are rows of one matmul (B*M x K)
            lhs = a if not batch else tensor.collapse_shape(
                ir.RankedTensorType.get([B * M, K], et), a, [[0, 1], [2]])
            if init is not None and batch:
                init = tensor.collapse_shape(ir.RankedTensorType.get([B * M, N], et), init, [[0, 1], [2]])
            r = self._mmt4d(lhs, w, init, None, B * M, N, K, chunk=True)
            if batch:
                r = tensor.expand_shape(ir.RankedTensorType(c.type), r, [[0, 1], [2]], [], [B, M, N])
            self.bump("matmuls packed (weights at compile time)")
        else:
            if not self.options.dynamic:
                return False
            if K < self.options.min_dynamic_reduction:
                self.bump("matmuls left (short reduction, run-time operands)")
                return False
            if self._fill(M, N) < self.options.min_dynamic_fill:
                self.bump("matmuls left (tiles mostly padding, run-time operands)")
                return False
            if dims[1] == lead + [k, n]:
                nk = False
            elif dims[1] == lead + [n, k]:
                nk = True
            else:
                self.bump("matmuls left (unsupported right-hand side map)")
                return False
            r = self._mmt4d(a, b, init, B if batch else None, M, N, K, rhs_nk=nk)
            self.bump("matmuls packed (both operands at run time)")
        op.results[0].replace_all_uses_with(r)
        return True

    def _m_tile(self, M: int) -> int:
        """The M tile for M rows: narrowed to the next power of two for few rows."""
        return min(self.m0, 1 << max(0, (M - 1).bit_length()))

    def _fill(self, M: int, N: int) -> float:
        """The fraction of the padded M x N tiles `_mmt4d` would write that is the result."""
        m0 = self._m_tile(M)
        pad = lambda x, t: -(-x // t) * t  # noqa: E731
        return (M * N) / (pad(M, m0) * pad(N, self.n0))

    def _mmt4d(self, lhs, rhs, init, B: int | None, M: int, N: int, K: int, rhs_nk: bool = False,
               chunk: bool = False):
        """(batch_)mmt4d(pack(lhs), pack(rhs)) unpacked to [B,] M x N.  `rhs` is a numpy KxN
        weight (packed here, at compile time) or a value ([B,] KxN, or NxK with `rhs_nk`)
        packed at run time; `init` the accumulator (None: zero).  With `chunk`, a large result
        is written in column chunks (`_mmt4d_by_columns`)."""
        et = (ir.RankedTensorType(rhs.type) if isinstance(lhs, np.ndarray)
              else ir.RankedTensorType(lhs.type)).element_type
        m0 = self._m_tile(M)
        n0, k0 = self.n0, self.k0
        m1, n1, k1 = -(-M // m0), -(-N // n0), -(-K // k0)
        lead = [] if B is None else [B]
        o = len(lead)  # index of the first matrix dimension
        zero = _zero(et)
        if isinstance(lhs, np.ndarray):  # a constant left-hand side (NCHW convolutions' filter)
            ap = pack_lhs(lhs, m0, k0)
            lhs_p = make_constant(ap, ir.RankedTensorType.get(list(ap.shape), et))
        else:
            lhs_p = pack_op(lhs, tensor.empty(lead + [m1, k1, m0, k0], et), [o, o + 1], [m0, k0], pad=zero)
        if isinstance(rhs, np.ndarray):
            cols = self._chunk_columns(m1 * m0, N, n0, et) if chunk and B is None else N
            if cols < N:
                return self._mmt4d_by_columns(lhs_p, rhs, init, M, N, cols, m0, et)
            wp = pack_rhs(rhs, n0, k0)
            rhs_p = make_constant(wp, ir.RankedTensorType.get(list(wp.shape), et))
        elif rhs_nk:
            rhs_p = pack_op(rhs, tensor.empty(lead + [n1, k1, n0, k0], et), [o, o + 1], [n0, k0], pad=zero)
        else:  # [B,] K x N -> [B,] N1 x K1 x n0 x k0
            rhs_p = pack_op(rhs, tensor.empty(lead + [n1, k1, n0, k0], et), [o + 1, o], [n0, k0], pad=zero,
                          outer_perm=list(range(o)) + [o + 1, o])
        # Always accumulate from zero and add a non-zero init after unpacking: an init is
        # usually the bias broadcast to the output's shape (how convolutions with a bias are
        # imported), and packing it would be a constant expression IREE hoists and evaluates
        # into an output-sized constant (ResNet-50: 29 MB more constants).
        out = _multiply_unpack(lhs_p, rhs_p, lead, M, N, m0, n0, zero)
        return out if init is None else _add(out, init)

    def _chunk_columns(self, rows: int, N: int, n0: int, et) -> int:
        """Columns per chunk so that a packed result chunk (rows x cols) stays within
        `max-result-bytes` (N: one chunk, for results of at most `chunk-above-bytes`)."""
        limit = self.options.max_result_bytes
        nbytes = max(1, ir.FloatType(et).width // 8)
        total = rows * N * nbytes
        if not limit or total <= max(limit, self.options.chunk_above_bytes):
            return N
        return max(n0, limit // (rows * nbytes) // n0 * n0)

    def _mmt4d_by_columns(self, lhs_p, w: np.ndarray, init, M: int, N: int, cols: int, m0: int, et):
        """mmt4d with a constant K x N weight, a chunk of `cols` columns at a time, each chunk
        unpacked into its columns of the result.  Why: the packed result exists beside the
        unpacked one until the unpack, and for an LM head's logits (GPT-2: 128 x 50257) that
        was 5% of the model's peak memory; chunks bound it by `max-result-bytes`.  The weight
        is split at compile time, so no weight bytes are added.  The cost: IREE unpacks each
        chunk to a temporary and copies it into the result's columns (LLaMA-4L: about 5-8%
        slower on one thread); see docs/cpu.md."""
        n0, k0 = self.n0, self.k0
        zero = _zero(et)
        out = tensor.empty([M, N], et)
        for c0 in range(0, N, cols):
            cw = min(cols, N - c0)
            wp = pack_rhs(w[:, c0:c0 + cw], n0, k0)
            rhs_p = make_constant(wp, ir.RankedTensorType.get(list(wp.shape), et))
            part = _multiply_unpack(lhs_p, rhs_p, [], M, cw, m0, n0, zero)
            out = tensor.insert_slice(part, out, [], [], [], [0, c0], [M, cw], [1, 1])
        self.bump("matmul results written in column chunks", -(-N // cols))
        return out if init is None else _add(out, init)

    # -- convolution -----------------------------------------------------
    def _conv_parts(self, op, batch_one: bool = False):
        """(input, filter as numpy, init, input/filter/output shapes, strides, dilations) of a
        convolution with a constant filter and static shapes, else None."""
        x, wv, c = op.operands[0], op.operands[1], op.operands[2]
        sx, sw, so = static_shape(x), static_shape(wv), static_shape(c)
        if sx is None or sw is None or so is None or (batch_one and sx[0] != 1):
            return None
        w = weight_value(wv)
        if w is None:
            return None
        return (x, w, c, sx, sw, so, irutil.int_array(op.attributes["strides"]),
                irutil.int_array(op.attributes["dilations"]))

    def _admit_conv(self, rows: int, K: int, F: int, cap: int) -> bool:
        """The measured rule (module docstring): enough work, a long enough reduction, and at
        most `cap` output pixels (0: any)."""
        if 2 * rows * K * F < self.options.min_flops:
            self.bump("convolutions left (too small)")
            return False
        if K < self.options.min_reduction:
            self.bump("convolutions left (short reduction)")
            return False
        if cap and rows > cap:
            self.bump("convolutions left (many output pixels)")
            return False
        return True

    def _conv(self, op) -> bool:
        parts = self._conv_parts(op)
        if parts is None:
            return False
        x, w, c, sx, sw, so, strides, dil = parts
        Nb, H, W, C = sx
        KH, KW, _, F = sw
        _, OH, OW, _ = so
        M, K = Nb * OH * OW, KH * KW * C
        cap = self.options.max_1x1_conv_rows if KH == KW == 1 else self.options.max_conv_rows
        if not self._admit_conv(M, K, F, cap):
            return False
        et = ir.RankedTensorType(x.type).element_type
        kind = ("1x1" if KH == KW == 1 else
                "patches" if list(strides) == [KH, KW] and list(dil) == [1, 1] else "im2col")
        if kind == "1x1":
            v = _subsample(x, [Nb, OH, OW, C], [1, strides[0], strides[1], 1])
            lhs = tensor.collapse_shape(ir.RankedTensorType.get([M, C], et), v, [[0, 1, 2], [3]])
        elif kind == "patches":
            lhs = _patches(x, KH, KW, [Nb, OH, OW, C], et)
        elif self.options.im2col:
            lhs = self._im2col(x, KH, KW, strides, dil, [Nb, OH, OW, C], et)
        else:
            return False
        init = None if _fill_zero(c) else tensor.collapse_shape(
            ir.RankedTensorType.get([M, F], et), c, [[0, 1, 2], [3]])
        r = self._mmt4d(lhs, w.reshape(K, F), init, None, M, F, K)
        r = tensor.expand_shape(ir.RankedTensorType(c.type), r, [[0, 1, 2], [3]], [], so)
        op.results[0].replace_all_uses_with(r)
        self.bump(f"convolutions packed ({kind})")
        return True

    def _conv_nchw(self, op) -> bool:
        """An NCHW convolution as filter (F x C*KH*KW, packed at compile time) times patches:
        the result's tiles unpack straight into NCHW, so no layout conversion is needed."""
        parts = self._conv_parts(op, batch_one=True)
        if parts is None:
            return False
        x, w, c, sx, sw, so, strides, dil = parts
        _, C, H, W = sx
        F, _, KH, KW = sw
        _, _, OH, OW = so
        P, K = OH * OW, C * KH * KW
        if not self._admit_conv(P, K, F, self.options.max_nchw_conv_rows):
            return False
        et = ir.RankedTensorType(x.type).element_type
        kind = ("1x1" if KH == KW == 1 else
                "patches" if list(strides) == [KH, KW] and list(dil) == [1, 1] else "im2col")
        if kind == "1x1":
            v = _subsample(x, [1, C, OH, OW], [1, 1, strides[0], strides[1]])
            rhs = tensor.collapse_shape(ir.RankedTensorType.get([C, P], et), v, [[0, 1], [2, 3]])
        elif kind == "patches":
            rhs = _patches_nchw(x, KH, KW, [C, OH, OW], et)
        elif self.options.im2col:
            rhs = self._im2col_nchw(x, KH, KW, strides, dil, [C, OH, OW], et)
        else:
            return False
        init = None if _fill_zero(c) else tensor.collapse_shape(
            ir.RankedTensorType.get([F, P], et), c, [[0, 1], [2, 3]])
        r = self._mmt4d(w.reshape(F, K), rhs, init, None, F, P, K)
        r = tensor.expand_shape(ir.RankedTensorType(c.type), r, [[0, 1], [2, 3]], [], so)
        op.results[0].replace_all_uses_with(r)
        self.bump(f"NCHW convolutions packed ({kind})")
        return True

    def _im2col_nchw(self, x, KH, KW, strides, dil, out_chw, et):
        """The [C*KH*KW, OH*OW] patch matrix of a 1xCxHxW input (row order c, kh, kw: the FCHW
        filter's; the right-hand side K x N), one strided slice per filter tap (`_gather_taps`)."""
        C, OH, OW = out_chw
        return _gather_taps(x, KH, KW, strides, dil, h_axis=2, slice_sizes=[1, C, OH, OW],
                            tap_shape=[C, OH, OW], cols_shape=[C, KH, KW, OH, OW],
                            tap_axes=(1, 2), et=et, matrix_shape=[C * KH * KW, OH * OW],
                            reassociation=[[0, 1, 2], [3, 4]])

    def _im2col(self, x, KH, KW, strides, dil, out_nhwc, et):
        """The [N*OH*OW, KH*KW*C] patch matrix of an NHWC input (column order kh, kw, c: the
        HWCF filter's), one strided slice per filter tap (`_gather_taps`)."""
        Nb, OH, OW, C = out_nhwc
        return _gather_taps(x, KH, KW, strides, dil, h_axis=1, slice_sizes=[Nb, OH, OW, C],
                            tap_shape=[Nb, OH, OW, C], cols_shape=[Nb, OH, OW, KH, KW, C],
                            tap_axes=(3, 4), et=et, matrix_shape=[Nb * OH * OW, KH * KW * C],
                            reassociation=[[0, 1, 2], [3, 4, 5]])


def _patches(x, KH, KW, out_nhwc, et):
    """The [N*OH*OW, KH*KW*C] patch matrix of a convolution whose stride is its kernel (a ViT's
    patch embedding): the patches do not overlap, so the matrix is the input itself, reshaped
    to [N, OH, KH, OW, KW, C] and transposed to [N, OH, OW, KH, KW, C].  Why not im2col: the
    tap-by-tap im2col of a 16x16 kernel is 256 copy dispatches; this is one transpose dispatch.
    (Measured on ViT-Tiny: the same time, 0.995x paired, and the same peak memory; IREE 3.13
    does not fuse the transpose into the pack after it, so the 0.6 MB matrix is still written.)"""
    Nb, OH, OW, C = out_nhwc
    v = tensor.extract_slice(ir.RankedTensorType.get([Nb, OH * KH, OW * KW, C], et), x, [], [], [],
                             [0, 0, 0, 0], [Nb, OH * KH, OW * KW, C], [1, 1, 1, 1])
    v = tensor.expand_shape(ir.RankedTensorType.get([Nb, OH, KH, OW, KW, C], et), v,
                            [[0], [1, 2], [3, 4], [5]], [], [Nb, OH, KH, OW, KW, C])
    d = [ir.AffineDimExpr.get(i) for i in range(6)]  # (n, oh, ow, kh, kw, c)
    t = _generic([v], [ir.AffineMap.get(6, 0, [d[0], d[1], d[3], d[2], d[4], d[5]])],
                 ir.RankedTensorType.get([Nb, OH, OW, KH, KW, C], et), lambda args: args[0])
    return tensor.collapse_shape(ir.RankedTensorType.get([Nb * OH * OW, KH * KW * C], et), t,
                                 [[0, 1, 2], [3, 4, 5]])


def _patches_nchw(x, KH, KW, out_chw, et):
    """The [C*KH*KW, OH*OW] patch matrix of a 1xCxHxW input whose convolution's stride is its
    kernel (ConvNeXt's 2x2 downsampling layers): as `_patches`, the input reshaped to
    [C, OH, KH, OW, KW] and transposed to [C, KH, KW, OH, OW], one transpose dispatch where
    the tap-by-tap im2col was KH*KW copies."""
    C, OH, OW = out_chw
    v = tensor.extract_slice(ir.RankedTensorType.get([1, C, OH * KH, OW * KW], et), x, [], [], [],
                             [0, 0, 0, 0], [1, C, OH * KH, OW * KW], [1, 1, 1, 1])
    v = tensor.collapse_shape(ir.RankedTensorType.get([C, OH * KH, OW * KW], et), v, [[0, 1], [2], [3]])
    v = tensor.expand_shape(ir.RankedTensorType.get([C, OH, KH, OW, KW], et), v,
                            [[0], [1, 2], [3, 4]], [], [C, OH, KH, OW, KW])
    d = [ir.AffineDimExpr.get(i) for i in range(5)]  # (c, kh, kw, oh, ow)
    t = _generic([v], [ir.AffineMap.get(5, 0, [d[0], d[3], d[1], d[4], d[2]])],
                 ir.RankedTensorType.get([C, KH, KW, OH, OW], et), lambda args: args[0])
    return tensor.collapse_shape(ir.RankedTensorType.get([C * KH * KW, OH * OW], et), t,
                                 [[0, 1, 2], [3, 4]])


def _gather_taps(x, KH, KW, strides, dil, *, h_axis, slice_sizes, tap_shape, cols_shape, tap_axes,
                 et, matrix_shape, reassociation):
    """An im2col matrix built tap by tap.  For each filter tap (kh, kw), the input sampled on the
    output grid (`tensor.extract_slice` at rows kh*d, columns kw*d of the image axes from
    `h_axis`, with the convolution's strides) is inserted at (kh, kw) of `tap_axes` in a
    `cols_shape` tensor, which is then collapsed to `matrix_shape`.

    Why not one linalg.generic reading x[.., oh*s + kh*d, ow*s + kw*d, ..]: IREE 3.13 does not vectorise a generic whose input map adds loop
    indices and compiles that gather to scalar loads and stores.  ResNet-18's 14x14x256 im2col
    took 266 us as a generic and 9 x 8 us as taps, which IREE copies with vector loads (and the
    pack that follows went from 103 to 69 us); see docs/cpu.md."""
    rank = len(slice_sizes)
    tap_t = ir.RankedTensorType.get(tap_shape, et)
    cols = tensor.empty(cols_shape, et)
    sizes = [1 if i in tap_axes else n for i, n in enumerate(cols_shape)]
    for kh in range(KH):
        for kw in range(KW):
            offs, st = [0] * rank, [1] * rank
            offs[h_axis], offs[h_axis + 1] = kh * dil[0], kw * dil[1]
            st[h_axis], st[h_axis + 1] = strides[0], strides[1]
            tap = tensor.extract_slice(tap_t, x, [], [], [], offs, slice_sizes, st)
            at = [0] * len(cols_shape)
            at[tap_axes[0]], at[tap_axes[1]] = kh, kw
            cols = tensor.insert_slice(tap, cols, [], [], [], at, sizes, [1] * len(cols_shape))
    return tensor.collapse_shape(ir.RankedTensorType.get(matrix_shape, et), cols, reassociation)
