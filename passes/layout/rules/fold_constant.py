"""Fold into a constant (weights offline): a transform of a constant becomes a constant in the
new layout.  A constant can be written in any layout at compile time, so for the pair table it
is a variable-layout producer, and this is its "eliminate 2nd"."""

from __future__ import annotations

import numpy as np
from iree.compiler import ir

from texflow import irutil
from texflow.dialects.layout import TransformOp
from texflow.ir.constants import constant_array, make_constant

from .common import SECOND, LayoutRule


class FoldConstant(LayoutRule):
    name = "fold-constant"
    actions = SECOND

    def match(self, t: TransformOp):
        cst = irutil.producer(t.source)
        if cst is None or cst.name != "arith.constant" or not self.permits(cst, t.operation):
            return None
        data = constant_array(cst, self.options.max_constant_elements)
        if data is None:
            return None
        return t, data

    def rewrite(self, plan) -> None:
        t, data = plan
        if t.kind == "permute":
            new = np.ascontiguousarray(np.transpose(data, t.permutation))
        else:
            new = data.reshape(t.result_shape)
        with ir.InsertionPoint(t.operation), t.operation.location:
            v = make_constant(new, t.result.type)
        self.replace(t, v, "transforms folded into constants")
