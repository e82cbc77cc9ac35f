#!/usr/bin/env python3
"""Mutation run over the lit tests: does each test fail when its pass does nothing?

For every RUN line of every test/lit/**/*.mlir that runs a `--pass-pipeline`, each
texflow pass under test is removed from that line's pipeline in turn (and, where a
line runs several, all of them at once); the line is then executed as lit would
(with the lines after it that only read its %t files).  A mutant that still passes
*survives*: the file's CHECK lines cannot tell the pass from no pass.

The passes under test are the line's `texflow-*` passes other than the verifiers
(`texflow-verify-layout`, `texflow-verify-lowered`), which only assert; a line whose
only texflow pass is a verifier tests that verifier.  A pass name that is not
registered (opt-errors.mlir's unknown pass) counts too: removing it must make the
expected error disappear.

A survivor is accepted only
- on a line that checks a diagnostic (`not ...` or `--verify-diagnostics`): removing
  the pass may leave the same error (such lines and files are listed as diagnostic);
- on a line that checks that its pass leaves the input alone (a negative control,
  "below min-flops nothing is packed"), named in NEGATIVE_CONTROLS with the reason;
- for an *equivalent* mutant: the removed pass is one of several on the line and
  the tool's output is byte-identical without it (lower-layout after an
  elimination that left nothing to lower), so no CHECK line could tell.
Every other survivor is a defect of the test, and `--check` exits non-zero on it
(test/pytest/test_lit_mutation.py runs it).

    python3 scripts/lit_mutation.py            # report
    python3 scripts/lit_mutation.py --check    # report; exit 1 on an unexpected survivor
    python3 scripts/lit_mutation.py --json out.json test/lit/cpu
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIT = ROOT / "test" / "lit"
VERIFIERS = {"texflow-verify-layout", "texflow-verify-lowered"}

# (file relative to test/lit, check prefix of the RUN line) -> why it may survive.
NEGATIVE_CONTROLS: dict[tuple[str, str], str] = {
    ("cpu/pack-matmul.mlir", "SMALL"):
        "negative control: below the default min-flops the matmul is left alone (checks linalg.matmul kept)",
    ("cpu/pack-matmul.mlir", "FILL"):
        "negative control: with the default min-dynamic-fill a run-time matmul whose tiles are mostly "
        "padding is left alone (FILLSTAT, killed, checks the pass decided so)",
    ("layout/split-grouped-convs.mlir", "CAP"):
        "negative control: with max-groups=1 the 2-group convolution is left alone",
    ("layout/fold-into-producer.mlir", "OFF"):
        "negative control: without fold-into-producers the batch_matmul and its transpose stay",
}


@dataclass
class Run:
    lineno: int
    command: str
    prefix: str
    pipeline: list[str] | None  # top-level passes of builtin.module(...)


@dataclass
class Mutant:
    file: str
    lineno: int
    prefix: str
    removed: list[str]
    survived: bool = False
    diagnostic: bool = False
    equivalent: bool = False
    output: str = ""


@dataclass
class FileReport:
    file: str
    diagnostic: bool
    mutants: list[Mutant] = field(default_factory=list)


_PIPE = re.compile(r"--pass-pipeline='builtin\.module\((.*?)\)'")


def split_top(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def pass_name(p: str) -> str:
    return re.split(r"[{(]", p, maxsplit=1)[0].strip()


def parse_runs(path: Path) -> list[Run]:
    runs = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        m = re.search(r"RUN:\s*(.*)$", line)
        if not m:
            continue
        cmd = m.group(1).strip()
        pm = _PIPE.search(cmd)
        pipeline = split_top(pm.group(1)) if pm else None
        pre = re.search(r"--check-prefix[= ](\S+)", cmd)
        prefix = pre.group(1) if pre else ("CHECK" if re.search(r"\bFileCheck\b", cmd) else "")
        runs.append(Run(i, cmd, prefix, pipeline))
    return runs


def under_test(pipeline: list[str]) -> list[str]:
    tex = [p for p in pipeline if pass_name(p).startswith("texflow-")]
    main = [p for p in tex if pass_name(p) not in VERIFIERS]
    return main or tex


def line_is_diagnostic(r: Run) -> bool:
    return "--verify-diagnostics" in r.command or bool(re.match(r"not\s", r.command))


def is_diagnostic(text: str, runs: list[Run]) -> bool:
    return any(line_is_diagnostic(r) for r in runs)


def tool_output(cmd: str, src: Path, tmp: Path) -> str:
    """stdout of the RUN line's first command (the texflow-opt of `texflow-opt ... | FileCheck`)."""
    first = cmd.split("|")[0]
    first = re.sub(r"\s2>(&1|\S+)", " ", first)
    proc = subprocess.run(["bash", "-c", substitute(first, src, tmp)], capture_output=True,
                          text=True, cwd=src.parent, timeout=300)
    return proc.stdout if proc.returncode == 0 else f"[failed rc={proc.returncode}] {proc.stderr[-500:]}"


