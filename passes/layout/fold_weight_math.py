"""texflow-fold-weight-math: elementwise and reduction arithmetic on constants only (weight
standardization, weight normalization) is computed at compile time, so that the ops after it
see constant weights.

Why: NF-ResNet standardizes each filter in the graph (mean and variance over the filter, then
scale), and wav2vec2's positional convolution normalizes its weight. IREE evaluates such
constant expressions too, but only in its global-optimization phase, after texflow's layout
phase: texflow saw computed filters, re-laid out none of NF-ResNet-26's 29 convolutions, and ran
it at 0.995 of plain IREE (held-out corpus, 2026-12-08). Folded here, the convolutions get
constant filters that selection and packing re-lay out like any other.

What folds: `linalg.generic` (inputs read through projected permutations; a body of float arith
and math ops, with a reduction's result combined with `addf`, `mulf`, `maximumf` or `minimumf`),
`linalg.broadcast`, `linalg.transpose`, `linalg.fill`, `tensor.expand_shape` and
`tensor.collapse_shape`, whose tensor inputs are all constants (or folded). The arithmetic runs
in numpy in the ops' own precision, one op at a time as IREE would (float32 stays float32), so
results match IREE's own evaluation up to the order of a reduction's sums. A folded value
becomes a constant only where an op that does not fold reads it, only when arithmetic was done
on the way (a copy, broadcast or reshape of a weight is left as the importer wrote it, for the
passes that match those), and only when it is no larger than the largest constant it came from
(a broadcast is left to the op that reads it).
"""

from __future__ import annotations

import numpy as np
from iree.compiler import ir

from texflow import irutil
from texflow.ir.constants import constant_array, make_constant
from texflow.ir.structured import (affine_maps, inputs_of, iterator_types, map_dims_or_zero,
                                   outputs_of, static_shape)
from ..registry import Pass, register_pass

_LIMIT = 1 << 24  # elements of a constant read or computed
_NP = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "bf16": None}
_BIN = {"arith.addf": np.add, "arith.subf": np.subtract, "arith.mulf": np.multiply,
        "arith.divf": np.divide, "arith.maximumf": np.maximum, "arith.minimumf": np.minimum,
        "arith.maxnumf": np.fmax, "arith.minnumf": np.fmin, "math.powf": np.power}
_UN = {"arith.negf": np.negative, "math.sqrt": np.sqrt, "math.rsqrt": lambda x: 1 / np.sqrt(x),
       "math.exp": np.exp, "math.log": np.log, "math.tanh": np.tanh, "math.absf": np.abs}
_CMP = {0: None, 1: np.equal, 2: np.greater, 3: np.greater_equal, 4: np.less, 5: np.less_equal,
        6: np.not_equal, 8: np.equal, 9: np.greater, 10: np.greater_equal, 11: np.less,
        12: np.less_equal, 13: np.not_equal}  # arith.cmpf predicates (ordered / unordered alike)
_REDUCE = {"arith.addf": np.add, "arith.mulf": np.multiply, "arith.maximumf": np.maximum,
           "arith.minimumf": np.minimum}


class _NoFold(Exception):
    pass


def _is_tensor(t) -> bool:
    try:
        ir.RankedTensorType(t)
        return True
    except ValueError:
        return False


def _dtype(t):
    d = _NP.get(str(ir.RankedTensorType(t).element_type) if _is_tensor(t) else str(t))
    if d is None:
        raise _NoFold
    return d


def _scalar_const(op):
    """A float scalar arith.constant's value, else None."""
    if op is None or op.name != "arith.constant":
        return None
    try:
        return ir.FloatAttr(op.attributes["value"]).value
    except (ValueError, TypeError):
        return None


def _aligned(x: np.ndarray, dims: list[int | None], n_loops: int) -> np.ndarray:
    """`x`, read through a map naming loop `dims` (None: a unit dimension), as an array over all
    loops (size-1 axes for loops it does not read), for numpy broadcasting."""
    if any(d is None and x.shape[i] != 1 for i, d in enumerate(dims)):
        raise _NoFold
    x = x.reshape([n for n, d in zip(x.shape, dims) if d is not None])
    dims = [d for d in dims if d is not None]
    order = sorted(range(len(dims)), key=lambda i: dims[i])
    y = np.transpose(x, order)
    shape = [1] * n_loops
    for i, d in enumerate(sorted(dims)):
        shape[d] = y.shape[i]
    return y.reshape(shape)


