"""Outputs of a weight-streaming plan: the .irpa weight archive and the plan chart."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import onnx
import pytest
from iree.compiler import passmanager
from onnx import TensorProto, helper, numpy_helper

import texflow.passes.wstream.plan  # noqa: F401  (registers the pass)
from texflow.compiler import CompileOptions, Compiler
from texflow.errors import TexflowError
from texflow.passes import add_passes
from texflow.session import CompilerSession
from texflow.streaming.archive import (Weight, read_weight_archive, weights_from_module,
                                       write_weight_archive)


def mlp_model(seed=0, D=32, H=64, O=16):
    """MatMul+Add+Relu, MatMul+Add: four weights, random and non-zero."""
    rng = np.random.default_rng(seed)

    def w(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"]),
             helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("Relu", ["a1"], ["r1"]),
             helper.make_node("MatMul", ["r1", "w2"], ["m2"]),
             helper.make_node("Add", ["m2", "b2"], ["y"])]
    g = helper.make_graph(nodes, "mlp",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, D])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, O])],
                          [w("w1", D, H), w("b1", H), w("w2", H, O), w("b2", O)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    d = tmp_path_factory.mktemp("wstream_outputs")
    model = mlp_model()
    path = d / "mlp.onnx"
    onnx.save(model, path)
    man_path = d / "plan.json"
    c = Compiler(CompileOptions(memory_budget="15KiB", plan_time_limit=5.0,
                                plan_manifest=str(man_path), compile_to="texflow-wstream"))
    module = c.load(str(path))
    c.compile_module(module)
    manifest = json.loads(man_path.read_text())
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return d, module, manifest, inits


def test_archive_roundtrip_matches_onnx(planned, tmp_path):
    _, module, manifest, inits = planned
    # the budget forces streaming: some group is not preloaded
    assert any(not g["preload"] for g in manifest["groups"])
    out = tmp_path / "m.irpa"
    mapping = write_weight_archive(module, manifest, str(out))
    assert out.is_file()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    back = read_weight_archive(str(out))
    assert list(back) == list(mapping)
    # one entry per planned weight, keyed per group, in group order
    n = sum(len(g["weights"]) for g in manifest["groups"])
    assert len(back) == n
    assert [m["group"] for m in mapping.values()] == sorted(m["group"] for m in mapping.values())
    for g in manifest["groups"]:
        keys = [k for k, m in mapping.items() if m["group"] == g["id"]]
        assert sum(mapping[k]["bytes"] for k in keys) == g["bytes"]
    # every ONNX initializer is in the archive exactly once, with its exact values: whole, or
    # (a weight over an eighth of the budget, split with its matmul) as column slices in order
    arrays = list(back.items())
    for name, want in inits.items():
        hits = [k for k, a in arrays if a.shape == want.shape and np.array_equal(a, want)]
        if not hits:
            for i in range(len(arrays)):
                parts, width = [], 0
                for k, a in arrays[i:]:
                    if a.shape[:-1] != want.shape[:-1] or width + a.shape[-1] > want.shape[-1]:
                        break
                    parts.append(k)
                    width += a.shape[-1]
                    if width == want.shape[-1]:
                        break
                if width == want.shape[-1] and len(parts) > 1 and np.array_equal(
                        np.concatenate([back[k] for k in parts], axis=-1), want):
                    hits = [parts[0]]
                    break
        assert len(hits) == 1, (name, hits)
        assert mapping[hits[0]]["dtype"] == "float32"
    # deterministic: same module, same keys and checksums
    again = write_weight_archive(weights_from_module(module, manifest), manifest,
                                 str(tmp_path / "again.irpa"))
    assert again == mapping
    assert (tmp_path / "again.irpa").read_bytes() == out.read_bytes()


def test_archive_is_iree_readable(planned, tmp_path):
    import iree.runtime as rt
    _, module, manifest, _ = planned
    out = tmp_path / "m.irpa"
    mapping = write_weight_archive(module, manifest, str(out))
    idx = rt.ParameterIndex()
    idx.load(str(out))
    got = {idx[i].key: rt.parameter_index_entry_as_numpy_ndarray(idx[i]) for i in range(len(idx))}
    assert set(got) == set(mapping)
    for k, a in read_weight_archive(str(out)).items():
        np.testing.assert_array_equal(got[k], a)


def test_archive_missing_and_corrupt(planned, tmp_path):
    _, module, manifest, _ = planned
    with pytest.raises(TexflowError, match="no such parameter archive"):
        read_weight_archive(str(tmp_path / "nope.irpa"))
    out = tmp_path / "m.irpa"
    mapping = write_weight_archive(module, manifest, str(out))
    data = bytearray(out.read_bytes())
    # flip a byte inside one entry's data: the checksum catches it
    key = next(iter(mapping))
    pos = bytes(data).find(read_weight_archive(str(out))[key].tobytes())
    assert pos > 0
    flipped = bytearray(data)
    flipped[pos + 5] ^= 0x40
    (tmp_path / "flip.irpa").write_bytes(bytes(flipped))
    with pytest.raises(TexflowError, match=re.escape(f"'{key}' fails its sha256")) as e:
        read_weight_archive(str(tmp_path / "flip.irpa"))
    assert "\n" not in str(e.value)
    for bad in (bytes(data[: len(data) // 2]), b"not an archive at all", b""):
        (tmp_path / "bad.irpa").write_bytes(bad)
        with pytest.raises(TexflowError) as e:
            read_weight_archive(str(tmp_path / "bad.irpa"))
        assert "\n" not in str(e.value)
    assert len(mapping) == 4


def test_archive_write_errors(planned, tmp_path):
    _, module, manifest, _ = planned
    with pytest.raises(TexflowError, match="output folder does not exist"):
        write_weight_archive(module, manifest, str(tmp_path / "no" / "m.irpa"))
    with pytest.raises(TexflowError, match="manifest"):
        write_weight_archive(module, {"format": "other"}, str(tmp_path / "m.irpa"))
    wrong = dict(manifest, groups=manifest["groups"][:-1])
    with pytest.raises(TexflowError, match="groups do not match"):
        write_weight_archive(module, wrong, str(tmp_path / "m.irpa"))
    assert not (tmp_path / "m.irpa").exists()


RESOURCE_MLIR = """
util.func public @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %cst = arith.constant 0.000000e+00 : f32
  %w = arith.constant dense_resource<blob_w> : tensor<8x8xf32>
  %h = arith.constant dense<[1.5, -2.0, 0.25, 3.0, 1.0, 2.0, 4.0, -8.0]> : tensor<8xbf16>
  %e = tensor.empty() : tensor<4x8xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32>
  %m = linalg.matmul ins(%x, %w : tensor<4x8xf32>, tensor<8x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%m, %h : tensor<4x8xf32>, tensor<8xbf16>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%a: f32, %b: bf16, %o: f32):
    %bf = arith.extf %b : bf16 to f32
    %s = arith.addf %a, %bf : f32
    linalg.yield %s : f32
  } -> tensor<4x8xf32>
  util.return %r : tensor<4x8xf32>
}
"""


def test_archive_dense_resource_and_bf16(tmp_path):
    w = np.arange(64, dtype=np.float32).reshape(8, 8) / 7
    blob = "0x04000000" + w.tobytes().hex().upper()
    text = RESOURCE_MLIR + ('{-# dialect_resources: { builtin: { blob_w: "%s" } } #-}\n' % blob)
    s = CompilerSession()
    m = s.parse(text)
    man = tmp_path / "plan.json"
    pm = passmanager.PassManager("builtin.module", context=s.context)
    add_passes(pm, f"texflow-wstream-plan{{memory-budget=1MiB time-limit=2.0 manifest={man}}}")
    pm.run(m.operation)
    manifest = json.loads(man.read_text())
    ws = weights_from_module(m, manifest)
    assert all(isinstance(x, Weight) for x in ws)
    by_type = {x.element_type: x for x in ws}
    np.testing.assert_array_equal(by_type["f32"].array, w)
    bits = by_type["bf16"].array
    assert bits.dtype == np.uint16
    f = (bits.astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(f, [1.5, -2.0, 0.25, 3.0, 1.0, 2.0, 4.0, -8.0])
    mapping = write_weight_archive(ws, manifest, str(tmp_path / "r.irpa"))
    assert {v["element_type"] for v in mapping.values()} == {"f32", "bf16"}
    back = read_weight_archive(str(tmp_path / "r.irpa"))
    for x in ws:
        np.testing.assert_array_equal(back[x.key], x.array)


def test_weights_need_the_plan(planned, tmp_path):
    """After texflow-finalize the wstream ops are gone: a clear error."""
    d, _, manifest, _ = planned
    c = Compiler(CompileOptions(memory_budget="15KiB", plan_time_limit=5.0,
                                compile_to="texflow-finalize", stream_segments=False))
    module = c.load(str(d / "mlp.onnx"))
    c.compile_module(module)
    with pytest.raises(TexflowError, match="no wstream.wait"):
        weights_from_module(module, manifest)


def test_plan_chart(planned, tmp_path):
    pytest.importorskip("matplotlib")
    from texflow.streaming.chart import plan_chart, timeline
    _, _, manifest, _ = planned
    out = tmp_path / "plan.png"
    plan_chart(manifest, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    t = timeline(manifest)
    assert t["makespan_s"] == pytest.approx(manifest["summary"]["makespan_s"])
    assert len(t["computes"]) == len(manifest["stages"])
    plan_chart([manifest], str(tmp_path / "plan.svg"))
    assert b"<svg" in (tmp_path / "plan.svg").read_bytes()[:2000]
    with pytest.raises(TexflowError, match="must be .png"):
        plan_chart(manifest, str(tmp_path / "plan.txt"))
    with pytest.raises(TexflowError, match="manifest"):
        plan_chart({"format": "x"}, str(out))
    with pytest.raises(TexflowError, match="output folder"):
        plan_chart(manifest, str(tmp_path / "no" / "plan.png"))


def test_plan_chart_without_matplotlib(planned, tmp_path, monkeypatch):
    import builtins
    from texflow.streaming import chart
    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(TexflowError, match="needs matplotlib"):
        chart.plan_chart(planned[2], str(tmp_path / "p.png"))
    assert not (tmp_path / "p.png").exists()


def test_chart_timeline_with_stalls(tmp_path):
    """The lit plan at 3840 B stalls before stage 1: the timeline reproduces the makespan."""
    pytest.importorskip("matplotlib")
    from pathlib import Path
    from texflow.streaming.chart import plan_chart, timeline
    lit = Path(__file__).resolve().parents[1] / "lit" / "wstream" / "plan.mlir"
    text = "\n".join(l for l in lit.read_text().splitlines() if not l.startswith("//"))
    s = CompilerSession()
    m = s.parse(text)
    man = tmp_path / "plan.json"
    pm = passmanager.PassManager("builtin.module", context=s.context)
    add_passes(pm, f"texflow-wstream-plan{{memory-budget=3840 chunk-bytes=256 time-limit=5.0 "
                   f"manifest={man}}}")
    pm.run(m.operation)
    manifest = json.loads(man.read_text())
    t = timeline(manifest)
    assert t["stalls"] and t["makespan_s"] == pytest.approx(manifest["summary"]["makespan_s"])
    plan_chart(manifest, str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 1000
    mapping = write_weight_archive(m, manifest, str(tmp_path / "w.irpa"))
    back = read_weight_archive(str(tmp_path / "w.irpa"))
    assert [a.shape for a in back.values()] == [(16, 32), (32,), (32, 8)]
    assert float(back[next(iter(mapping))].ravel()[0]) == 0.5
