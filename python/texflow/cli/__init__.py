"""Command-line tools: texflow-compile, texflow-opt, texflow-run."""

import sys

from texflow.errors import TexflowError


def run_tool(name: str, fn, argv=None) -> int:
    """Run a tool's main; user errors become `<name>: error: <one line>`, exit 1."""
    try:
        return fn(sys.argv[1:] if argv is None else argv) or 0
    except TexflowError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
