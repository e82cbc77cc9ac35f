"""texflow on models it was not tuned on: deterministic output, never failing where plain IREE
compiles, option values that survive any path (issue 16, items 1, 3 and 7)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

from onnx_models import _model, _w, ort_reference, random_inputs, vi

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def se_net(seed=0, C=8, H=12, F=16, R=4):
    """EfficientNet / MobileNetV3-style: conv + SiLU, depthwise + SiLU, squeeze-excitation
    (ReduceMean over H, W -> 1x1 conv -> SiLU -> 1x1 conv -> Sigmoid -> Mul) whose squeezed
    tensor has R = 4 channels at 1x1, a 1x1 projection and a ReduceMean + Gemm head."""
    rng = np.random.default_rng(seed)
    n = helper.make_node
    nodes = [n("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             n("Sigmoid", ["c1"], ["s1"]), n("Mul", ["c1", "s1"], ["a1"]),
             n("Conv", ["a1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=F),
             n("Sigmoid", ["c2"], ["s2"]), n("Mul", ["c2", "s2"], ["a2"]),
             n("ReduceMean", ["a2"], ["m"], axes=[2, 3], keepdims=1),
             n("Conv", ["m", "w3", "b3"], ["c3"]),
             n("Sigmoid", ["c3"], ["s3"]), n("Mul", ["c3", "s3"], ["a3"]),
             n("Conv", ["a3", "w4", "b4"], ["c4"]),
             n("Sigmoid", ["c4"], ["g"]), n("Mul", ["a2", "g"], ["e"]),
             n("Conv", ["e", "w5", "b5"], ["c5"]),
             n("ReduceMean", ["c5"], ["p"], axes=[2, 3], keepdims=0),
             n("Gemm", ["p", "w6", "b6"], ["y"], transB=1)]
    inits = [_w(rng, "w1", F, C, 3, 3), _w(rng, "b1", F), _w(rng, "w2", F, 1, 3, 3), _w(rng, "b2", F),
             _w(rng, "w3", R, F, 1, 1), _w(rng, "b3", R), _w(rng, "w4", F, R, 1, 1), _w(rng, "b4", F),
             _w(rng, "w5", F, F, 1, 1), _w(rng, "b5", F), _w(rng, "w6", 10, F), _w(rng, "b6", 10)]
    return _model(nodes, [vi("x", [1, C, H, H])], [vi("y", [1, 10])], inits, "se_net")


@pytest.fixture(scope="module")
def se_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("se") / "se.onnx"
    onnx.save(se_net(), str(p))
    return str(p)


def _digests(folder):
    return {f: hashlib.sha256(open(os.path.join(folder, f), "rb").read()).hexdigest()
            for f in sorted(os.listdir(folder))}


def _compile_cli(args, env_extra, cwd):
    env = dict(os.environ, **env_extra)
    r = subprocess.run([sys.executable, "-m", "texflow.cli.compile", *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stderr


def test_repeated_compiles_are_byte_identical_under_load(se_path, tmp_path):
    """Module, streaming plan, weight archive and layout report: the same bytes from two
    compiles in processes with other hash seeds and thread settings, the second beside a
    process keeping a core busy (CP-SAT runs on a work limit, not the clock)."""
    outs = []
    for i, env in enumerate([{"PYTHONHASHSEED": "1", "OMP_NUM_THREADS": "1"},
                             {"PYTHONHASHSEED": "977", "OMP_NUM_THREADS": "2"}]):
        d = tmp_path / f"run{i}"
        d.mkdir()
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if i else None
        try:
            _compile_cli([se_path, "-o", "m.vmfb", "--layout-report=l.json"], env, str(d))
            _compile_cli([se_path, "--memory-budget=32KiB", "-o", "s.vmfb"], env, str(d))
        finally:
            if busy:
                busy.kill()
        outs.append(_digests(d))
    assert set(outs[0]) == {"m.vmfb", "l.json", "s.vmfb", "s.vmfb.plan.json", "s.vmfb.irpa"}
    assert outs[0] == outs[1]


@pytest.mark.parametrize("layout", ["nchw", "nhwc", "nc4hw4"])
@pytest.mark.parametrize("target", ["llvm-cpu", "vulkan-nvidia"])
def test_squeeze_excitation_compiles_in_every_layout(se_path, tmp_path, layout, target):
    """Each forced layout compiles without any fallback (a 4-channel NC4HW4 tensor at 1x1
    once lowered to an expand_shape with an empty reassociation group), and matches ONNX
    Runtime on llvm-cpu."""
    from texflow.compiler import compile_file
    out = str(tmp_path / "m.vmfb")
    r = compile_file(se_path, out, target=target, select_options=f"force={layout}")
    assert r.fallbacks == []
    assert r.layout_report and "functions" in r.layout_report
    if target == "llvm-cpu":
        from texflow.runtime import Module
        x = random_inputs(onnx.load(se_path))
        ref = ort_reference(onnx.load(se_path), x)
        got = Module(out, driver="local-task")(*x)
        got = list(got) if isinstance(got, (list, tuple)) else [got]
        assert len(got) == len(ref) == 1
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-4, atol=1e-5)


def test_reassociation_never_gives_an_empty_group():
    from texflow.ir.structured import reassociation
    assert reassociation([1, 4, 1, 1], [1, 1, 1, 1, 4]) is None  # not one expand: two steps
    assert reassociation([1, 16, 1, 1], [1, 4, 1, 1, 4]) is None
    assert reassociation([1, 8, 1], [1, 2, 4, 1]) == [[0], [1, 2], [3]]
    assert reassociation([2, 12], [2, 3, 4]) == [[0], [1, 2]]
    assert reassociation([4], [1, 4, 1]) == [[0, 1, 2]]
    for small, big in [([1, 4, 1, 1], [1, 4, 1, 1, 1]), ([6, 1], [2, 3, 1, 1]), ([1], [1, 1])]:
        g = reassociation(small, big)
        assert g is not None and all(g) and sum(len(x) for x in g) == len(big)
        assert [int(np.prod([big[i] for i in x])) for x in g] == small


# -- never fail where plain IREE compiles -------------------------------------------------

def _session_module(text):
    import iree.compiler.api  # noqa: F401
    from texflow.session import CompilerSession
    s = CompilerSession([])
    return s, s.parse(text, "t.mlir")


FUNC = """module attributes {test.keep = 1 : i32} {
  util.func public @f(%a: tensor<4xf32>) -> tensor<4xf32> { util.return %a : tensor<4xf32> } }"""


def test_an_undoable_pass_that_breaks_the_ir_is_put_back(monkeypatch):
    from iree.compiler import ir, passmanager
    monkeypatch.delenv("TEXFLOW_STRICT", raising=False)
    from texflow.passes.registry import Pass, add_passes

    class Breaker(Pass):
        name, summary, undoable = "test-breaker", "drops a terminator", True

        def apply(self, m):
            m.attributes["test.added"] = ir.UnitAttr.get()
            f = m.regions[0].blocks[0].operations[0]
            list(f.regions[0].blocks[0].operations)[-1].erase()

    class Crasher(Breaker):
        name = "test-crasher"

        def apply(self, m):
            m.attributes["test.added"] = ir.UnitAttr.get()
            raise RuntimeError("boom")

    for cls, why in ((Breaker, "did not verify"), (Crasher, "RuntimeError: boom")):
        s, m = _session_module(FUNC)
        before = m.operation.get_asm()
        pm = passmanager.PassManager("builtin.module", context=s.context)
        sink = []
        add_passes(pm, [cls()], stats_sink=sink)
        pm.run(m.operation)
        assert why in sink[0].undone
        assert m.operation.get_asm() == before
        # with TEXFLOW_STRICT (the test suite's setting) the same pass fails the pipeline
        monkeypatch.setenv("TEXFLOW_STRICT", "1")
        s, m = _session_module(FUNC)
        pm = passmanager.PassManager("builtin.module", context=s.context)
        add_passes(pm, [cls()])
        with pytest.raises(ir.MLIRError):
            pm.run(m.operation)
        monkeypatch.delenv("TEXFLOW_STRICT")

    class Fatal(Breaker):  # not undoable: the broken result is an error, not kept
        name, undoable = "test-fatal", False
    s, m = _session_module(FUNC)
    pm = passmanager.PassManager("builtin.module", context=s.context)
    add_passes(pm, [Fatal()])
    with pytest.raises(ir.MLIRError, match="does not verify"):
        pm.run(m.operation)


def test_layout_output_iree_rejects_is_compiled_as_plain(monkeypatch, tmp_path):
    """A layout phase whose result IREE cannot take (here: an op of a texflow dialect left
    behind, which texflow-verify-lowered refuses) still gives a module, compiled as plain IREE
    would, matching ONNX Runtime, with a warning that says why."""
    from iree.compiler import ir
    from texflow import compiler
    from texflow.passes.registry import Pass, register_pass, registered_passes
    from onnx_models import conv_relu

    if "test-leave-layout-op" not in registered_passes():
        @register_pass
        class LeaveOp(Pass):
            name, summary = "test-leave-layout-op", "leaves a layout op behind"

            def apply(self, m):
                for f in m.regions[0].blocks[0].operations:
                    if f.operation.name == "util.func" and len(f.regions[0].blocks):
                        blk = f.regions[0].blocks[0]
                        with ir.InsertionPoint.at_block_begin(blk):
                            ir.Operation.create("layout.stray")
                        return

    from texflow.passes import pipelines
    real = pipelines.layout_passes
    monkeypatch.setattr(pipelines, "layout_passes",
                        lambda *a, **k: real(*a, **k) + ["test-leave-layout-op"])
    model = conv_relu()
    path = str(tmp_path / "m.onnx")
    onnx.save(model, path)
    out = str(tmp_path / "m.vmfb")
    r = compiler.compile_file(path, out, target="llvm-cpu")
    assert any("compiled as plain IREE" in f and "layout" in f for f in r.fallbacks), r.fallbacks
    from texflow.runtime import Module
    x = random_inputs(model)
    ref = ort_reference(model, x)
    got = Module(out, driver="local-task")(*x)
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    assert len(got) == len(ref)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-4, atol=1e-5)


# -- option text ---------------------------------------------------------------------------

def test_option_values_survive_spaces_equals_and_braces():
    import texflow.passes  # noqa: F401
    from texflow.passes.registry import parse_pass, split_options, split_pipeline
    path = 'we ird/a=b {c}, "d".json'
    p = parse_pass("texflow-wstream-plan{memory-budget=1MiB}")
    p.options.manifest = path
    text = p.pipeline_text()
    assert split_pipeline(text + ",canonicalize") == [text, "canonicalize"]
    assert parse_pass(text).options == p.options
    assert split_options('a=1 b="x y" c={p q}') == [("a", "1"), ("b", "x y"), ("c", "p q")]
    with pytest.raises(Exception, match="unterminated"):
        split_options('a="x')


def test_memory_budget_output_path_with_spaces(tmp_path):
    d = tmp_path / "sp ace={x}"
    d.mkdir()
    ex = os.path.join(REPO, "python", "texflow", "examples", "example.onnx")
    _compile_cli([ex, "--memory-budget=1MiB", "-o", str(d / "m v.vmfb")], {}, str(tmp_path))
    assert sorted(os.listdir(d)) == ["m v.vmfb", "m v.vmfb.irpa", "m v.vmfb.plan.json"]


def test_disabled_passes_do_nothing_in_every_process(tmp_path, monkeypatch):
    """TEXFLOW_DISABLE_PASSES (bisecting a miscompile; the mutation runs) reaches the compiles of
    this process and of the texflow-compile processes it starts."""
    from texflow import compiler
    ex = os.path.join(REPO, "python", "texflow", "examples", "example.onnx")
    assert "texflow-eliminate-layout" in compiler.compile_file(ex, target="llvm-cpu").statistics
    monkeypatch.setenv("TEXFLOW_DISABLE_PASSES", "texflow-eliminate-layout, texflow-pack-matmul")
    stats = compiler.compile_file(ex, target="llvm-cpu").statistics
    assert "texflow-eliminate-layout" not in stats and "texflow-pack-matmul" not in stats
    assert "texflow-raise-layout" in stats  # the others still run
    p = subprocess.run([sys.executable, "-m", "texflow.cli.compile", ex, "--texflow-statistics",
                        "-o", str(tmp_path / "m.vmfb")], capture_output=True, text=True)
    assert p.returncode == 0 and "texflow-raise-layout:" in p.stderr, p.stderr
    assert "texflow-eliminate-layout:" not in p.stderr
