"""Every pytest of a pass fails with that pass disabled, unless it is listed with its reason
(scripts/pytest_mutation.py --check; results in test/MUTATION.md).  About 15 minutes on 2
cores: --run-slow."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_pass_test_fails_without_its_pass():
    env = {k: v for k, v in os.environ.items() if k != "TEXFLOW_DISABLE_PASSES"}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "pytest_mutation.py"), "--check"],
                          capture_output=True, text=True, timeout=3600, env=env)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("| texflow-")]
    assert len(rows) >= 10 and all(ln.rstrip().endswith("| 0 |") for ln in rows), rows
