"""The command-line tools: happy paths and every kind of bad input."""

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

import onnx_models


def run(tool, *args, cwd=None):
    p = subprocess.run([sys.executable, "-m", f"texflow.cli.{tool}", *map(str, args)],
                       capture_output=True, text=True, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def assert_one_line_error(rc, err, tool, pattern):
    assert rc != 0
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"texflow-{tool}: error: "), err
    assert pattern in lines[0], err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    m = onnx_models.matmul_softmax()
    onnx.save(m, d / "m.onnx")
    x = onnx_models.random_inputs(m)[0]
    np.save(d / "x.npy", x)
    np.save(d / "ref.npy", onnx_models.ort_reference(m, [x])[0])
    return d


def test_compile_and_run(model_file):
    d = model_file
    rc, _, err = run("compile", d / "m.onnx", "-o", d / "m.vmfb")
    assert rc == 0, err
    rc, out, err = run("run", d / "m.vmfb", "--input=@" + str(d / "x.npy"), "--output=@" + str(d / "y.npy"))
    assert rc == 0, err
    np.testing.assert_allclose(np.load(d / "y.npy"), np.load(d / "ref.npy"), rtol=1e-4, atol=1e-5)
    # iree-run-module's inline notation, printed result
    rc, out, err = run("run", d / "m.vmfb", "--input=1x16x32xf32=0.5")
    assert rc == 0, err
    assert out.startswith("result[0]: 1x16x24xf32")


def test_compile_to_phases_print_mlir(model_file):
    d = model_file
    rc, out, err = run("compile", d / "m.onnx", "--compile-to=start")
    assert rc == 0, err
    assert 'torch.operator "onnx.MatMul"' in out
    rc, out, err = run("compile", d / "m.onnx", "--compile-to=input")
    assert rc == 0, err
    assert "linalg" in out and "torch." not in out
    rc, out, err = run("compile", d / "m.onnx", "--compile-to=texflow-layout", "--print-ir-after-all")
    assert rc == 0, err
    assert "// -----// IR Dump After texflow-eliminate-layout //----- //" in err
    rc, out, err = run("compile", d / "m.onnx", "--compile-to=flow")
    assert rc == 0, err
    assert "flow.dispatch" in out


def test_raw_iree_flags_pass_through(model_file):
    d = model_file
    rc, _, err = run("compile", d / "m.onnx", "-o", d / "dt.vmfb", "--iree-opt-data-tiling")
    assert rc == 0, err
    rc, _, err = run("compile", d / "m.onnx", "-o", d / "x.vmfb", "--iree-no-such-flag")
    assert_one_line_error(rc, err, "compile", "bad IREE flag")
    assert not os.path.exists(d / "x.vmfb")


@pytest.mark.parametrize("case,pattern", [
    ("missing", "no such file"),
    ("garbage", "malformed ONNX file"),
    ("unknown_op", "unknown ONNX op(s)"),
    ("unlowerable_op", "ONNX op 'DFT' cannot be lowered"),
    ("iree_crash", "IREE crashed (SIGSEGV)"),
    ("bad_mlir", "cannot parse"),
    ("bad_target", "unknown target 'nope'"),
    ("bad_phase", "unknown phase 'nowhere'"),
    ("bad_flag", "unknown option(s): --frobnicate"),
    ("bad_pass", "unknown texflow pass 'texflow-nope'"),
])
def test_compile_bad_input(tmp_path, case, pattern):
    from onnx import helper
    out = tmp_path / "out.vmfb"
    args = []
    src = tmp_path / "m.onnx"
    onnx.save(onnx_models.matmul_softmax(), src)
    if case == "missing":
        src = tmp_path / "nope.onnx"
    elif case == "garbage":
        src.write_bytes(b"\x08\x07garbage\xff\xff not a protobuf")
    elif case == "unknown_op":
        m = onnx_models.matmul_softmax()
        m.graph.node[2].op_type = "Frobnicate"
        src.write_bytes(m.SerializeToString())
    elif case in ("unlowerable_op", "iree_crash"):
        # DFT: a real ONNX op IREE's ONNX lowering rejects; Unique: one that
        # segfaults iree-compile 3.13 itself.
        op, oshape = ("DFT", [3, 3, 2]) if case == "unlowerable_op" else ("Unique", [None])
        n = helper.make_node(op, ["x2"], ["y"])
        g = helper.make_graph([n], "g", [onnx_models.vi("x2", [3, 3])], [onnx_models.vi("y", oshape)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 9
        src.write_bytes(m.SerializeToString())
    elif case == "bad_mlir":
        src = tmp_path / "m.mlir"
        src.write_text("func.func @f( {")
    elif case == "bad_target":
        args = ["--target=nope"]
    elif case == "bad_phase":
        args = ["--compile-to=nowhere"]
    elif case == "bad_flag":
        args = ["--frobnicate"]
    elif case == "bad_pass":
        args = ["--layout-pipeline=texflow-nope"]
    rc, _, err = run("compile", src, "-o", out, *args)
    assert_one_line_error(rc, err, "compile", pattern)
    assert not out.exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".texflow-")]


