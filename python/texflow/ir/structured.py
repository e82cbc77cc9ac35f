"""Structured (linalg) ops as the passes see them: shapes, indexing maps, iterator types,
inputs and outputs, bodies; and the builders for generic, pack/unpack and reshapes that
several passes write.  One place, so that every pass reads a map or builds a generic alike."""

from __future__ import annotations

from math import prod

from iree.compiler import ir
from iree.compiler.dialects import linalg, tensor

from texflow import irutil
from texflow.irutil import result_value

CONTRACTIONS = ("linalg.matmul", "linalg.batch_matmul")


def static_shape(v) -> list[int] | None:
    try:
        t = ir.RankedTensorType(v.type)
    except ValueError:
        return None
    return list(t.shape) if t.has_static_shape else None


def affine_maps(operation) -> list[ir.AffineMap]:
    if "indexing_maps" not in operation.attributes:
        return []
    arr = ir.ArrayAttr(operation.attributes["indexing_maps"])
    return [ir.AffineMapAttr(arr[i]).value for i in range(len(arr))]


# linalg.matmul / batch_matmul without an `indexing_maps` attribute use these.
DEFAULT_MATMUL_MAPS = {
    "linalg.matmul": ("affine_map<(m, n, k) -> (m, k)>", "affine_map<(m, n, k) -> (k, n)>",
                      "affine_map<(m, n, k) -> (m, n)>"),
    "linalg.batch_matmul": ("affine_map<(b, m, n, k) -> (b, m, k)>",
                            "affine_map<(b, m, n, k) -> (b, k, n)>",
                            "affine_map<(b, m, n, k) -> (b, m, n)>"),
}


def contraction_maps(operation) -> tuple[list[ir.AffineMap], list[str]] | None:
    """Indexing maps and iterator types of a matmul/batch_matmul (explicit or
    default maps) or a linalg.generic; None for other ops."""
    name = operation.name
    if name in DEFAULT_MATMUL_MAPS:
        maps = affine_maps(operation) or [ir.AffineMapAttr(ir.Attribute.parse(s)).value
                                          for s in DEFAULT_MATMUL_MAPS[name]]
        return maps, ["parallel"] * (maps[0].n_dims - 1) + ["reduction"]
    if name == "linalg.generic":
        return affine_maps(operation), iterator_types(operation)
    return None


def set_affine_maps(operation, maps: list[ir.AffineMap]) -> None:
    operation.attributes["indexing_maps"] = ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps])


def iterator_types(operation) -> list[str]:
    arr = ir.ArrayAttr(operation.attributes["iterator_types"])
    out = []
    for i in range(len(arr)):
        s = str(arr[i])  # '#linalg.iterator_type<parallel>'
        out.append("reduction" if "reduction" in s else "parallel")
    return out


def map_dims(m: ir.AffineMap) -> list[int] | None:
    """Result i of the map is loop dim out[i]; None if a result is not a plain dim."""
    out = []
    for e in m.results:
        e = e.maybe_downcast()
        if not isinstance(e, ir.AffineDimExpr):
            return None
        out.append(e.position)
    return out


def map_dims_or_zero(m: ir.AffineMap) -> list[int | None] | None:
    """Like map_dims, but a constant-0 result (a unit dimension no loop indexes) is None; the
    whole answer is None if a result is anything else."""
    out = []
    for e in m.results:
        e = e.maybe_downcast()
        if isinstance(e, ir.AffineDimExpr):
            out.append(e.position)
        elif isinstance(e, ir.AffineConstantExpr) and e.value == 0:
            out.append(None)
        else:
            return None
    return out


def permutation_map_of(perm: list[int], base: ir.AffineMap) -> ir.AffineMap:
    """Operand map for x when the op read t = transpose(x, perm) through `base`.

    t[i] = x[j] with j[perm[k]] = i[k]; the op reads t at base(l), so it reads
    x at index r with r[perm[k]] = base(l)[k].
    """
    res = list(base.results)
    new = [None] * len(perm)
    for k, p in enumerate(perm):
        new[p] = res[k]
    return ir.AffineMap.get(base.n_dims, base.n_symbols, new)


def generic_body_ops(operation) -> list:
    return list(operation.regions[0].blocks[0].operations)


def is_copy_body(operation) -> bool:
    """Body is a single linalg.yield of an input block argument."""
    ops = generic_body_ops(operation)
    if len(ops) != 1 or ops[0].operation.name != "linalg.yield":
        return False
    n_in = len(inputs_of(operation))
    args = list(operation.regions[0].blocks[0].arguments)[:n_in]
    y = ops[0].operation.operands
    return len(y) == 1 and any(y[0] == a for a in args)


def uses_index_op(operation) -> bool:
    found = []
    irutil.walk(operation, lambda o: found.append(o) if o.name in ("linalg.index", "tensor.extract") else None)
    return bool(found)


