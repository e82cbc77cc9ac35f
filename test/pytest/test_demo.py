"""The README's main job runs and texflow's output matches ONNX Runtime."""

import re
import subprocess
import sys


def test_demo_llvm_cpu():
    p = subprocess.run([sys.executable, "-m", "texflow.demo", "--targets", "llvm-cpu", "--reps", "3"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = {m.group(1): (int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r"^llvm-cpu\s+(\w+)\s+(\d+)\s+(\d+)", p.stdout, re.M)}
    assert set(rows) == {"plain", "texflow"}
    # the bundled example loses its token-transpose dispatch under texflow
    assert rows["texflow"][0] < rows["plain"][0] and rows["texflow"][1] < rows["plain"][1]
    assert "MISMATCH" not in p.stdout
