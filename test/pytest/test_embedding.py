"""texflow passes embedded between IREE's own passes in one PassManager."""

import numpy as np
import onnx
from iree.compiler import passmanager

import onnx_models
import texflow.passes as tp
from texflow.compiler import CompileOptions, Compiler
from texflow.runtime import Module
from texflow import irutil


def test_texflow_passes_between_iree_passes(tmp_path):
    model = onnx_models.transpose_reshape_chain()
    onnx.save(model, tmp_path / "m.onnx")
    # IREE's own start->input pipeline, no texflow phase.
    c = Compiler(CompileOptions(target="llvm-cpu", layout=False, compile_to="input"))
    module = c.load(str(tmp_path / "m.onnx"))
    c.compile_module(module)
    n_before = len(irutil.collect(module, {"linalg.transpose"}))
    assert n_before >= 2

    # A caller's pipeline: an IREE pass, texflow passes, more IREE/MLIR passes.
    pm = passmanager.PassManager("builtin.module", context=c.session.context)
    pm.add("util.func(canonicalize)")
    added = tp.add_passes(pm, "texflow-raise-layout,texflow-eliminate-layout,texflow-lower-layout,texflow-verify-lowered")
    pm.add("util.func(iree-global-opt-propagate-linalg-transpose,canonicalize,cse)")
    assert [p.name for p in added] == ["texflow-raise-layout", "texflow-eliminate-layout", "texflow-lower-layout", "texflow-verify-lowered"]
    pm.run(module)
    assert added[1].statistics  # texflow rewrote the chain inside the caller's pipeline

    # ...and IREE carries on from its input phase to a runnable module.
    c2 = Compiler(CompileOptions(target="llvm-cpu", layout=False, compile_from="input"),
                  session=c.session)
    res = c2.compile_module(module)
    x = onnx_models.random_inputs(model)
    np.testing.assert_allclose(Module(res.vmfb)(*x)[0], onnx_models.ort_reference(model, x)[0],
                               rtol=1e-4, atol=1e-5)


def test_pass_objects_and_options_api():
    p = tp.parse_pass("texflow-compose-transposes")
    assert p.name == "texflow-compose-transposes" and p.summary
    assert p.pipeline_text() == "texflow-compose-transposes"
    import pytest
    from texflow.errors import TexflowError
    with pytest.raises(TexflowError, match="unknown texflow pass"):
        tp.parse_pass("texflow-nothing")
    assert tp.split_pipeline("a,b{x=1 y=2},util.func(c,d)") == ["a", "b{x=1 y=2}", "util.func(c,d)"]
