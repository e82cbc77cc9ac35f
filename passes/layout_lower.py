"""texflow-lower-layout: turn remaining `layout.transform` ops into IREE-legal ops.

Permutations become linalg.transpose; reshapes become tensor.collapse_shape
or tensor.expand_shape when one is enough, otherwise a collapse to 1-D and an
expand (both are free views in IREE: no data moves).  An identity permutation
is just its operand.  After this pass no `layout` op is left (IREE would
crash on one at dispatch creation).
"""

from __future__ import annotations

from math import prod

from iree.compiler import ir
from iree.compiler.dialects import linalg, tensor

from texflow import irutil
from texflow.irutil import result_value
from texflow.dialects.layout import PHYSICAL_ATTR, QUADRANT_ATTR, TransformOp
from .layout_common import reassociation
from .registry import Pass, register_pass


def _reassoc_attr(groups):
    return ir.ArrayAttr.get([ir.ArrayAttr.get([ir.IntegerAttr.get(ir.IntegerType.get_signless(64), d)
                                               for d in g]) for g in groups])


def build_reshape(src, src_shape, dst_shape, et):
    """Reshape as one collapse/expand, or collapse-to-1D + expand."""
    if src_shape == dst_shape:
        return src
    rtype = ir.RankedTensorType.get(dst_shape, et)
    groups = reassociation(src_shape, dst_shape)
    if groups is not None and len(dst_shape) < len(src_shape):
        return result_value(tensor.collapse_shape(rtype, src, _reassoc_attr(groups)))
    if groups is not None and len(dst_shape) > len(src_shape):
        return result_value(tensor.expand_shape(rtype, src, _reassoc_attr(groups), [], dst_shape))
    flat = [prod(src_shape)]
    mid = build_reshape(src, src_shape, flat, et)
    return build_reshape(mid, flat, dst_shape, et)


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
