"""texflow-slice-contractions: a contraction whose result is read only through disjoint slices
(a fused QKV projection) becomes one contraction per slice.

Why: attention blocks project queries, keys and values with one matmul and then cut its result
apart. GPT-2 slices the last dimension (768 = 3 x 256) of the projection. timm's ViT/DeiT
reshapes to (tokens, 3, heads, dim), transposes the 3 to the front and slices it. Those slices
read strided memory, so IREE copies each one into a data-movement dispatch (DeiT-Tiny on
vulkan-nvidia: a transpose dispatch and two copies per block, after the projection). This is
one of the ILI&Fixed ops (slice: fixed output layout, input-layout independent) that issue #18
asks to fold into their producer. Moving each slice up through the transposes, reshapes and
elementwise ops (the bias) to the contraction, as a slice of its weight's columns, leaves
contractions that each write one slice. The weights are sliced at compile time. Elimination
then folds the head transposes into each contraction's output, as it already does for
separate projections (LLaMA, BERT). The work is the same: the slices are disjoint.

What moves: a value whose every user is a static, unit-stride, rank-preserving
`tensor.extract_slice`, pairwise disjoint, moves its slices to its producer when that producer is
- `linalg.transpose`: the slice permuted;
- `tensor.expand_shape`: a slice that is contiguous in each group (unit sizes, then one partial
  dimension, then whole ones), as one range of the source dimension;
- an elementwise `linalg.generic` (all parallel; inputs read through projected permutations or
  unit broadcasts): each input sliced through its map;
- `linalg.matmul` / `linalg.batch_matmul`: the operands sliced along the output's loops.
Operands are sliced the same way when their producer is one of these and is used only there,
a constant is sliced at compile time, and anything else gets a `tensor.extract_slice`. A group
of slices moves only when that reaches a contraction; otherwise nothing changes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from iree.compiler import ir
from iree.compiler.dialects import tensor

from texflow import irutil
from texflow.ir.constants import constant_array, make_constant
from texflow.ir.structured import (affine_maps, contraction_maps, is_elementwise,
                                   reassociation_groups, static_shape)
from ..registry import Pass, register_pass

_CONTRACTIONS = ("linalg.matmul", "linalg.batch_matmul")
_DYNAMIC = -(1 << 63)  # ShapedType's dynamic marker in static_offsets / static_sizes
_FOLD_LIMIT = 1 << 26  # constants sliced at compile time up to this many elements


@dataclasses.dataclass(frozen=True)
class Box:
    """A static slice: per dimension, its offset and size."""
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]

    def is_full(self, shape) -> bool:
        return all(o == 0 for o in self.offsets) and tuple(self.sizes) == tuple(shape)

    def disjoint(self, other: "Box") -> bool:
        return any(a + n <= b or b + m <= a for a, n, b, m in
                   zip(self.offsets, self.sizes, other.offsets, other.sizes))


def _i64s(attr) -> list[int]:
    return list(ir.DenseI64ArrayAttr(attr))


def slice_box(op) -> Box | None:
    """The Box of a static, unit-stride, rank-preserving tensor.extract_slice, else None."""
    if op.name != "tensor.extract_slice" or len(op.operands) != 1:
        return None
    offs, sizes = _i64s(op.attributes["static_offsets"]), _i64s(op.attributes["static_sizes"])
    strides = _i64s(op.attributes["static_strides"])
    src = static_shape(op.operands[0])
    if src is None or _DYNAMIC in offs + sizes or any(s != 1 for s in strides) \
            or static_shape(op.results[0]) != sizes:
        return None
    return Box(tuple(offs), tuple(sizes))


def _is_constant(v) -> bool:
    p = irutil.producer(v)
    return p is not None and irutil.operation(p).name == "arith.constant"


def _single_use(v) -> bool:
    return len(list(v.uses)) == 1


def _map_box(m: ir.AffineMap, loops: list[tuple[int, int]]) -> Box | None:
    """The Box an operand read through map `m` needs for loop ranges `loops` ((offset, size)
    per loop): a dimension result takes its loop's range, a constant 0 (a unit broadcast)
    takes (0, 1); other expressions: None."""
    offs, sizes = [], []
    for e in m.results:
        if isinstance(e, ir.AffineDimExpr):
            o, n = loops[e.position]
        elif isinstance(e, ir.AffineConstantExpr) and e.value == 0:
            o, n = 0, 1
        else:
            return None
        offs.append(o)
        sizes.append(n)
    return Box(tuple(offs), tuple(sizes))


def _expand_source_box(op, box: Box) -> Box | None:
    """The source Box of a tensor.expand_shape's result Box, if each reassociation group's
    slice is one contiguous range of its source dimension."""
    out = static_shape(op.results[0])
    groups = reassociation_groups(op)
    offs, sizes = [], []
    for g in groups:
        partial = [j for j in g if box.sizes[j] != out[j]]
        first = partial[0] if partial else g[-1]
        if any(box.sizes[j] != out[j] for j in g if j > first) or \
                any(box.sizes[j] != 1 for j in g if j < first):
            return None
        stride, strides = 1, {}
        for j in reversed(g):
            strides[j] = stride
            stride *= out[j]
        offs.append(sum(box.offsets[j] * strides[j] for j in g))
        sizes.append(box.sizes[first] * strides[first])
    return Box(tuple(offs), tuple(sizes))


def _elementwise_ok(op) -> bool:
    if not is_elementwise(op) or len(op.results) != 1:
        return False
    maps = affine_maps(op)
    out = maps[-1]
    return out == ir.AffineMap.get_identity(out.n_dims) and all(
        all(isinstance(e, ir.AffineDimExpr) or (isinstance(e, ir.AffineConstantExpr) and e.value == 0)
            for e in m.results) for m in maps[:-1])


def _operand_boxes(op, box: Box) -> list[Box | None] | None:
    """For a movable producer `op` of a result sliced by `box`: the Box of each of its
    operands (None: the operand is taken whole), or None if the slice cannot move into it."""
    name = op.name
    if name == "linalg.transpose":
        perm = _i64s(op.attributes["permutation"])
        offs, sizes = [0] * len(perm), [0] * len(perm)
        for d, p in enumerate(perm):
            offs[p], sizes[p] = box.offsets[d], box.sizes[d]
        return [Box(tuple(offs), tuple(sizes)), None]  # the init is rebuilt
    if name == "tensor.expand_shape":
        if len(op.operands) != 1:
            return None
        src = _expand_source_box(op, box)
        return None if src is None else [src]
    if name == "linalg.generic" and _elementwise_ok(op):
        loops = list(zip(box.offsets, box.sizes))
        maps = affine_maps(op)
        boxes = [_map_box(m, loops) for m in maps]
        return None if any(b is None for b in boxes) else boxes
    if name in _CONTRACTIONS:
        cm = contraction_maps(op)
        if cm is None:
            return None
        maps, its = cm
        shapes = [static_shape(v) for v in op.operands]
        if any(s is None for s in shapes):
            return None
        loops: list = [None] * maps[0].n_dims
        for m, s in zip(maps, shapes):
            for e, n in zip(m.results, s):
                if isinstance(e, ir.AffineDimExpr):
                    loops[e.position] = (0, n)
        for e, o, n in zip(maps[-1].results, box.offsets, box.sizes):
            if not isinstance(e, ir.AffineDimExpr) or its[e.position] != "parallel":
                return None
            loops[e.position] = (o, n)
        if any(lp is None for lp in loops):
            return None
        boxes = [_map_box(m, loops) for m in maps]
        return None if any(b is None for b in boxes) else boxes
    return None


@register_pass
class SliceContractions(Pass):
    name = "texflow-slice-contractions"
    undoable = True  # an optimisation: dropped, not fatal, if its result does not verify
    summary = ("Give each disjoint slice of a contraction's result (a fused QKV projection) its "
               "own contraction, moving the slice through transposes, reshapes and elementwise ops")

    @dataclasses.dataclass
    class Options:
        through_transposes: bool = dataclasses.field(default=False, metadata={
            "help": "also move slices taken behind a transpose (timm's ViT/DeiT: tokens x 3 x heads "
                    "x dim, the 3 moved to the front).  Off by default: the 5-D head transpose that "
                    "leaves is not folded into the contraction by elimination yet, so DeiT-Tiny got "
                    "8 more dispatches on vulkan-nvidia"})

    def apply(self, module) -> None:
        for f in irutil.functions(module):
            changed = True
            while changed:  # one group per round: each rewrite changes the ops around it
                changed = False
                for o in irutil.collect(f):
                    for r in irutil.operation(o).results:
                        if self._try(r):
                            changed = True
                            break
                    if changed:
                        break

    # -- analysis ----------------------------------------------------------------------
    def _reaches(self, v, box: Box, root: bool = False) -> bool:
        """Whether moving `box` into `v`'s producer reaches a contraction."""
        shape = static_shape(v)
        p = irutil.producer(v)
        if shape is None or p is None or box.is_full(shape) or (not root and not _single_use(v)):
            return False
        p = irutil.operation(p)
        boxes = _operand_boxes(p, box)
        if boxes is None:
            return False
        if p.name in _CONTRACTIONS:
            return True
        if p.name == "linalg.transpose" and not self.options.through_transposes:
            return False
        n_in = len(p.operands) - (1 if p.name in ("linalg.transpose", "linalg.generic") else 0)
        return any(b is not None and self._reaches(p.operands[i], b)
                   for i, b in enumerate(boxes[:n_in]))

    def _try(self, v) -> bool:
        users = [irutil.operation(u.owner) for u in v.uses]
        if not users:
            return False
        boxes = [slice_box(u) for u in users]
        if any(b is None for b in boxes):
            return False
        if any(not a.disjoint(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]):
            return False
        if not all(self._reaches(v, b, root=True) for b in boxes):
            return False
        dead = self._chain(v)
        self._built = []  # the contractions _build makes
        for s, b in zip(users, boxes):
            with ir.InsertionPoint(s), s.location:
                new = self._build(v, b, root=True)
            s.results[0].replace_all_uses_with(new)
            s.erase()
        while True:  # the original chain, as each op loses its last user
            unused = [o for o in dead if all(not list(r.uses) for r in o.results)]
            if not unused:
                break
            for o in unused:
                dead.remove(o)
                o.erase()
        self.bump("slices given their own contraction", len(users))
        self._sink_biases(self._built)
        return True

    def _chain(self, v) -> list:
        """The ops that compute `v`, which become dead once its slices move (those still used
        elsewhere are kept)."""
        out, todo = [], [v]
        while todo:
            x = todo.pop()
            p = irutil.producer(x)
            if p is None:
                continue
            p = irutil.operation(p)
            if p not in out and p.name in _CONTRACTIONS + ("linalg.transpose", "tensor.expand_shape",
                                                           "linalg.generic", "linalg.fill",
                                                           "tensor.empty", "arith.constant"):
                out.append(p)
                todo.extend(p.operands)
        return out

    # -- the bias below the head split --------------------------------------------------
    def _sink_biases(self, contractions: list) -> None:
        """For each new contraction, move the elementwise ops with constant operands that
        follow it (the projection's bias) below the reshapes and transposes of the head split:
        x -> E(x, b) -> reshape -> transpose becomes x -> reshape -> transpose -> E(., b'), b'
        re-laid out at compile time.  Elimination then folds the head transpose into the
        contraction (it does not fold through E), and IREE fuses E into its dispatch."""
        for c in contractions:
            r = c.results[0]
            while _single_use(r):
                e = irutil.operation(next(iter(r.uses)).owner)
                if not _elementwise_ok(e) or not _single_use(e.results[0]):
                    break
                x = irutil.operation(next(iter(e.results[0].uses)).owner)
                if x.name not in ("tensor.expand_shape", "linalg.transpose"):
                    break
                moved = self._swap(e, x)
                if moved is None:
                    break
                r = moved

    def _swap(self, e, x):
        """E(a, consts) -> X  as  X(a) -> E'(., consts'): the new X's result, or None."""
        e = irutil.operation(e)
        maps = affine_maps(e)
        ins = list(e.operands)[:-1]
        main = [i for i, a in enumerate(ins) if not _is_constant(a)]
        if len(main) != 1 or maps[main[0]] != ir.AffineMap.get_identity(maps[-1].n_dims) \
                or x.operands[0] != e.results[0]:
            return None
        k = main[0]
        out_shape = static_shape(x.results[0])
        rank = len(out_shape)
        if x.name == "linalg.transpose":
            perm = _i64s(x.attributes["permutation"])
            inv = {p: d for d, p in enumerate(perm)}
            groups = [[inv[i]] for i in range(len(perm))]
        else:
            groups = reassociation_groups(x)
        et = ir.RankedTensorType(x.results[0].type).element_type
        with ir.InsertionPoint(x), x.location:
            consts, new_maps = [], []
            for i, (a, m) in enumerate(zip(ins, maps)):
                if i == k:
                    consts.append(None)
                    new_maps.append(ir.AffineMap.get_identity(rank))
                    continue
                shape, results = [], []
                for r, n in zip(m.results, static_shape(a)):
                    if isinstance(r, ir.AffineConstantExpr):
                        shape.append(n)
                        results.append(ir.AffineConstantExpr.get(0))
                        continue
                    g = groups[r.position]
                    if x.name == "linalg.transpose":
                        shape.append(n)
                    else:
                        shape += [out_shape[j] for j in g]
                    results += [ir.AffineDimExpr.get(j) for j in g]
                data = constant_array(irutil.operation(irutil.producer(a)), _FOLD_LIMIT)
                if data is None:
                    return None
                consts.append(make_constant(np.ascontiguousarray(data.reshape(shape)),
                                            ir.RankedTensorType.get(shape, ir.RankedTensorType(a.type).element_type)))
                new_maps.append(ir.AffineMap.get(rank, 0, results))
            et_k = ir.RankedTensorType(e.operands[k].type).element_type
            moved_init = tensor.empty(list(out_shape), et_k) if x.name == "linalg.transpose" else None
            moved = x.clone(ip=ir.InsertionPoint(x))
            moved.operands[0] = e.operands[k]
            moved.results[0].set_type(ir.RankedTensorType.get(list(out_shape), et_k))
            if moved_init is not None:
                moved.operands[1] = moved_init
            init = tensor.empty(list(out_shape), et)
            new_e = e.clone(ip=ir.InsertionPoint(x))
            for i, c in enumerate(consts):
                new_e.operands[i] = moved.results[0] if i == k else c
            new_e.operands[len(ins)] = init
            new_e.attributes["indexing_maps"] = ir.ArrayAttr.get(
                [ir.AffineMapAttr.get(m) for m in new_maps + [ir.AffineMap.get_identity(rank)]])
            new_e.attributes["iterator_types"] = ir.ArrayAttr.get(
                [ir.Attribute.parse("#linalg.iterator_type<parallel>")] * rank)
            new_e.results[0].set_type(x.results[0].type)
        x.results[0].replace_all_uses_with(new_e.results[0])
        leftovers = [irutil.operation(irutil.producer(a)) for a in e.operands if irutil.producer(a) is not None]
        x.erase()
        e.erase()
        for o in leftovers:  # the old bias constant and init
            if o.name in ("arith.constant", "tensor.empty") and not list(o.results[0].uses):
                o.erase()
        self.bump("elementwise ops moved below a head split")
        return moved.results[0]

    # -- rewriting ---------------------------------------------------------------------
    def _build(self, v, box: Box, root: bool = False):
        """`v` sliced by `box`: the producer rebuilt on sliced operands where it can be,
        a constant sliced now, else a tensor.extract_slice."""
        shape = static_shape(v)
        if box.is_full(shape):
            return v
        p = irutil.producer(v)
        p = irutil.operation(p) if p is not None else None
        et = ir.RankedTensorType(v.type).element_type
        rtype = ir.RankedTensorType.get(list(box.sizes), et)
        if p is not None and p.name == "tensor.empty":
            return tensor.empty(list(box.sizes), et)
        if p is not None and p.name == "linalg.fill":
            init = tensor.empty(list(box.sizes), et)
            c = p.clone(ip=ir.InsertionPoint.current)
            c.operands[1] = init
            c.results[0].set_type(rtype)
            return c.results[0]
        if p is not None and p.name == "arith.constant":
            data = constant_array(p, _FOLD_LIMIT)
            if data is not None:
                sl = tuple(slice(o, o + n) for o, n in zip(box.offsets, box.sizes))
                return make_constant(np.ascontiguousarray(data[sl]), rtype)
        boxes = _operand_boxes(p, box) if p is not None and (root or _single_use(v)) else None
        if boxes is None:
            return tensor.extract_slice(rtype, v, [], [], [], list(box.offsets), list(box.sizes),
                                        [1] * len(box.sizes))
        if p.name == "linalg.transpose":
            operands = [self._build(p.operands[0], boxes[0]), tensor.empty(list(box.sizes), et)]
        else:
            operands = [self._build(x, b) for x, b in zip(p.operands, boxes)]
        c = p.clone(ip=ir.InsertionPoint.current)
        for i, x in enumerate(operands):
            c.operands[i] = x
        if p.name in _CONTRACTIONS:
            self._built.append(c)
        if p.name == "tensor.expand_shape":
            c.attributes["static_output_shape"] = ir.DenseI64ArrayAttr.get(list(box.sizes))
        c.results[0].set_type(rtype)
        return c.results[0]
