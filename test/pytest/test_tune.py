"""texflow-compile --tune: measured choice among the candidate compiles, cached (issue 16, item 4).

No test asserts which candidate wins or any time: only that the choice is made, cached, reused
without timing, and that the module is the one a direct compile with its options gives."""

import dataclasses
import json
import os
import subprocess
import sys

import onnx
import pytest

import onnx_models
from texflow import tune
from texflow.cli import compile as cli_compile
from texflow.compiler import CompileOptions
from texflow.errors import TexflowError

# the candidates' options as texflow-compile flags
FLAGS = {"plain": ["--no-layout"], "texflow": [], "no-pack-matmul": ["--no-pack-matmul"],
         "no-select-layout": ["--no-select-layout"],
         "elimination-only": ["--no-select-layout", "--no-pack-matmul"]}


@pytest.fixture
def model(tmp_path):
    onnx.save(onnx_models.dense_mlp(S=32, D=64, F=64), tmp_path / "m.onnx")
    return tmp_path / "m.onnx"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("TEXFLOW_CACHE", str(d))
    return d / "tune"


def _compile(argv, capsys):
    rc = cli_compile.main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def test_candidates_cover_the_options():
    cpu = [n for n, _ in tune.candidates(CompileOptions())]
    assert cpu == list(FLAGS)
    assert set(FLAGS) == {n for n, _ in tune.CANDIDATES}
    f16 = [n for n, _ in tune.candidates(CompileOptions(precision="f16"))]
    assert "plain" not in f16 and "texflow" in f16  # plain IREE has no f16 mode
    gpu = [n for n, _ in tune.candidates(CompileOptions(target="vulkan-generic"))]
    assert gpu == ["plain", "texflow", "no-select-layout"]  # packing is llvm-cpu only


def test_key_follows_every_setting(model, tmp_path):
    s = tune.TuneSettings()
    base = tune.key_fields(str(model), CompileOptions(), s)
    assert base["model_sha256"] and base["host_cpu"] and base["device"] == "local-task"
    other = tmp_path / "other.onnx"
    onnx.save(onnx_models.dense_mlp(seed=1, S=32, D=64, F=64), other)
    variants = [tune.key_fields(str(other), CompileOptions(), s),
                tune.key_fields(str(model), CompileOptions(precision="f16"), s),
                tune.key_fields(str(model), CompileOptions(iree_flags=["--iree-opt-level=O2"]), s),
                tune.key_fields(str(model), CompileOptions(select_options="solver=greedy"), s),
                tune.key_fields(str(model), CompileOptions(target_cpu="haswell"), s),
                tune.key_fields(str(model), CompileOptions(), tune.TuneSettings(threads=2))]
    keys = {tune.cache_key(k) for k in variants + [base]}
    assert len(keys) == len(variants) + 1
    assert tune.cache_key(base) == tune.cache_key(tune.key_fields(str(model), CompileOptions(), s))


def test_tune_measures_caches_and_reuses(model, cache, tmp_path, capsys, monkeypatch):
    out = tmp_path / "t.vmfb"
    rc, err = _compile([model, "--tune", "--tune-rounds=2", "-o", out], capsys)
    assert rc == 0 and out.exists(), err
    lines = [ln for ln in err.splitlines() if ln.startswith("texflow-compile: tune: ")]
    assert len(lines) == 1 and all(n in lines[0] for n in FLAGS), err
    files = list(cache.glob("*.json"))
    assert len(files) == 1
    rec = json.loads(files[0].read_text())
    assert rec["candidate"] in FLAGS and set(rec["medians_ms"]) == set(FLAGS)
    assert all(v > 0 for v in rec["medians_ms"].values())
    assert rec["key"]["model_sha256"] and rec["device"] == "local-task" and rec["threads"] == 1
    assert rec["date"] and rec["host"] and rec["rounds"] == 2
    mtime = files[0].stat().st_mtime_ns

    # a second compile reads the decision and times nothing
    def no_timing(*a, **k):
        raise AssertionError("timed although the decision is cached")
    monkeypatch.setattr(tune, "measure", no_timing)
    rc, err = _compile([model, "--tune", "-o", tmp_path / "t2.vmfb"], capsys)
    assert rc == 0, err
    assert f"-> {rec['candidate']} (cached" in err
    assert files[0].stat().st_mtime_ns == mtime
    # --retune measures again
    with pytest.raises(AssertionError, match="timed although"):
        cli_compile.main([str(model), "--retune", "-o", str(tmp_path / "t3.vmfb")])


