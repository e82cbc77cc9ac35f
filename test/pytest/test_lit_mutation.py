"""Every lit RUN line fails with its texflow pass removed (scripts/lit_mutation.py --check).

Survivors are accepted only on diagnostic lines, listed negative controls and equivalent
mutants (see the script's docstring).  About 3-4 minutes on 2 cores: --run-slow.
"""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_lit_line_fails_without_its_pass():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "lit_mutation.py"), "--check"],
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    assert "0 unexpected" in proc.stdout and "mutants" in proc.stdout
