"""Layout elimination: the SmartMem rule table and random-graph equivalence.

The property test builds random ONNX graphs of transpose / reshape /
elementwise / matmul / softmax / layernorm / conv, compiles each with and
without texflow's layout phase, and compares both with ONNX Runtime.  Every op kind
starts a graph in every run (parametrized), with two derandomized examples each under
the "ci" profile; run longer with `pytest --hypothesis-profile=long test/pytest/test_layout.py`.
"""

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis_budget import examples
from onnx import TensorProto, helper, numpy_helper

import onnx_models
from texflow.compiler import CompileOptions, Compiler
from texflow.passes.pipelines import GPU_LAYOUT_PIPELINE
from texflow.dialects.layout import Quadrant
from texflow.ir.quadrants import Action, fused_quadrant, pair_rule
from texflow.runtime import Module

Q = Quadrant
TABLE = {  # SmartMem's table: rows producer, columns consumer
    Q.ILD_VAR: [Action.KEEP, Action.FUSE, Action.ELIMINATE_SECOND, Action.ELIMINATE_SECOND],
    Q.ILI_VAR: [Action.FUSE, Action.FUSE, Action.ELIMINATE_SECOND, Action.ELIMINATE_SECOND],
    Q.ILD_FIXED: [Action.ELIMINATE_FIRST, Action.ELIMINATE_FIRST, Action.ELIMINATE_BOTH, Action.ELIMINATE_BOTH],
    Q.ILI_FIXED: [Action.ELIMINATE_FIRST, Action.ELIMINATE_FIRST, Action.ELIMINATE_BOTH, Action.ELIMINATE_BOTH],
}
COLS = [Q.ILD_VAR, Q.ILI_VAR, Q.ILD_FIXED, Q.ILI_FIXED]


@pytest.mark.parametrize("producer", list(TABLE), ids=lambda q: q.value)
@pytest.mark.parametrize("col", range(4))
def test_pair_rule_table(producer, col):
    assert pair_rule(producer, COLS[col]) is TABLE[producer][col]


def test_fused_quadrant_is_the_more_constrained():
    assert fused_quadrant(Q.ILI_VAR, Q.ILI_VAR) is Q.ILI_VAR
    assert fused_quadrant(Q.ILI_VAR, Q.ILD_VAR) is Q.ILD_VAR
    assert fused_quadrant(Q.ILD_VAR, Q.ILI_FIXED) is Q.ILD_FIXED
    assert fused_quadrant(Q.ILI_VAR, Q.ILI_FIXED) is Q.ILI_FIXED


# -- random graphs -------------------------------------------------------------
OPS = ["transpose", "reshape", "relu", "add", "mul", "matmul", "softmax", "layernorm",
       "silu", "transpose_pair", "conv"]
SHAPES4 = ([1, 4, 4, 6], [1, 3, 5, 4], [1, 8, 2, 6], [1, 5, 6, 3])  # conv needs rank 4, batch 1
SHAPES3 = ([1, 6, 8], [1, 5, 12], [2, 4, 6], [1, 9, 4])