# IREE 3.13's debug information in the embedded ELF holds a value that follows heap addresses
# (two plain compiles of one model differ); without it, compiles are byte-identical
NO_DEBUG = "--iree-llvmcpu-debug-symbols=false"


def _cli(*args):
    p = subprocess.run([sys.executable, "-m", "texflow.cli.compile", *map(str, args)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stderr


@pytest.mark.parametrize("choice", ["plain", "no-pack-matmul"])
def test_tuned_module_equals_a_direct_compile_with_its_options(model, cache, tmp_path, choice):
    """The choice (here written into the cache, as a measurement would) is compiled normally:
    the module is byte-identical to compiling with that candidate's flags."""
    opts = CompileOptions(iree_flags=[NO_DEBUG])
    fields = tune.key_fields(str(model), opts, tune.TuneSettings())
    cache.mkdir(parents=True)
    (cache / (tune.cache_key(fields) + ".json")).write_text(json.dumps({
        "key": fields, "candidate": choice, "options": dict(tune.CANDIDATES)[choice],
        "medians_ms": {n: 1.0 for n in FLAGS}, "rounds": 1, "threads": 1, "device": "local-task",
        "host": "test", "date": "2026-12-02T00:00:00Z"}))
    err = _cli(model, "--tune", NO_DEBUG, "-o", tmp_path / "tuned.vmfb")
    assert f"-> {choice} (cached" in err
    _cli(model, *FLAGS[choice], NO_DEBUG, "-o", tmp_path / "direct.vmfb")
    assert (tmp_path / "tuned.vmfb").read_bytes() == (tmp_path / "direct.vmfb").read_bytes()


def test_tune_on_vulkan(vulkan, cache, tmp_path, capsys):
    """The device path (lavapipe here: its times mean nothing, only that the path works)."""
    onnx.save(onnx_models.conv_relu(), tmp_path / "c.onnx")
    out = tmp_path / "v.vmfb"
    rc, err = _compile([tmp_path / "c.onnx", "--target=vulkan-generic", "--tune",
                        "--tune-device=vulkan", "--tune-rounds=1", "-o", out], capsys)
    assert rc == 0 and out.exists(), err
    rec = json.loads(next(cache.glob("*.json")).read_text())
    assert rec["device"] == "vulkan" and rec["threads"] == 1
    assert set(rec["medians_ms"]) == {"plain", "texflow", "no-select-layout"}


@pytest.mark.parametrize("args,pattern", [
    (["--tune", "--no-layout"], "drop --no-layout"),
    (["--tune", "--no-pack-matmul"], "chooses --no-select-layout and --no-pack-matmul"),
    (["--tune", "--layout-pipeline=texflow-raise-layout"], "drop --layout-pipeline"),
    (["--tune", "--memory-budget=1MiB"], "--memory-budget"),
    (["--tune", "--compile-to=input"], "whole compile"),
    (["--tune", "--tune-device=bogus"], "--tune-device must be one of"),
    (["--tune", "--tune-device=vulkan"], "cannot run modules for --target=llvm-cpu"),
    (["--tune", "--tune-threads=0"], "--tune-threads must be at least 1"),
    (["--tune", "--tune-rounds=0"], "--tune-rounds must be at least 1"),
    (["--tune-rounds=3"], "need --tune"),
    (["--tune", "--target-triple=aarch64-linux-android"], "cannot run modules for --target-triple"),
])
def test_bad_tune_flags_are_one_line_errors(model, cache, tmp_path, args, pattern):
    out = tmp_path / "bad.vmfb"
    p = subprocess.run([sys.executable, "-m", "texflow.cli.compile", str(model), *args, "-o", str(out)],
                       capture_output=True, text=True)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode != 0 and len(lines) == 1, p.stderr
    assert lines[0].startswith("texflow-compile: error: ") and pattern in lines[0], p.stderr
    assert not out.exists() and not cache.exists()


def test_tune_api_checks_options(model):
    with pytest.raises(TexflowError, match="drop --no-layout"):
        tune.tune(str(model), dataclasses.replace(CompileOptions(), layout=False))
