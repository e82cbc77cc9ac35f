"""texflow-fold-weight-math: arithmetic on constants only (NF-ResNet's weight standardization) is
computed at compile time, so layout selection sees a constant filter; the model keeps ONNX
Runtime's numbers."""

import numpy as np
import onnx

from onnx_models import ort_reference, random_inputs, standardized_conv
from texflow.compiler import CompileOptions, Compiler
from texflow.runtime import Module


def test_standardized_filter_is_folded_and_matches_onnx_runtime(tmp_path):
    m = standardized_conv()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    xs = random_inputs(m)
    want = ort_reference(m, xs)[0]
    res = Compiler(CompileOptions(target="llvm-cpu")).compile_file(str(path))
    assert not res.fallbacks, res.fallbacks
    assert res.statistics["texflow-fold-weight-math"] == {"weight expressions folded to constants": 1}
    got = Module(res.vmfb, driver="local-task")(*xs)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # the standardized convolution is re-laid out like a plain one: both convolutions selected
    fn = next(iter(res.layout_report["functions"].values()))
    assert sum(1 for c in fn["choices"] if c.get("kind") == "conv") == 2, fn["choices"]


def test_vulkan_compiles_fold_too(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(standardized_conv(), path)
    res = Compiler(CompileOptions(target="vulkan-nvidia", compile_to="texflow-layout")).compile_file(str(path))
    assert res.statistics["texflow-fold-weight-math"] == {"weight expressions folded to constants": 1}
    assert "math.sqrt" not in res.mlir and "linalg.reduce" not in res.mlir
