"""The importer's decomposed softmax: its matcher, shared by texflow-rewrite-softmax and
texflow-fuse-attention, and the three-generic form texflow-rewrite-softmax writes.

ONNX Softmax reaches texflow decomposed by the importer (torch-mlir): a max reduction that also
computes an unused arg-max index, then x - max, exp, a sum reduction and a division.
`match_softmax` recognises that chain from its division; `three_generic_softmax` writes

    m = max_a(x)                     (no index)
    s = sum_a(exp(x - m))
    y = exp(x - m) / s
"""

from __future__ import annotations

import dataclasses

from iree.compiler import ir
from iree.compiler.dialects import arith, linalg, math, tensor

from texflow import irutil
from texflow.ir.structured import (affine_maps, build_generic, fill_value, generic_body_ops, inputs_of,
                                   map_dims, outputs_of)

UNIT_RESHAPES = ("tensor.expand_shape", "tensor.collapse_shape")


# -- matching ------------------------------------------------------------------

def non_unit_dims(shape) -> list[int]:
    return [i for i, n in enumerate(shape) if n != 1]


def is_unit_reshape(op) -> bool:
    """A reshape that only inserts or removes unit dimensions."""
    if op is None or op.name not in UNIT_RESHAPES:
        return False
    a, b = irutil.tensor_shape(op.operands[0]), irutil.tensor_shape(op.results[0])
    return [a[i] for i in non_unit_dims(a)] == [b[i] for i in non_unit_dims(b)]


def strip_unit_reshapes(v):
    """The value `v` is a unit-dimension reshape of (itself if none)."""
    while is_unit_reshape(irutil.producer(v)):
        v = irutil.producer(v).operands[0]
    return v


def dim_to_base(v, base) -> dict[int, int]:
    """For v, a unit-dimension reshape of `base`: v's non-unit dim -> base's dim."""
    a, b = non_unit_dims(irutil.tensor_shape(v)), non_unit_dims(irutil.tensor_shape(base))
    return dict(zip(a, b))


def block_args(op):
    return list(op.regions[0].blocks[0].arguments)


def body_and_yields(op) -> list:
    """The body's ops before the yield, and the yield's operands."""
    ops = generic_body_ops(op)
    return [o.operation for o in ops[:-1]], list(ops[-1].operation.operands)


def all_parallel_except(op, a: int | None) -> bool:
    its = [str(x) for x in ir.ArrayAttr(op.attributes["iterator_types"])]
    return all(("reduction" in t) == (i == a) for i, t in enumerate(its))


def broadcast_dim(m: ir.AffineMap) -> int | None:
    """If map m reads an operand that drops one loop dim `a` (or holds it as a constant 0) and
    is the identity on the others, `a`; else None."""
    n = m.n_dims
    res = [e.maybe_downcast() for e in m.results]
    dims = [e.position if isinstance(e, ir.AffineDimExpr) else None for e in res]
    if len(res) == n - 1 and None not in dims:
        missing = [d for d in range(n) if d not in dims]
        if len(missing) == 1 and dims == [d for d in range(n) if d != missing[0]]:
            return missing[0]
        return None
    if len(res) == n:
        consts = [i for i, e in enumerate(res) if isinstance(e, ir.AffineConstantExpr)]
        if len(consts) == 1 and res[consts[0]].value == 0 and \
                all(dims[i] == i for i in range(n) if i != consts[0]):
            return consts[0]
    return None


def is_identity(m: ir.AffineMap) -> bool:
    return map_dims(m) == list(range(m.n_dims)) and len(m.results) == m.n_dims


def binary_body(op, name: str, commutative: bool = False) -> bool:
    """The body is `yield name(arg0, arg1)`."""
    ops, ys = body_and_yields(op)
    args = block_args(op)
    if len(ops) != 1 or ops[0].name != name or len(ys) != 1 or ys[0] != ops[0].results[0]:
        return False
    x, y = ops[0].operands
    return (x == args[0] and y == args[1]) or (commutative and x == args[1] and y == args[0])


@dataclasses.dataclass
class Softmax:
    """A decomposed softmax: `y = exp(x - max_a x) / sum_a exp(x - max_a x)`, `ops` its ops
    from the division back (erased once y is replaced)."""
    x: object  # ir.Value
    axis: int
    y: object  # the division's result
    ops: list


def reduction_of(v, a: int, combiner: tuple[str, ...], init_ok) -> object | None:
    """If `v` (through unit reshapes) is result 0 of a reduction along `a` of one input whose
    first result combines input and accumulator with `combiner`, that op."""
    v = strip_unit_reshapes(v)
    op = irutil.producer(v)
    if op is None or op.name != "linalg.generic" or ir.OpResult(v).result_number != 0:
        return None
    ins, outs = inputs_of(op), outputs_of(op)
    if len(ins) != 1 or not all_parallel_except(op, a):
        return None
    maps = affine_maps(op)
    if not is_identity(maps[0]) or broadcast_dim(maps[1]) != a:
        return None
    if init_ok(fill_value(outs[0])) is not True:
        return None
    # other results (torch-mlir's arg-max index) must be unused
    if any(len(irutil.uses(r)) for r in list(op.results)[1:]):
        return None
    args = block_args(op)
    _, ys = body_and_yields(op)
    comb = irutil.producer(ys[0])
    if comb is None or comb.name not in combiner:
        return None
    if set(comb.operands) != {args[0], args[len(ins)]}:
        return None
    return op


