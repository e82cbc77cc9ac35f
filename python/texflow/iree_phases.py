"""IREE's compilation phases and the C-API hooks that select them.

`--compile-to` / `--compile-from` are not session flags, so texflow sets them
on each invocation through the compiler library's C API (the same symbols
`iree-compile` uses).
"""

import ctypes

from iree.compiler.api import ctypes_dl

IREE_PHASES = (
    "start", "input", "abi", "preprocessing", "global-optimization",
    "dispatch-creation", "flow", "stream", "executable-sources",
    "executable-configurations", "executable-targets", "hal", "vm", "end",
)


def _dylib():
    lib = ctypes_dl._dylib
    for sym in ("ireeCompilerInvocationSetCompileToPhase",
                "ireeCompilerInvocationSetCompileFromPhase"):
        fn = getattr(lib, sym)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        fn.restype = None
    return lib


def set_compile_to(invocation, phase: str) -> None:
    _dylib().ireeCompilerInvocationSetCompileToPhase(invocation._inv_p, phase.encode())


def set_compile_from(invocation, phase: str) -> None:
    _dylib().ireeCompilerInvocationSetCompileFromPhase(invocation._inv_p, phase.encode())
