"""texflow-compose-transposes: fold chains of `linalg.transpose` into one.

Why: ONNX exporters emit Transpose pairs around ops that prefer another
layout (NHWC<->NCHW, head split/merge).  Two transposes in a row are one
permutation; an identity permutation is no transpose at all.  IREE cancels
exact inverse pairs later, but only after its own propagation; composing them
here keeps the IR the layout passes see small and canonical.
"""

from __future__ import annotations

from iree.compiler import ir
from iree.compiler.dialects import linalg, tensor

from texflow import irutil
from ..registry import Pass, register_pass


def compose(outer: list[int], inner: list[int]) -> list[int]:
    """Permutation of transpose(transpose(x, inner), outer) as one transpose.

    `linalg.transpose` defines out[i] = in[perm[i]] (dimension-wise), so
    out dim i of the outer transpose is dim inner[outer[i]] of x.
    """
    return [inner[o] for o in outer]


@register_pass
class ComposeTransposes(Pass):
    name = "texflow-compose-transposes"
    undoable = True  # an optimisation: dropped, not fatal, if its result does not verify
    summary = "Fold chains of linalg.transpose into one and drop identity transposes"

    def apply(self, module) -> None:
        changed = True
        while changed:  # to a fixed point: chains of any length collapse
            changed = False
            for t in irutil.collect(module, {"linalg.transpose"}):
                if self._rewrite(t):
                    changed = True
                    break

    def _rewrite(self, t) -> bool:
        perm = irutil.int_array(t.attributes["permutation"])
        src = t.operands[0]
        result = t.results[0]
        if perm == list(range(len(perm))):
            result.replace_all_uses_with(src)
            t.erase()
            self.bump("identity transposes removed")
            return True
        inner = irutil.producer(src)
        if inner is None or inner.name != "linalg.transpose":
            return False
        new_perm = compose(perm, irutil.int_array(inner.attributes["permutation"]))
        base = inner.operands[0]
        with ir.InsertionPoint(t), t.location:
            if new_perm == list(range(len(new_perm))):
                new_val = base
            else:
                rtype = ir.RankedTensorType(result.type)
                init = tensor.empty(list(rtype.shape), rtype.element_type)
                new_val = irutil.result_value(linalg.transpose(base, outs=[init], permutation=new_perm))
        result.replace_all_uses_with(new_val)
        t.erase()
        if not list(inner.results[0].uses):
            inner.erase()
        self.bump("transpose pairs composed")
        return True
