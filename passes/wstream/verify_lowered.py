"""texflow-verify-lowered: guarantee no texflow dialect op reaches IREE.

Why: IREE treats unregistered ops as side-effecting black boxes and segfaults
on them at dispatch creation.  Every texflow dialect is lowered away before
the module is handed back; this pass is the check that makes a missed
lowering a clear error instead of a crash.
"""

from __future__ import annotations

from texflow import irutil
from texflow.errors import TexflowError
from ..registry import Pass, register_pass

TEXFLOW_DIALECTS = ("layout", "wstream")


def leftover_ops(module) -> list:
    return [op for op in irutil.collect(module)
            if op.name.split(".", 1)[0] in TEXFLOW_DIALECTS]


@register_pass
class VerifyLowered(Pass):
    name = "texflow-verify-lowered"
    summary = "Fail if any texflow dialect op is left (IREE would crash on it)"

    def apply(self, module) -> None:
        left = leftover_ops(module)
        if left:
            names = sorted({op.name for op in left})
            raise TexflowError(f"{len(left)} texflow op(s) not lowered before IREE: "
                               f"{', '.join(names)} (first at {left[0].location})")