def substitute(cmd: str, src: Path, tmp: Path) -> str:
    tools = {}
    bindir = os.path.dirname(sys.executable)
    for name, exe in (("FileCheck", "filecheck"), ("texflow-compile", "texflow-compile"),
                      ("texflow-opt", "texflow-opt"), ("texflow-run", "texflow-run"),
                      ("iree-opt", "iree-opt"), ("iree-compile", "iree-compile")):
        tools[name] = shutil.which(exe, path=bindir + os.pathsep + os.environ.get("PATH", "")) or exe
    cmd = cmd.replace("%inputs", str(LIT / "Inputs")).replace("%irdl_dir", str(ROOT / "dialects"))
    cmd = cmd.replace("%python", sys.executable)
    cmd = cmd.replace("%s", str(src)).replace("%S", str(src.parent)).replace("%t", str(tmp))
    for name, exe in tools.items():
        cmd = re.sub(r"(?<![\w/.-])" + re.escape(name) + r"(?![\w.-])", exe, cmd)
    cmd = re.sub(r"(^|\|\s*|;\s*)not(?=\s)", lambda m: m.group(1) + f"{sys.executable} {LIT / 'not.py'}", cmd)
    return cmd


def mutate(cmd: str, removed: list[str]) -> str:
    pm = _PIPE.search(cmd)
    kept = [p for p in split_top(pm.group(1)) if p not in removed]
    return cmd[:pm.start()] + f"--pass-pipeline='builtin.module({','.join(kept)})'" + cmd[pm.end():]