def inputs_of(operation) -> list:
    """The `ins` operands of a linalg structured op (DPS: outs come last)."""
    n_out = len(operation.results)
    ops = list(operation.operands)
    return ops[:len(ops) - n_out]


def outputs_of(operation) -> list:
    n_out = len(operation.results)
    ops = list(operation.operands)
    return ops[len(ops) - n_out:]


def generic_permutation(operation) -> list[int] | None:
    """The permutation of a transpose written as linalg.generic, or None."""
    if operation.name != "linalg.generic" or len(operation.results) != 1:
        return None
    if len(inputs_of(operation)) != 1 or not is_copy_body(operation):
        return None
    if any(t != "parallel" for t in iterator_types(operation)):
        return None
    in_map, out_map = affine_maps(operation)
    if not out_map.is_permutation or not in_map.is_permutation:
        return None
    in_dims, out_dims = map_dims(in_map), map_dims(out_map)
    # loop l is result dim out_dims.index(l); source dim j is loop in_dims[j]
    rank = len(in_dims)
    perm = [0] * rank
    for j, loop in enumerate(in_dims):
        perm[out_dims.index(loop)] = j
    return perm


def reassociation(src: list[int], dst: list[int]) -> list[list[int]] | None:
    """Groups of the longer shape's dims whose products give the shorter's dims: each group
    contiguous and non-empty, every dim of the longer shape in one group.

    Returns None when src -> dst is not a pure collapse or expand.  Unit dims can go to
    either neighbouring group, and a greedy choice can strand a later unit dim of the
    shorter shape with an empty group ([1,1,1,1,4] -> [1,4,1,1], an NC4HW4 tensor of four
    channels at 1x1); so this searches, depth first, trying each possible group length.
    Every valid grouping describes the same row-major reinterpretation."""
    small, big = (src, dst) if len(src) <= len(dst) else (dst, src)
    if prod(small) != prod(big) or (len(small) == 0) != (len(big) == 0):
        return None

    def place(i: int, j: int) -> list[list[int]] | None:
        if i == len(small):
            return [] if j == len(big) else None
        p = 1
        for k in range(j, len(big) - (len(small) - i - 1)):
            p *= big[k]
            if p == small[i]:
                rest = place(i + 1, k + 1)
                if rest is not None:
                    return [list(range(j, k + 1))] + rest
            elif small[i] and p > small[i]:
                break
        return None

    return place(0, 0)


