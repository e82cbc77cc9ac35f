"""texflow-opt: run a pass pipeline of texflow and IREE/MLIR passes on a .mlir file.

    texflow-opt --pass-pipeline='builtin.module(texflow-compose-transposes,canonicalize)' in.mlir
    texflow-opt --list-passes
"""

from __future__ import annotations

import os
import sys

from iree.compiler import ir, passmanager

from texflow.errors import TexflowError
from texflow.session import CompilerSession

from . import run_tool
from .args import ArgumentParser


def build_parser():
    p = ArgumentParser(prog="texflow-opt", description=__doc__.splitlines()[0])
    p.add_argument("input", nargs="?", default="-", help=".mlir file ('-' for stdin)")
    p.add_argument("--pass-pipeline", default="builtin.module()",
                   help="'builtin.module(<passes>)' mixing texflow and IREE/MLIR passes")
    p.add_argument("-o", "--output", default="-")
    p.add_argument("--list-passes", action="store_true", help="list texflow passes and exit")
    p.add_argument("--print-ir-after-all", action="store_true")
    p.add_argument("--texflow-statistics", action="store_true")
    p.add_argument("--mlir-elide-elementsattrs-if-larger", dest="elide_elements_larger_than",
                   type=int, default=None, help="print large constants as elided resources")
    p.add_argument("--texflow-verbose", action="store_true",
                   help="remarks (stderr) on IR the texflow passes left unchanged, and why")
    p.add_argument("--split-input-file", action="store_true",
                   help="treat '// -----' separated chunks as separate modules")
    p.add_argument("--verify-diagnostics", action="store_true",
                   help="print diagnostics on stdout instead of failing (for lit tests)")
    return p


def list_passes() -> str:
    from texflow.passes import registered_passes
    lines = []
    for name, cls in sorted(registered_passes().items()):
        lines.append(f"  {name}  -  {cls.summary}")
        for o in cls.option_help():
            lines.append(f"      {o}")
    return "\n".join(lines) + "\n"


def parse_top(pipeline: str) -> str:
    pipeline = pipeline.strip()
    if not (pipeline.startswith("builtin.module(") and pipeline.endswith(")")):
        raise TexflowError("--pass-pipeline must look like 'builtin.module(<passes>)'")
    return pipeline[len("builtin.module("):-1]


def run_one(session: CompilerSession, text: str, name: str, inner: str, args) -> str:
    from texflow.passes import add_passes
    from texflow.passes.registry import PrintIR
    module = session.parse(text, name)
    pm = passmanager.PassManager("builtin.module", context=session.context)
    sink: list = []
    ir_stream = os.fdopen(os.dup(2), "w") if args.print_ir_after_all else None  # fd 2 gets captured
    add_passes(pm, inner, print_ir=PrintIR(ir_stream),
               stats_sink=sink)
    from texflow.stderr_capture import capture_stderr
    try:
        with capture_stderr() as cap:
            pm.run(module.operation)
    except ir.MLIRError as e:
        msgs = [d.message if " at loc(" in d.message else f"{d.message} at {d.location}"
                for d in e.error_diagnostics]
        msgs = msgs or [cap.first_error() or str(e).splitlines()[0]]
        raise TexflowError(f"error: {msgs[0]}" if args.verify_diagnostics else f"pipeline failed: {msgs[0]}") from None
    if ir_stream is not None:
        ir_stream.flush()
    if args.texflow_statistics:
        for p in sink:
            for k, v in p.statistics.items():
                print(f"texflow-statistics: {p.name}: {v} {k}", file=sys.stderr)
    return module.operation.get_asm(large_elements_limit=args.elide_elements_larger_than)


def main_impl(argv) -> int:
    args = build_parser().parse_args(argv)
    if args.list_passes:
        sys.stdout.write(list_passes())
        return 0
    inner = parse_top(args.pass_pipeline)
    if args.input == "-":
        text = sys.stdin.read()
    else:
        try:
            text = open(args.input).read()
        except OSError as e:
            raise TexflowError(f"cannot read {args.input}: {e.strerror}") from None
    if args.texflow_verbose:
        from texflow.passes.registry import set_remark_stream
        set_remark_stream(os.fdopen(os.dup(2), "w"))
    session = CompilerSession()
    chunks = text.split("\n// -----\n") if args.split_input_file else [text]
    # Pad each chunk with blank lines so diagnostics keep the file's line numbers.
    line = 0
    padded = []
    for chunk in chunks:
        padded.append("\n" * line + chunk)
        line += chunk.count("\n") + 2
    chunks = padded
    outs = []
    for i, chunk in enumerate(chunks):
        try:
            outs.append(run_one(session, chunk, args.input, inner, args))
        except TexflowError as e:
            if not args.verify_diagnostics:
                raise
            outs.append(f"// {e}\n")
    from texflow.atomic_io import write_atomically
    write_atomically(args.output, "// -----\n".join(outs))
    return 0


def main(argv=None) -> int:
    return run_tool("texflow-opt", main_impl, argv)


if __name__ == "__main__":
    sys.exit(main())
