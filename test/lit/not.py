"""`not CMD...`: succeed iff CMD fails (lit's `not` is not always on PATH)."""
import subprocess
import sys

sys.exit(0 if subprocess.call(sys.argv[1:]) != 0 else 1)
