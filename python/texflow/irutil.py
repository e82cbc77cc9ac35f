"""Small helpers over IREE's MLIR Python bindings shared by the passes."""

from __future__ import annotations

from iree.compiler import ir

FUNC_OPS = ("func.func", "util.func")


def functions(module) -> list:
    """The function-like ops (func.func, util.func) of a module operation."""
    return [op for op in module.regions[0].blocks[0].operations
            if op.operation.name in FUNC_OPS]


def walk(op, fn, order=ir.WalkOrder.POST_ORDER):
    """Call fn(operation) on every nested op (the bindings' walk)."""
    def _cb(o):
        fn(o)
        return ir.WalkResult.ADVANCE
    op.operation.walk(_cb, order)


def collect(op, names=None) -> list:
    """All nested operations (optionally only those whose name is in `names`)."""
    out = []
    walk(op, lambda o: out.append(o) if names is None or o.name in names else None,
         ir.WalkOrder.PRE_ORDER)
    return out


def operation(op):
    """The `ir.Operation` of an op view (an Operation as it is).  Sets and dicts of ops must hold
    operations: a view and its operation do not hash alike."""
    return op.operation if hasattr(op, "operation") else op


def enclosing_ops(op):
    """The ops `op` is nested in, innermost first (its function, module...)."""
    parent = operation(op).parent
    while parent is not None:
        parent = operation(parent)
        yield parent
        parent = parent.parent


def producer(value):
    """The op defining `value`, or None for block arguments."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    return operation(owner)


def result_value(v):
    """The Value of a dialect builder's result (builders return a Value, an
    OpView or a result list depending on the op)."""
    if isinstance(v, ir.Value):
        return v
    if isinstance(v, (ir.OpView, ir.Operation)):
        return v.results[0]
    return v[0]


def int_array(attr) -> list[int]:
    """Values of a DenseI64ArrayAttr, a dense integer elements attribute (a convolution's
    `strides = dense<2> : vector<2xi64>`) or an ArrayAttr of integers."""
    try:
        return list(ir.DenseI64ArrayAttr(attr))
    except (ValueError, TypeError):
        pass
    try:
        return [int(x) for x in ir.DenseIntElementsAttr(attr)]
    except (ValueError, TypeError):
        return [ir.IntegerAttr(a).value for a in ir.ArrayAttr(attr)]


def tensor_shape(value) -> list[int]:
    return list(ir.RankedTensorType(value.type).shape)


def uses(value) -> list:
    return [u.owner for u in value.uses]


def append_arguments(func, types) -> list:
    """Append arguments of `types` to function `func` (util.func / func.func): entry-block
    arguments, `function_type` and, where present, `arg_attrs` (empty for the new ones)."""
    blk = func.regions[0].blocks[0]
    new = [blk.add_argument(t, func.location) for t in types]
    ft = ir.FunctionType(ir.TypeAttr(func.attributes["function_type"]).value)
    func.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
        list(ft.inputs) + [a.type for a in new], list(ft.results)))
    if "arg_attrs" in func.attributes:
        old = list(ir.ArrayAttr(func.attributes["arg_attrs"]))
        func.attributes["arg_attrs"] = ir.ArrayAttr.get(old + [ir.DictAttr.get({})] * len(new))
    return new