def _eval_body(op, args: list) -> tuple[object, str | None]:
    """The body's yielded value over the iteration domain, and for a reduction (the out
    argument read) the combiner: yield = combiner(out, value)."""
    blk = op.regions[0].blocks[0]
    ba = list(blk.arguments)
    out_arg = ba[-1]
    env = dict(zip(ba[:-1], args))
    ops = [irutil.operation(o) for o in blk.operations]
    combiner = None

    def get(v):
        if v in env:
            return env[v]
        c = _scalar_const(irutil.producer(v))  # a scalar captured from outside the body
        if c is None:
            raise _NoFold
        return c

    for o in ops[:-1]:
        n, operands = o.name, list(o.operands)
        if n == "arith.constant":
            c = _scalar_const(o)
            if c is None:
                raise _NoFold
            env[o.results[0]] = c
        elif out_arg in operands:
            # a reduction's combiner, out = combine(out, g): the value the body yields
            other = [x for x in operands if x != out_arg]
            if n not in _REDUCE or len(other) != 1 or o.results[0] != ops[-1].operands[0]:
                raise _NoFold
            combiner = n
            env[o.results[0]] = get(other[0])
        elif n in _BIN:
            env[o.results[0]] = _BIN[n](get(operands[0]), get(operands[1]))
        elif n in _UN:
            env[o.results[0]] = _UN[n](get(operands[0]))
        elif n == "arith.cmpf":
            f = _CMP.get(int(ir.IntegerAttr(o.attributes["predicate"]).value))
            if f is None:
                raise _NoFold
            env[o.results[0]] = f(get(operands[0]), get(operands[1]))
        elif n == "arith.select":
            env[o.results[0]] = np.where(get(operands[0]), get(operands[1]), get(operands[2]))
        elif n in ("arith.extf", "arith.truncf"):
            env[o.results[0]] = np.asarray(get(operands[0])).astype(_dtype(o.results[0].type))
        else:
            raise _NoFold
    y = ops[-1]
    if y.name != "linalg.yield" or len(y.operands) != 1 or y.operands[0] == out_arg:
        raise _NoFold
    return get(y.operands[0]), combiner


class _Values(dict):
    """Folded values by SSA value; a tensor constant is read (once) when first asked for, so
    that a model's weights are not all copied into numpy."""

    def __missing__(self, v):
        p = irutil.producer(v)
        if p is None or p.name != "arith.constant" or not _is_tensor(v.type):
            raise KeyError(v)
        x = constant_array(p, _LIMIT)
        if x is None:
            raise KeyError(v)
        self[v] = x
        return x

    def has(self, v) -> bool:
        try:
            self[v]
            return True
        except KeyError:
            return False


def _init_value(v, known):
    """A reduction's init: a folded value or a fill of a scalar constant."""
    if known.has(v):
        return known[v]
    p = irutil.producer(v)
    if p is not None and p.name == "linalg.fill":
        c = _scalar_const(irutil.producer(p.operands[0]))
        s = static_shape(v)
        if c is not None and s is not None:
            return np.full(s, c)
    raise _NoFold


def _fold_generic(op, known) -> np.ndarray:
    ins, outs = inputs_of(op), outputs_of(op)
    if len(outs) != 1 or len(op.results) != 1 or not ins or not all(known.has(v) for v in ins):
        raise _NoFold
    its = iterator_types(op)
    n = len(its)
    shapes = [static_shape(v) for v in ins + outs]
    dims = [map_dims_or_zero(m) for m in affine_maps(op)]
    if any(s is None for s in shapes) or any(d is None for d in dims):
        raise _NoFold
    sizes = [None] * n
    for s, d in zip(shapes, dims):
        for size, loop in zip(s, d):
            if loop is not None:
                sizes[loop] = size
    if None in sizes or int(np.prod(sizes)) > _LIMIT:
        raise _NoFold
    dt = _dtype(op.results[0].type)
    args = [_aligned(np.asarray(known[v], dtype=_dtype(v.type)), d, n) for v, d in zip(ins, dims[:-1])]
    g, combiner = _eval_body(op, args)
    g = np.broadcast_to(np.asarray(g, dtype=dt), sizes)
    out_full = dims[-1]
    out_dims = [d for d in out_full if d is not None]
    red = tuple(i for i in range(n) if its[i] == "reduction")
    if sorted(out_dims + list(red)) != list(range(n)):
        raise _NoFold  # every loop an output dim or a reduction, once
    if combiner is None:
        if red:
            raise _NoFold
        res = g
    else:
        init = _aligned(np.asarray(_init_value(outs[0], known), dtype=dt), out_full, n)
        f = _REDUCE[combiner]
        res = f(init, f.reduce(g, axis=red, keepdims=True, dtype=dt))
    pos = sorted(out_dims)
    arr = np.asarray(res, dtype=dt).reshape([sizes[i] for i in pos])
    arr = np.transpose(arr, [pos.index(d) for d in out_dims])
    return np.ascontiguousarray(arr.reshape(static_shape(op.results[0])))


