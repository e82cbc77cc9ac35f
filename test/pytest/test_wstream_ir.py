"""wstream dialect and passes on IR: form stages, plan, verify, lower, run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from iree.compiler import ir, passmanager

import texflow.passes.wstream.lower  # noqa: F401  (registers the passes)
import texflow.passes.wstream.plan  # noqa: F401
import texflow.passes.wstream.form_stages  # noqa: F401
from texflow.dialects import wstream
from texflow.dialects.base import verify_ops
from texflow.errors import TexflowError
from texflow.passes import add_passes
from texflow.passes.wstream.verify_lowered import leftover_ops
from texflow.session import CompilerSession
from texflow.streaming import Group, GroupPlan, Load, Plan, Problem, Stage, replay

LIT = Path(__file__).resolve().parents[1] / "lit" / "wstream"


def mlp_text() -> str:
    text = (LIT / "plan.mlir").read_text()
    return "\n".join(l for l in text.splitlines() if not l.startswith("//"))


def run(session, module, pipeline):
    pm = passmanager.PassManager("builtin.module", context=session.context)
    passes = add_passes(pm, pipeline)
    pm.run(module.operation)
    return passes


def names(module):
    out = []
    module.operation.walk(lambda o: out.append(o.name) or ir.WalkResult.ADVANCE)
    return out


@pytest.mark.parametrize("budget", ["3840", "4KiB", "1MiB"])
def test_plan_lower_roundtrip(tmp_path, budget):
    s = CompilerSession()
    m = s.parse(mlp_text())
    man = tmp_path / "plan.json"
    (p,) = run(s, m, f"texflow-wstream-plan{{memory-budget={budget} chunk-bytes=256 "
                     f"time-limit=5.0 manifest={man}}}")
    assert p.statistics["functions planned"] == 1
    assert verify_ops(m.operation) == []
    func = m.body.operations[0]
    assert wstream.check_order(func.regions[0].blocks[0]) == []
    n = names(m)
    assert n.count("wstream.stage") == 2 and n.count("wstream.load") == 2
    assert n.count("wstream.wait") == 3 and n.count("wstream.release") == 2
    data = json.loads(man.read_text())
    assert data["summary"]["peak_bytes"] <= data["summary"]["budget_bytes"]
    assert data["calibration"]["date"] and data["calibration"]["device"]
    # the manifest replays through the independent verifier
    prob = Problem(stages=[Stage(compute_s=x["compute_s"], capacity=x["capacity_chunks"],
                                 act_bytes=x["act_bytes"]) for x in data["stages"]],
                   groups=[Group(chunks=g["chunks"], first=g["first"], last=g["last"])
                           for g in data["groups"]],
                   budget=data["summary"]["budget_bytes"], chunk_bytes=256,
                   chunk_s=256 / data["calibration"]["weight_read_bytes_per_s"])
    plan = Plan(groups=[GroupPlan(preload=g["preload"], loads=[Load(**l) for l in g["loads"]])
                        for g in data["groups"]],
                stall_chunks=round(data["summary"]["stall_s"] / prob.chunk_s))
    replay(prob, plan)
    run(s, m, "texflow-wstream-lower,texflow-verify-lowered")
    assert leftover_ops(m) == []
    assert not any(x.startswith("wstream.") for x in names(m))


def test_lowered_program_still_computes_the_same():
    import iree.compiler as ic
    import iree.runtime as rt
    s = CompilerSession()
    m = s.parse(mlp_text())
    run(s, m, "texflow-wstream-plan{memory-budget=3840 chunk-bytes=256 time-limit=5.0}")
    assert "wstream.load" in str(m) and "wstream.wait" in str(m)  # a plan to lower
    run(s, m, "texflow-wstream-lower")
    assert "wstream." not in str(m)
    vmfb = ic.compile_str(str(m), target_backends=["llvm-cpu"], input_type="none")
    ctx = rt.SystemContext(config=rt.Config("local-sync"))
    ctx.add_vm_module(rt.VmModule.copy_buffer(ctx.instance, vmfb))
    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(4, 16)
    got = ctx.modules.module["mlp"](x).to_host()
    h = np.maximum(x @ np.full((16, 32), 0.5, np.float32) + 0.25, 0)
    np.testing.assert_allclose(got, h @ np.full((32, 8), 0.125, np.float32), rtol=1e-5)


def test_replanning_is_refused_and_errors_are_one_line():
    s = CompilerSession()
    m = s.parse(mlp_text())
    run(s, m, "texflow-wstream-plan{memory-budget=1MiB}")
    with pytest.raises(ir.MLIRError) as e:
        run(s, m, "texflow-wstream-plan{memory-budget=1MiB}")
    assert "already has a wstream plan" in str(e.value)
    m2 = s.parse(mlp_text())
    with pytest.raises(ir.MLIRError) as e:
        run(s, m2, "texflow-wstream-plan{memory-budget=100}")
    assert "below the minimum" in str(e.value)


BAD_OPS = [
    ('"wstream.load"() {bytes = 4 : i64, chunks = 2 : i64, group = 0 : i64, preload = false, '
     'schedule = array<i64: 0, 1, 0>} : () -> !wstream.token', "moves 1 chunks, the group has 2"),
    ('"wstream.load"() {bytes = 4 : i64, chunks = 1 : i64, group = 0 : i64, preload = false, '
     'schedule = array<i64: 0, 1>} : () -> !wstream.token', "not a multiple of 3"),
    ('"wstream.load"() {bytes = 4 : i64, chunks = 1 : i64, group = 0 : i64, preload = true, '
     'schedule = array<i64: 0, 1, 0>} : () -> !wstream.token', "preloaded group has no"),
    ('"wstream.stage"() {act_bytes = 0 : i64, capacity_bytes = 0 : i64, compute_s = 1.0 : f64, '
     'id = 0 : i64, kind = "fast"} : () -> ()', "must be one of"),
    ('"wstream.plan"() {budget = 0 : i64} : () -> ()', "'budget' must be >= 1"),
]


@pytest.mark.parametrize("text,msg", BAD_OPS)
def test_op_verifiers(text, msg):
    s = CompilerSession()
    m = s.parse(f"util.func @f() {{\n  %0 = {text}\n  util.return\n}}" if "->" in text and
                "token" in text else f"util.func @f() {{\n  {text}\n  util.return\n}}")
    errs = verify_ops(m.operation)
    assert any(msg in e for _, e in errs), errs


def test_wait_type_mismatch_and_order_checks():
    s = CompilerSession()
    m = s.parse("""
