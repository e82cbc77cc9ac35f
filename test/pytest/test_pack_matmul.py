"""texflow-pack-matmul: matmuls and convolutions as mmt4d on weights tiled at compile time.

- The packed weight layout is what `linalg.mmt4d` reads (a numpy model of mmt4d).
- Weights seen through broadcasts and transposes are evaluated at compile time.
- Property: models compiled with every matmul and convolution packed (forced, whatever their
  size) compute what ONNX Runtime does, for awkward sizes (rows and columns not multiples of
  the tile, fewer rows than a tile), both weight forms (K x N, and Gemm's transposed N x K),
  attention's run-time operands and 1x1 / strided / 3x3 convolutions; the pass's statistics
  show that it rewrote them (a test of outputs alone would pass with the pass doing nothing).
- The default thresholds leave a large-image convolution alone (measured to lose there).
"""

import numpy as np
import pytest

import onnx_models
from texflow.compiler import CompileOptions, Compiler
from texflow.passes.pipelines import default_layout_pipeline
from texflow.errors import TexflowError
from texflow.passes.cpu.pack_matmul import pack_rhs, parse_tiles
from texflow.runtime import Module

FORCE = "texflow-pack-matmul{min-flops=0 min-reduction=0 max-conv-rows=0 min-dynamic-fill=0}"


