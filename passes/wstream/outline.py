"""texflow-wstream-outline: split a planned function into stage-group functions
whose streamed weights are arguments, so that a runtime can execute the plan.

Why: IREE loads a module's constants and parameters up front (parameter loads
sit in module initialisers, see docs/streaming.md), so a single compiled
function cannot wait for a weight in the middle of a call.  Cutting the
function where the plan needs the host's help — before the first stage of
every streamed weight group (the runtime must have loaded it) and after its
last stage (the runtime may free it) — gives *segments*: public functions
taking activations and weights as tensors and returning the activations that
later segments or the outputs need.  Between two calls the runtime waits for
the next group, loads groups in the background and releases what is dead.

Every weight the plan covers, preloaded or streamed, becomes an argument:
the module embeds none of them (they live in the `.irpa` archive written in
the texflow-wstream phase), so preloading is the runtime's decision too.
Cheap ops that compute nothing (constants, `tensor.empty`, fills, reshapes)
are cloned into each segment that uses them instead of being passed.

The program description (segments, their arguments and results, weight keys,
groups) is attached to the module as the JSON string attribute
`texflow.wstream.program` and to each segment's `iree.reflection`, so a
compiled `.vmfb` describes itself and the runtime can check it against the
plan manifest and the archive.  Runs in place of texflow-wstream-lower.
"""

from __future__ import annotations

import dataclasses

from texflow.streaming.outliner import outline_module
from ..registry import Pass, register_pass


@register_pass
class WStreamOutline(Pass):
    name = "texflow-wstream-outline"
    summary = "Split planned functions into segment functions taking their weights as arguments"

    @dataclasses.dataclass
    class Options:
        segment_bytes: int = dataclasses.field(
            default=0, metadata={"help": "weights first used per segment (0: from the budget)"})

    def apply(self, module) -> None:
        outline_module(module, self.options.segment_bytes, self.bump)