def test_run_bad_input(model_file, tmp_path):
    d = model_file
    assert run("compile", d / "m.onnx", "-o", d / "m2.vmfb")[0] == 0
    rc, _, err = run("run", d / "m2.vmfb", "--input=1x16x31xf32=1")
    assert_one_line_error(rc, err, "run", "expected 1x16x32xf32")
    rc, _, err = run("run", tmp_path / "none.vmfb", "--input=1x16x32xf32=1")
    assert_one_line_error(rc, err, "run", "no such module")
    (tmp_path / "bad.vmfb").write_bytes(b"not a module")
    rc, _, err = run("run", tmp_path / "bad.vmfb")
    assert_one_line_error(rc, err, "run", "not a valid IREE module")
    rc, _, err = run("run", d / "m2.vmfb", "--input=@" + str(tmp_path / "missing.npy"))
    assert_one_line_error(rc, err, "run", "no such input file")
    rc, _, err = run("run", d / "m2.vmfb", "--function=nope", "--input=1x16x32xf32=1")
    assert_one_line_error(rc, err, "run", "no function 'nope'")
    rc, _, err = run("run", d / "m2.vmfb", "--device=cuda", "--input=1x16x32xf32=1")
    assert_one_line_error(rc, err, "run", "unknown driver 'cuda'")


def test_memory_budget_outputs(tmp_path):
    """--memory-budget: plan manifest, weight archive and chart beside the module."""
    import json
    pytest.importorskip("matplotlib")
    onnx.save(onnx_models.attention(S=16, D=32, H=4), tmp_path / "a.onnx")
    out = tmp_path / "a.vmfb"
    rc, _, err = run("compile", tmp_path / "a.onnx", "-o", out, "--memory-budget=64KiB",
                     "--plan-chart", tmp_path / "plan.png")
    assert rc == 0, err
    plan = json.loads((tmp_path / "a.vmfb.plan.json").read_text())
    assert plan["summary"]["budget_bytes"] == 64 * 1024
    assert plan["archive"]["file"] == "a.vmfb.irpa" and plan["archive"]["weights"]
    from texflow.streaming.archive import read_weight_archive
    weights = read_weight_archive(str(tmp_path / "a.vmfb.irpa"))
    assert set(weights) == set(plan["archive"]["weights"])
    assert (tmp_path / "plan.png").read_bytes()[:4] == b"\x89PNG"
    # an impossible budget: one line, nothing written
    out2 = tmp_path / "b.vmfb"
    rc, _, err = run("compile", tmp_path / "a.onnx", "-o", out2, "--memory-budget=1KiB")
    assert_one_line_error(rc, err, "compile", "is below the minimum")
    assert not [f for f in os.listdir(tmp_path) if f.startswith("b.vmfb")]
    rc, _, err = run("compile", tmp_path / "a.onnx", "-o", out2, "--memory-budget=lots")
    assert_one_line_error(rc, err, "compile", "lots")
