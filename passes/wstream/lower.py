"""texflow-wstream-lower: remove the wstream dialect before IREE continues.

Why: IREE segfaults on unregistered ops at dispatch creation.  The plan has
been exported (manifest, attributes) by then; in the program each
`wstream.wait` is an identity on its weights, so its results are replaced by
its operands and every wstream op is erased.
"""

from __future__ import annotations

from texflow import irutil
from ..registry import Pass, register_pass


@register_pass
class WStreamLower(Pass):
    name = "texflow-wstream-lower"
    summary = "Erase wstream ops (waits forward their weights) so IREE can continue"

    def apply(self, module) -> None:
        for w in irutil.collect(module, {"wstream.wait"}):
            for r, v in zip(w.results, list(w.operands)[1:]):
                r.replace_all_uses_with(v)
            w.erase()
            self.bump("waits removed")
        for name in ("wstream.release", "wstream.load", "wstream.stage", "wstream.plan"):
            for o in irutil.collect(module, {name}):
                o.erase()
                self.bump(f"{name.split('.')[1]} ops removed")
