"""texflow-run: run a compiled module, iree-run-module style.

    texflow-run model.vmfb --device=vulkan --input=@x.npy --output=@y.npy
    texflow-run model.vmfb --input=2x3xf32="1 2 3 4 5 6"
"""

from __future__ import annotations

import sys

import numpy as np

from texflow.errors import TexflowError

from . import run_tool
from .args import ArgumentParser


def build_parser():
    p = ArgumentParser(prog="texflow-run", description=__doc__.splitlines()[0])
    p.add_argument("module", help="compiled .vmfb")
    p.add_argument("--device", default="local-task", help="local-task, local-sync or vulkan")
    p.add_argument("--function", default=None, help="entry point (default: the only one)")
    p.add_argument("--input", action="append", default=[], help="@x.npy or <shape>x<type>=<values>")
    p.add_argument("--output", action="append", default=[], help="@y.npy per result (else printed)")
    p.add_argument("--allow-subgroup-mismatch", action="store_true",
                   help="run even if the device's subgroup size differs from the module's")
    return p


def main_impl(argv) -> int:
    from texflow.runtime import Module, dtype_text, parse_input
    from texflow.compiler import write_atomically
    import io

    args = build_parser().parse_args(argv)
    inputs = [parse_input(t) for t in args.input]
    mod = Module(args.module, driver=args.device,
                 allow_subgroup_mismatch=args.allow_subgroup_mismatch)
    results = mod(*inputs, function=args.function)
    if args.output and len(args.output) != len(results):
        raise TexflowError(f"{len(results)} result(s) but {len(args.output)} --output given")
    for i, r in enumerate(results):
        if i < len(args.output):
            dest = args.output[i]
            if not dest.startswith("@"):
                raise TexflowError(f"--output must be @file.npy, got '{dest}'")
            buf = io.BytesIO()
            np.save(buf, r, allow_pickle=False)
            write_atomically(dest[1:], buf.getvalue())
        else:
            print(f"result[{i}]: {dtype_text(r)}")
            print(np.array2string(r, threshold=64))
    return 0


def main(argv=None) -> int:
    return run_tool("texflow-run", main_impl, argv)


if __name__ == "__main__":
    sys.exit(main())
