"""The per-dispatch profile (texflow.bench.dispatch_profile) on lavapipe with the bundled
example: the mechanics (counts, configurations, every benchmark compiled and timed, the report);
lavapipe's times mean nothing, the GPU machine's figures are in benchmarks/gpu/h200/profile/.
(On llvm-cpu IREE 3.14 does not re-compile every dumped convolution benchmark: its stack and
vector-size checks reject them, so the profile is a Vulkan tool.)"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from texflow.bench import dispatch_profile as dp
from texflow.bench.classify import summarize
from texflow.bench import harness

EXAMPLES = Path(__file__).resolve().parents[2] / "python" / "texflow" / "examples"


@dataclasses.dataclass
class _Model:
    name: str = "example"
    onnx_path: Path = EXAMPLES / "example.onnx"

    def inputs(self):
        return [np.load(EXAMPLES / "example_input.npy")]


@pytest.fixture(scope="module")
def profiled(tmp_path_factory, vulkan):
    work = tmp_path_factory.mktemp("profile")
    return {v: dp.profile_variant(_Model(), "vulkan-generic", v, "vulkan", 2, work / v, log=lambda *a: None)
            for v in ("plain", "texflow")}


@pytest.mark.parametrize("variant", ["plain", "texflow"])
def test_every_dispatch_counted_configured_and_timed(profiled, variant):
    p = profiled[variant]
    flow = summarize(harness.flow_text(_Model().onnx_path, "vulkan-generic", harness.VARIANTS[variant]))
    assert p["dispatch_count"] == flow.dispatches
    assert sorted(d["entry"] for d in p["dispatches"]) == sorted({i.entry for i in flow.items})
    for d in p["dispatches"]:
        assert d["pipeline"], d
        # a dispatch is timed, or says why not (IREE does not re-compile every dumped benchmark)
        assert (d["us"] is not None and d["us"] > 0) or d["untimed"], d
    timed = [d for d in p["dispatches"] if d["us"] is not None]
    assert len(timed) > len(p["dispatches"]) / 2
    assert p["untimed"] == [d["entry"] for d in p["dispatches"] if d["us"] is None]
    assert p["kernel_us"] == pytest.approx(sum(d["us"] * d["count"] for d in timed))
    assert p["model_us"] > 0
    # sorted by total time, largest first
    totals = [(d["us"] or 0) * d["count"] for d in p["dispatches"]]
    assert totals == sorted(totals, reverse=True)


def test_report_names_kinds_and_untimed(profiled):
    rows = [{"model": "example", "target": "vulkan-generic", "device": "vulkan",
             "variants": dict(profiled)}]
    d0 = dict(rows[0]["variants"]["plain"]["dispatches"][0], us=None, untimed="did not compile")
    rows[0]["variants"]["plain"] = dict(rows[0]["variants"]["plain"],
                                        dispatches=[d0] + rows[0]["variants"]["plain"]["dispatches"][1:])
    md = dp.markdown(rows, "today")
    assert "## example (vulkan-generic, vulkan)" in md
    assert "untimed" in md and "did not compile" in md
    for k in dp.by_kind(profiled["texflow"]["dispatches"]):
        assert f"| {k['kind']} | {k['pipeline']} |" in md


def test_merge_keeps_one_device_and_rejects_mixed_targets():
    a = "module {\n  util.global private @__device_0 = #hal.device.target<\"x\"> : !hal.device\n  util.func @a() {}\n}"
    b = a.replace("@a()", "@b()")
    m = dp.merge([a, b])
    assert m.count("@__device_0 =") == 1 and "@a()" in m and "@b()" in m
    with pytest.raises(dp.ProfileError, match="different devices"):
        dp.merge([a, b.replace('"x"', '"y"')])
    with pytest.raises(dp.ProfileError, match="no @__device_0"):
        dp.merge(["module {\n util.func @c() {}\n}"])


def test_configuration_reads_pipeline_workgroup_and_tiles():
    text = ('translation_info = #iree_codegen.translation_info<pipeline = #iree_gpu.spirv_pipeline<BaseDistribute> '
            'workgroup_size = [16, 2, 1]>} ... lowering_config = #iree_codegen.lowering_config<tile_sizes = [[1, 2, 16], [1, 1, 1]]>}')
    assert dp.configuration(text) == {"pipeline": "BaseDistribute", "workgroup_size": [16, 2, 1],
                                      "tile_sizes": "[[1, 2, 16], [1, 1, 1]]"}
