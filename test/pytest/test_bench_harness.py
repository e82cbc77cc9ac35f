"""The benchmark harness on tiny onnx.helper models (fast), and one real model (slow)."""

import json

import numpy as np
import pytest

from texflow.bench import harness, models, report


def _tiny_model(path):
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh
    rng = np.random.default_rng(0)
    w = nh.from_array(rng.standard_normal((16, 32)).astype(np.float32), "W")
    g = h.make_graph([
        h.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
        h.make_node("MatMul", ["xt", "W"], ["y"]),
        h.make_node("Relu", ["y"], ["out"]),
    ], "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 16, 8])],
        [h.make_tensor_value_info("out", T.FLOAT, [1, 8, 32])], initializer=[w])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path, nh.to_array(w)


def _numpy_reference(x, w):
    """What the tiny model computes, without any runtime: relu(transpose(x) @ W)."""
    return np.maximum(np.transpose(x, (0, 2, 1)).astype(np.float64) @ w, 0).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    p, w = _tiny_model(d / "tiny.onnx")
    x = np.random.default_rng(1).standard_normal((1, 16, 8)).astype(np.float32)
    np.savez(d / "inputs.npz", in0=x)
    return p, x, _numpy_reference(x, w)


def test_time_interleaved_rotates_order():
    calls = []
    fns = {n: (lambda n=n: calls.append(n)) for n in "abc"}
    t = harness.time_interleaved(fns, reps=3, warmup=1)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(v) == 3 for v in t.values())


def test_stats_and_ratio():
    s = harness.stats([0.001, 0.003, 0.002])
    assert s["median_ms"] == pytest.approx(2.0) and s["n"] == 3 and s["min_ms"] == pytest.approx(1.0)
    assert harness.paired_ratio([2, 4, 6], [1, 2, 2]) == pytest.approx(2.0)
    assert harness.paired_ratio([], []) is None


def test_accuracy():
    a = [np.array([1.0, 2.0]), np.array([[3.0]])]
    assert harness.accuracy(a, a) == {"max_abs": 0.0, "max_rel": 0.0}
    r = harness.accuracy([np.array([1.0, 2.5])], [np.array([1.0, 2.0])])
    assert r["max_abs"] == pytest.approx(0.5) and r["max_rel"] == pytest.approx(0.25)
    assert "error" in harness.accuracy([np.zeros(3)], [np.zeros(2)])


def test_compile_and_run_variants(tiny):
    path, x, want = tiny
    ref = [want]  # numpy, not a runtime under test
    assert (want > 0).any() and (want == 0).any()  # the Relu is exercised both ways
    vmfbs, flows = {}, {}
    for name in ("plain", "texflow"):
        r = harness.compile_variant(path, "llvm-cpu", harness.VARIANTS[name])
        vmfbs[name] = r["vmfb"]
        flows[name] = r["flow"]
        assert r["compile_s"] > 0 and r["vmfb_bytes"] == len(r["vmfb"])
    assert flows["plain"]["dispatches"] >= 1
    assert flows["plain"]["by_kind"].get("transpose") == 1  # the Transpose feeding the MatMul
    out = harness.run_modules(vmfbs, "local-task", [x], ref, reps=3, warmup=1)
    for name in ("plain", "texflow"):
        assert out[name]["max_abs"] < 1e-4, out[name]
        assert out[name]["n"] == 3 and len(out[name]["times_ms"]) == 3
    assert out["texflow"]["ratio_vs_plain"] > 0


def test_cli_equals_in_process_plain(tiny):
    path, _, _ = tiny
    cli = harness.iree_compile_cli_summary(path, "llvm-cpu")
    plain = harness.flow_summary(path, "llvm-cpu", harness.VARIANTS["plain"])
    assert (cli["dispatches"], cli["data_movement"]) == (plain["dispatches"], plain["data_movement"])


def test_ort_child_process(tiny):
    path, _, _ = tiny
    r = harness.ort_time(path, path.parent / "inputs.npz", reps=3, threads=1, warmup=1)
    assert r["n"] == 3 and r["median_ms"] > 0, r


def test_run_reports_compile_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    from texflow.errors import TexflowError
    with pytest.raises(TexflowError, match=r"malformed ONNX file .*bad\.onnx"):
        harness.compile_variant(bad, "llvm-cpu", harness.VARIANTS["plain"])


def _fake_run():
    flow = {"dispatches": 10, "data_movement": 3, "executables": 8, "data_movement_executables": 2,
            "by_kind": {"transpose": 3}, "feeding": {"transpose -> batch_matmul": 3},
            "transfer_ops": {}, "data_movement_dispatches": []}
    v = lambda ms: {"flow": flow, "compile_s": 1.0, "median_ms": ms, "max_abs": 1e-6,  # noqa: E731
                    "max_rel": 1e-7, "ratio_vs_plain": 0.5}
    return {"date": "2026-11-22T00:00:00", "machine": report.machine(), "versions": {"x": "1"},
            "config": {"command": "python -m texflow.bench", "models": ["m"], "targets": ["llvm-cpu"],
                       "variants": ["plain", "texflow"], "reps": 3, "warmup": 1, "threads": 2},
            "results": [{"model": "m", "target": "llvm-cpu", "summary": "a model", "parameters": 1e6,
                         "variants": {"plain": v(2.0), "texflow": v(1.0)},
                         "ort": {"median_ms": 1.0},
                         "cli_check": {"dispatches": 10, "data_movement": 3, "equal": True}},
                        {"model": "broken", "target": "llvm-cpu", "error": "export failed"}]}


