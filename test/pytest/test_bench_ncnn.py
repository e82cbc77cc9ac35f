"""ncnn as a texflow-bench peer (issue 20): conversion with pnnx, runs on ncnn's CPU and Vulkan
(lavapipe) backends, the child-process protocol, and the report's peer columns.

The conversion and run tests need torch, pnnx and ncnn (the `bench` extra) and skip without
them; the report tests need nothing."""

import json

import numpy as np
import pytest

from texflow.bench import harness, models, report


def _tiny_spec():
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(8)
            self.fc = torch.nn.Linear(8, 10)

        def forward(self, x):
            y = torch.relu(self.bn(self.conv(x)))
            return self.fc(y.mean(dim=(2, 3)))

    def build():
        g = torch.Generator().manual_seed(5)
        return Tiny(), (torch.randn((1, 3, 16, 16), generator=g),), ["input"]
    return models.ModelSpec("tiny_cnn", "tiny CNN for the ncnn tests", build, default=False)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    pytest.importorskip("ncnn")
    pytest.importorskip("pnnx")
    from texflow.bench import ncnn_peer
    spec = _tiny_spec()
    d = tmp_path_factory.mktemp("ncnn")
    cm = models.CachedModel("tiny_cnn", d)
    paths = ncnn_peer.convert(cm, spec, log=lambda s: None)
    module, args = ncnn_peer.torch_model(spec)
    import torch
    with torch.no_grad():
        ref = module(*args).numpy()
    x = args[0].numpy()
    np.savez(d / "inputs.npz", in0=x)
    np.savez(d / "ref.npz", out0=ref)
    return cm, spec, paths, x, ref


def test_convert_writes_both_precisions_and_caches(converted):
    from texflow.bench import ncnn_peer
    cm, spec, paths, _, _ = converted
    for prec in ncnn_peer.PRECISIONS:
        param, binf = paths[prec]
        assert param.exists() and binf.exists() and binf.stat().st_size > 0
    # fp32 weights are twice the bytes of pnnx's default fp16 ones
    assert paths["fp32"][1].stat().st_size > 1.8 * paths["fp16"][1].stat().st_size
    stamp = json.loads((cm.dir / "ncnn" / "converted.json").read_text())
    assert stamp["inputshape"] == "[1,3,16,16]f32"
    before = paths["fp32"][1].stat().st_mtime_ns
    assert ncnn_peer.convert(cm, spec, log=lambda s: None) == paths  # cached: not converted again
    assert paths["fp32"][1].stat().st_mtime_ns == before


@pytest.mark.parametrize("vulkan", [False, True], ids=["cpu", "vulkan"])
def test_runner_matches_torch(converted, vulkan):
    """fp32 with every fp16/bf16 option off matches torch closely; the fp16 defaults do not
    (so the fp32 check could fail)."""
    import ncnn

    from texflow.bench import ncnn_peer
    if vulkan and ncnn.get_gpu_count() == 0:
        pytest.skip("no Vulkan device for ncnn")
    _, _, paths, x, ref = converted
    r32 = ncnn_peer.NcnnRunner(*paths["fp32"], [x], "fp32", vulkan=vulkan)
    got = ncnn_peer.compare(r32.run(), [ref])
    assert got["max_rel"] < 1e-5
    assert ncnn_peer.compare(r32.run(), [ref]) == got  # the inputs stay valid between runs
    r16 = ncnn_peer.NcnnRunner(*paths["fp16"], [x], "fp16", vulkan=vulkan)
    d16 = ncnn_peer.compare(r16.run(), [ref])["max_rel"]
    assert 1e-6 < d16 < 5e-2


def test_compare_rejects_a_mismatched_output():
    from texflow.bench import ncnn_peer
    with pytest.raises(ncnn_peer.NcnnError, match="3 elements, the reference 4"):
        ncnn_peer.compare([np.zeros(3)], [np.zeros((1, 4))])


def test_peer_child_checks_and_times(converted):
    cm, _, paths, _, ref = converted
    np.savez(cm.dir / "wrong.npz", out0=ref + 0.5)
    with harness.PeerChild(paths["fp32"][0], cm.dir / "inputs.npz", 1, "ncnn",
                           ref_npz=cm.dir / "ref.npz", device="cpu") as peer:
        assert peer.max_abs is not None and peer.max_abs < 1e-4
        assert peer.device_name == "cpu"
        t = harness.time_interleaved({"ncnn": peer}, reps=2, warmup=1)
    assert len(t["ncnn"]) == 2 and all(v > 0 for v in t["ncnn"])
    with harness.PeerChild(paths["fp32"][0], cm.dir / "inputs.npz", 1, "ncnn",
                           ref_npz=cm.dir / "wrong.npz", device="cpu") as peer:
        assert peer.max_abs == pytest.approx(0.5, abs=1e-4)