def run_mutant(path: Path, runs: list[Run], idx: int, removed: list[str]) -> tuple[bool, str]:
    """Runs RUN line idx mutated, then the later lines without a pipeline (they read its %t)."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / "t"
        seq = [mutate(runs[idx].command, removed)]
        for r in runs[idx + 1:]:
            if r.pipeline is not None:
                break
            seq.append(r.command)
        out = []
        for c in seq:
            proc = subprocess.run(["bash", "-o", "pipefail", "-c", substitute(c, path, tmp)],
                                  capture_output=True, text=True, cwd=path.parent, timeout=300)
            out.append(proc.stdout[-2000:] + proc.stderr[-2000:])
            if proc.returncode != 0:
                return False, "\n".join(out)
        return True, "\n".join(out)


def collect(paths: list[Path]) -> list[tuple[Path, FileReport, list[Run], int, list[str]]]:
    jobs = []
    for path in paths:
        runs = parse_runs(path)
        rel = str(path.relative_to(LIT))
        rep = FileReport(rel, is_diagnostic(path.read_text(), runs))
        for i, r in enumerate(runs):
            if r.pipeline is None:
                continue
            targets = under_test(r.pipeline)
            variants = [[]] + [[t] for t in targets]  # [] : the line as written (baseline)
            if len(targets) > 1:
                variants.append(list(targets))
            for v in variants:
                jobs.append((path, rep, runs, i, v))
    return jobs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", help="lit files or folders (default: test/lit)")
    ap.add_argument("--check", action="store_true", help="exit 1 if a mutant survives that is not "
                    "a diagnostic test or a listed negative control")
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args(argv)
    roots = [Path(p).resolve() for p in args.paths] or [LIT]
    files = sorted({f for r in roots for f in ([r] if r.is_file() else r.rglob("*.mlir"))
                    if "Inputs" not in f.parts})
    jobs = collect(files)
    reports: dict[str, FileReport] = {}
    with cf.ThreadPoolExecutor(args.jobs) as ex:
        futs = {ex.submit(run_mutant, p, runs, i, v): (p, rep, runs, i, v) for p, rep, runs, i, v in jobs}
        for fut in cf.as_completed(futs):
            p, rep, runs, i, v = futs[fut]
            survived, out = fut.result()
            m = Mutant(rep.file, runs[i].lineno, runs[i].prefix, v, survived,
                       line_is_diagnostic(runs[i]), False, out if (survived == bool(v)) else "")
            if v and survived and len(under_test(runs[i].pipeline)) > len(v):
                with tempfile.TemporaryDirectory() as d:
                    t = Path(d) / "t"
                    a = tool_output(runs[i].command, p, t)
                    m.equivalent = not a.startswith("[failed") and a == tool_output(
                        mutate(runs[i].command, v), p, t)
            reports.setdefault(rep.file, rep).mutants.append(m)
    # The unmutated lines first: a line that fails as written kills every mutant for nothing.
    broken = []
    for rep in reports.values():
        for m in [m for m in rep.mutants if not m.removed]:
            rep.mutants.remove(m)
            if not m.survived:
                broken.append((rep.file, m.lineno))
    for f, line in broken:
        print(f"BASELINE FAILS: {f}:{line} fails as written; its mutants are not counted")
        reports[f].mutants = [m for m in reports[f].mutants if m.lineno != line]
    bad = []
    print(f"{'file':42} {'line':>4} {'prefix':8} {'removed':44} result")
    for name in sorted(reports):
        rep = reports[name]
        for m in sorted(rep.mutants, key=lambda m: (m.lineno, m.removed)):
            removed = ",".join(pass_name(p) for p in m.removed)
            if not m.survived:
                verdict = "killed"
            elif (name, m.prefix) in NEGATIVE_CONTROLS:
                verdict = "survived (" + NEGATIVE_CONTROLS[(name, m.prefix)] + ")"
            elif m.diagnostic:
                verdict = "survived (diagnostic line)"
            elif m.equivalent:
                verdict = "survived (equivalent: output identical without the pass)"
            else:
                verdict = "SURVIVED"
                bad.append(m)
            print(f"{name:42} {m.lineno:>4} {m.prefix:8} {removed:44} {verdict}")
    # File level: does the file fail with each of its passes removed from every RUN line?
    print()
    whole = {}
    for name in sorted(reports):
        rep = reports[name]
        by_pass: dict[str, list[Mutant]] = {}
        for m in rep.mutants:
            if len(m.removed) == 1:
                by_pass.setdefault(pass_name(m.removed[0]), []).append(m)
        for pname, ms in sorted(by_pass.items()):
            killed = any(not m.survived for m in ms)
            whole[f"{name} -{pname}"] = killed
            if not killed:
                why = ("diagnostic test" if all(m.diagnostic for m in ms) else
                       "equivalent mutant" if all(m.equivalent for m in ms) else
                       "negative control" if all((name, m.prefix) in NEGATIVE_CONTROLS for m in ms)
                       else "DEFECT")
                print(f"FILE SURVIVES: {name} with {pname} removed ({why})")
    n = sum(len(r.mutants) for r in reports.values())
    k = sum(not m.survived for r in reports.values() for m in r.mutants)
    print(f"{len(reports)} files, {n} mutants, {k} killed, {n - k} survived, {len(bad)} unexpected")
    diag = sorted(r.file for r in reports.values() if r.diagnostic)
    print("diagnostic tests:", ", ".join(diag))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "mutants": [m.__dict__ for r in reports.values() for m in r.mutants],
            "files_killed_per_pass": whole, "diagnostic": diag,
            "unexpected": [m.__dict__ for m in bad], "baseline_fails": broken}, indent=1))
    if broken:
        print(f"{len(broken)} RUN lines fail as written")
    if args.check and (bad or broken):
        for m in bad:
            print(f"\n--- survivor {m.file}:{m.lineno} without {m.removed}\n{m.output}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
