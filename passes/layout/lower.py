"""texflow-lower-layout: turn remaining `layout.transform` ops into IREE-legal ops.

Permutations become linalg.transpose; reshapes become tensor.collapse_shape
or tensor.expand_shape when one is enough, otherwise a collapse to 1-D and an
expand (both are free views in IREE: no data moves).  An identity permutation
is just its operand.  After this pass no `layout` op is left (IREE would
crash on one at dispatch creation).
"""

from __future__ import annotations

from iree.compiler import ir
from iree.compiler.dialects import linalg, tensor

from texflow import irutil
from texflow.irutil import result_value
from texflow.dialects.layout import PHYSICAL_ATTR, QUADRANT_ATTR, TransformOp
from texflow.ir.structured import build_reshape
from ..registry import Pass, register_pass


def build_transform(t: TransformOp):
    src = t.source
    et = ir.RankedTensorType(src.type).element_type
    if t.kind == "permute":
        perm = t.permutation
        if perm == list(range(len(perm))):
            return src
        rtype = ir.RankedTensorType(t.result.type)
        init = tensor.empty(list(rtype.shape), et)
        return result_value(linalg.transpose(src, outs=[init], permutation=perm))
    return build_reshape(src, t.source_shape, t.result_shape, et)


@register_pass
class LowerLayout(Pass):
    name = "texflow-lower-layout"
    summary = "Turn layout.transform ops back into linalg.transpose / tensor reshapes"

    def apply(self, module) -> None:
        # Quadrant/physical annotations are texflow-internal: IREE never sees them.
        for o in irutil.collect(module):
            for name in (QUADRANT_ATTR, PHYSICAL_ATTR):
                if name in o.attributes:
                    del o.attributes[name]
        for o in irutil.collect(module, {TransformOp.OPERATION_NAME}):
            t = o if isinstance(o, TransformOp) else TransformOp(o)
            with ir.InsertionPoint(o), o.location:
                v = build_transform(t)
            kind = t.kind
            t.result.replace_all_uses_with(v)
            o.erase()
            self.bump(f"{kind} lowered")
