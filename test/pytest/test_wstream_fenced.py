"""Fenced streaming (texflow-wstream-fence + FencedSession, the default stream mode): the model
stays one function, its weight groups load behind fences while the device computes, and it
computes bit for bit what the unstreamed module computes, within the memory the compiler laid
out; a corrupt archive ends the run with one line instead of a device that waits for ever."""

from __future__ import annotations

import os
import shutil

import numpy as np
import onnx
import pytest

from texflow.errors import TexflowError
from texflow.runtime import Module
from texflow.streaming.executor import StreamingSession
from texflow.streaming.fenced import FencedSession
from texflow.streaming.program import load_streamed
from texflow.passes.wstream.fence import ArenaExceedsBudget, place_groups
from test_wstream_runtime import BUDGET, assert_matches_numpy, mlp, mlp_numpy, tool


@pytest.fixture(scope="module")
def fenced(tmp_path_factory):
    d = tmp_path_factory.mktemp("wstream_fenced")
    onnx.save(mlp(0), d / "a.onnx")
    rc, _, err = tool("compile", d / "a.onnx", "-o", d / "a.vmfb")
    assert rc == 0, err
    rc, _, err = tool("compile", d / "a.onnx", "-o", d / "a.f.vmfb", f"--memory-budget={BUDGET}",
                      "--texflow-statistics")
    assert rc == 0, err
    assert "texflow-wstream-fence: 1 functions kept whole" in err
    x = np.random.default_rng(7).standard_normal((1, 8, 64)).astype(np.float32)
    return d, x


def test_fenced_module_is_one_function_with_a_layout(fenced):
    d, _ = fenced
    m = load_streamed(str(d / "a.f.vmfb"))
    p = m.program
    assert p["mode"] == "fenced" and "segments" not in p
    assert p["function"].endswith("$async")
    kinds = [a[0] for a in p["args"]]
    assert kinds.count("ready") == len(p["load_order"]) > 1
    assert kinds.count("release") == len(p["release_stages"]) >= 1
    streamed = [g for g in p["groups"] if g["region"] == "arena"]
    assert sum(g["bytes"] for g in streamed) > p["arena_bytes"]  # arena ranges are reused
    assert p["preload_bytes"] + p["arena_bytes"] + p["act_bytes"] <= BUDGET
    # every weight is in the archive, none embedded
    assert {k for g in p["groups"] for k in g["keys"]} == set(m.entries)
    assert os.path.getsize(d / "a.f.vmfb") < os.path.getsize(d / "a.vmfb") - 50_000


def test_fenced_equals_unstreamed_bit_for_bit(fenced):
    d, x = fenced
    ref = Module(str(d / "a.vmfb"))(x)[0]
    assert_matches_numpy(ref, mlp_numpy(onnx.load(d / "a.onnx"), x))
    with StreamingSession([str(d / "a.f.vmfb")]) as s:
        assert isinstance(s, FencedSession)
        for _ in range(3):  # fences at new values each run; the arena is rewritten each run
            assert np.array_equal(s.run(x)[0], ref)
        st = s.summary()
        tr = s.trace()
    assert st["mode"] == "fenced"
    assert st["peak_accounted_bytes"] <= BUDGET
    loads = [e for e in tr["events"] if e["kind"] == "load"]
    assert sum(e["bytes"] for e in loads) == st["streamed_bytes"]


def test_loads_wait_for_releases_after_the_call_returned(fenced):
    """The call enqueues the whole model and returns; a group that reuses arena bytes is
    written only after the device signalled the release of the group that held them, which
    it does only after the call was made: that load ends after the call began."""
    d, x = fenced
    m = load_streamed(str(d / "a.f.vmfb"))
    reusing = [g for g in m.program["groups"] if g["after"]]
    assert reusing, "the budget should make groups share arena bytes"
    with StreamingSession([m]) as s:
        s.run(x)
        ev = s.last.events
    call = next(e for e in ev if e.kind == "compute" and e.name.endswith(":enqueue"))
    late = [e for e in ev if e.kind == "load" and e.name.endswith(f":g{reusing[-1]['id']}")]
    assert late and late[0].t1 > call.t0


