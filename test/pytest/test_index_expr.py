"""Index comprehension: simplified maps must equal numpy's reshape/transpose."""

import itertools

import numpy as np
from hypothesis import given, settings, strategies as st

from hypothesis_budget import examples

from texflow import index_expr as ie


def check_map(m, src, y):
    for idx in itertools.product(*map(range, y.shape)):
        assert src[ie.evaluate(m, idx)] == y[idx], (idx, [str(e) for e in m])


def test_attention_head_split_merge_is_identity():
    S, H, Dh = 6, 4, 3
    D = H * Dh
    m = ie.reshape_map([1, S, D], [1, S, H, Dh])
    m = ie.compose(m, ie.permute_map([0, 2, 1, 3]), [1, H, S, Dh])
    assert [str(e) for e in m] == ["0", "d2", "d1 * 3 + d3"]
    m = ie.compose(m, ie.permute_map([0, 2, 1, 3]), [1, S, H, Dh])
    m = ie.compose(m, ie.reshape_map([1, S, H, Dh], [1, S, D]), [1, S, D])
    assert ie.is_identity(m, [1, S, D], [1, S, D])


def test_rank_change_is_never_a_permutation():
    # [4] -> [2, 2] -> [1, 2, 2] -> [1, 4] -> transpose -> [4, 1]: the map reads
    # x[d0] everywhere but changes the rank, so it is a reshape, not a permutation
    m = ie.identity_map(1)
    shape = [4]
    for nxt in ([2, 2], [1, 2, 2], [1, 4]):
        m = ie.compose(m, ie.reshape_map(shape, nxt), nxt)
        shape = nxt
    m = ie.compose(m, ie.permute_map([1, 0]), [4, 1])
    assert ie.as_permutation(m, [4], [4, 1]) is None
    assert ie.is_reshape(m, [4], [4, 1])


def test_mod_of_mod_and_div_of_div():
    r = ie.Ranges([100])
    x = ie.Lin.dim(0)
    assert ie.mod(ie.mod(x, 12, r), 4, r) == ie.mod(x, 4, r)  # i % 12 % 4 -> i % 4
    assert ie.floordiv(ie.floordiv(x, 3, r), 4, r) == ie.floordiv(x, 12, r)
    r2 = ie.Ranges([5, 4])
    e = ie.Lin.dim(0).scale(4) + ie.Lin.dim(1)
    assert ie.floordiv(e, 4, r2) == ie.Lin.dim(0)  # (d0*4 + d1) div 4 -> d0 when d1 < 4
    assert ie.mod(e, 4, r2) == ie.Lin.dim(1)


shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4)


@st.composite
def chains(draw):
    shape = draw(shapes)
    steps = []
    cur = list(shape)
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            perm = draw(st.permutations(range(len(cur))))
            steps.append(("perm", list(perm)))
            cur = [cur[p] for p in perm]
        else:
            n = int(np.prod(cur))
            # a random factorisation of n
            new, rest = [], n
            while rest > 1 and len(new) < 3:
                divs = [d for d in range(2, rest + 1) if rest % d == 0]
                d = draw(st.sampled_from(divs))
                new.append(d)
                rest //= d
            new = new + ([rest] if rest > 1 else []) or [1]
            if draw(st.booleans()):
                new = [1] + new
            steps.append(("reshape", new))
            cur = new
    return shape, steps


@settings(max_examples=examples(150), deadline=None)
@given(chains())
def test_composed_chain_matches_numpy(chain):
    shape, steps = chain
    x = np.arange(int(np.prod(shape))).reshape(shape)
    y = x
    m = ie.identity_map(len(shape))
    for kind, arg in steps:
        if kind == "perm":
            step = ie.permute_map(arg)
            y2 = y.transpose(arg)
        else:
            step = ie.reshape_map(list(y.shape), arg)
            y2 = y.reshape(arg)
        m = ie.compose(m, step, list(y2.shape))
        y = y2
    check_map(m, x, y)
    perm = ie.as_permutation(m, list(x.shape), list(y.shape))
    if perm is not None:  # a claimed permutation must really be one
        assert np.array_equal(x.transpose(perm), y)
    if ie.is_reshape(m, list(x.shape), list(y.shape)):  # a claimed reshape must be one
        assert np.array_equal(x.reshape(y.shape), y)
    if all(kind == "reshape" for kind, _ in steps):  # and small reshape chains are recognised
        assert ie.is_reshape(m, list(x.shape), list(y.shape)), [str(e) for e in m]
