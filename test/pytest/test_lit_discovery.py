"""Every .mlir under test/lit is a lit test that lit actually discovers.

lit's `excludes` match directory names at any depth, so a name excluded at the
repository's top level (e.g. `passes`) once hid test/lit/passes/ without a word.
"""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIT_DIR = ROOT / "test" / "lit"


def _discovered() -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", 'import sys, lit.main; sys.argv[0] = "lit"; lit.main.main()',
         "--show-tests", "."],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TEXFLOW_LIT_OUT": os.environ.get("TEXFLOW_LIT_OUT", str(ROOT / "build" / "lit"))})
    assert proc.returncode == 0, proc.stderr
    found = set()
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("texflow :: "):
            found.add(line.removeprefix("texflow :: "))
    return found


def test_every_lit_file_is_discovered():
    expected = {str(p.relative_to(ROOT)) for p in LIT_DIR.rglob("*.mlir") if "Inputs" not in p.parts}
    assert len(expected) >= 21, sorted(expected)
    found = _discovered()
    missing = sorted(expected - found)
    assert not missing, f"lit does not discover {missing}"
    # Nothing outside test/lit is taken for a test (dialects/*.irdl.mlir, for instance).
    stray = sorted(t for t in found if not t.startswith("test/lit/"))
    assert not stray, stray


def test_every_lit_file_has_a_run_line():
    # A .mlir without RUN: is reported by lit as an error only at run time; keep them visible here.
    for p in LIT_DIR.rglob("*.mlir"):
        if "Inputs" in p.parts:
            continue
        assert "RUN:" in p.read_text(), f"{p} has no RUN line"


def test_every_pass_has_a_lit_test_in_its_phase_folder():
    """Tests mirror the code: a pass defined in passes/<phase>/ is run by a RUN line of a file
    in test/lit/<phase>/ (its input and output shown as lit checks)."""
    import re
    import texflow.passes  # noqa: F401  (registers the passes)
    from texflow.passes.registry import registered_passes
    runs = {p: p.read_text() for p in LIT_DIR.rglob("*.mlir") if "Inputs" not in p.parts}
    missing = []
    for name, cls in sorted(registered_passes().items()):
        if cls.__module__.startswith("texflow.passes.") and cls.__module__.count(".") == 3:
            phase = cls.__module__.split(".")[2]
        else:
            continue  # a pass registered outside the tree (a test's own)
        pattern = re.compile(r"RUN:.*--pass-pipeline=.*\b" + re.escape(name) + r"\b")
        if not any(f.parent.name == phase and pattern.search(text) for f, text in runs.items()):
            missing.append(f"{name} (passes/{phase}/ -> test/lit/{phase}/)")
    assert not missing, f"passes without a lit test in their phase folder: {missing}"
