"""The import structure the code promises (issue 17): pass files are not each other's library.

Read from the source with `ast` (module-level and function-level imports alike, since an import
inside a function is how a cycle hides):
- a pass file (one that registers a pass) imports no other pass file: shared code lives in
  texflow.ir (or a rule module of its own pass, such as layout_expand_fold);
- the passes' imports among themselves have no cycle.
"""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSES = os.path.join(ROOT, "passes")


def _imports(path: str) -> set[str]:
    """The texflow.passes modules a file imports (by file stem)."""
    tree = ast.parse(open(path).read(), path)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1 and mod:  # from .x import ...
                out.add(mod.split(".")[0])
            elif node.level == 1:  # from . import x
                out.update(a.name for a in node.names)
            elif mod.startswith("texflow.passes."):
                out.add(mod.split(".")[2])
            elif mod == "texflow.passes":
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("texflow.passes."):
                    out.add(a.name.split(".")[2])
    return out


def _modules() -> dict[str, str]:
    return {f[:-3]: os.path.join(PASSES, f) for f in os.listdir(PASSES)
            if f.endswith(".py") and f not in ("__init__.py", "builtin_passes.py")}


def _pass_files(mods: dict[str, str]) -> set[str]:
    return {m for m, p in mods.items() if "@register_pass" in open(p).read()}


def test_a_pass_file_imports_no_other_pass_file():
    mods = _modules()
    passes = _pass_files(mods)
    assert {"layout_eliminate", "pack_matmul", "layout_select", "wstream_split"} <= passes
    bad = {m: sorted((_imports(mods[m]) & passes) - {m}) for m in sorted(passes)}
    bad = {m: v for m, v in bad.items() if v}
    assert not bad, f"pass files importing other pass files (move the shared code to texflow.ir): {bad}"


def test_no_import_cycle_among_the_passes():
    mods = _modules()
    graph = {m: sorted(_imports(p) & set(mods)) for m, p in mods.items()}
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in graph[m]:
            visit(n, path + [m])
        state[m] = 2

    for m in sorted(graph):
        visit(m, [])


def test_the_checker_sees_function_level_imports(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from .layout_eliminate import thing\n    from texflow.passes.pack_matmul import y\n")
    assert _imports(str(f)) == {"layout_eliminate", "pack_matmul"}
