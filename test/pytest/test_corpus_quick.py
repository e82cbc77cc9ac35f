"""The corpus (bench/corpus.py) and its runner (bench/corpus_run.py).

Without torch (CI installs none) this checks that the corpus specs are well-formed and runs
the whole corpus mode (forked compiles, ONNX Runtime comparison, paired timing, report, the
findings file) on tiny onnx.helper models.  With torch it also builds the quick subset of real
corpus models and fails if texflow fails where plain IREE compiles, or is off the reference.
"""

import importlib.util
import json

import numpy as np
import pytest

from texflow.bench import corpus, corpus_run, models

HAS_TORCH = importlib.util.find_spec("torch") is not None


def test_corpus_specs_are_well_formed():
    assert len(corpus.CORPUS) >= 40
    assert set(corpus.FAMILY) == set(corpus.CORPUS)
    assert set(corpus.FAMILY.values()) == {"cnn", "vit", "hybrid", "encoder", "decoder",
                                           "diffusion", "audio"}
    for name, spec in corpus.CORPUS.items():
        assert spec.name == name and name.replace("_", "").isalnum()
        assert spec.summary and callable(spec.build)
        assert name not in models.MODELS or corpus.root() != models.cache_dir()
    assert set(corpus.QUICK) <= set(corpus.CORPUS)
    assert corpus.resolve("quick") == corpus.QUICK
    assert set(corpus.HELD_OUT) <= set(corpus.CORPUS) and corpus.resolve("held-out") == corpus.HELD_OUT
    assert set(corpus.resolve("decoder")) >= {"llama", "qwen2", "mistral", "phi", "gpt_neox"}
    assert corpus.resolve("bert,bert,gpt2") == ["bert", "gpt2"]
    with pytest.raises(ValueError, match="unknown corpus model"):
        corpus.resolve("no_such_model")


def _cached(d, name, model, inputs):
    """A CachedModel folder as models.build writes it, for an onnx.helper model."""
    import onnx
    d = d / name
    d.mkdir()
    onnx.save(model, str(d / "model.onnx"))
    np.savez(d / "inputs.npz", **{f"in{i}": x for i, x in enumerate(inputs)})
    ref = models.ort_run(d / "model.onnx", inputs)
    np.savez(d / "ref.npz", **{f"out{i}": r for i, r in enumerate(ref)})
    (d / "meta.json").write_text(json.dumps({"name": name, "summary": name}))
    return models.CachedModel(name, d)


