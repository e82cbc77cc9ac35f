"""texflow-raise-layout: make layout transformations explicit `layout.transform` ops.

Why: IREE's input IR spells one concept -- "move these elements to another
layout" -- five ways (linalg.transpose, a permutation-only linalg.generic,
tensor.expand_shape / collapse_shape / reshape, linalg.copy).  Raising them
to one op with an index map lets the elimination patterns compose and cancel
them regardless of spelling.  Ops with dynamic shapes are left alone (a
remark with --texflow-verbose).
"""

from __future__ import annotations

from iree.compiler import ir

from texflow import irutil
from texflow.dialects.layout import TransformOp
from texflow.ir.structured import generic_permutation, inputs_of, static_shape
from ..registry import Pass, register_pass, remark

RESHAPES = ("tensor.expand_shape", "tensor.collapse_shape", "tensor.reshape")


@register_pass
class RaiseLayout(Pass):
    name = "texflow-raise-layout"
    undoable = True  # an optimisation: dropped, not fatal, if its result does not verify
    summary = "Turn transposes, reshapes and copies into layout.transform ops"

    def apply(self, module) -> None:
        for o in irutil.collect(module, {"linalg.transpose", "linalg.generic", "linalg.copy", *RESHAPES}):
            self.raise_op(o)

    def raise_op(self, o) -> None:
        res = o.results[0] if len(o.results) == 1 else None
        if res is None or static_shape(res) is None:
            remark(self.name, o, f"left {o.name} alone: dynamic or unranked result")
            return
        if o.name == "linalg.transpose":
            perm = list(ir.DenseI64ArrayAttr(o.attributes["permutation"]))
            src, kind = o.operands[0], "permute"
        elif o.name == "linalg.generic":
            perm = generic_permutation(o)
            if perm is None:
                return
            src, kind = inputs_of(o)[0], "permute"
        elif o.name == "linalg.copy":
            src, kind, perm = o.operands[0], "permute", list(range(len(static_shape(res))))
        else:  # reshapes
            src, kind, perm = o.operands[0], "reshape", None
        if static_shape(src) is None:
            remark(self.name, o, f"left {o.name} alone: dynamic or unranked source")
            return
        with ir.InsertionPoint(o), o.location:
            t = TransformOp.create(src, res.type, kind, perm, loc=o.location)
        name = o.name
        res.replace_all_uses_with(t.result)
        o.erase()
        self.bump(f"{name} raised")