util.func @f(%a: tensor<4xf32>) -> tensor<4xf32> {
  %t = "wstream.load"() {bytes = 16 : i64, chunks = 1 : i64, group = 0 : i64, preload = true, schedule = array<i64>} : () -> !wstream.token
  "wstream.release"(%t) {group = 0 : i64, stage = 0 : i64} : (!wstream.token) -> ()
  %w = "wstream.wait"(%t, %a) {group = 0 : i64, stage = 0 : i64} : (!wstream.token, tensor<4xf32>) -> tensor<8xf32>
  util.return %a : tensor<4xf32>
}""")
    assert any("weight's type" in e for _, e in verify_ops(m.operation))
    errs = wstream.check_order(m.body.operations[0].regions[0].blocks[0])
    assert errs == ["group 0: released before its last use"]


def test_bad_pass_options():
    s = CompilerSession()
    m = s.parse(mlp_text())
    with pytest.raises(ir.MLIRError) as e:
        run(s, m, "texflow-wstream-plan{memory-budget=1MiB calibration=nope}")
    assert "no calibration 'nope'" in str(e.value)
    # sizes are typed options: a bad one is the pipeline parser's error, naming pass and option
    with pytest.raises(TexflowError, match="pass 'texflow-wstream-plan': cannot parse option 'memory-budget' '1.5XB'"):
        run(s, s.parse(mlp_text()), "texflow-wstream-plan{memory-budget=1.5XB}")
    with pytest.raises(TexflowError, match="expects int"):
        run(s, s.parse(mlp_text()), "texflow-wstream-plan{chunk-bytes=big}")


def test_stage_split_point():
    from texflow.streaming.stages import StageInfo
    assert StageInfo(ops=[1, 2, 3], kinds=["reusable", "elemental", "elemental"]).split_point() == 2
    assert StageInfo(ops=[1, 2], kinds=["reusable", "elemental"]).split_point() == 1
    assert StageInfo(ops=[1], kinds=["reusable"]).split_point() is None
    assert StageInfo(ops=[1, 2], kinds=["hierarchical", "elemental"]).split_point() is None
    assert StageInfo(ops=[1, 2, 3], kinds=["reusable", "hierarchical", "elemental"]).kind == \
        "hierarchical"
