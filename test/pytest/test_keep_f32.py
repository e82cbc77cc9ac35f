"""f16 with ONNX nodes kept in f32 (texflow-demote-f16's keep_f32).

IREE 3.13's SPIR-V code generator rejects the f16 form of some kernels for `vulkan-nvidia`
(SqueezeNet, MobileNetV3-Large, DenseNet-121, GPT-2, LLaMA of the corpus did not compile with
--precision=f16).  The compiler names the ONNX nodes of the rejected dispatches and compiles
again with those nodes in f32; a user can name nodes with --keep-f32."""

import subprocess
import sys

import numpy as np
import onnx
import pytest

import onnx_models
from texflow.compiler import compile_file, rejected_nodes
from texflow.errors import TexflowError
from texflow.runtime import Module
from texflow.session import Diagnostics


def _save(tmp_path, m):
    p = tmp_path / "m.onnx"
    onnx.save(m, p)
    return str(p)


def _rel(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_kept_node_runs_in_f32_on_llvm_cpu(tmp_path):
    """conv_block's stride-2 convolution kept in f32: it reads f32 operands after the layout
    phase, the rest is f16, and the outputs stay within f16 error of ONNX Runtime's."""
    m = onnx_models.conv_block()
    conv = [n for n in m.graph.node if n.op_type == "Conv"][-1]
    conv.name = "the_conv"
    path = _save(tmp_path, m)
    xs = onnx_models.random_inputs(m)
    want = onnx_models.ort_reference(m, xs)[0]
    res = compile_file(path, str(tmp_path / "k.vmfb"), precision="f16", keep_f32=("the_conv",))
    assert res.statistics["texflow-demote-f16"]["ops kept in f32"] >= 1
    got = Module(str(tmp_path / "k.vmfb"))(*xs)[0]
    assert 0 < _rel(got, want) < 1e-2
    full = compile_file(path, str(tmp_path / "f.vmfb"), precision="f16")
    assert "ops kept in f32" not in full.statistics["texflow-demote-f16"]
    mlir = compile_file(path, precision="f16", keep_f32=("the_conv",), pack_matmul=False,
                        select_layout=False, compile_to="texflow-layout").mlir
    convs = [ln for ln in mlir.splitlines() if "linalg.conv_2d" in ln]
    kept = [ln for ln in convs if "strides = dense<2>" in ln]
    assert len(kept) == 1 and "xf16>" not in kept[0], convs
    assert all("xf16>" in ln for ln in convs if ln not in kept), convs  # the others: f16


def test_rejected_f16_kernel_is_compiled_in_f32_for_vulkan_nvidia(tmp_path):
    """IREE rejects wide_pointwise's f16 convolution for vulkan-nvidia; the compile goes on with
    that node in f32 and says so."""
    path = _save(tmp_path, onnx_models.wide_pointwise())
    res = compile_file(path, str(tmp_path / "m.vmfb"), target="vulkan-nvidia", precision="f16")
    assert (tmp_path / "m.vmfb").stat().st_size > 0
    assert len(res.fallbacks) == 1 and res.fallbacks[0].endswith("compiled in f32: squeeze")
    assert res.statistics["texflow-driver"]["ONNX nodes kept in f32"] == 1


def test_rejected_nodes_reads_the_translation_failures():
    d = Diagnostics()
    d.records = [("ERROR", "", "failed to legalize operation 'arith.constant'"),
                 ("ERROR", 'loc("node_conv2d_22")', "failed to run translation of source executable "
                                                    "to target executable for backend"),
                 ("ERROR", 'loc(fused["a", "b"])', "failed to run translation of source executable"),
                 ("ERROR", 'loc("other")', "some other error")]
    assert rejected_nodes(d) == {"node_conv2d_22", "a", "b"}


def test_keep_f32_kept_node_numerics_on_lavapipe(tmp_path, vulkan):
    """The kept node's module on the Vulkan path (vulkan-valhall, run by lavapipe) matches ONNX
    Runtime within f16 error."""
    m = onnx_models.wide_pointwise(C=64, F=32, H=9)
    path = _save(tmp_path, m)
    xs = onnx_models.random_inputs(m)
    want = onnx_models.ort_reference(m, xs)[0]
    res = compile_file(path, str(tmp_path / "m.vmfb"), target="vulkan-valhall", precision="f16",
                       keep_f32=("squeeze",))
    assert res.statistics["texflow-demote-f16"]["ops kept in f32"] >= 1
    got = Module(str(tmp_path / "m.vmfb"), driver="vulkan")(*xs)[0]
    assert 1e-5 < _rel(got, want) < 1e-2  # the relu's f16 rounding, no more


@pytest.mark.parametrize("args, msg", [
    (["--keep-f32", "x"], "needs --precision=f16"),
    (["--keep-f32", "x", "--precision=f16", "--layout-pipeline", "texflow-demote-f16"],
     "texflow-demote-f16{keep_f32=...}"),
])
def test_keep_f32_cli_errors(tmp_path, args, msg):
    path = _save(tmp_path, onnx_models.conv_relu())
    p = subprocess.run([sys.executable, "-m", "texflow.cli.compile", path, "-o",
                        str(tmp_path / "m.vmfb")] + args, capture_output=True, text=True)
    assert p.returncode != 0 and msg in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.vmfb").exists()
