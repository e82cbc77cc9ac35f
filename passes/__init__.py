"""texflow's passes, their registry, and the API that embeds them in IREE.

A pass is a small class with a `name` (its pipeline argument), a one-line
`summary`, typed `options` (a dataclass) and `apply(module)`, as in xDSL.
Passes run as MLIR "external passes" inside an `iree.compiler.passmanager.
PassManager`, so they mix freely with IREE's own passes in one pipeline:

    pm = PassManager.parse("builtin.module(util.func(canonicalize))")
    texflow.passes.add_passes(pm, "texflow-eliminate-layout,texflow-lower-layout")
    pm.add("util.func(iree-global-opt-propagate-linalg-transpose)")
    pm.run(module.operation)
"""

from .registry import (Pass, PassOptionError, add_passes, get_pass, parse_pass,
                       register_pass, registered_passes, split_pipeline)
from . import builtin_passes  # noqa: F401  (registers the passes)

__all__ = ["Pass", "PassOptionError", "add_passes", "get_pass", "parse_pass",
           "register_pass", "registered_passes", "split_pipeline"]
