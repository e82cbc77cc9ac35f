"""Index comprehension: layout transforms as simplified index arithmetic.

SmartMem eliminates chains of Reshape/Transpose by composing their index
functions: for an output index (d0, ..., dn) of the chain, which input
element does it read?  A transpose permutes indices; a reshape linearises the
index row-major and splits it again (`*`, `+` to merge, `floordiv`, `mod` to
split).  Composed naively the expressions grow; with range information they
collapse, e.g. `(d0 * 4 + d1) floordiv 4 -> d0` when `0 <= d1 < 4`, and
`i mod Ca mod Cb -> i mod Cb` when `Ca mod Cb == 0`.  A chain whose simplified
map is the identity disappears; one that is a pure permutation becomes one
transpose, which can then fold into a neighbouring kernel's indexing map.

MLIR's own affine simplifier does not know the dimension ranges, so this
module keeps a tiny expression algebra with interval analysis: expressions
are linear combinations of "atoms" (dimensions, floordiv and mod of
expressions by constants) plus a constant.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod


# -- expressions -----------------------------------------------------------
# An expression is a `Lin`: {atom: coeff} + const.  Atoms are Dim, FloorDiv,
# Mod (hashable, structurally compared).

@dataclass(frozen=True)
class Dim:
    index: int

    def __str__(self):
        return f"d{self.index}"


@dataclass(frozen=True)
class FloorDiv:
    arg: "Lin"
    divisor: int

    def __str__(self):
        return f"({self.arg} floordiv {self.divisor})"


@dataclass(frozen=True)
class Mod:
    arg: "Lin"
    modulus: int

    def __str__(self):
        return f"({self.arg} mod {self.modulus})"


@dataclass(frozen=True)
class Lin:
    terms: tuple  # sorted tuple of (atom, coeff), coeff != 0
    const: int = 0

    @staticmethod
    def of(terms: dict, const: int = 0) -> "Lin":
        terms = _recombine(dict(terms))
        items = tuple(sorted(((a, c) for a, c in terms.items() if c != 0), key=lambda t: str(t[0])))
        return Lin(items, const)

    @staticmethod
    def dim(i: int) -> "Lin":
        return Lin.of({Dim(i): 1})

    @staticmethod
    def constant(c: int) -> "Lin":
        return Lin((), c)

    def as_dict(self) -> dict:
        return dict(self.terms)

    def __add__(self, other: "Lin") -> "Lin":
        d = self.as_dict()
        for a, c in other.terms:
            d[a] = d.get(a, 0) + c
        return Lin.of(d, self.const + other.const)

    def scale(self, k: int) -> "Lin":
        return Lin.of({a: c * k for a, c in self.terms}, self.const * k)

    def is_const(self) -> bool:
        return not self.terms

    def single_dim(self) -> int | None:
        """i if the expression is exactly d_i."""
        if self.const == 0 and len(self.terms) == 1:
            (a, c), = self.terms
            if isinstance(a, Dim) and c == 1:
                return a.index
        return None

    def __str__(self):
        parts = [(str(a) if c == 1 else f"{a} * {c}") for a, c in self.terms]
        if self.const or not parts:
            parts.append(str(self.const))
        return " + ".join(parts)


def _recombine(terms: dict) -> dict:
    """(x floordiv k) * (c*k) + (x mod k) * c  ->  x * c  (the split undone)."""
    changed = True
    while changed:
        changed = False
        for a, c in list(terms.items()):
            if not isinstance(a, Mod) or c == 0:
                continue
            fd = FloorDiv(a.arg, a.modulus)
            # (x div k) mod b with partner x div (k*b): div-of-div is kept canonical
            # as one div, so look for that spelling too.
            inner = a.arg.terms[0][0] if len(a.arg.terms) == 1 and a.arg.terms[0][1] == 1 else None
            if isinstance(inner, FloorDiv) and a.arg.const == 0:
                fd2 = FloorDiv(inner.arg, inner.divisor * a.modulus)
                if terms.get(fd2, 0) == c * a.modulus:
                    del terms[a]
                    del terms[fd2]
                    terms[inner] = terms.get(inner, 0) + c
                    terms = {k: v for k, v in terms.items() if v != 0}
                    changed = True
                    break
            if a.arg.const == 0 and terms.get(fd, 0) == c * a.modulus:
                del terms[a]
                del terms[fd]
                for b, cb in a.arg.terms:
                    terms[b] = terms.get(b, 0) + cb * c
                terms = {k: v for k, v in terms.items() if v != 0}
                changed = True
                break
    return terms


class Ranges:
    """Inclusive bounds [lo, hi] of each dimension (from tensor shapes)."""

    def __init__(self, shape):
        self.shape = list(shape)

    def atom(self, a) -> tuple[int, int]:
        if isinstance(a, Dim):
            return 0, self.shape[a.index] - 1
        if isinstance(a, FloorDiv):
            lo, hi = self.of(a.arg)
            return lo // a.divisor, hi // a.divisor
        if isinstance(a, Mod):
            lo, hi = self.of(a.arg)
            if lo >= 0 and hi < a.modulus:
                return lo, hi
            return 0, a.modulus - 1
        raise TypeError(a)

    def of(self, e: Lin) -> tuple[int, int]:
        lo = hi = e.const
        for a, c in e.terms:
            alo, ahi = self.atom(a)
            if c >= 0:
                lo, hi = lo + c * alo, hi + c * ahi
            else:
                lo, hi = lo + c * ahi, hi + c * alo
        return lo, hi


def _split_by(e: Lin, g: int):
    """e = g * hi + lo with hi's coefficients integral; (None, None) if no term divides."""
    hi = {a: c // g for a, c in e.terms if c % g == 0}
    lo = {a: c for a, c in e.terms if c % g != 0}
    if not hi:
        return None, None
    return Lin.of(hi, e.const // g), Lin.of(lo, e.const % g)


def _within(e: Lin, g: int, r: "Ranges") -> bool:
    lo, hi = r.of(e)
    return lo >= 0 and hi < g


def floordiv(e: Lin, k: int, r: Ranges) -> Lin:
    assert k > 0
    if k == 1:
        return e
    lo, hi = r.of(e)
    if lo >= 0 and hi < k:
        return Lin.constant(0)
    # (g*a + b) div (g*q) = a div q  when g | k and 0 <= b < g
    for g in sorted((g for g in range(2, k) if k % g == 0), reverse=True):
        hi_part, lo_part = _split_by(e, g)
        if hi_part is not None and _within(lo_part, g, r):
            return floordiv(hi_part, k // g, r)
    # Pull out terms whose coefficient is a multiple of k: (k*a + b) div k = a + b div k
    # (exact for floor division with integer a).
    whole, rest = {}, {}
    for a, c in e.terms:
        (whole if c % k == 0 else rest)[a] = c
    const_whole = (e.const // k) * k
    rest_lin = Lin.of(rest, e.const - const_whole)
    out = Lin.of({a: c // k for a, c in whole.items()}, const_whole // k)
    if rest_lin.terms or rest_lin.const:
        rlo, rhi = r.of(rest_lin)
        if rlo >= 0 and rhi < k:
            return out
        # (x floordiv a) floordiv b == x floordiv (a*b)
        if not out.terms and out.const == 0 and len(rest_lin.terms) == 1 and rest_lin.const == 0:
            (a, c), = rest_lin.terms
            if isinstance(a, FloorDiv) and c == 1:
                return Lin.of({FloorDiv(a.arg, a.divisor * k): 1})
        return out + Lin.of({FloorDiv(rest_lin, k): 1})
    return out


def mod(e: Lin, k: int, r: Ranges) -> Lin:
    assert k > 0
    if k == 1:
        return Lin.constant(0)
    # Terms with coefficients divisible by k vanish: (k*a + b) mod k = b mod k.
    rest = {a: c for a, c in e.terms if c % k != 0}
    rest_lin = Lin.of(rest, e.const % k)
    if rest_lin.is_const():
        return Lin.constant(rest_lin.const % k)
    lo, hi = r.of(rest_lin)
    if lo >= 0 and hi < k:
        return rest_lin
    # (g*a + b) mod (g*q) = g * (a mod q) + b  when g | k and 0 <= b < g
    for g in sorted((g for g in range(2, k) if k % g == 0), reverse=True):
        hi_part, lo_part = _split_by(rest_lin, g)
        if hi_part is not None and _within(lo_part, g, r) and hi_part.terms:
            return mod(hi_part, k // g, r).scale(g) + lo_part
    # (x mod a) mod b == x mod b  when a mod b == 0
    if len(rest_lin.terms) == 1 and rest_lin.const == 0:
        (a, c), = rest_lin.terms
        if isinstance(a, Mod) and c == 1 and a.modulus % k == 0:
            return mod(a.arg, k, r)
    return Lin.of({Mod(rest_lin, k): 1})


# -- index maps of layout transforms --------------------------------------
# A map is a list of Lin, one per *source* dimension, over the *result*
# dimensions: result[d...] = source[map(d...)].

def identity_map(rank: int) -> list[Lin]:
    return [Lin.dim(i) for i in range(rank)]


def permute_map(perm: list[int]) -> list[Lin]:
    """linalg.transpose semantics: result[i...] = source[j...] with j[perm[k]] = i[k]."""
    out = [None] * len(perm)
    for k, p in enumerate(perm):
        out[p] = Lin.dim(k)
    return out


def reshape_map(src_shape, dst_shape) -> list[Lin]:
    """Row-major reshape: linearise the result index, split it in the source shape."""
    r = Ranges(dst_shape)
    lin = Lin.constant(0)
    for i, n in enumerate(dst_shape):
        stride = prod(dst_shape[i + 1:])
        lin = lin + Lin.dim(i).scale(stride)
    out = []
    for j, n in enumerate(src_shape):
        stride = prod(src_shape[j + 1:])
        e = floordiv(lin, stride, r) if stride > 1 else lin
        out.append(mod(e, n, r) if j > 0 else e)
    return out


def substitute(e: Lin, inner: list[Lin], r: Ranges) -> Lin:
    """e(d := inner[d]) simplified with the ranges `r` of inner's dims."""
    acc = Lin.constant(e.const)
    for a, c in e.terms:
        acc = acc + subst_atom(a, inner, r).scale(c)
    return acc


def subst_atom(a, inner, r) -> Lin:
    if isinstance(a, Dim):
        return inner[a.index]
    if isinstance(a, FloorDiv):
        return floordiv(substitute(a.arg, inner, r), a.divisor, r)
    if isinstance(a, Mod):
        return mod(substitute(a.arg, inner, r), a.modulus, r)
    raise TypeError(a)


def compose(first: list[Lin], second: list[Lin], result_shape) -> list[Lin]:
    """Map of `second(first(x))`: first maps mid->src, second maps result->mid."""
    r = Ranges(result_shape)
    return [substitute(e, second, r) for e in first]


def as_permutation(m: list[Lin], src_shape=None, result_shape=None) -> list[int] | None:
    """The linalg.transpose permutation equal to map `m`, or None.

    Unit dimensions simplify to the constant 0; with the shapes given they
    are matched to unit result dimensions (any order is equivalent)."""
    if result_shape is not None and len(result_shape) != len(m):
        return None  # a permutation keeps the rank
    dims = [e.single_dim() for e in m]
    if src_shape is not None and result_shape is not None and len(src_shape) == len(result_shape):
        free = [i for i, n in enumerate(result_shape) if n == 1 and i not in dims]
        for j, e in enumerate(m):
            if dims[j] is None and e.is_const() and e.const == 0 and src_shape[j] == 1 and free:
                dims[j] = free.pop(free.index(j) if j in free else 0)
    if None in dims or sorted(dims) != list(range(len(m))):
        return None
    perm = [0] * len(m)
    for src_dim, res_dim in enumerate(dims):
        perm[res_dim] = src_dim
    return perm


def is_identity(m: list[Lin], src_shape=None, result_shape=None) -> bool:
    p = as_permutation(m, src_shape, result_shape)
    return p is not None and p == list(range(len(m)))


def is_reshape(m: list[Lin], src_shape, result_shape, exhaustive_limit: int = 1 << 14) -> bool:
    """Is `m` a row-major reshape from src_shape to result_shape?  True iff the
    source's linear index equals the result's linear index: checked
    symbolically (sound, not complete), then exhaustively for small shapes."""
    if prod(src_shape) != prod(result_shape):
        return False
    if _is_reshape_symbolic(m, src_shape, result_shape):
        return True
    n = prod(result_shape)
    if n > exhaustive_limit:
        return False
    import itertools
    strides = [prod(src_shape[j + 1:]) for j in range(len(src_shape))]
    for lin, idx in enumerate(itertools.product(*map(range, result_shape))):
        if sum(a * b for a, b in zip(evaluate(m, idx), strides)) != lin:
            return False
    return True


def _is_reshape_symbolic(m, src_shape, result_shape) -> bool:
    lin_src = Lin.constant(0)
    for j, e in enumerate(m):
        lin_src = lin_src + e.scale(prod(src_shape[j + 1:]))
    # unit result dims only ever take the value 0
    unit_free = [Lin.constant(0) if n == 1 else Lin.dim(i) for i, n in enumerate(result_shape)]
    lin_src = substitute(lin_src, unit_free, Ranges(result_shape))
    lin_res = Lin.constant(0)
    for i, n in enumerate(result_shape):
        if n != 1:
            lin_res = lin_res + Lin.dim(i).scale(prod(result_shape[i + 1:]))
    return lin_src == lin_res


def evaluate(m: list[Lin], idx) -> tuple:
    def ev(e: Lin):
        return e.const + sum(c * ev_atom(a) for a, c in e.terms)

    def ev_atom(a):
        if isinstance(a, Dim):
            return idx[a.index]
        if isinstance(a, FloorDiv):
            return ev(a.arg) // a.divisor
        return ev(a.arg) % a.modulus
    return tuple(ev(e) for e in m)


def to_affine_text(m: list[Lin], n_dims: int) -> str:
    dims = ", ".join(f"d{i}" for i in range(n_dims))
    return f"affine_map<({dims}) -> ({', '.join(str(e) for e in m)})>"