def test_fenced_budget_and_policy_errors(fenced):
    d, _ = fenced
    with pytest.raises(TexflowError, match="below the .* these modules were laid out for"):
        StreamingSession([str(d / "a.f.vmfb")], memory_budget="8KiB")
    with pytest.raises(TexflowError, match="runs its compile-time plan"):
        StreamingSession([str(d / "a.f.vmfb")], policy="next-stage")


def test_corrupt_group_fails_the_run_not_the_device(fenced, tmp_path):
    d, x = fenced
    for f in ("a.f.vmfb", "a.f.vmfb.plan.json", "a.f.vmfb.irpa"):
        shutil.copy(d / f, tmp_path / f)
    m = load_streamed(str(tmp_path / "a.f.vmfb"))
    g = next(g for g in m.program["groups"] if g["region"] == "arena" and g["after"])
    e = m.entries[g["keys"][0]]
    with open(tmp_path / "a.f.vmfb.irpa", "r+b") as f:
        f.seek(e.offset + 3)
        b = f.read(1)
        f.seek(e.offset + 3)
        f.write(bytes([b[0] ^ 0xFF]))
    with StreamingSession([str(tmp_path / "a.f.vmfb")]) as s:
        with pytest.raises(TexflowError, match="sha256"):
            s.run(x)


def test_cli_runs_a_fenced_module(fenced, tmp_path):
    d, x = fenced
    np.save(tmp_path / "x.npy", x)
    rc, _, err = tool("run", d / "a.f.vmfb", f"--input=@{tmp_path / 'x.npy'}",
                      f"--output=@{tmp_path / 'y.npy'}", "--stats")
    assert rc == 0, err
    assert '"mode": "fenced"' in err
    assert np.array_equal(np.load(tmp_path / "y.npy"), Module(str(d / "a.vmfb"))(x)[0])


def test_fenced_on_vulkan_bit_identical(fenced, tmp_path, vulkan):
    d, x = fenced
    rc, _, err = tool("compile", d / "a.onnx", "-o", tmp_path / "v.vmfb", "--target=vulkan-generic")
    assert rc == 0, err
    rc, _, err = tool("compile", d / "a.onnx", "-o", tmp_path / "v.f.vmfb",
                      "--target=vulkan-generic", f"--memory-budget={BUDGET}")
    assert rc == 0, err
    assert load_streamed(str(tmp_path / "v.f.vmfb")).program["mode"] == "fenced"
    ref = Module(str(tmp_path / "v.vmfb"), driver="vulkan")(x)[0]
    with StreamingSession([str(tmp_path / "v.f.vmfb")], driver="vulkan") as s:
        for _ in range(2):
            assert np.array_equal(s.run(x)[0], ref)
        assert s.summary()["peak_accounted_bytes"] <= BUDGET
    np.testing.assert_allclose(ref, mlp_numpy(onnx.load(d / "a.onnx"), x), rtol=1e-4, atol=1e-4)


