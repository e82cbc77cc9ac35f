# lit configuration for texflow's regression tests (test/lit).
#
#   lit -sv test/lit            (or: cmake --build build --target check-texflow)
#
# Tools: texflow-opt / texflow-compile / texflow-run (installed console
# scripts), iree-opt / iree-compile (from iree-base-compiler), FileCheck (the
# `filecheck` PyPI package, a faithful port of LLVM's FileCheck).
import os
import shutil
import sys

import lit.formats

config.name = "texflow"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".test"]
here = os.path.dirname(os.path.abspath(__file__))
# Tests live in test/lit; everything else at the top level is not a test
# (dialects/ holds .irdl.mlir descriptions, for instance).  lit matches
# `excludes` against directory names at every depth, so these top-level names
# would also hide test/lit/passes and the like: test/lit/lit.local.cfg resets
# the list for everything below it, and test/pytest/test_lit_discovery.py
# checks that every .mlir under test/lit is discovered.
config.test_source_root = here
config.test_exec_root = os.path.join(os.environ.get("TEXFLOW_LIT_OUT", os.path.join(here, "build", "lit")))
config.excludes = [".gpu", "Inputs", "dialects", "passes", "python", "build", "benchmarks", "docs",
                   "scripts", "examples", "results", ".git", ".ci", "pytest", ".cache"]

# TEXFLOW_STRICT: an undone optimisation pass fails the test instead of being silently dropped.
config.environment["TEXFLOW_STRICT"] = "1"
for var in ("PATH", "HOME", "TMPDIR", "PYTHONPATH", "LP_NATIVE_VECTOR_WIDTH",
            "MESA_SHADER_CACHE_DISABLE", "VK_DRIVER_FILES", "TEXFLOW_CACHE"):
    if var in os.environ:
        config.environment[var] = os.environ[var]

bindir = os.path.dirname(sys.executable)


def tool(name):
    found = shutil.which(name, path=bindir + os.pathsep + os.environ.get("PATH", ""))
    if not found:
        lit_config.fatal(f"lit: cannot find '{name}'; run `pip install -e .[test]` first")
    return found


config.substitutions.append(("%python", sys.executable))
config.substitutions.append(("%irdl_dir", os.path.join(here, "dialects")))
config.substitutions.append(("%inputs", os.path.join(here, "test", "lit", "Inputs")))
# FileCheck first: other tool names must not match inside it.
for name, exe in (("FileCheck", "filecheck"), ("not", None),
                  ("texflow-compile", "texflow-compile"), ("texflow-opt", "texflow-opt"),
                  ("texflow-run", "texflow-run"), ("iree-opt", "iree-opt"),
                  ("iree-compile", "iree-compile")):
    if exe is None:
        config.substitutions.append(
            (r"\bnot\b(?=\s)", f"{sys.executable} {os.path.join(here, 'test', 'lit', 'not.py')}"))
        continue
    config.substitutions.append((r"(?<![\w/.-])" + name + r"(?![\w.-])", tool(exe)))