def _fold(op, known):
    """The value of `op`'s result when it can be computed from constants, else None."""
    n = op.name
    if n == "linalg.generic":
        return _fold_generic(op, known)
    if n not in ("tensor.expand_shape", "tensor.collapse_shape", "linalg.transpose", "linalg.broadcast"):
        return None
    s = static_shape(op.results[0])
    if s is None or not known.has(op.operands[0]):
        return None
    x = known[op.operands[0]]
    if n == "linalg.transpose":
        return np.ascontiguousarray(np.transpose(x, irutil.int_array(op.attributes["permutation"])))
    if n == "linalg.broadcast":
        dims = irutil.int_array(op.attributes["dimensions"])
        return np.broadcast_to(x.reshape([1 if i in dims else d for i, d in enumerate(s)]), s)
    return x.reshape(s)


def _computes(op) -> bool:
    """A generic whose body does arithmetic (not a copy, broadcast or transpose of its input:
    those are left as the importer wrote them, for the passes that match them)."""
    if op.name != "linalg.generic":
        return False
    return any(irutil.operation(o).name != "linalg.yield" for o in op.regions[0].blocks[0].operations)


@register_pass
class FoldWeightMath(Pass):
    name = "texflow-fold-weight-math"
    summary = ("Compute elementwise and reduction arithmetic on constants only (weight "
               "standardization, weight normalization) at compile time")

    def apply(self, module) -> None:
        for f in irutil.functions(module):
            self._fold_function(f)

    def _fold_function(self, f) -> None:
        known = _Values()
        computed = set()  # folded values with arithmetic behind them (not only reshapes)
        folded_ops = []
        for op in irutil.collect(f):
            op = irutil.operation(op)
            if len(op.results) != 1 or op.name == "arith.constant":
                continue
            try:
                val = _fold(op, known)
            except (_NoFold, KeyError, ValueError, FloatingPointError):
                val = None
            if val is None:
                continue
            r = op.results[0]
            known[r] = val
            folded_ops.append(op)
            if _computes(op) or any(v in computed for v in op.operands):
                computed.add(r)

        folded = set(folded_ops)
        sizes: dict = {}

        def source_size(op) -> int:
            """Elements of the largest constant behind a folded op's result."""
            if op in sizes:
                return sizes[op]
            best = 0
            for v in op.operands:
                p = irutil.producer(v)
                if p is not None and p.name == "arith.constant" and known.has(v):
                    best = max(best, known[v].size)
                elif p is not None and p in folded:
                    best = max(best, source_size(p))
            sizes[op] = best
            return best

        # a computed value becomes a constant where an op that did not fold reads it
        for op in folded_ops:
            r = op.results[0]
            outside = [u for u in r.uses if irutil.operation(u.owner) not in folded]
            if r not in computed or not outside or known[r].size > source_size(op):
                continue  # only reshaped, unread, or larger than its sources (a broadcast)
            with ir.InsertionPoint(op), op.location:
                c = make_constant(np.ascontiguousarray(known[r]), r.type)
            for u in outside:
                irutil.operation(u.owner).operands[u.operand_number] = c
            self.bump("weight expressions folded to constants")
        sources = []
        for op in reversed(folded_ops):  # what no longer has users, readers first
            if not list(op.results[0].uses):
                sources += [irutil.producer(v) for v in op.operands]
                op.erase()
        for c in dict.fromkeys(p for p in sources if p is not None and p.name == "arith.constant"):
            if not list(c.results[0].uses):
                c.erase()  # a raw weight now read only through its folded form
