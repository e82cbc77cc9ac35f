"""End to end: ONNX -> texflow-compile (in-process) -> run -> compare with ONNX Runtime."""

import numpy as np
import onnx
import pytest

import onnx_models
from texflow.compiler import CompileOptions, Compiler
from texflow.runtime import Module

TOL = dict(rtol=1e-4, atol=1e-4)


def compile_model(tmp_path, model, target, layout=True):
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    res = Compiler(CompileOptions(target=target, layout=layout)).compile_file(str(path))
    assert res.vmfb and res.vmfb[:2] == b"PK"  # a vmfb is a zip with module.fb
    return res


@pytest.mark.parametrize("name", sorted(onnx_models.ALL))
@pytest.mark.parametrize("layout", [True, False], ids=["texflow", "plain"])
def test_llvm_cpu_matches_onnxruntime(tmp_path, name, layout):
    model = onnx_models.ALL[name]()
    inputs = onnx_models.random_inputs(model)
    ref = onnx_models.ort_reference(model, inputs)
    res = compile_model(tmp_path, model, "llvm-cpu", layout)
    out = Module(res.vmfb, driver="local-task")(*inputs)
    assert len(ref) >= 1 and len(out) == len(ref), (len(out), len(ref))
    for a, b in zip(out, ref):
        np.testing.assert_allclose(a, b, **TOL)


@pytest.mark.vulkan
@pytest.mark.parametrize("target", ["vulkan-generic", "vulkan-valhall"])
@pytest.mark.parametrize("name", sorted(onnx_models.ALL))
def test_vulkan_matches_onnxruntime(tmp_path, vulkan, name, target):
    model = onnx_models.ALL[name]()
    inputs = onnx_models.random_inputs(model)
    ref = onnx_models.ort_reference(model, inputs)
    res = compile_model(tmp_path, model, target)
    mod = Module(res.vmfb, driver="vulkan")
    out = mod(*inputs)
    assert len(ref) >= 1 and len(out) == len(ref), (len(out), len(ref))
    for a, b in zip(out, ref):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


@pytest.mark.vulkan
def test_vulkan_refuses_subgroup_mismatch(tmp_path, vulkan):
    """An Adreno module (subgroup 64) on lavapipe (16 here) would give wrong reductions."""
    from texflow.errors import TexflowError
    res = compile_model(tmp_path, onnx_models.conv_relu(), "vulkan-adreno")
    with pytest.raises(TexflowError, match="subgroup size 64"):
        Module(res.vmfb, driver="vulkan")


def test_wrong_input_shape_is_a_clear_error(tmp_path):
    from texflow.errors import TexflowError
    res = compile_model(tmp_path, onnx_models.matmul_softmax(), "llvm-cpu")
    mod = Module(res.vmfb)
    with pytest.raises(TexflowError, match=r"expected 1x16x32xf32, got 1x16x31xf32"):
        mod(np.zeros((1, 16, 31), np.float32))
    with pytest.raises(TexflowError, match="takes 1 input"):
        mod()


@pytest.mark.parametrize("name,stat", [
    ("nhwc_elementwise", "transforms cancelled (compose: identity)"),
    ("transpose_reshape_chain", "transforms folded into contractions (loops split)"),
])
def test_layout_phase_removes_the_transforms(tmp_path, name, stat):
    """The layout phase really rewrites these models (and they still match: see above)."""
    from texflow.compiler import CompileOptions, Compiler
    model = onnx_models.ALL[name]()
    onnx.save(model, tmp_path / "m.onnx")
    res = Compiler(CompileOptions(compile_to="texflow-finalize")).compile_file(str(tmp_path / "m.onnx"))
    assert res.statistics["texflow-eliminate-layout"].get(stat, 0) >= 2
    assert "linalg.transpose" not in res.mlir


def _two_outputs_with_indices():
    """y = x + 1 and z = gather(table, ids) * 2: two results, a float and an int64 input."""
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh
    table = np.arange(40, dtype=np.float32).reshape(10, 4)
    g = h.make_graph([
        h.make_node("Add", ["x", "one"], ["y"]),
        h.make_node("Gather", ["table", "ids"], ["g"], axis=0),
        h.make_node("Mul", ["g", "two"], ["z"]),
    ], "g", [h.make_tensor_value_info("x", T.FLOAT, [2, 3]),
             h.make_tensor_value_info("ids", T.INT64, [5])],
        [h.make_tensor_value_info("y", T.FLOAT, [2, 3]),
         h.make_tensor_value_info("z", T.FLOAT, [5, 4])],
        initializer=[nh.from_array(np.float32(1.0).reshape(()), "one"),
                     nh.from_array(np.float32(2.0).reshape(()), "two"),
                     nh.from_array(table, "table")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    return m, table


@pytest.mark.vulkan
def test_vulkan_calls_reuse_mapped_buffers(tmp_path, vulkan):
    """Vulkan calls go through buffers made once (texflow.runtime._IOBuffers): every call must
    see its own inputs and return its own results, as independent arrays."""
    model, table = _two_outputs_with_indices()
    mod = Module(compile_model(tmp_path, model, "vulkan-generic").vmfb, driver="vulkan")
    rng = np.random.default_rng(3)
    kept = []
    for i in range(3):
        x = rng.standard_normal((2, 3)).astype(np.float32)
        ids = rng.integers(0, 10, 5).astype(np.int64)
        y, z = mod(x, ids)
        np.testing.assert_allclose(y, x + 1, rtol=1e-6)
        np.testing.assert_array_equal(z, table[ids] * 2)
        kept.append((y.copy(), y, z))
        y[...] = -7  # the caller's array: must not be the module's buffer
    assert list(mod._io) == ["g"]  # the mapped path ran (the graph is named g)
    # results were written into caller storage (texflow-abi-output-storage's g$into)
    assert mod._io["g"].storage is not None and "g$into" in mod.reflection
    assert mod.function_names == ["g"]
    for want, got, _ in kept[:-1]:
        assert not np.shares_memory(got, kept[-1][1])
    # `g` itself keeps its signature and allocates its own results, for any other caller
    x = rng.standard_normal((2, 3)).astype(np.float32)
    ids = rng.integers(0, 10, 5).astype(np.int64)
    y, z = (mod.to_numpy(r) for r in mod.context.modules.module["g"](x, ids))
    np.testing.assert_allclose(y, x + 1, rtol=1e-6)
    np.testing.assert_array_equal(z, table[ids] * 2)
