"""texflow's dialects: `layout` (SmartMem) and `wstream` (FlashMem).

They live in IREE's context as unregistered-dialect ops with `ir.OpView`
subclasses for Python builders/accessors (IREE's bindings cannot register
new C++ dialects).  Each dialect's IRDL description (`<name>.irdl.mlir`)
lets `iree-opt --irdl-file=...` verify texflow's output in lit tests.
"""

from __future__ import annotations

import importlib
from pathlib import Path

DIALECT_MODULES: list[str] = ["layout", "wstream"]


def irdl_path(name: str) -> Path:
    """Path of a dialect's IRDL description."""
    return Path(__file__).with_name(f"{name}.irdl.mlir")


def register_all(context) -> None:
    """Make every texflow dialect's Python op classes available.

    OpView registration is process-wide in the bindings, so importing the
    modules is what registers them; `context` must allow unregistered
    dialects, which CompilerSession sets.
    """
    assert context.allow_unregistered_dialects
    for mod in DIALECT_MODULES:
        importlib.import_module(f"{__name__}.{mod}")
