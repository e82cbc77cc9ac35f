"""texflow-split-grouped-convs on llvm-cpu: grouped convolutions become one convolution per
group (IREE 3.13's grouped convolution was 5-16x slower; passes/layout/split_grouped_convs.py),
with the reference's numbers."""

import numpy as np
import onnx
import pytest

from onnx_models import grouped_conv_block, ort_reference, random_inputs
from texflow.compiler import CompileOptions, Compiler
from texflow.runtime import Module


def _run(model, tmp_path, **opts):
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    res = Compiler(CompileOptions(target="llvm-cpu", **opts)).compile_file(str(path))
    assert not res.fallbacks, res.fallbacks
    xs = random_inputs(model)
    got = Module(res.vmfb, driver="local-task")(*xs)[0]
    return res, got, ort_reference(model, xs)[0]


@pytest.mark.parametrize("groups,groups2", [(4, 2), (2, 8)])
def test_grouped_convs_are_split_and_match_onnx_runtime(tmp_path, groups, groups2):
    res, got, want = _run(grouped_conv_block(groups=groups, groups2=groups2), tmp_path)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert res.statistics["texflow-split-grouped-convs"] == {
        "grouped convolutions split": 2, "convolutions made": groups + groups2}


def test_more_groups_than_the_cap_are_left(tmp_path):
    """Above max-groups (here through a user pipeline with max-groups=2) a grouped convolution
    stays as it is, and the model still matches."""
    from texflow.passes.pipelines import default_layout_pipeline
    pipe = default_layout_pipeline("llvm-cpu").replace("texflow-split-grouped-convs",
                                                       "texflow-split-grouped-convs{max-groups=2}")
    assert "max-groups=2" in pipe
    res, got, want = _run(grouped_conv_block(groups=4, groups2=2), tmp_path, layout_pipeline=pipe)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert res.statistics["texflow-split-grouped-convs"] == {
        "grouped convolutions left (more than 2 groups)": 1, "grouped convolutions split": 1,
        "convolutions made": 2}


def test_not_in_the_vulkan_pipeline():
    """Unmeasured on GPUs (one dispatch per group): the Vulkan pipelines do not split."""
    from texflow.passes.pipelines import default_layout_pipeline
    assert "texflow-split-grouped-convs" in default_layout_pipeline("llvm-cpu")
    for t in ("vulkan-nvidia", "vulkan-valhall", "vulkan-adreno"):
        assert "texflow-split-grouped-convs" not in default_layout_pipeline(t)