def test_arena_placement_is_disjoint_in_time_and_space():
    """place_groups: groups alive at the same time never share bytes; a group that reuses
    bytes waits for every earlier holder of them, each of which ended before it starts."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        groups, t = [], 0
        for i in range(int(rng.integers(1, 12))):
            first = t + int(rng.integers(0, 3))
            groups.append({"id": i, "first_stage": first,
                           "start_stage": max(0, first - int(rng.integers(0, 3))),
                           "last_stage": first + int(rng.integers(0, 4))})
            t = first
        sizes = {g["id"]: int(rng.integers(1, 5)) * 256 for g in groups}
        # a capacity of every group's bytes always fits; then try the tightest live set's
        capacity = None if rng.random() < 0.5 else sum(sizes.values())
        placed, arena, after = place_groups(groups, sizes, capacity)
        assert capacity is None or arena <= capacity
        for g in groups:  # resident from the planned start at the earliest, its first stage at the latest
            assert min(g["start_stage"], g["first_stage"]) <= placed[g["id"]].lo <= g["first_stage"]
        for a in groups:
            pa = placed[a["id"]]
            assert pa.off + pa.size <= arena
            for b in groups:
                if b["id"] <= a["id"]:
                    continue
                pb = placed[b["id"]]
                t_overlap = pa.lo <= pb.hi and pb.lo <= pa.hi
                s_overlap = pa.off < pb.off + pb.size and pb.off < pa.off + pa.size
                assert not (t_overlap and s_overlap)
                if s_overlap:
                    assert a["id"] in after[b["id"]] and pa.hi < pb.lo
        if capacity is not None:
            with pytest.raises(ArenaExceedsBudget, match="does not fit"):
                place_groups(groups, sizes, max(sizes.values()) - 1)
            continue
        live = max(sum(sizes[g["id"]] for g in groups
                       if placed[g["id"]].lo <= s <= placed[g["id"]].hi)
                   for s in range(t + 8))
        assert arena >= live


def test_packed_model_that_cannot_stream_is_compiled_unpacked(tmp_path):
    """A packed weight cannot be split: where the packed model's fenced layout does not fit the
    budget, the driver compiles it again without texflow-pack-matmul (and says so), so packing
    never turns a budget that streams into an error."""
    from test_wstream_runtime import _weights, tiny_lm
    from texflow.compiler import compile_file
    onnx.save(tiny_lm(), tmp_path / "lm.onnx")
    r = compile_file(str(tmp_path / "lm.onnx"), str(tmp_path / "lm.vmfb"), memory_budget="700KiB")
    assert any("compiled without texflow-pack-matmul" in f for f in r.fallbacks), r.fallbacks
    ids = np.random.default_rng(0).integers(0, 2048, (1, 16)).astype(np.int64)
    w = _weights(tiny_lm())
    with StreamingSession([str(tmp_path / "lm.vmfb")]) as s:
        assert_matches_numpy(s.run(ids)[0], np.maximum(w["emb"][ids] @ w["w"], 0) @ w["head"])
        assert s.summary()["peak_accounted_bytes"] <= 700 * 1024


def test_fence_cost_trades_preloads_for_fewer_waves(tmp_path):
    """With a per-fence cost (Vulkan's), texflow-wstream-fence moves preloaded groups into the
    stream when the larger arena saves more fences than the moved bytes cost to load; without
    one (CPU) the plan's preloads stay.  Both layouts compute the same numbers."""
    from texflow.compiler import CompileOptions, compile_file
    from texflow.passes import pipelines
    model = mlp(0, d_in=32, d=32, d_out=32, layers=16)  # 16 small groups: many waves
    onnx.save(model, tmp_path / "m.onnx")
    x = np.random.default_rng(1).standard_normal((1, 8, 32)).astype(np.float32)
    budget = 32 * 1024
    progs, ys = {}, {}
    for name, costs in (("free", {}), ("costly", {"fence_us": 1300.0, "load_gbps": 6.4})):
        orig = pipelines.FENCE_COSTS
        pipelines.FENCE_COSTS = {"llvm": costs} if costs else {}
        try:
            out = tmp_path / f"{name}.vmfb"
            compile_file(str(tmp_path / "m.onnx"), str(out), memory_budget=str(budget),
                         pack_matmul=False)
        finally:
            pipelines.FENCE_COSTS = orig
        progs[name] = load_streamed(str(out)).program
        with StreamingSession([str(out)]) as s:
            ys[name] = s.run(x)[0]
            assert s.summary()["peak_accounted_bytes"] <= budget
    free, costly = progs["free"], progs["costly"]
    assert free["mode"] == costly["mode"] == "fenced"
    assert len(costly["ready_waves"]) < len(free["ready_waves"])
    assert costly["preload_bytes"] < free["preload_bytes"]
    assert costly["arena_bytes"] > free["arena_bytes"]
    assert np.array_equal(ys["free"], ys["costly"])
    assert_matches_numpy(ys["free"], mlp_numpy(model, x, layers=16))
