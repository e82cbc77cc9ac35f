"""A small framework for texflow's Python-defined dialects.

IREE's Python bindings cannot register C++ dialects, so texflow's ops live in
the context as *unregistered* ops (the context allows them) and get typed
Python classes (`ir.OpView` subclasses registered with the bindings), so that
`op.opview` returns e.g. a `layout.transform` with accessors.  Each op class
declares its verifier beside it (`verify_op`); `verify_ops(module)` runs all
of them and reports errors at the op's location, because MLIR itself does not
know these ops.  The structural contract is also written in IRDL
(`<dialect>.irdl.mlir`) for `iree-opt --irdl-file` in lit tests.
"""

from __future__ import annotations

from iree.compiler import ir
from iree.compiler.dialects._ods_common import _cext

from texflow.errors import TexflowError

_OPS: dict[str, type] = {}
_DIALECTS: dict[str, type] = {}


def dialect(namespace: str):
    """Register (once) and return the bindings' Dialect class for `namespace`."""
    if namespace not in _DIALECTS:
        cls = type(f"_{namespace.capitalize()}Dialect", (ir.Dialect,),
                   {"DIALECT_NAMESPACE": namespace})
        _DIALECTS[namespace] = _cext.register_dialect(cls)
    return _DIALECTS[namespace]


def op(cls):
    """Class decorator: register an OpView subclass for its OPERATION_NAME."""
    ns = cls.OPERATION_NAME.split(".", 1)[0]
    if not hasattr(cls, "_ODS_REGIONS"):
        cls._ODS_REGIONS = (0, True)
    registered = _cext.register_operation(dialect(ns), replace=True)(cls)
    _OPS[cls.OPERATION_NAME] = registered
    return registered


class TexflowOp(ir.OpView):
    """Base of texflow ops: subclasses implement `verify_op() -> list[str]`."""

    OPERATION_NAME = ""

    def verify_op(self) -> list[str]:
        return []

    # helpers for subclasses
    def attr(self, name):
        return self.operation.attributes[name] if name in self.operation.attributes else None


def registered_op_class(name: str):
    return _OPS.get(name)


def verify_ops(module, namespaces=None) -> list[tuple[str, str]]:
    """Run every texflow op's verifier; returns [(location, message)]."""
    errors = []

    def visit(o):
        cls = _OPS.get(o.name)
        if cls is not None and (namespaces is None or o.name.split(".")[0] in namespaces):
            try:
                msgs = cls(o).verify_op() if not isinstance(o, cls) else o.verify_op()
            except Exception as e:  # malformed attribute kinds etc.
                msgs = [f"malformed op: {type(e).__name__}: {e}"]
            errors.extend((str(o.location), f"'{o.name}' op {m}") for m in msgs)
        elif cls is None and namespaces and o.name.split(".")[0] in namespaces:
            errors.append((str(o.location), f"unknown op '{o.name}'"))
        return ir.WalkResult.ADVANCE
    module.operation.walk(visit)
    return errors


def check_ops(module, namespaces=None) -> None:
    errs = verify_ops(module, namespaces)
    if errs:
        loc, msg = errs[0]
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise TexflowError(f"{msg} at {loc}{more}")
