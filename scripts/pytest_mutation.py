#!/usr/bin/env python3
"""Mutation run over the pytest suite: does each test of a rewrite fail when its pass does nothing?

For each texflow pass in MUTANTS, the test files that exercise it run with that pass's
`apply` replaced by a no-op (`TEXFLOW_MUTANT`, installed by test/pytest/conftest.py, in the
pytest process and the compiles it forks; a texflow-compile subprocess is not mutated).  A
test that still passes *survives*.  A survivor is accepted only where it is listed in
EXPECTED with the reason it need not depend on the pass (it tests an error path, a cost
model, an option that turns the pass off...); `--check` exits 1 on any other survivor.
Results: test/MUTATION.md (pytest section).

    python3 scripts/pytest_mutation.py            # report
    python3 scripts/pytest_mutation.py --check
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MUTANTS = {
    "texflow-eliminate-layout": ["test_layout.py", "test_e2e.py"],
    "texflow-raise-layout": ["test_layout.py"],
    "texflow-select-layout": ["test_layout_select.py"],
    "texflow-pack-matmul": ["test_pack_matmul.py"],
    "texflow-rewrite-softmax": ["test_softmax.py"],
    "texflow-fuse-attention": ["test_softmax.py"],
    "texflow-demote-f16": ["test_targets.py", "test_layout_select.py"],
}

# test id (file::function, parameters dropped) -> why it may pass without the pass
EXPECTED: dict[tuple[str, str], str] = {}


def run(mutant: str, files: list[str]) -> list[tuple[str, str]]:
    """(test id, outcome) for every test of `files` with `mutant` disabled."""
    with tempfile.TemporaryDirectory() as d:
        xml = os.path.join(d, "r.xml")
        env = dict(os.environ, TEXFLOW_MUTANT=mutant)
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-m", "not slow", f"--junitxml={xml}",
                        *[os.path.join(ROOT, "test", "pytest", f) for f in files]],
                       cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = []
        for case in ET.parse(xml).getroot().iter("testcase"):
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "killed"
                elif child.tag == "skipped":
                    outcome = "skipped"
            out.append((f"{case.get('classname').split('.')[-1]}.py::{case.get('name')}", outcome))
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--only", help="comma-separated passes (default: all of MUTANTS)")
    a = ap.parse_args()
    names = a.only.split(",") if a.only else list(MUTANTS)
    unexpected = 0
    print("| pass removed | tests run | killed | survived (accepted) | survived (unexpected) |")
    print("|---|---|---|---|---|")
    lines = []
    for n in names:
        res = run(n, MUTANTS[n])
        killed = [t for t, o in res if o == "killed"]
        surv = [t for t, o in res if o == "passed"]
        acc = [t for t in surv if (n, t.split("[")[0]) in EXPECTED]
        bad = [t for t in surv if (n, t.split("[")[0]) not in EXPECTED]
        unexpected += len(bad)
        print(f"| {n} | {len(killed) + len(surv)} | {len(killed)} | {len(acc)} | {len(bad)} |", flush=True)
        lines += [f"- {n}: {t} survived" + (f" (accepted: {EXPECTED[(n, t.split('[')[0])]})"
                                            if t in acc else "") for t in surv]
    print()
    print("\n".join(lines))
    return 1 if a.check and unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
