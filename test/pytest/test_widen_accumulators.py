"""texflow-widen-accumulators: with --precision=f16, sums accumulate in f32.

torchvision ResNet-50 gave NaN in f16 before it (its global average pool sums values of up to
~20,000); benchmarks/precision/ has the suite's f16 errors with and without it."""

import re

import numpy as np
import onnx
import pytest

import onnx_models
from texflow.compiler import compile_file
from texflow.runtime import Module


def _run(vmfb, xs, driver="local-task"):
    ys = Module(vmfb, driver=driver)(*xs)
    return ys[0] if isinstance(ys, (list, tuple)) else ys


def test_f16_mean_of_large_values_stays_finite(tmp_path):
    m = onnx_models.large_mean()
    onnx.save(m, tmp_path / "m.onnx")
    xs = [np.abs(x) * 100 for x in onnx_models.random_inputs(m)]
    want = onnx_models.ort_reference(m, xs)[0]
    assert np.abs(want).max() < 65504 < 49 * np.abs(want).min()  # the mean fits f16, the sum does not
    res = compile_file(str(tmp_path / "m.onnx"), str(tmp_path / "m.vmfb"), precision="f16")
    assert res.statistics["texflow-widen-accumulators"] == {"f16 sums accumulated in f32 (named op)": 1}  # the pool
    got = _run(str(tmp_path / "m.vmfb"), xs)
    assert np.isfinite(got).all()
    assert np.abs(got - want).max() / np.abs(want).max() < 2e-3  # f16 rounding of the values


@pytest.mark.parametrize("model", ["conv_block", "dense_mlp"])
def test_f16_contractions_accumulate_in_f32_and_stay_close(tmp_path, model):
    """Convolutions and matmuls (named and, on llvm-cpu, texflow's mmt4d) accumulate in f32;
    the outputs stay within half-precision error of ONNX Runtime's."""
    m = getattr(onnx_models, model)()
    onnx.save(m, tmp_path / "m.onnx")
    xs = onnx_models.random_inputs(m)
    want = onnx_models.ort_reference(m, xs)[0]
    res = compile_file(str(tmp_path / "m.onnx"), str(tmp_path / "m.vmfb"), precision="f16")
    widened = res.statistics["texflow-widen-accumulators"]
    assert sum(widened.values()) >= 1, widened
    got = _run(str(tmp_path / "m.vmfb"), xs)
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert 0 < rel < 1e-2
    mlir = compile_file(str(tmp_path / "m.onnx"), precision="f16", compile_to="texflow-layout").mlir
    # the contractions read f16 operands into f32 accumulators
    named = [ln for ln in mlir.splitlines()
             if re.search(r"linalg\.(mmt4d|batch_mmt4d|matmul|conv_2d_\w+|depthwise_conv_2d_\w+) ", ln)]
    assert named and all(re.search(r"ins\([^)]*xf16>\) outs\([^)]*xf32>\)", ln) for ln in named), named
