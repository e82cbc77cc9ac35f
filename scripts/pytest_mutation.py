#!/usr/bin/env python3
"""Mutation run over the pytest suite: does each test of a rewrite fail when its pass does nothing?

For each texflow pass in MUTANTS, the tests that exercise it run with that pass disabled
(`TEXFLOW_DISABLE_PASSES`, honoured by the pass registry in every process: the pytest process,
its forked compiles and the texflow-compile / texflow-run subprocesses it starts).  A test that
still passes *survives*.  A survivor is accepted only where it is listed in
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

# pass -> the tests of that pass: (file, pytest -k expression or None for the whole file)
MUTANTS: dict[str, list[tuple[str, str | None]]] = {
    "texflow-eliminate-layout": [("test_layout.py", None), ("test_e2e.py", None), ("test_embedding.py", None)],
    "texflow-raise-layout": [("test_layout.py", None)],
    "texflow-select-layout": [("test_layout_select.py", "not f16")],
    "texflow-pack-matmul": [("test_pack_matmul.py", None)],
    "texflow-rewrite-softmax": [("test_softmax.py", "rewritten")],
    "texflow-fuse-attention": [("test_softmax.py", "fused or wide_heads")],
    "texflow-demote-f16": [("test_targets.py", "f16"), ("test_layout_select.py", "f16"),
                           ("test_keep_f32.py", None)],
    "texflow-slice-contractions": [("test_slice_contractions.py", None)],
    "texflow-split-grouped-convs": [("test_split_grouped_convs.py", None)],
    "texflow-fold-weight-math": [("test_fold_weight_math.py", None)],
    # texflow-compose-transposes has no pytest of its own: its tests are lit's (layout/compose-transposes.mlir)
    "texflow-wstream-split-weights": [("test_wstream_runtime.py", "split")],
    "texflow-wstream-plan": [("test_wstream_ir.py", None), ("test_wstream_outputs.py", None)],
    "texflow-wstream-outline": [("test_wstream_runtime.py", "not split")],
    "texflow-configure-kernels": [("test_configure_kernels.py", "configured_model")],
    "texflow-widen-accumulators": [("test_widen_accumulators.py", None)],
}

# (pass, test id without parameters) -> why it may pass without the pass
_HELPER = "tests a function of the pass's module that the pass calls, not the pass's apply"
_CORRECT = ("a correctness test: the compiled model must give ONNX Runtime's numbers with or "
            "without the optimisation (the pass's own tests in the file check it rewrote)")
_SOLVER = "tests the layout solver or cost-model data (texflow.selection), which the pass calls"
_RANDOM = ("a correctness property (random graphs give ONNX Runtime's numbers with or without the "
           "rewrite); its transpose_pair case asserts the pair is cancelled, and is killed")
_TABLE = "tests SmartMem's pair-rule table (texflow.ir.quadrants), data the pass reads but does not compute"
_DIALECT = "tests the wstream dialect's op verifiers and order checks on hand-written IR, not the pass"
EXPECTED: dict[tuple[str, str], str] = {
    ("texflow-split-grouped-convs", "test_split_grouped_convs.py::test_not_in_the_vulkan_pipeline"):
        "tests which pipelines list the pass, not what it does",
    ("texflow-pack-matmul", "test_pack_matmul.py::test_packed_weight_is_what_mmt4d_reads"):
        _HELPER + " (pack_rhs against a numpy mmt4d)",
    ("texflow-pack-matmul", "test_pack_matmul.py::test_tiles_option"): _HELPER + " (parse_tiles)",
    ("texflow-select-layout", "test_layout_select.py::test_cpsat_is_optimal_and_greedy_never_better"): _SOLVER,
    ("texflow-select-layout", "test_layout_select.py::test_conversions_between_two_non_reference_layouts_count_twice"):
        _SOLVER,
    ("texflow-select-layout", "test_layout_select.py::test_large_problems_fall_back_to_greedy"): _SOLVER,
    ("texflow-select-layout", "test_layout_select.py::test_cost_models_are_data_with_their_source"): _SOLVER,
    ("texflow-select-layout", "test_layout_select.py::test_corrupt_cost_model_is_a_clear_error"): _SOLVER,
    ("texflow-eliminate-layout", "test_layout.py::test_pair_rule_table"):
        _TABLE,
    ("texflow-eliminate-layout", "test_layout.py::test_fused_quadrant_is_the_more_constrained"):
        "tests the quadrant classification (texflow.ir.quadrants), not elimination",
    ("texflow-raise-layout", "test_layout.py::test_pair_rule_table"):
        _TABLE,
    ("texflow-raise-layout", "test_layout.py::test_fused_quadrant_is_the_more_constrained"):
        "tests the quadrant classification (texflow.ir.quadrants), not raising",
    ("texflow-eliminate-layout", "test_e2e.py::test_llvm_cpu_matches_onnxruntime"): _CORRECT,
    ("texflow-eliminate-layout", "test_e2e.py::test_vulkan_matches_onnxruntime"): _CORRECT,
    ("texflow-eliminate-layout", "test_e2e.py::test_vulkan_refuses_subgroup_mismatch"):
        "tests the runtime's subgroup check",
    ("texflow-eliminate-layout", "test_embedding.py::test_pass_objects_and_options_api"):
        "tests the pass registry's parsing API",
    ("texflow-eliminate-layout", "test_layout.py::test_random_graphs_match_onnxruntime"): _RANDOM,
    ("texflow-raise-layout", "test_layout.py::test_random_graphs_match_onnxruntime"): _RANDOM,
    ("texflow-wstream-plan", "test_wstream_ir.py::test_op_verifiers"): _DIALECT,
    ("texflow-wstream-plan", "test_wstream_ir.py::test_wait_type_mismatch_and_order_checks"): _DIALECT,
    ("texflow-wstream-plan", "test_wstream_ir.py::test_stage_split_point"):
        "tests stage formation's split rule (texflow.streaming.stages)",
    ("texflow-demote-f16", "test_keep_f32.py::test_rejected_nodes_reads_the_translation_failures"):
        _HELPER + " (compiler.rejected_nodes reads IREE's diagnostics)",
    ("texflow-demote-f16", "test_keep_f32.py::test_keep_f32_cli_errors"):
        "tests the driver's option checks, made before any pass runs",
    ("texflow-eliminate-layout", "test_e2e.py::test_wrong_input_shape_is_a_clear_error"):
        "tests the runtime's input check",
}

# parametrized cases that must be killed although their test's other cases may survive
MUST_KILL = {
    ("texflow-eliminate-layout", "test_layout.py::test_random_graphs_match_onnxruntime[transpose_pair]"),
    ("texflow-raise-layout", "test_layout.py::test_random_graphs_match_onnxruntime[transpose_pair]"),
}


def accepted(mutant: str, test_id: str) -> str | None:
    """Why `test_id` may survive `mutant`, or None (a defect of the test)."""
    if (mutant, test_id) in MUST_KILL:
        return None
    return EXPECTED.get((mutant, test_id)) or EXPECTED.get((mutant, test_id.split("[")[0]))


def run(mutant: str, selection: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
    """(test id, outcome) for every selected test with `mutant` disabled.  The hypothesis
    profile `mutation` runs CI's examples without shrinking: a killed property test would
    otherwise spend minutes minimising its counterexample."""
    return [r for f, k in selection for r in _run_one(mutant, f, k)]


def _run_one(mutant: str, f: str, k: str | None) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as d:
        xml = os.path.join(d, "r.xml")
        env = dict(os.environ, TEXFLOW_DISABLE_PASSES=mutant, TEXFLOW_HYPOTHESIS_PROFILE="mutation")
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-m", "not slow", f"--junitxml={xml}", *(["-k", k] if k else []),
                        os.path.join(ROOT, "test", "pytest", f)],
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
        acc = [t for t in surv if accepted(n, t)]
        bad = [t for t in surv if not accepted(n, t)]
        unexpected += len(bad)
        print(f"| {n} | {len(killed) + len(surv)} | {len(killed)} | {len(acc)} | {len(bad)} |", flush=True)
        lines += [f"- {n}: {t} survived" + (f" (accepted: {accepted(n, t)})" if t in acc else "")
                  for t in surv]
    print()
    print("\n".join(lines))
    return 1 if a.check and unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
