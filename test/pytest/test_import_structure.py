"""The import structure the code promises: one-way data flow, passes that are not each other's
library, a compiler that does not need the runtime, a library that needs only its dependencies.

Read from the source with `ast`, module-level and function-level imports alike (an import inside
a function is how a cycle hides), relative imports resolved against the importing module:
- a pass file (one that registers a pass) imports no other pass file: shared code lives in
  texflow.ir, or in a helper module of its own phase folder (passes/layout/rules/*.py,
  passes/cpu/softmax_match.py) that registers nothing;
- texflow's modules have no import cycle;
- nothing the compiler reaches (texflow.compiler, the compile and opt CLIs, every pass) imports
  the runtime (texflow.runtime, texflow.streaming.executor);
- `import texflow` and the three CLIs reach only the design card's packages (IREE, numpy,
  OR-Tools, ONNX) and the standard library: benchmark tooling (torch, MNN, ONNX Runtime)
  lives outside what they import.
"""

import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# where each package's files are (pyproject.toml's package-dir)
PACKAGE_DIRS = {"texflow": os.path.join(ROOT, "python", "texflow"),
                "texflow.passes": os.path.join(ROOT, "passes"),
                "texflow.dialects": os.path.join(ROOT, "dialects")}
RUNTIME = {"texflow.runtime", "texflow.streaming.executor"}
COMPILER_ENTRIES = {"texflow.compiler", "texflow.cli.compile", "texflow.cli.opt"}
# google: protobuf, ONNX's own dependency (the importer catches its DecodeError)
DESIGN_CARD = {"iree", "numpy", "ortools", "onnx", "google", "texflow"}


def _files() -> dict[str, str]:
    """dotted module name -> file, for every module of the installed package."""
    out = {}
    for pkg, d in PACKAGE_DIRS.items():
        for dirpath, dirs, files in os.walk(d):
            dirs[:] = [x for x in dirs if x != "__pycache__"]
            rel = os.path.relpath(dirpath, d)
            parts = [] if rel == "." else rel.split(os.sep)
            if pkg == "texflow" and parts[:1] in (["passes"], ["dialects"]):
                continue
            for f in files:
                if f.endswith(".py"):
                    stem = f[:-3]
                    name = ".".join([pkg] + parts + ([] if stem == "__init__" else [stem]))
                    out[name] = os.path.join(dirpath, f)
    return out


def _imports(name: str, path: str, known: set[str]) -> set[str]:
    """Modules `name` imports: texflow modules by dotted name, others by their top-level name."""
    is_pkg = path.endswith("__init__.py")
    package = name if is_pkg else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            candidates = [f"{mod}.{a.name}" for a in node.names]
            hit = [c for c in candidates if c in known]
            out.update(hit)
            if len(hit) < len(candidates):
                out.add(mod if mod.startswith("texflow") else mod.split(".")[0])
        elif isinstance(node, ast.Import):
            for a in node.names:
                out.add(a.name if a.name.startswith("texflow") else a.name.split(".")[0])
    # importing texflow.a.b runs texflow/__init__ and texflow/a/__init__ too
    for m in list(out):
        parts = m.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in known)
    out.discard(name)
    return out


FILES = _files()
GRAPH = {m: _imports(m, p, set(FILES)) for m, p in FILES.items()}


def _pass_files() -> set[str]:
    return {m for m, p in FILES.items() if m.startswith("texflow.passes.") and "@register_pass" in open(p).read()}


def _reach(starts: set[str]) -> set[str]:
    seen, todo = set(), list(starts)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += [n for n in GRAPH.get(m, ()) if n in FILES]
    return seen


def test_the_tree_is_read():
    passes = _pass_files()
    assert {"texflow.passes.layout.eliminate", "texflow.passes.cpu.pack_matmul",
            "texflow.passes.layout.select", "texflow.passes.wstream.split_weights"} <= passes
    assert "texflow.passes.layout.rules.expand_fold" in FILES and "texflow.passes.layout.rules.expand_fold" not in passes
    assert RUNTIME <= set(FILES) and COMPILER_ENTRIES <= set(FILES)


def test_a_pass_file_imports_no_other_pass_file():
    passes = _pass_files()
    bad = {m: sorted((GRAPH[m] & passes) - {m}) for m in sorted(passes)}
    bad = {m: v for m, v in bad.items() if v}
    assert not bad, f"pass files importing other pass files (move the shared code to texflow.ir): {bad}"


def test_no_import_cycle():
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in sorted(GRAPH[m]):
            if n in FILES and not (m.startswith(n + ".") and FILES[n].endswith("__init__.py")):
                visit(n, path + [m])
        state[m] = 2

    for m in sorted(GRAPH):
        visit(m, [])


def test_the_compiler_does_not_import_the_runtime():
    reached = _reach(COMPILER_ENTRIES | _pass_files())
    assert not reached & RUNTIME, sorted(reached & RUNTIME)


@pytest.mark.parametrize("entry", ["texflow", "texflow.cli.compile", "texflow.cli.opt", "texflow.cli.run"])
def test_the_library_needs_only_its_dependencies(entry):
    reached = _reach({entry})
    foreign = {n for m in reached for n in GRAPH[m]
               if n not in FILES and n.split(".")[0] not in DESIGN_CARD
               and n.split(".")[0] not in sys.stdlib_module_names and n != "__future__"}
    # matplotlib only draws the optional charts (the `chart` extra), imported where it draws
    assert foreign <= {"matplotlib"}, sorted(foreign)


def test_the_checker_resolves_relative_and_function_level_imports(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from .eliminate import thing\n    from ..cpu import pack_matmul\n"
                 "    import torch.nn\n")
    known = {"texflow.passes.layout.eliminate", "texflow.passes.cpu.pack_matmul", "texflow.passes.cpu",
             "texflow.passes", "texflow.passes.layout"}
    got = _imports("texflow.passes.layout.x", str(f), known)
    assert {"texflow.passes.layout.eliminate", "texflow.passes.cpu.pack_matmul", "torch"} <= got
