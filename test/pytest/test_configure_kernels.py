"""texflow-configure-kernels and its kernel tables (texflow.kernelconfig), and the tuning
command's choices (texflow.bench.tune_kernels).

The configurations matter on the GPU (timed on the device, benchmarks/gpu/h200/kernels/); here
every configuration texflow ships is checked for numbers on lavapipe, since a compilation_info
changes the generated code."""

import json
import os
import subprocess

import numpy as np
import pytest

from onnx_models import ort_reference, pointwise_block, random_inputs
from texflow import kernelconfig
from texflow.errors import TexflowError
from texflow.kernelconfig.table import Config, Entry, KernelTable

TEST_TABLE = os.path.join(os.path.dirname(__file__), "..", "lit", "Inputs", "kernels-test.json")
CFG = Config("BaseVectorize", (1, 8, 2), ((2, 16, 4), (1, 2, 4), (0, 0, 0, 1, 4)))


def _table(*dims):
    return KernelTable("vulkan-nvidia", "dev", "2026-12-07", "measured",
                       {"conv1x1_nc4hw4": [Entry(tuple(d), CFG, {}) for d in dims]})


def test_lookup_exact_nearest_and_no_fit():
    t = _table((8, 64, 4, 4, 4), (64, 3136, 4, 16, 4))
    assert t.lookup("conv1x1_nc4hw4", (8, 64, 4, 4, 4)) == (CFG, "tuned")
    # not tuned: the nearest tuned shape (log distance) whose tiles divide it
    assert t.lookup("conv1x1_nc4hw4", (16, 128, 4, 8, 4)) == (CFG, "nearest 8x64x4x4x4")
    assert t.lookup("conv1x1_nc4hw4", (64, 1568, 4, 16, 4)) == (CFG, "nearest 64x3136x4x16x4")
    # 25 pixels: no tuned tile divides them; an odd filter-block count neither
    assert t.lookup("conv1x1_nc4hw4", (8, 25, 4, 4, 4)) is None
    assert t.lookup("conv1x1_nc4hw4", (7, 64, 4, 4, 4)) is None
    assert t.lookup("other", (8, 64, 4, 4, 4)) is None


def test_fits_checks_every_level():
    assert CFG.fits((8, 64, 4, 4, 4))
    red2 = Config("BaseVectorize", (1, 8, 2), ((2, 16, 4), (1, 2, 4), (0, 0, 0, 2, 4)))
    assert red2.fits((8, 64, 4, 4, 4)) and not red2.fits((8, 64, 4, 3, 4))  # the reduction tile
    bad = Config("BaseVectorize", (1, 8, 2), ((2, 16, 4), (4, 2, 4)))  # thread tile > workgroup tile
    assert not bad.fits((8, 64, 4, 4, 4))


def test_attr_text_parses_as_iree_compilation_info():
    from iree.compiler import ir
    with ir.Context() as ctx:
        ctx.load_all_available_dialects()
        a = ir.Attribute.parse(CFG.attr_text())
        assert "BaseVectorize" in str(a) and "[2, 16, 4]" in str(a)


def test_table_round_trips_and_bad_tables_fail_in_one_line(tmp_path):
    t = _table((8, 64, 4, 4, 4))
    p = tmp_path / "t.json"
    p.write_text(json.dumps(t.to_json()))
    assert kernelconfig.load("vulkan-nvidia", str(p)).to_json() == t.to_json()
    for bad in ('{"target": 1}', "not json",
                json.dumps({**t.to_json(), "classes": {"conv1x1_nc4hw4": [
                    {"dims": [8, 64, 4], "config": CFG.to_json()}]}}),
                json.dumps({**t.to_json(), "classes": {"conv1x1_nc4hw4": [
                    {"dims": [8, 64, 4, 4, 4], "config": {**CFG.to_json(), "workgroup_size": [0, 1, 1]}}]}})):
        p.write_text(bad)
        with pytest.raises(TexflowError) as e:
            kernelconfig.load("vulkan-nvidia", str(p))
        assert "\n" not in str(e.value)
    with pytest.raises(TexflowError, match="no such kernel configuration file"):
        kernelconfig.load("vulkan-nvidia", str(tmp_path / "missing.json"))
    assert kernelconfig.load("vulkan-valhall") is None  # no table: IREE configures


