"""texflow-verify-layout: run the `layout` dialect's verifiers.

MLIR does not know texflow's Python-defined ops, so their verifiers (in
dialects/layout.py, beside each op) run here; an error names the op's
location.  The driver runs it at the start and end of the layout phase.
"""

from __future__ import annotations

from texflow.dialects.base import verify_ops
from texflow.dialects.layout import verify_attributes
from texflow.errors import TexflowError
from ..registry import Pass, register_pass


@register_pass
class VerifyLayout(Pass):
    name = "texflow-verify-layout"
    summary = "Verify layout.transform ops and #layout attributes"

    def apply(self, module) -> None:
        errs = verify_ops(module, {"layout"}) + verify_attributes(module)
        if errs:
            loc, msg = errs[0]
            more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
            raise TexflowError(f"{msg} at {loc}{more}")