def _mmt4d_numpy(a, wp, m0, n0, k0):
    """Reference mmt4d: pack a (M x K) into [M1, K1, m0, k0], multiply tile by tile."""
    M, K = a.shape
    m1, k1 = -(-M // m0), -(-K // k0)
    ap = np.zeros((m1 * m0, k1 * k0), a.dtype)
    ap[:M, :K] = a
    ap = ap.reshape(m1, m0, k1, k0).transpose(0, 2, 1, 3)
    # out[i, j, m, n] = sum_{k, kk} ap[i, k, m, kk] * wp[j, k, n, kk]
    out = np.einsum("ikmq,jknq->ijmn", ap, wp)
    return out.transpose(0, 2, 1, 3).reshape(m1 * m0, -1)


@pytest.mark.parametrize("M,K,N,tiles", [(20, 24, 40, (16, 16, 1)), (5, 7, 9, (8, 8, 1)),
                                         (33, 12, 16, (16, 16, 4))])
def test_packed_weight_is_what_mmt4d_reads(M, K, N, tiles):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K)).astype(np.float32)
    w = rng.standard_normal((K, N)).astype(np.float32)
    m0, n0, k0 = tiles
    wp = pack_rhs(w, n0, k0)
    assert wp.shape == (-(-N // n0), -(-K // k0), n0, k0)
    got = _mmt4d_numpy(a, wp, m0, n0, k0)[:M, :N]
    np.testing.assert_allclose(got, a @ w, rtol=1e-5, atol=1e-5)


def test_tiles_option():
    assert parse_tiles("8x4x2") == (8, 4, 2)
    # auto follows the host's vector unit: AVX-512 rows of 16 floats, else (AVX2, NEON) 8
    with open("/proc/cpuinfo") as f:
        avx512 = " avx512f" in f.read()
    assert parse_tiles("auto") == ((16, 16, 1) if avx512 else (8, 8, 1))
    with pytest.raises(TexflowError, match="MxNxK"):
        parse_tiles("16x16")


def _compile(model, tmp_path, pipeline=None, **kw):
    path = tmp_path / "m.onnx"
    import onnx
    onnx.save(model, path)
    opts = CompileOptions(target="llvm-cpu", layout_pipeline=pipeline, **kw)
    return Compiler(opts).compile_file(str(path))


def _forced_pipeline(select=True):
    return default_layout_pipeline("llvm-cpu", select=select, pack=False).replace(
        "texflow-lower-layout,", f"texflow-lower-layout,{FORCE},")


CASES = {
    "dense_mlp": (lambda: onnx_models.dense_mlp(), {"matmuls packed (weights at compile time)": 2}),
    "dense_mlp_one_row": (lambda: onnx_models.dense_mlp(S=1, D=20, F=33),
                          {"matmuls packed (weights at compile time)": 2}),
    # the head split/merge transposes are folded into the score contractions (linalg.generic),
    # which stay; the four projections are packed
    "attention": (lambda: onnx_models.attention(S=12, D=24, H=3),
                  {"matmuls packed (weights at compile time)": 4}),
    # one weight broadcast over W batches: W*T rows of one matmul, the weight packed once at
    # compile time (not W copies packed at run time on every call)
    "windowed_linear": (lambda: onnx_models.windowed_linear(),
                        {"matmuls packed (weights at compile time)": 1,
                         "matmuls packed (both operands at run time)": None}),
    "batched_matmul": (lambda: onnx_models.batched_matmul(K=40),
                       {"matmuls packed (both operands at run time)": 1}),
    "conv_block": (lambda: onnx_models.conv_block(H=7),  # 3x3, 1x1 and strided 3x3 convs
                   {"convolutions packed (im2col)": 2, "convolutions packed (1x1)": 1}),
    # stride = kernel: the patch matrix is a reshape and transpose of the input, not an im2col
    "patch_embed": (lambda: onnx_models.patch_embed(), {"convolutions packed (patches)": 1}),
    # without layout selection the convolutions stay NCHW: filter x patches, unpacked to NCHW
    "conv_block_nchw": (lambda: onnx_models.conv_block(H=7),
                        {"NCHW convolutions packed (im2col)": 2, "NCHW convolutions packed (1x1)": 1}),
    # NCHW with stride = kernel (ConvNeXt's downsampling): one transpose, not a copy per tap
    "patch_embed_nchw": (lambda: onnx_models.patch_embed(), {"NCHW convolutions packed (patches)": 1,
                                                             "NCHW convolutions packed (im2col)": None}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_forced_packing_matches_onnxruntime(name, tmp_path):
    build, expected = CASES[name]
    model = build()
    inputs = onnx_models.random_inputs(model)
    ref = onnx_models.ort_reference(model, inputs)
    res = _compile(model, tmp_path, pipeline=_forced_pipeline(select=not name.endswith("nchw")))
    stats = res.statistics["texflow-pack-matmul"]
    for k, n in expected.items():
        assert stats.get(k) == n, stats
    outs = Module(res.vmfb, driver="local-task")(*inputs)
    assert len(ref) >= 1 and len(outs) == len(ref), (len(outs), len(ref))
    for o, r in zip(outs, ref):
        np.testing.assert_allclose(o, r, rtol=1e-4, atol=1e-4)


def test_default_thresholds_leave_large_image_convolutions(tmp_path):
    """conv_block on a 24x24 image: 576 output pixels per stride-1 conv > max-conv-rows (256)."""
    model = onnx_models.conv_block(C=16, F=32, H=24)
    inputs = onnx_models.random_inputs(model)
    res = _compile(model, tmp_path)
    stats = res.statistics.get("texflow-pack-matmul", {})
    assert stats.get("convolutions left (many output pixels)", 0) >= 1, stats
    # only the stride-2 convolution (12x12 = 144 output pixels) is small enough
    assert stats.get("convolutions packed (im2col)", 0) <= 1, stats
    out = Module(res.vmfb, driver="local-task")(*inputs)
    np.testing.assert_allclose(out[0], onnx_models.ort_reference(model, inputs)[0], rtol=1e-4, atol=1e-4)


def test_no_pack_matmul_option(tmp_path):
    res = _compile(onnx_models.dense_mlp(S=64, D=128, F=256), tmp_path, pack_matmul=False)
    assert "texflow-pack-matmul" not in res.statistics
    res = _compile(onnx_models.dense_mlp(S=64, D=128, F=256), tmp_path)
    assert res.statistics["texflow-pack-matmul"]["matmuls packed (weights at compile time)"] == 2


def _expected_chunks(rows: int, cols: int, tiles: tuple[int, int, int], limit: int) -> int:
    """Chunks of a rows x cols f32 result: rows padded to the M tile; columns per chunk the
    most that fit in `limit` bytes, a multiple of the N tile (one chunk if the whole fits)."""
    m0, n0, _ = tiles
    padded = -(-rows // m0) * m0
    if padded * cols * 4 <= limit:
        return 1
    per_chunk = max(n0, limit // (padded * 4) // n0 * n0)
    return -(-cols // per_chunk)


# Named tiles, not the host's: the expected chunk count follows from the tiles (AVX-512's 16x16
# pads 20 rows to 32: 4 + 2 chunks; AVX2/NEON's 8x8 pads them to 24: 3 + 2), so both are tested
# on any host.  mmt4d computes the same numbers with either tile.
@pytest.mark.parametrize("tiles", ["16x16x1", "8x8x1"])
def test_large_results_are_written_in_column_chunks(tmp_path, tiles):
    """A result above max-result-bytes is computed chunk by chunk of columns (each with its
    slice of the weight, packed at compile time) and gives the same numbers."""
    model = onnx_models.dense_mlp(S=20, D=48, F=100)  # results 20x100 and 20x48
    inputs = onnx_models.random_inputs(model)
    pipeline = default_layout_pipeline("llvm-cpu", pack=False).replace(
        "texflow-lower-layout,",
        f"texflow-lower-layout,texflow-pack-matmul{{tiles={tiles} min-flops=0 max-result-bytes=4096 chunk-above-bytes=0}},")
    res = _compile(model, tmp_path, pipeline=pipeline)
    stats = res.statistics["texflow-pack-matmul"]
    t = parse_tiles(tiles)
    expected = _expected_chunks(20, 100, t, 4096) + _expected_chunks(20, 48, t, 4096)
    assert expected == {"16x16x1": 6, "8x8x1": 5}[tiles]  # the arithmetic above, worked by hand
    assert stats["matmul results written in column chunks"] == expected, stats
    out = Module(res.vmfb, driver="local-task")(*inputs)
    np.testing.assert_allclose(out[0], onnx_models.ort_reference(model, inputs)[0], rtol=1e-4, atol=1e-4)
