"""texflow.ir.rewrite: the pattern driver texflow-eliminate-layout runs its rules with.

- It applies the first plan found, restarts, and stops at a fixed point (a counter pattern).
- A set of patterns that keeps rewriting is reported (converged False), not looped on forever.
- Stages are tried in order and a stage without patterns is skipped.
- Elimination's rules decide in `match`: matching every rule on every candidate of a real
  model changes nothing (the module prints the same before and after).
"""

import onnx_models
from iree.compiler import ir

from texflow.ir.rewrite import Pattern, Stage, apply_patterns


class _Module:
    """A stand-in module: a list of integers the patterns rewrite."""

    def __init__(self, values):
        self.values = list(values)


class Decrement(Pattern):
    name = "decrement"

    def match(self, i):
        return i if self.m.values[i] > 0 else None

    def rewrite(self, i):
        self.m.values[i] -= 1


class Flip(Pattern):
    name = "flip"

    def match(self, i):
        return i

    def rewrite(self, i):
        self.m.values[i] = -self.m.values[i]


def _run(m, patterns, limit=1000):
    for p in patterns:
        p.m = m
    return apply_patterns(m, [Stage(lambda mod: list(range(len(mod.values))), patterns)], limit)


def test_fixed_point():
    m = _Module([2, 0, 3])
    r = _run(m, [Decrement()])
    assert m.values == [0, 0, 0] and r.converged and r.rewrites == 5 and r.by_pattern == {"decrement": 5}


def test_non_convergence_is_reported():
    m = _Module([1])
    r = _run(m, [Flip()], limit=7)
    assert not r.converged and r.rewrites == 7


def test_stages_in_order_and_empty_stages_skipped():
    m = _Module([1, 1])
    seen = []

    class Record(Pattern):
        name = "record"

        def match(self, i):
            seen.append(i)
            return None

    d = Decrement()
    d.m = m
    r = apply_patterns(m, [Stage(lambda mod: [0], []), Stage(lambda mod: [1], [d]),
                           Stage(lambda mod: [0, 1], [Record(), d])])
    # stage 2 empties value 1 first, then stage 3 finds value 0 (after Record looked at it)
    assert m.values == [0, 0] and r.converged and seen[:1] == [0]


def test_elimination_rules_match_without_changing_the_ir(tmp_path):
    import onnx
    from texflow.compiler import CompileOptions, Compiler
    from texflow.passes.layout.eliminate import EliminateLayout
    from texflow.passes.layout.raise_layout import RaiseLayout

    onnx.save(onnx_models.attention(S=12, D=24, H=3), tmp_path / "a.onnx")
    res = Compiler(CompileOptions(target="llvm-cpu", layout_pipeline="texflow-verify-layout",
                                  compile_to="texflow-layout")).compile_file(str(tmp_path / "a.onnx"))
    from texflow.session import CompilerSession
    s = CompilerSession([])
    with s.context:
        module = ir.Module.parse(res.mlir)
        RaiseLayout().apply(module.operation)
        before = str(module)
        elim = EliminateLayout(fold_into_producers=True)
        matched = 0
        for stage in elim.stages():
            for op in stage.roots(module.operation):
                for p in stage.patterns:
                    matched += p.match(op) is not None
        assert matched > 0  # the attention's head transposes give the rules something to do
        assert str(module) == before