def _tiny_models(d):
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh
    import onnx
    rng = np.random.default_rng(0)
    # SiLU between an NCHW->NHWC transpose pair (texflow cancels it), then a matmul
    g = h.make_graph([
        h.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 3, 1]),
        h.make_node("Sigmoid", ["xt"], ["s"]),
        h.make_node("Mul", ["xt", "s"], ["m"]),
        h.make_node("Transpose", ["m"], ["mt"], perm=[0, 3, 1, 2]),
        h.make_node("Reshape", ["mt", "shape"], ["r"]),
        h.make_node("MatMul", ["r", "W"], ["out"]),
    ], "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 8, 4, 4])],
        [h.make_tensor_value_info("out", T.FLOAT, [1, 8, 16])],
        initializer=[nh.from_array(rng.standard_normal((16, 16)).astype(np.float32), "W"),
                     nh.from_array(np.array([1, 8, 16], np.int64), "shape")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    x = rng.standard_normal((1, 8, 4, 4)).astype(np.float32)
    return {"tiny_silu": _cached(d, "tiny_silu", m, [x])}


def test_corpus_mode_on_tiny_models(tmp_path, capsys):
    cached = _tiny_models(tmp_path)
    out = tmp_path / "out"
    findings = tmp_path / "findings.md"
    rc = corpus_run.main(["--targets", "llvm-cpu,vulkan-valhall", "--reps", "5", "--warmup", "1",
                          "--out", str(out), "--findings", str(findings)], cached=cached)
    run = json.loads((out / "results.json").read_text())
    rep = (out / "report.md").read_text()
    assert {(r["model"], r["target"]) for r in run["results"]} == {
        ("tiny_silu", "llvm-cpu"), ("tiny_silu", "vulkan-valhall")}
    cpu = next(r for r in run["results"] if r["target"] == "llvm-cpu")
    for v in ("plain", "texflow"):
        d = cpu["variants"][v]
        assert "error" not in d, d
        assert d["max_rel"] <= corpus_run.REL_TOL and d["n"] == 5 and d["median_ms"] > 0
    assert cpu["variants"]["texflow"]["ratio_vs_plain"] > 0
    vk = next(r for r in run["results"] if r["target"] == "vulkan-valhall")
    assert "median_ms" not in vk["variants"]["plain"]  # compile only
    assert rc == 0
    assert "## llvm-cpu" in rep and "| tiny_silu |" in rep and "vulkan-valhall plain" in rep
    # --resume: nothing left to do, the report stays
    corpus_run.main(["--targets", "llvm-cpu", "--out", str(out), "--resume"], cached=cached)
    assert len(json.loads((out / "results.json").read_text())["results"]) == 2


def test_corpus_mode_parallel_compiles(tmp_path):
    cached = _tiny_models(tmp_path)
    out = tmp_path / "out"
    findings = tmp_path / "findings.md"
    findings.write_text("# findings\n")
    rc = corpus_run.main(["--targets", "llvm-cpu,vulkan-adreno", "--reps", "5", "--warmup", "1",
                          "--jobs", "2", "--out", str(out), "--findings", str(findings)],
                         cached=cached)
    run = json.loads((out / "results.json").read_text())
    assert len(run["results"]) == 2 and not any(r.get("pending_run") for r in run["results"])
    cpu = next(r for r in run["results"] if r["target"] == "llvm-cpu")
    assert cpu["variants"]["texflow"]["n"] == 5 and cpu["variants"]["plain"]["max_rel"] <= 1e-4
    assert rc == 0 and findings.read_text().startswith("# findings")


def test_forked_compile_reports_errors_in_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    r = corpus_run.compile_forked(bad, "llvm-cpu", True, timeout=120)
    assert "error" in r and "\n" not in r["error"] and "vmfb" not in r


def test_problems_and_findings_lines():
    e = {"model": "m", "target": "llvm-cpu", "onnx": "/x/model.onnx", "variants": {
        "plain": {"vmfb_bytes": 1, "max_rel": 0.0, "max_abs": 0.0, "median_ms": 1.0},
        "texflow": {"error": "boom at loc(x)"},
        "texflow-greedy": {"vmfb_bytes": 1, "max_rel": 1e-2, "max_abs": 1.0, "median_ms": 2.0,
                           "ratio_vs_plain": 2.0}}}
    kinds = [p["kind"] for p in corpus_run.problems(e, 1.03)]
    assert kinds == ["texflow-fails", "inaccurate", "slower"]
    lines = [x for p in corpus_run.problems(e, 1.03) for x in corpus_run.findings_lines(p, e["onnx"])]
    assert any("boom at loc(x)" in x for x in lines)
    assert any("--select-layout=solver=greedy" in x for x in lines)
    assert any("/x/model.onnx" in x for x in lines)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (the bench extra builds the "
                    "corpus models; CI checks the specs and runner on onnx.helper models)")
def test_quick_corpus_models_texflow_compiles_where_plain_does(tmp_path):
    out = tmp_path / "out"
    corpus_run.main(["--models", "quick", "--targets", "llvm-cpu", "--reps", "3", "--warmup", "1",
                     "--out", str(out)])
    run = json.loads((out / "results.json").read_text())
    assert {r["model"] for r in run["results"]} == set(corpus.QUICK)
    for r in run["results"]:
        assert "error" not in r, r  # exported
        v = r["variants"]
        if "error" not in v["plain"]:
            assert "error" not in v["texflow"], (r["model"], v["texflow"]["error"])
            assert v["texflow"]["max_rel"] <= corpus_run.REL_TOL, r["model"]