def test_report_files(tmp_path):
    paths = report.write(_fake_run(), tmp_path)
    md = paths["md"].read_text()
    assert "| m | 1.0 | 10 (3) |" in md
    assert "transpose -> batch_matmul ×3" in md
    assert "broken / llvm-cpu / build: export failed" in md
    assert json.loads(paths["json"].read_text())["results"][0]["model"] == "m"
    # matplotlib is in the test extra, so the chart is always written
    assert "png" in paths, paths
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["png"].stat().st_size > 1000


def test_resolve_models():
    assert models.resolve("default") == models.DEFAULT_MODELS
    assert models.resolve("vit, gpt2") == ["vit", "gpt2"]
    assert "resnet50" in models.resolve("all")
    with pytest.raises(ValueError, match=r"unknown model\(s\) nope \(known: .*vit"):
        models.resolve("nope")


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXFLOW_CACHE", str(tmp_path))
    assert models.cache_dir() == tmp_path / "models"


@pytest.mark.slow
def test_real_model_end_to_end(tmp_path):
    """Builds (or reuses the cached) MobileNetV2 and runs the whole CLI on it (--run-slow)."""
    pytest.importorskip("torch")
    from texflow.bench.__main__ import main
    rc = main(["--models", "mobilenetv2", "--reps", "2", "--warmup", "1", "--threads", "2",
               "--out", str(tmp_path)])
    assert rc == 0
    (run_dir,) = tmp_path.iterdir()
    res = json.loads((run_dir / "results.json").read_text())["results"][0]
    assert res["variants"]["plain"]["max_rel"] < 1e-3
    assert res["variants"]["plain"]["flow"]["dispatches"] > 10


def test_ort_child_interleaved(tiny):
    path, x, _ = tiny
    with harness.PeerChild(path, path.parent / "inputs.npz", threads=1) as ort:
        t = harness.time_interleaved({"ort": ort, "noop": lambda: None}, reps=3, warmup=1)
    assert len(t["ort"]) == 3 and all(isinstance(v, float) and v > 0 for v in t["ort"])


@pytest.mark.parametrize("runtime", ["ort", "mnn"])
def test_peer_children_check_and_time(tiny, runtime):
    """Each peer runtime converts (MNN) and runs the model in its own process, reports its
    output's difference from a numpy reference, and takes its turn in interleaved timing.
    A reference off by 0.5 everywhere must be reported as off by 0.5 (the check can fail)."""
    if runtime == "mnn":
        pytest.importorskip("MNN")
    path, x, want = tiny
    np.savez(path.parent / f"ref-{runtime}.npz", out0=want)
    np.savez(path.parent / f"wrong-{runtime}.npz", out0=want + 0.5)
    with harness.PeerChild(path, path.parent / "inputs.npz", 1, runtime,
                           ref_npz=path.parent / f"ref-{runtime}.npz") as peer:
        assert peer.max_abs is not None and peer.max_abs < 1e-4
        t = harness.time_interleaved({runtime: peer}, reps=2, warmup=1)
    assert len(t[runtime]) == 2 and all(v > 0 for v in t[runtime])
    with harness.PeerChild(path, path.parent / "inputs.npz", 1, runtime,
                           ref_npz=path.parent / f"wrong-{runtime}.npz") as peer:
        assert peer.max_abs == pytest.approx(0.5, abs=1e-4)


def test_param_archive_loader(tmp_path):
    """The GPU runner's path (weights in a parameter archive shared by the variants), on the CPU."""
    import subprocess

    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    from texflow.bench import gpu
    rng = np.random.default_rng(2)
    w = rng.standard_normal((64, 128)).astype(np.float32)  # 8192 elements: externalized
    g = h.make_graph([h.make_node("MatMul", ["x", "W"], ["out"])], "g",
                     [h.make_tensor_value_info("x", T.FLOAT, [4, 64])],
                     [h.make_tensor_value_info("out", T.FLOAT, [4, 128])],
                     initializer=[nh.from_array(w, "W")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "p.onnx"))
    subprocess.run(["iree-import-onnx", str(tmp_path / "p.onnx"), "--externalize-params",
                    "--num-elements-threshold=4096", "--save-params-to", str(tmp_path / "p.irpa"),
                    "-o", str(tmp_path / "p.mlir")], check=True, capture_output=True)
    assert (tmp_path / "p.irpa").stat().st_size >= w.nbytes
    vmfbs = {v: harness.compile_variant(tmp_path / "p.mlir", "llvm-cpu", harness.VARIANTS[v],
                                        count_dispatches=False)["vmfb"] for v in ("plain", "texflow")}
    assert all(len(b) < w.nbytes for b in vmfbs.values())  # the weights are not in the modules
    import iree.runtime as rt
    config = rt.Config("local-task")
    x = rng.standard_normal((4, 64)).astype(np.float32)
    out = harness.run_modules(vmfbs, "local-task", [x], [x @ w], reps=2, warmup=1,
                              loader=gpu.param_loader(config, tmp_path / "p.irpa", "local-task"))
    assert out["plain"]["max_rel"] < 1e-5 and out["texflow"]["max_rel"] < 1e-5
    assert "ratio_vs_plain" in out["texflow"]