def test_untraceable_model_is_one_line(tmp_path):
    pytest.importorskip("ncnn")
    pytest.importorskip("pnnx")
    torch = pytest.importorskip("torch")
    from texflow.bench import ncnn_peer

    class Bad(torch.nn.Module):
        def forward(self, x):
            return x.nonexistent_method()

    spec = models.ModelSpec("bad", "untraceable", lambda: (Bad(), (torch.zeros(1, 3),), ["x"]),
                            default=False)
    with pytest.raises(ncnn_peer.NcnnError) as e:
        ncnn_peer.convert(models.CachedModel("bad", tmp_path), spec, log=lambda s: None)
    assert str(e.value).startswith("torch.jit.trace: AttributeError") and "\n" not in str(e.value)


def _run(entries):
    return {"date": "2026-12-03", "machine": {"cpu": "x", "cores": 1, "mem_gib": 1, "os": "y",
                                              "python": "3"},
            "versions": {}, "config": {"command": "c", "models": [], "targets": ["vulkan-nvidia"],
                                       "variants": ["plain", "texflow"], "reps": 3, "warmup": 1,
                                       "threads": 0, "vulkan_reps": 3},
            "results": entries}


def _entry(model, ncnn=None, ncnn16=None):
    e = {"model": model, "target": "vulkan-nvidia", "summary": model,
         "variants": {"plain": {"median_ms": 10.0, "min_ms": 9.0, "times_ms": [10.0, 10.0, 10.0],
                                "max_abs": 1e-6, "max_rel": 1e-7},
                      "texflow": {"median_ms": 5.0, "min_ms": 4.0, "times_ms": [5.0, 5.0, 5.0],
                                  "max_abs": 1e-6, "max_rel": 1e-7}}}
    if ncnn is not None:
        e["ncnn"] = ncnn
    if ncnn16 is not None:
        e["ncnn-fp16"] = ncnn16
    return e


def test_report_shows_ncnn_columns_ratio_and_failures():
    ok = _entry("m1", {"median_ms": 2.5, "min_ms": 2.0, "max_abs": 1e-6, "max_rel": 2e-7},
                {"median_ms": 2.0, "min_ms": 1.5, "max_abs": 1e-3, "max_rel": 2e-4})
    bad = _entry("m2", {"error": "conversion: pnnx failed (exit 1): unsupported op"},
                 {"error": "conversion: pnnx failed (exit 1): unsupported op"})
    md = report.markdown(_run([ok, bad]))
    assert "| model | plain ms | texflow ms | ncnn fp32 ms | ncnn fp16 ms |" in md
    row = next(x for x in md.splitlines() if x.startswith("| m1 |") and "ms" not in x
               and "2.5 (2.0)" in x)
    assert row.rstrip().endswith("| 2.00x |")  # texflow 5.0 / ncnn fp32 2.5: the fp32 peer
    assert "| m2 | 10.0 (9.0) | 5.0 (4.0) | failed | failed |" in md
    assert "- m2, ncnn fp32: conversion: pnnx failed (exit 1): unsupported op" in md
    assert "1.0e-06 / 2.0e-07 | 1.0e-03 / 2.0e-04 |" in md  # the peers' accuracy columns


def test_report_without_peers_has_no_peer_columns():
    md = report.markdown(_run([_entry("m1")]))
    assert "ncnn" not in md and "best fp32 peer" not in md


def test_unknown_layers_are_named(converted, tmp_path):
    from texflow.bench import ncnn_peer
    _, _, paths, x, _ = converted
    text = paths["fp32"][0].read_text().splitlines()
    assert ncnn_peer.unknown_layers(paths["fp32"][0]) == []
    layer = next(i for i, ln in enumerate(text) if ln.startswith("Convolution "))
    text[layer] = "torch.roll" + text[layer][len("Convolution"):]
    bad = tmp_path / "bad.ncnn.param"
    bad.write_text("\n".join(text) + "\n")
    with pytest.raises(ncnn_peer.NcnnError, match=r"^ncnn has no layer torch\.roll \(pnnx"):
        ncnn_peer.NcnnRunner(bad, paths["fp32"][1], [x], "fp32", vulkan=False)