def test_candidates_are_valid_and_deterministic():
    from texflow.bench.tune_kernels import THREADS_MAX, THREADS_MIN, candidates
    for cls, dims in [("conv1x1_nc4hw4", (64, 3136, 4, 16, 4)), ("conv1x1_nc4hw4", (24, 196, 4, 96, 4)),
                      ("conv1x1_nc4hw4", (512, 49, 4, 128, 4)), ("conv1x1_nc4hw4", (100, 25, 4, 100, 4)),
                      ("conv_nc4hw4_s1", (16, 56, 56, 4, 16, 3, 3, 4)),
                      ("conv_nc4hw4_s2", (32, 7, 7, 4, 32, 3, 3, 4))]:
        cs = candidates(cls, dims)
        assert cs and len(cs) <= 32 and cs == candidates(cls, dims)
        for c in cs:
            assert c.fits(dims)
            assert THREADS_MIN <= int(np.prod(c.workgroup_size)) <= THREADS_MAX
            wg, th = c.tile_sizes[0], c.tile_sizes[1]
            # the workgroup size is the workgroup tile over the thread tile, innermost loop
            # first, over the three innermost parallel loops (a 0 thread tile: not distributed)
            counts = [w // t if t else 1 for w, t in zip(wg, th)][::-1][:3]
            assert list(c.workgroup_size) == counts


def test_select_keeps_iree_unless_a_candidate_wins():
    from texflow.bench.tune_kernels import select
    manifest = {"target": "vulkan-nvidia", "shapes": [
        {"class": "conv1x1_nc4hw4", "dims": [8, 64, 4, 4, 4], "models": ["m"], "candidates": [
            {"name": "s0c0", "config": None, "entry": "s0c0_dispatch_0_x"},
            {"name": "s0c1", "config": CFG.to_json(), "entry": "s0c1_dispatch_0_x"}]},
        {"class": "conv1x1_nc4hw4", "dims": [16, 64, 4, 4, 4], "models": ["m"], "candidates": [
            {"name": "s1c0", "config": None, "entry": "s1c0_dispatch_0_x"},
            {"name": "s1c1", "config": CFG.to_json(), "entry": "s1c1_dispatch_0_x"},
            {"name": "s1c2", "config": CFG.to_json(), "failed": "did not compile"}]}]}
    measured = {"device": "dev", "date": "2026-12-07", "times": {
        "e_s0c0_dispatch_0_x": {"us": 100.0}, "e_s0c1_dispatch_0_x": {"us": 40.0},
        "e_s1c0_dispatch_0_x": {"us": 100.0}, "e_s1c1_dispatch_0_x": {"us": 97.0}}}
    table, rows = select(manifest, measured, min_gain=0.05)
    es = table.entries["conv1x1_nc4hw4"]
    assert [e.dims for e in es] == [(8, 64, 4, 4, 4)]  # 3% is within the noise: IREE kept
    assert es[0].measured == {"us": 40.0, "iree_default_us": 100.0, "candidates": 1}
    assert [r.get("chosen", False) for r in rows] == [True, False]


def _run_module(vmfb, function, inputs, tmp_path):
    """iree-run-module on lavapipe (a subprocess: the module's subgroup size never meets the
    test process's Vulkan driver; these kernels use no subgroup operations)."""
    args = ["iree-run-module", f"--module={vmfb}",
            "--device=vulkan", f"--function={function}", f"--output=@{tmp_path / 'out.npy'}"]
    for i, x in enumerate(inputs):
        np.save(tmp_path / f"in{i}.npy", x)
        args.append(f"--input=@{tmp_path / f'in{i}.npy'}")
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return np.load(tmp_path / "out.npy")


def _check_configuration(cls, dims, config, target, tmp_path, rng):
    """The op of `cls` at loop sizes `dims` with `config`, compiled for `target` and run on
    lavapipe, against numpy in float64."""
    from texflow.bench.tune_kernels import candidate_mlir
    from texflow.targets import get_target
    src = tmp_path / "k.mlir"
    src.write_text(candidate_mlir("k", cls, dims, config))
    vmfb = tmp_path / "k.vmfb"
    p = subprocess.run(["iree-compile", str(src), *get_target(target).flags, "-o", str(vmfb)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-1000:]
    if cls == "conv1x1_nc4hw4":
        f, hw, _, c, _ = dims
        x = rng.standard_normal((c, hw, 4)).astype(np.float32)
        w = rng.standard_normal((f, c, 4, 4)).astype(np.float32)
        want = np.einsum("bpk,fbkl->fpl", x.astype(np.float64), w.astype(np.float64))
        k = 4 * c
    elif cls == "conv1x1_nc4hw4_2d":
        f, oh, ow, _, c, _ = dims
        x = rng.standard_normal((c, oh, ow, 4)).astype(np.float32)
        w = rng.standard_normal((f, c, 4, 4)).astype(np.float32)
        want = np.einsum("bhwk,fbkl->fhwl", x.astype(np.float64), w.astype(np.float64))
        want = np.pad(want, ((0, 0), (1, 1), (1, 1), (0, 0)))  # the candidate writes a padded buffer
        k = 4 * c
    else:
        s = int(cls.rsplit("_s", 1)[1])
        f, oh, ow, _, c, kh, kw, _ = dims
        x = rng.standard_normal((c, (oh - 1) * s + kh, (ow - 1) * s + kw, 4)).astype(np.float32)
        w = rng.standard_normal((f, c, kh, kw, 4, 4)).astype(np.float32)
        want = np.zeros((f, oh, ow, 4))
        for i in range(kh):
            for j in range(kw):
                xs = x[:, i:i + (oh - 1) * s + 1:s, j:j + (ow - 1) * s + 1:s, :]
                want += np.einsum("chwk,fckl->fhwl", xs.astype(np.float64), w[:, :, i, j].astype(np.float64))
        k = 4 * c * kh * kw
    got = _run_module(vmfb, "k", [x, w], tmp_path)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(k),
                               err_msg=f"{cls} {dims} {config}")


@pytest.mark.vulkan
def test_table_configurations_compute_the_convolution(vulkan, tmp_path):
    """Every configuration of every table texflow ships (and of the lit test's), at its tuned
    shape, compiled for its target and run on lavapipe, against numpy: a compilation_info
    changes the generated code, so a configuration is data that must compute the op."""
    rng = np.random.default_rng(0)
    paths = sorted(kernelconfig.table.DATA_DIR.glob("*.json")) + [TEST_TABLE]
    checked = 0
    for path in paths:
        t = kernelconfig.load("vulkan-nvidia", str(path))
        for cls, entries in sorted(t.entries.items()):
            for e in entries:
                _check_configuration(cls, e.dims, e.config, t.target, tmp_path, rng)
                checked += 1
    assert checked >= 1


@pytest.mark.vulkan
def test_tuner_candidates_compute_the_convolution(vulkan, tmp_path):
    """Whatever the tuner may put in a table computes the op: a deterministic sample of its
    candidates for each class, at small shapes (lavapipe is slow), checked against numpy."""
    from texflow.bench.tune_kernels import candidates
    rng = np.random.default_rng(1)
    for cls, dims in [("conv1x1_nc4hw4", (8, 196, 4, 6, 4)), ("conv1x1_nc4hw4_2d", (8, 14, 14, 4, 6, 4)),
                      ("conv_nc4hw4_s1", (4, 14, 14, 4, 4, 3, 3, 4)),
                      ("conv_nc4hw4_s2", (4, 8, 8, 4, 3, 3, 3, 4))]:
        cs = candidates(cls, dims)
        assert len(cs) >= 4, (cls, dims)
        for c in cs[:: max(1, len(cs) // 4)][:4]:
            _check_configuration(cls, dims, c, "vulkan-nvidia", tmp_path, rng)


@pytest.mark.vulkan
def test_configured_model_matches_onnx_runtime(vulkan, tmp_path):
    """A bottleneck's 1x1 half compiled with a kernel table (its convolutions forced NC4HW4, the
    lit test's table configuring one from the nearest tuned shape) gives ONNX Runtime's
    numbers, and so does --no-configure-kernels.  Compiled for vulkan-valhall, whose subgroup
    size lavapipe is set to here: IREE's own configuration of the other convolution uses
    subgroup operations (on vulkan-nvidia's 32 lavapipe gives wrong sums, docs/known-issues.md)."""
    import onnx
    from texflow.compiler import CompileOptions, Compiler
    m = pointwise_block(C=16, H=8, F=32)
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    xs = random_inputs(m)
    want = ort_reference(m, xs)[0]
    stats = {}
    for conf in (True, False):
        res = Compiler(CompileOptions(target="vulkan-valhall", select_options="force=nc4hw4",
                                      configure_kernels=conf, kernel_table=TEST_TABLE)).compile_file(str(path))
        assert not res.fallbacks
        stats[conf] = res.statistics.get("texflow-configure-kernels", {})
        vmfb = tmp_path / f"m{conf}.vmfb"
        vmfb.write_bytes(res.vmfb)
        got = _run_module(vmfb, "pointwise_block", xs, tmp_path)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # the first convolution reads the function's NCHW input through a permuted map (elimination
    # folded the conversion into it): not the packed form, left to IREE
    assert stats[True] == {"1x1 convolutions configured (nearest tuned shape)": 1}, stats[True]
    assert stats[False] == {}


def test_cli_kernel_table_errors(tmp_path):
    """A bad --kernel-table is a one-line error before anything is compiled or written."""
    import onnx
    m = tmp_path / "m.onnx"
    onnx.save(pointwise_block(), m)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    out = tmp_path / "m.vmfb"
    for args, msg in [([f"--kernel-table={bad}", "--target=vulkan-nvidia"], "malformed kernel configuration table"),
                      ([f"--kernel-table={tmp_path / 'none.json'}", "--target=vulkan-nvidia"], "no such kernel configuration file"),
                      ([f"--kernel-table={TEST_TABLE}", "--target=llvm-cpu"], "is not a Vulkan target")]:
        p = subprocess.run(["texflow-compile", str(m), *args, "-o", str(out)], capture_output=True, text=True)
        assert p.returncode != 0 and msg in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert not out.exists()


def test_a_configuration_iree_rejects_falls_back_to_iree_configurations(tmp_path):
    """IREE rejects a configuration (a cooperative-matrix pipeline for an f32 convolution):
    the model is compiled again with the same layouts and IREE's own configurations, and the
    result says so; texflow's layout work is kept (not plain IREE)."""
    import onnx
    from onnx_models import conv_block
    from texflow.compiler import CompileOptions, Compiler
    path = tmp_path / "m.onnx"
    onnx.save(conv_block(C=16, H=16, F=32), path)
    bad = {"target": "vulkan-nvidia", "device": "test", "date": "2026-12-07", "source": "measured",
           "classes": {"conv_nc4hw4_s1": [{"dims": [8, 16, 16, 4, 8, 3, 3, 4], "config": {
               "pipeline": "CooperativeMatrixVectorize", "workgroup_size": [1, 16, 2],
               "tile_sizes": [[1, 2, 16, 4], [0, 1, 1, 4], [0, 0, 0, 0, 1, 1, 1, 4]]}}]}}
    table = tmp_path / "bad.json"
    table.write_text(json.dumps(bad))
    res = Compiler(CompileOptions(target="vulkan-nvidia", kernel_table=str(table))).compile_file(str(path))
    assert res.vmfb
    assert len(res.fallbacks) == 1 and res.fallbacks[0].startswith("IREE rejected a configured kernel"), res.fallbacks
    assert "texflow-driver" not in res.statistics  # not compiled as plain IREE
    assert list(res.layout_report["functions"].values())[0]["tensors"]["nc4hw4"] > 0
    # the same table given with a layout option the user chose is not second-guessed: an error
    with pytest.raises(TexflowError, match="software pipelining"):
        Compiler(CompileOptions(target="vulkan-nvidia", kernel_table=str(table),
                                select_options="force=nc4hw4")).compile_file(str(path))


@pytest.mark.vulkan
def test_tuning_command_end_to_end(vulkan, tmp_path):
    """prepare -> measure -> select on lavapipe (times meaningless there: this checks the
    command, as the device run uses it), then a compile with the table it wrote configures
    every tuned op.  A forced choice (min_gain -inf) makes the table hold every shape."""
    import onnx
    from onnx_models import conv_block
    from texflow.bench import tune_kernels as tk
    from texflow.compiler import CompileOptions, Compiler
    model = tmp_path / "m.onnx"
    onnx.save(conv_block(C=16, H=16, F=32), model)
    work = tmp_path / "tune"
    manifest = tk.prepare([str(model)], "vulkan-nvidia", work, per_shape=1, log=lambda *a: None)
    classes = sorted(s["class"] for s in manifest["shapes"])
    # the 1x1 convolution writes the 3x3 stride-2 one's padded input: two pixel loops
    assert classes == ["conv1x1_nc4hw4_2d", "conv_nc4hw4_s1", "conv_nc4hw4_s2"], classes
    measured = tk.measure(work, "vulkan", 1, "lavapipe", log=lambda *a: None)
    table, rows = tk.select(manifest, measured, min_gain=-float("inf"))
    assert all(r.get("chosen") for r in rows) and sum(map(len, table.entries.values())) == 3
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table.to_json()))
    assert kernelconfig.load("vulkan-nvidia", str(path)).device == "lavapipe"
    res = Compiler(CompileOptions(target="vulkan-nvidia", kernel_table=str(path))).compile_file(str(model))
    assert not res.fallbacks
    assert res.statistics["texflow-configure-kernels"] == {
        "1x1 convolutions configured (tuned shape)": 1, "KxK convolutions configured (tuned shape)": 2}
    assert "| conv_nc4hw4_s2 |" in tk.report(rows)
    # configuring changes no dispatch: the same kernels, with the same names, as without a
    # table (configuring in the layout phase once split fused pads and bias broadcasts off)
    import re
    kernels = {}
    for table_path in (str(path), ""):
        r = Compiler(CompileOptions(target="vulkan-nvidia", kernel_table=table_path,
                                    compile_to="executable-sources")).compile_file(str(model))
        kernels[table_path] = re.findall(r"stream\.cmd\.dispatch @(\S+)", r.mlir)
        assert r.mlir.count("compilation_info = ") == (3 if table_path else 0)
    assert kernels[str(path)] == kernels[""] and len(kernels[""]) == 6, kernels
