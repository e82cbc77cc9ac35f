"""texflow-wstream-form-stages: split functions into stages for weight streaming.

Why: the unit that waits for its weights is a dispatch; a stage approximates
one (a contraction/convolution/reduction root plus the elementwise ops fused
after it, see texflow.streaming.stages).  Each stage gets a `wstream.stage`
marker with its capacity class, estimated compute time, load capacity (bytes
readable during its compute without slowing it) and live activations, which
texflow-wstream-plan then uses.
"""

from __future__ import annotations

import dataclasses

from texflow.dialects import wstream  # noqa: F401  (registers the op classes)
from texflow.streaming import irplan
from texflow.streaming.costmodel import load_calibration
from ..registry import Pass, register_pass


@register_pass
class WStreamFormStages(Pass):
    name = "texflow-wstream-form-stages"
    summary = "Group compute ops into dispatch-sized stages and mark them with wstream.stage"

    @dataclasses.dataclass
    class Options:
        calibration: str = dataclasses.field(
            default="", metadata={"help": "cost-model calibration name or JSON path"})

    def apply(self, module) -> None:
        cal = load_calibration(self.options.calibration)
        for func in irplan.single_block_functions(module):
            an = irplan.analyse(func, 1, stages=None)
            if not an.stages:
                continue
            compute = [cal.compute_s(s.flops, s.traffic) for s in an.stages]
            irplan.write_markers(an, compute, cal)
            self.bump("stages formed", len(an.stages))
            self.bump("fused ops", sum(len(s.ops) - 1 for s in an.stages))