@st.composite
def graphs(draw, first=None):
    """A random graph whose first op is `first` (every rule is tried in every run: see
    test_random_graphs_match_onnxruntime), then 1-5 drawn ops."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 31)))
    rank4 = first == "conv" or draw(st.booleans())
    shape = list(draw(st.sampled_from(SHAPES4 if rank4 else SHAPES3)))
    xshape = list(shape)
    nodes, inits = [], []
    cur, n = "x", 0

    def fresh():
        nonlocal n
        n += 1
        return f"v{n}"

    def const(arr):
        name = f"c{len(inits)}"
        inits.append(numpy_helper.from_array(arr.astype(np.float32) if arr.dtype.kind == "f" else arr, name))
        return name

    for i in range(draw(st.integers(2, 6))):
        ops = [o for o in OPS if o != "conv" or (len(shape) == 4 and shape[0] == 1)]
        op = first if i == 0 and first else draw(st.sampled_from(ops))
        out = fresh()
        if op == "transpose":
            perm = [0] + [p + 1 for p in draw(st.permutations(range(len(shape) - 1)))]
            nodes.append(helper.make_node("Transpose", [cur], [out], perm=perm))
            shape = [shape[p] for p in perm]
        elif op == "reshape":
            rest = shape[1:]
            if len(rest) >= 2 and draw(st.booleans()):  # merge two adjacent dims
                i = draw(st.integers(0, len(rest) - 2))
                rest = rest[:i] + [rest[i] * rest[i + 1]] + rest[i + 2:]
            else:  # split a dim with a factor
                cands = [(i, f) for i, d in enumerate(rest) for f in (2, 3) if d % f == 0 and d > f]
                if not cands or len(rest) >= 4:
                    continue
                i, f = draw(st.sampled_from(cands))
                rest = rest[:i] + [f, rest[i] // f] + rest[i + 1:]
            shape = [shape[0]] + rest
            nodes.append(helper.make_node("Reshape", [cur, const(np.array(shape, np.int64))], [out]))
        elif op == "relu":
            nodes.append(helper.make_node("Relu", [cur], [out]))
        elif op == "silu":  # a value with two users: x * sigmoid(x)
            sg = fresh()
            nodes.append(helper.make_node("Sigmoid", [cur], [sg]))
            nodes.append(helper.make_node("Mul", [cur, sg], [out]))
        elif op == "transpose_pair":  # Transpose -> elementwise DAG -> inverse Transpose
            perm = [0] + [p + 1 for p in draw(st.permutations(range(len(shape) - 1)))]
            if perm == sorted(perm):  # an identity transpose is folded on import: rotate
                perm = [0] + perm[2:] + [1]
            inv = [perm.index(i) for i in range(len(perm))]
            a, b, c = fresh(), fresh(), fresh()
            pshape = [shape[p] for p in perm]
            nodes += [helper.make_node("Transpose", [cur], [a], perm=perm),
                      helper.make_node("Add", [a, const(rng.standard_normal(pshape))], [b]),
                      helper.make_node("Sigmoid", [b], [c]),
                      helper.make_node("Mul", [b, c], [c + "m"]),
                      helper.make_node("Transpose", [c + "m"], [out], perm=inv)]
        elif op == "add":
            bshape = shape[-1:] if draw(st.booleans()) else shape
            nodes.append(helper.make_node("Add", [cur, const(rng.standard_normal(bshape))], [out]))
        elif op == "mul":
            nodes.append(helper.make_node("Mul", [cur, const(np.array(rng.uniform(0.5, 2), np.float32))], [out]))
        elif op == "matmul":
            k = draw(st.sampled_from([4, 6, 8]))
            w = const(rng.standard_normal((shape[-1], k)) / np.sqrt(shape[-1]))
            nodes.append(helper.make_node("MatMul", [cur, w], [out]))
            shape = shape[:-1] + [k]
        elif op == "softmax":
            nodes.append(helper.make_node("Softmax", [cur], [out], axis=-1))
        elif op == "layernorm":
            g = const(rng.uniform(0.5, 1.5, shape[-1:]))
            b = const(rng.standard_normal(shape[-1:]))
            nodes.append(helper.make_node("LayerNormalization", [cur, g, b], [out], axis=-1, epsilon=1e-5))
        elif op == "conv":
            co = draw(st.sampled_from([2, 4]))
            ksz = draw(st.sampled_from([1, 3]))
            w = const(rng.standard_normal((co, shape[1], ksz, ksz)) * 0.3)
            nodes.append(helper.make_node("Conv", [cur, w], [out], pads=[ksz // 2] * 4))
            shape = [1, co] + shape[2:]
        cur = out
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    g = helper.make_graph(nodes, "random", [onnx_models.vi("x", xshape)], [onnx_models.vi("y", shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("first", OPS)
@settings(max_examples=examples(2), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_graphs_match_onnxruntime(tmp_path_factory, first, data):
    model = data.draw(graphs(first), label="model")
    d = tmp_path_factory.mktemp("g")
    onnx.save(model, d / "m.onnx")
    x = onnx_models.random_inputs(model)
    ref = onnx_models.ort_reference(model, x)[0]
    # plain IREE, texflow's CPU pipeline, and its GPU pipeline (which also folds
    # transforms into producing contractions), all run on llvm-cpu
    for layout, pipe in ((False, None), (True, None), (True, GPU_LAYOUT_PIPELINE)):
        res = Compiler(CompileOptions(target="llvm-cpu", layout=layout, layout_pipeline=pipe)
                       ).compile_file(str(d / "m.onnx"))
        out = Module(res.vmfb)(*x)[0]
        np.testing.assert_allclose(out, ref, rtol=2e-4, atol=2e-4,
                                   err_msg=f"layout={layout} pipeline={pipe} stats={res.statistics}")
        if layout and first == "transpose_pair":
            # the pair is a transform, an elementwise region and its inverse: elimination must
            # cancel it (equal outputs alone would also hold with no elimination at all)
            elim = res.statistics.get("texflow-eliminate-layout", {})
            assert any("cancelled" in k for k in elim), (pipe, res.statistics)