def exp_of_difference(v, a: int):
    """If `v` is exp(x - b) with b broadcast along `a` (one generic or a sub then an exp),
    (x, b's value, ops)."""
    op = irutil.producer(v)
    if op is None or op.name != "linalg.generic" or not all_parallel_except(op, None):
        return None
    ins = inputs_of(op)
    maps = affine_maps(op)
    ops, ys = body_and_yields(op)
    args = block_args(op)
    if len(ins) == 1 and is_identity(maps[0]) and is_identity(maps[1]) and len(ops) == 1 \
            and ops[0].name == "math.exp" and ops[0].operands[0] == args[0] and ys[0] == ops[0].results[0]:
        sub = irutil.producer(ins[0])
        if sub is None or sub.name != "linalg.generic" or not all_parallel_except(sub, None):
            return None
        sm = affine_maps(sub)
        if len(inputs_of(sub)) != 2 or not binary_body(sub, "arith.subf") or \
                not is_identity(sm[0]) or broadcast_dim(sm[1]) != a or not is_identity(sm[2]):
            return None
        return inputs_of(sub)[0], inputs_of(sub)[1], [op, sub]
    if len(ins) == 2 and len(ops) == 2 and ops[0].name == "arith.subf" and ops[1].name == "math.exp" \
            and list(ops[0].operands) == args[:2] and ops[1].operands[0] == ops[0].results[0] \
            and ys[0] == ops[1].results[0] and is_identity(maps[0]) and broadcast_dim(maps[1]) == a \
            and is_identity(maps[2]):
        return ins[0], ins[1], [op]
    return None


def match_softmax(div) -> Softmax | None:
    """The decomposed softmax whose last op is `div` (e / broadcast sum), or None."""
    if div.name != "linalg.generic" or len(div.results) != 1 or not all_parallel_except(div, None):
        return None
    ins = inputs_of(div)
    if len(ins) != 2 or not binary_body(div, "arith.divf"):
        return None
    maps = affine_maps(div)
    if not is_identity(maps[0]) or not is_identity(maps[2]):
        return None
    a = broadcast_dim(maps[1])
    if a is None:
        return None
    e = ins[0]
    sum_op = reduction_of(ins[1], a, ("arith.addf",), lambda f: f == 0.0)
    if sum_op is None or inputs_of(sum_op)[0] != e:
        return None
    found = exp_of_difference(e, a)
    if found is None:
        return None
    x, b, exp_ops = found
    max_op = reduction_of(b, a, ("arith.maximumf", "arith.maxnumf"),
                        lambda f: f is not None and f <= -3.0e38)
    if max_op is None or inputs_of(max_op)[0] != x:
        return None
    et = ir.RankedTensorType(x.type).element_type
    if str(et) != "f32" or not ir.RankedTensorType(x.type).has_static_shape:
        return None
    return Softmax(x=x, axis=a, y=div.results[0], ops=[div, sum_op] + exp_ops + [max_op])


def softmaxes(module):
    """Yield each decomposed softmax of the module, matched only when it is reached: a pass
    rewrites one before the next is matched, and a softmax may read an earlier one's result,
    which the rewrite replaces (a Softmax matched beforehand would hold the erased value)."""
    roots = [op for f in irutil.functions(module) for op in irutil.collect(f, ("linalg.generic",))
             if match_softmax(op) is not None]
    for div in roots:  # rewrites erase only their own softmax's ops, never another's division
        s = match_softmax(div)
        if s is not None:
            yield s


def erase_dead(ops) -> None:
    """Erase `ops` (and the reshapes, fills and empties feeding them) once nothing uses them,
    consumers first."""
    pending = [o.operation for o in ops]
    changed = True
    while changed:
        changed = False
        for i, op in enumerate(pending):
            if any(len(irutil.uses(r)) for r in op.results):
                continue
            feeders = [irutil.producer(v) for v in op.operands]
            del pending[i]
            op.erase()
            for f in feeders:
                if f is not None and f.name in UNIT_RESHAPES + ("linalg.fill", "tensor.empty") \
                        and f.operation not in pending:
                    pending.append(f.operation)
            changed = True
            break


# -- building ------------------------------------------------------------------

def three_generic_softmax(x, a: int):
    """softmax of x along dim a as max, sum-of-exp and normalise generics (see the module doc)."""
    t = ir.RankedTensorType(x.type)
    shape, et, n = list(t.shape), t.element_type, len(t.shape)
    red_shape = [s for i, s in enumerate(shape) if i != a]
    ident = ir.AffineMap.get_identity(n)
    drop = ir.AffineMap.get(n, 0, [ir.AffineDimExpr.get(i) for i in range(n) if i != a])
    its = ["reduction" if i == a else "parallel" for i in range(n)]
    empty_r = tensor.empty(red_shape, et)
    m0 = linalg.fill(arith.constant(et, float("-inf")), outs=[empty_r])
    s0 = linalg.fill(arith.constant(et, 0.0), outs=[empty_r])
    m = build_generic([x], [ident], m0, drop, its, lambda b: arith.maximumf(b[0], b[1]))
    s = build_generic([x, m], [ident, drop], s0, drop, its,
                      lambda b: arith.addf(math.exp(arith.subf(b[0], b[1])), b[2]))
    return build_generic([x, m, s], [ident, drop, drop], tensor.empty(shape, et), ident,
                         ["parallel"] * n, lambda b: arith.divf(math.exp(arith.subf(b[0], b[1])), b[2]))