def pack_op(src, init, dims: list[int], tiles: list[int], pad=None, outer_perm=None):
    """`linalg.pack` of `src` into `init`'s shape: `dims` tiled by `tiles`, padded with `pad`
    (a scalar value) where the tiles overhang, outer dimensions permuted by `outer_perm`."""
    attrs = {"inner_dims_pos": ir.DenseI64ArrayAttr.get(dims),
             "static_inner_tiles": ir.DenseI64ArrayAttr.get(tiles),
             "operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 1, 1 if pad is not None else 0, 0])}
    if outer_perm is not None:
        attrs["outer_dims_perm"] = ir.DenseI64ArrayAttr.get(outer_perm)
    ops = [src, init] + ([pad] if pad is not None else [])
    return ir.Operation.create("linalg.pack", results=[init.type], operands=ops,
                               attributes=attrs).results[0]


def unpack_op(src, init, dims: list[int], tiles: list[int]):
    """`linalg.unpack` of `src`'s `dims` tiles by `tiles` into `init`'s shape."""
    return ir.Operation.create(
        "linalg.unpack", results=[init.type], operands=[src, init],
        attributes={"inner_dims_pos": ir.DenseI64ArrayAttr.get(dims),
                    "static_inner_tiles": ir.DenseI64ArrayAttr.get(tiles),
                    "operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 1, 0, 0])}).results[0]


def fill_value(v) -> float | None:
    """The float constant `v` is a `linalg.fill` of, else None."""
    op = irutil.producer(v)
    if op is None or op.name != "linalg.fill":
        return None
    c = irutil.producer(op.operands[0])
    if c is None or c.name != "arith.constant":
        return None
    try:
        return float(ir.FloatAttr(c.attributes["value"]).value)
    except (ValueError, TypeError):
        return None


def build_generic(inputs, in_maps, init, out_map, iterators, body):
    """A new linalg.generic over `inputs` (read through `in_maps`) into `init` (written through
    `out_map`, loops `iterators`: "parallel" / "reduction"); `body(block arguments)` builds the
    value to yield."""
    rt = init.type
    its = ir.ArrayAttr.get([ir.Attribute.parse(f"#linalg.iterator_type<{t}>") for t in iterators])
    maps = ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in list(in_maps) + [out_map]])
    g = ir.Operation.create("linalg.generic", results=[rt], operands=list(inputs) + [init],
                            attributes={"indexing_maps": maps, "iterator_types": its,
                                        "operandSegmentSizes": ir.DenseI32ArrayAttr.get([len(inputs), 1])},
                            regions=1)
    blk = g.regions[0].blocks.append(*([ir.RankedTensorType(v.type).element_type for v in inputs]
                                       + [ir.RankedTensorType(rt).element_type]))
    with ir.InsertionPoint(blk):
        linalg.YieldOp([body(blk.arguments)])
    return g.results[0]


def cast_elements(v, elem, cast):
    """An elementwise linalg.generic giving tensor `v` element type `elem` through `cast` (an
    arith builder such as `arith.extf` / `arith.truncf`, called as cast(elem, x))."""
    rt = ir.RankedTensorType(v.type)
    rank = len(rt.shape)
    init = tensor.empty(list(rt.shape), elem)
    idm = ir.AffineMap.get_identity(rank)
    return build_generic([v], [idm], init, idm, ["parallel"] * rank, lambda b: cast(elem, b[0]))


def is_elementwise(o) -> bool:
    return (o.name == "linalg.generic" and len(o.results) == 1
            and all(it == "parallel" for it in iterator_types(o))
            and not uses_index_op(o) and static_shape(o.results[0]) is not None)


def reads_output(o) -> bool:
    """Does the body use the output block argument (an accumulator)?"""
    blk = o.regions[0].blocks[0]
    n_in = len(inputs_of(o))
    return any(list(a.uses) for a in list(blk.arguments)[n_in:])


def verifies(o) -> bool:
    try:
        return o.verify()
    except ir.MLIRError:
        return False


def reassociation_groups(op) -> list[list[int]]:
    """The reassociation of a tensor.expand_shape / collapse_shape as lists of dimensions
    (the inverse of reassoc_attr)."""
    return [[int(ir.IntegerAttr(d).value) for d in ir.ArrayAttr(g)]
            for g in ir.ArrayAttr(op.attributes["reassociation"])]


def reassoc_attr(groups):
    return ir.ArrayAttr.get([ir.ArrayAttr.get([ir.IntegerAttr.get(ir.IntegerType.get_signless(64), d)
                                               for d in g]) for g in groups])


def build_reshape(src, src_shape, dst_shape, et):
    """Reshape as one collapse/expand, or collapse-to-1D + expand."""
    if src_shape == dst_shape:
        return src
    rtype = ir.RankedTensorType.get(dst_shape, et)
    groups = reassociation(src_shape, dst_shape)
    if groups is not None and len(dst_shape) < len(src_shape):
        return result_value(tensor.collapse_shape(rtype, src, reassoc_attr(groups)))
    if groups is not None and len(dst_shape) > len(src_shape):
        return result_value(tensor.expand_shape(rtype, src, reassoc_attr(groups), [], dst_shape))
    flat = [prod(src_shape)]
    mid = build_reshape(src, src_shape, flat, et)
    return build_reshape(mid, flat, dst_shape, et)


def rebuild_generic(old, inputs, inits, maps, iterators, result_types):
    """A new linalg.generic with `old`'s body (moved, not copied)."""
    it_attr = ir.ArrayAttr.get([ir.Attribute.parse(f"#linalg.iterator_type<{i}>") for i in iterators])
    attrs = {
        "indexing_maps": ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps]),
        "iterator_types": it_attr,
        "operandSegmentSizes": ir.DenseI32ArrayAttr.get([len(inputs), len(inits)]),
    }
    for na in old.attributes:
        name = na if isinstance(na, str) else na.name
        if name not in attrs and name.startswith("layout."):
            attrs[name] = old.attributes[name]
    new = ir.Operation.create("linalg.generic", results=result_types, operands=list(inputs) + list(inits),
                              attributes=attrs, regions=1, loc=old.location)
    old_blk = old.regions[0].blocks[0]
    blk = new.regions[0].blocks.append(*[a.type for a in old_blk.arguments])
    for a_old, a_new in zip(old_blk.arguments, blk.arguments):
        a_old.replace_all_uses_with(a_new)
    ip = ir.InsertionPoint(blk)
    for o in list(old_blk.operations):
        o.detach_from_parent()
        ip.insert(o)
    return new


def verifies_changed(o, change) -> bool:
    """Would `o` verify after `change(copy)`?  Asked of a detached copy of `o` (erased after),
    so the module is never touched: a rewrite's legality decided before the rewrite."""
    c = o.clone().operation
    try:
        change(c)
        return verifies(c)
    finally:
        c.erase()


def type_text(t, static: bool = False) -> str:
    """tensor<1x8xf32> -> '1x8xf32', the signature notation (texflow.signature) the runtime
    reads; '?' for a dynamic dimension, or with `static` a one-line error."""
    rt = ir.RankedTensorType(t)
    if static and not rt.has_static_shape:
        from texflow.errors import TexflowError
        raise TexflowError(f"streaming needs static shapes, got {t}")
    dims = ["?" if rt.is_dynamic_dim(i) else str(d) for i, d in enumerate(rt.shape)]
    return "x".join(dims + [str(rt.element_type)])
