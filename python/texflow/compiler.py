"""The texflow compiler driver: IREE start->input, texflow phases, IREE input->end.

Everything runs in-process in one `CompilerSession`: the module produced by
IREE's input phase (linalg on tensors, ABI applied) is handed to texflow's
passes as a Python `ir.Operation`, then back to IREE without re-parsing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path

from iree.compiler import ir, passmanager
from iree.compiler.api import Invocation, Output

from . import iree_phases
from .errors import TexflowError
from .importer import import_onnx, load_onnx
from .ir.structured import type_text
from .isolation import ChildCrashed, ChildFailed, call_forked
from .session import CompilerSession
from .stderr_capture import capture_stderr
from .atomic_io import write_atomically
from .targets import Target, get_target, pack_tiles


@dataclasses.dataclass(frozen=True)
class Phase:
    """A texflow phase: a named pipeline that runs after IREE's `input` phase."""
    name: str
    summary: str
    # Pass instances (and upstream passes as text): values such as file paths travel as
    # typed options, never through option text (a path may hold spaces)
    pipeline: list
    # an optimisation phase: when any of its passes fails, the module is put back as it was
    # before the phase and the compile goes on as plain IREE would (a warning says why)
    optional: bool = False


def texflow_phases(options: "CompileOptions") -> list[Phase]:
    """texflow's phases for `options`, each a list of fresh pass instances
    (texflow.passes.pipelines builds them)."""
    from texflow.passes import pipelines
    from texflow.streaming.model import parse_bytes
    phases = []
    if options.layout:
        phases.append(Phase("texflow-layout", "layout-transformation elimination (SmartMem)",
                            Compiler.layout_items(options), optional=options.may_fall_back))
    if options.memory_budget:
        phases.append(Phase("texflow-wstream", "weight-streaming plan under a memory budget (FlashMem)",
                            pipelines.wstream_passes(parse_bytes(options.memory_budget),
                                                     time_limit=options.plan_time_limit,
                                                     manifest=options.plan_manifest or "",
                                                     target=options.target)))
    phases.append(Phase("texflow-finalize", "lower texflow dialects; check none reaches IREE",
                        pipelines.finalize_passes(bool(options.memory_budget and options.stream_segments),
                                                  options.stream_mode, options.target,
                                                  output_storage=options.layout)))
    return phases


TEXFLOW_PHASE_NAMES = ("texflow-layout", "texflow-wstream", "texflow-finalize")


# rounds of texflow-demote-f16 keep_f32 retries: IREE reports every rejected dispatch of a
# compile at once, so a second round is needed only where f32 neighbours change the fusion
F16_RETRY_ROUNDS = 3


# IREE's mmt4d microkernel: 5% faster than generated code on the packed matmuls
# texflow-pack-matmul writes (AVX-512, 128x768 by 768x3072, 1 thread)
PACK_IREE_FLAGS = ("--iree-llvmcpu-enable-ukernels=mmt4d",)


@dataclasses.dataclass
class CompileOptions:
    target: str = "llvm-cpu"
    iree_flags: list[str] = dataclasses.field(default_factory=list)
    layout: bool = True  # run texflow's layout phase (False = plain IREE)
    layout_pipeline: str | None = None  # None: the target's default (default_layout_pipeline)
    select_layout: bool = True  # in the default pipeline: texflow-select-layout after elimination
    select_options: str = ""  # extra texflow-select-layout options, e.g. "force=nc4hw4"
    pack_matmul: bool = True  # llvm-cpu: texflow-fuse-attention, -rewrite-softmax, -pack-matmul
    configure_kernels: bool = True  # Vulkan: texflow-configure-kernels (the target's kernel table)
    kernel_table: str = ""  # a kernel table file to configure with instead of the target's
    precision: str = "f32"  # "f16": compute in half precision (texflow-demote-f16), f32 interface
    keep_f32: tuple[str, ...] = ()  # with f16: ONNX nodes (op location names) kept in f32
    compile_from: str = "start"  # "start" or "input" (input: IR is already at IREE input level)
    compile_to: str = "end"  # an IREE phase or a texflow phase name
    memory_budget: str | None = None  # e.g. "64MiB": plan weight streaming (wstream)
    plan_time_limit: float = 10.0  # CP-SAT deterministic seconds (a work limit, not the clock)
    plan_manifest: str | None = None  # write the streaming plan as JSON here
    weight_archive: str | None = None  # write the planned weights here (.irpa); needs plan_manifest
    stream_segments: bool = True  # with memory_budget: prepare the module for the streaming runtime
    stream_mode: str = "fenced"  # "fenced" (one whole function) or "segments" (pipelines.STREAM_MODES)
    print_ir_after_all: bool = False  # print IR after each texflow pass (stderr)
    ir_stream: object = None  # where print_ir_after_all prints (default stderr)
    target_cpu: str = "host"  # llvm-cpu: an LLVM CPU name (znver4, cortex-a76, generic) or host
    target_triple: str | None = None  # llvm-cpu: e.g. aarch64-linux-android (None: the host's)

    @property
    def plain(self) -> bool:
        return not self.layout

    @property
    def packs_streamed(self) -> bool:
        """Whether texflow-pack-matmul may run: always without a budget; with one, only for
        the fenced stream mode (segments split weights in their linalg form)."""
        return not self.memory_budget or self.stream_mode == "fenced"

    @property
    def may_fall_back(self) -> bool:
        """Whether a failing layout phase may be left out (or the model compiled as plain
        IREE): only for texflow's default choices, never for what the user asked by flag
        (a pipeline, selection options, half precision)."""
        return (self.layout and self.layout_pipeline is None and not self.select_options
                and self.precision == "f32")


@dataclasses.dataclass
class CompileResult:
    vmfb: bytes | None = None
    mlir: str | None = None
    statistics: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    weight_archive: dict | None = None  # key -> {function, group, index, shape, dtype, bytes, sha256}
    program: dict | None = None  # segmented streaming program (texflow-wstream-outline)
    layout_report: dict | None = None  # texflow-select-layout's choices (per function, per tensor)
    # what texflow left out to keep the compile going: a pass undone, the layout phase dropped,
    # or the whole compile redone as plain IREE (one line each; the CLI prints them as warnings)
    fallbacks: list[str] = dataclasses.field(default_factory=list)


ALL_PHASES = iree_phases.IREE_PHASES[:2] + TEXFLOW_PHASE_NAMES + iree_phases.IREE_PHASES[2:]


def _iree_error(session: CompilerSession, what: str) -> TexflowError:
    err = session.diagnostics.first_error() or "unknown error (no diagnostic)"
    m = re.search(r'"torch\.operator".*?name = "onnx\.(\w+)"', err)
    if m:
        return TexflowError(f"{what}: ONNX op '{m.group(1)}' cannot be lowered by IREE's "
                            f"ONNX importer/converter ({err.split(':')[0]})")
    return TexflowError(f"{what}: {err}")


class Compiler:
    """Compiles one model; `compile_file` / `compile_module` are the entry points."""

    def __init__(self, options: CompileOptions, session: CompilerSession | None = None):
        """`session`: reuse another compiler's session (and its IREE flags), e.g. to
        continue compiling a module that lives in that session's context."""
        self.options = options
        if options.compile_to not in ALL_PHASES:
            raise TexflowError(f"unknown phase '{options.compile_to}' "
                               f"(phases: {', '.join(ALL_PHASES)})")
        if options.compile_from not in ("start", "input"):
            raise TexflowError(f"--compile-from must be 'start' or 'input', got '{options.compile_from}'")
        self.target: Target = get_target(options.target).for_cpu(options.target_cpu,
                                                                  options.target_triple)
        if options.precision not in ("f32", "f16"):
            raise TexflowError(f"--precision must be f32 or f16, got '{options.precision}'")
        if options.precision == "f16" and not options.layout:
            raise TexflowError("--precision=f16 needs texflow's layout phase (drop --no-layout)")
        if options.keep_f32 and options.precision != "f16":
            raise TexflowError("--keep-f32 names nodes to keep out of f16: it needs --precision=f16")
        if options.keep_f32 and options.layout_pipeline is not None:
            raise TexflowError("--keep-f32 applies to the default layout pipeline; with "
                               "--layout-pipeline set texflow-demote-f16{keep_f32=...} there")
        if options.kernel_table:
            if not options.target.startswith("vulkan"):
                raise TexflowError(f"--kernel-table configures SPIR-V kernels; target '{options.target}' "
                                   "is not a Vulkan target")
            from texflow import kernelconfig
            kernelconfig.load(options.target, options.kernel_table)  # a bad table fails here
        packers = self.packers(options)
        extra = list(self.pack_flags(options, packers)) if packers else []
        self.session = session or CompilerSession(list(self.target.flags) + extra
                                                  + list(options.iree_flags))

    # -- sources ----------------------------------------------------------
    @staticmethod
    def layout_items(options: CompileOptions) -> list:
        """The texflow-layout phase's passes: the user's pipeline text or the target's
        default, with texflow-pack-matmul's tiles following a named CPU."""
        from texflow.passes import pipelines
        if options.layout_pipeline is not None:
            items = pipelines.parse_pipeline(options.layout_pipeline)
        else:
            # A fenced streamed model is packed like a resident one: its weights are packed at
            # compile time and stored packed in the archive (ViT-Tiny at 50% on llvm-cpu: 4.6x
            # resident unpacked, 1.4x packed, bit-identical to resident).  Segments are not:
            # texflow-wstream-split-weights slices a matmul's weight along N, which an mmt4d
            # operand does not allow (compile_to_files retries a fenced compile unpacked when a
            # packed weight makes the budget infeasible).
            items = pipelines.layout_passes(options.target, select=options.select_layout,
                                            precision=options.precision,
                                            select_options=options.select_options,
                                            pack=options.pack_matmul and options.packs_streamed,
                                            keep_f32=",".join(options.keep_f32))
        return pipelines.with_tiles(items, pack_tiles(options.target_cpu, options.target_triple))

    @staticmethod
    def packers(options: CompileOptions) -> list:
        """The layout phase's texflow-pack-matmul instances (none off llvm-cpu)."""
        from texflow.passes import pipelines
        from texflow.passes.cpu.pack_matmul import PackMatmul
        if not options.layout or options.target != "llvm-cpu":
            return []
        return pipelines.find(Compiler.layout_items(options), PackMatmul)

    @staticmethod
    def configures(options: CompileOptions) -> bool:
        """Whether texflow-configure-kernels runs on IREE's dispatches (between its
        executable-sources and executable-configurations phases): on a Vulkan target with a
        kernel table (the target's, or `kernel_table`), with texflow's layout phase on."""
        from texflow.kernelconfig.table import has_table
        return bool(options.layout and options.configure_kernels and options.target.startswith("vulkan")
                    and (options.kernel_table or has_table(options.target)))

    @staticmethod
    def packs(options: CompileOptions) -> bool:
        """Whether the layout phase runs texflow-pack-matmul (then IREE gets the mmt4d ukernel)."""
        return bool(Compiler.packers(options))

    @staticmethod
    def pack_flags(options: CompileOptions, packers: list) -> tuple[str, ...]:
        """IREE flags for a packed module: the mmt4d microkernel, unless the pipeline packs
        with tiles larger than the target's own.  IREE 3.13's mmt4d ukernel computes wrong
        numbers for f32 tiles beyond the vector unit's (16x16x1 or 8x16x1 on an AVX2 CPU:
        errors of ~10 on a 20x48 by 48x100 matmul; docs/known-issues.md); its generated code
        is right."""
        from texflow.passes.cpu.pack_matmul import host_tiles, parse_tiles
        native = pack_tiles(options.target_cpu, options.target_triple)
        m0, n0, _ = parse_tiles(native) if native else host_tiles()
        for p in packers:
            t0, t1, _ = parse_tiles(p.options.tiles)
            if t0 * t1 > m0 * n0:
                return ("--iree-llvmcpu-enable-ukernels=none",)
        return PACK_IREE_FLAGS

    def load(self, path: str):
        p = Path(path)
        if not p.exists():
            raise TexflowError(f"no such file: {path}")
        if p.suffix == ".onnx":
            return import_onnx(load_onnx(path), self.session)
        if p.suffix in (".mlir", ".mlirbc"):
            try:
                text = p.read_text()
            except (UnicodeDecodeError, OSError) as e:
                raise TexflowError(f"cannot read {path}: {e}") from None
            return self.session.parse(text, path).operation
        raise TexflowError(f"unsupported input '{path}' (expected .onnx or .mlir)")

    def compile_file(self, path: str) -> CompileResult:
        return self.compile_module(self.load(path))

    # -- pipeline ---------------------------------------------------------
    def _iree(self, module, from_phase: str, to_phase: str):
        inv: Invocation = self.session.session.invocation()
        inv.import_module(module)
        if from_phase != "start":
            iree_phases.set_compile_from(inv, from_phase)
        iree_phases.set_compile_to(inv, to_phase)
        with capture_stderr() as cap:
            ok = inv.execute()
        self.session.diagnostics.set_from(cap)
        if not ok:
            raise _iree_error(self.session, f"IREE failed compiling from '{from_phase}' to '{to_phase}'")
        return inv

    def _stamp_target(self, module) -> None:
        """Record the target in the module's reflection metadata.

        The runtime reads `texflow.subgroup_size` back to refuse devices whose
        subgroup size differs (that gives silently wrong reductions).
        """
        with self.session.context:
            funcs = {ir.StringAttr(op.attributes["sym_name"]).value: op
                     for op in module.regions[0].blocks[0].operations
                     if op.operation.name == "util.func"}
            for op in module.regions[0].blocks[0].operations:
                if op.operation.name != "util.func" or not (
                        "iree.abi.stub" in op.attributes or _is_segment(op)):
                    continue
                if "sym_visibility" in op.attributes and \
                        ir.StringAttr(op.attributes["sym_visibility"]).value != "public":
                    continue
                entries = {}
                if "iree.reflection" in op.attributes:
                    d = ir.DictAttr(op.attributes["iree.reflection"])
                    for i in range(len(d)):
                        na = d[i]
                        entries[na.name] = na.attr
                fname = ir.StringAttr(op.attributes["sym_name"]).value
                base = fname[:-len("$into")] if fname.endswith("$into") else fname
                body = funcs.get(base + "$async", op)
                ins, outs = _abi_signature(body)
                entries["texflow.inputs"] = ir.StringAttr.get(",".join(ins))
                entries["texflow.outputs"] = ir.StringAttr.get(",".join(outs))
                entries["texflow.target"] = ir.StringAttr.get(self.target.name)
                entries["texflow.subgroup_size"] = ir.StringAttr.get(
                    str(self.target.subgroup_size or 0))
                op.attributes["iree.reflection"] = ir.DictAttr.get(entries)

    def run_texflow_phases(self, module, result: CompileResult, stop_after: str | None) -> None:
        from texflow.passes import add_passes
        from texflow.passes.registry import PrintIR, restore_module, snapshot_module

        stream = None
        if self.options.print_ir_after_all:
            # A duplicate of the real stderr: fd 2 itself is captured while passes run.
            stream = self.options.ir_stream or os.fdopen(os.dup(2), "w", closefd=True)
        for phase in texflow_phases(self.options):
            t0 = time.perf_counter()
            pm = passmanager.PassManager("builtin.module", context=self.session.context)
            sink: list = []
            add_passes(pm, phase.pipeline, print_ir=PrintIR(stream), stats_sink=sink)
            snapshot = snapshot_module(module) if phase.optional else None
            try:
                with capture_stderr() as cap:
                    pm.run(module)
            except ir.MLIRError as e:
                diags = [d.message if str(d.location) == "loc(unknown)" or " at loc(" in d.message
                         else f"{d.message} at {d.location}" for d in e.error_diagnostics]
                diags = diags or [cap.first_error() or str(e).splitlines()[0]]
                if snapshot is None:
                    raise TexflowError(f"texflow phase '{phase.name}' failed: {diags[0]}") from None
                with self.session.context:
                    restore_module(module, snapshot)
                snapshot, sink = None, []
                result.fallbacks.append(f"texflow phase '{phase.name}' failed and was left out "
                                        f"(the module goes on as plain IREE would compile it): "
                                        f"{diags[0]}")
                result.statistics.setdefault("texflow-driver", {})[
                    f"phase {phase.name} left out"] = 1
            if snapshot is not None:
                snapshot.erase()
            _record_passes(result, sink)
            if stream is not None:
                stream.flush()
            result.timings[phase.name] = time.perf_counter() - t0
            # The weights exist as wstream IR only between this phase and finalize.
            if phase.name == "texflow-wstream" and self.options.weight_archive \
                    and self.options.plan_manifest and os.path.exists(self.options.plan_manifest):
                from texflow.streaming.archive import write_weight_archive
                with open(self.options.plan_manifest) as f:
                    manifest = json.load(f)
                result.weight_archive = write_weight_archive(module, manifest,
                                                             self.options.weight_archive)
            if stop_after == phase.name:
                return

    def compile_module(self, module) -> CompileResult:
        o = self.options
        result = CompileResult()
        to = o.compile_to
        if o.compile_from == "start" and to == "start":
            result.mlir = _asm(module)  # the imported module, before any IREE pass
            return result
        if o.compile_from == "start":
            t0 = time.perf_counter()
            stop = "input" if to in ALL_PHASES[ALL_PHASES.index("input"):] else to
            self._iree(module, "start", stop)
            result.timings["iree:start->input"] = time.perf_counter() - t0
            if to in iree_phases.IREE_PHASES[:2]:
                result.mlir = _asm(module)
                return result
        if to in TEXFLOW_PHASE_NAMES and not any(p.name == to for p in texflow_phases(o)):
            raise TexflowError(f"phase '{to}' is disabled by the options")
        # Never fail where plain IREE compiles: keep the input-level module, and when IREE
        # rejects what texflow's layout phase made of it, compile that copy as plain IREE would.
        # With f16, the ONNX nodes whose f16 kernels IREE rejects are compiled again in f32.
        retries_f16 = o.precision == "f16" and o.layout_pipeline is None
        pristine = module.clone() if (o.may_fall_back or retries_f16) \
            and to not in TEXFLOW_PHASE_NAMES else None
        try:
            self._finish(module, result, to)
        except TexflowError as e:
            if pristine is None:
                raise
            if retries_f16:
                retry = self._retry_f16(pristine, result, to)
                pristine.erase()
                if retry is None:
                    raise
                return retry
            # Narrower retries first, each keeping texflow's layouts: a configured kernel IREE
            # rejects (IREE's own configurations instead), a packed weight that cannot be split
            # for streaming (the model streamed unpacked).
            retries = []
            if o.configure_kernels and self.configures(o):
                retries.append(({"configure_kernels": False},
                                f"IREE rejected a configured kernel ({e}); compiled with IREE's own "
                                "kernel configurations"))
            if _packed_stream_failed(o, e):
                retries.append(({"pack_matmul": False},
                                f"the packed model does not stream under this budget ({e}); compiled "
                                "without texflow-pack-matmul"))
            for changes, why in retries:
                retry = self._retry(pristine, result, to, changes, why)
                if retry is not None:
                    pristine.erase()
                    return retry
            plain = Compiler(dataclasses.replace(o, layout=False, compile_from="input"),
                             session=self.session)
            fallback = CompileResult(timings=dict(result.timings))
            try:
                plain._finish(pristine, fallback, to)
            except TexflowError:
                raise e from None  # plain IREE fails as well: texflow's error is the one to see
            fallback.fallbacks = result.fallbacks + [
                f"IREE rejected texflow's layout phase output, so the model was compiled as "
                f"plain IREE would compile it: {e}"]
            fallback.statistics = {"texflow-driver": {"compiled as plain IREE": 1}}
            return fallback
        if pristine is not None:
            pristine.erase()
        return result

    def _retry(self, pristine, result: CompileResult, to: str, changes: dict,
               why: str) -> CompileResult | None:
        """A copy of the input-level module compiled with `changes` to the options (None if
        that fails too), its fallbacks saying `why`."""
        other = Compiler(dataclasses.replace(self.options, compile_from="input", **changes),
                         session=self.session)
        retry = CompileResult(timings=dict(result.timings))
        try:
            other._finish(pristine.clone(), retry, to)
        except TexflowError:
            return None
        retry.fallbacks = result.fallbacks + [why]
        return retry

    def _retry_f16(self, pristine, result: CompileResult, to: str,
                   rounds: int = F16_RETRY_ROUNDS) -> CompileResult | None:
        """The f16 compile again with the ONNX nodes of the dispatches IREE's code generation
        rejected kept in f32 (texflow-demote-f16's keep_f32), for up to `rounds` more rounds
        while each round names new nodes; None when a round names none."""
        asked = set(self.options.keep_f32)
        keep = set(asked)
        for _ in range(rounds):
            new = rejected_nodes(self.session.diagnostics) - keep
            if not new:
                return None
            keep |= new
            added = sorted(keep - asked)
            retry = self._retry(pristine, result, to, {"keep_f32": tuple(sorted(keep))},
                                f"IREE's code generation rejected the f16 kernels of {len(added)} "
                                f"ONNX node(s), which were compiled in f32: {', '.join(added)}")
            if retry is not None:
                retry.statistics.setdefault("texflow-driver", {})["ONNX nodes kept in f32"] = len(added)
                return retry
        return None

    def _configure_kernels(self, module, result: CompileResult) -> None:
        """texflow-configure-kernels on the module at IREE's executable-sources phase."""
        from texflow.passes import add_passes
        from texflow.passes.gpu.configure_kernels import ConfigureKernels
        t0 = time.perf_counter()
        pm = passmanager.PassManager("builtin.module", context=self.session.context)
        sink: list = []
        add_passes(pm, [ConfigureKernels(target=self.options.target, table=self.options.kernel_table)],
                   stats_sink=sink)
        try:
            with capture_stderr() as cap:
                pm.run(module)
        except ir.MLIRError as e:
            msg = cap.first_error() or str(e).splitlines()[0]
            raise TexflowError(f"texflow-configure-kernels failed: {msg}") from None
        _record_passes(result, sink)
        result.timings["texflow-configure-kernels"] = time.perf_counter() - t0

    def _finish(self, module, result: CompileResult, to: str) -> None:
        """texflow's phases, then IREE from `input` to `to`, filling `result`."""
        self.run_texflow_phases(module, result, to if to in TEXFLOW_PHASE_NAMES else None)
        self._stamp_target(module)
        with self.session.context:
            if "texflow.wstream.program" in module.attributes:
                result.program = json.loads(
                    ir.StringAttr(module.attributes["texflow.wstream.program"]).value)
            if "texflow.layout_selection" in module.attributes:
                result.layout_report = json.loads(
                    ir.StringAttr(module.attributes["texflow.layout_selection"]).value)
        if to in TEXFLOW_PHASE_NAMES:
            result.mlir = _asm(module)
            return
        t0 = time.perf_counter()
        phases = iree_phases.IREE_PHASES
        if self.configures(self.options) and phases.index(to) >= phases.index("executable-sources"):
            inv = self._iree(module, "input", "executable-sources")
            result.timings["iree:input->executable-sources"] = time.perf_counter() - t0
            self._configure_kernels(module, result)
            if to == "executable-sources":
                result.mlir = _asm(module)
                return
            t0 = time.perf_counter()
            inv = self._iree(module, "executable-sources", to)
            result.timings["iree:executable-sources->" + to] = time.perf_counter() - t0
        else:
            inv = self._iree(module, "input", to)
            result.timings["iree:input->" + to] = time.perf_counter() - t0
        if to != "end":
            result.mlir = _asm(module if to not in ("vm",) else inv.export_module())
            return
        out = Output.open_membuffer()
        try:
            with capture_stderr() as cap:
                inv.output_vm_bytecode(out)
        except ValueError as e:
            self.session.diagnostics.set_from(cap)
            raise _iree_error(self.session, f"IREE could not emit the module ({e})") from None
        result.vmfb = bytes(out.map_memory())

def _record_passes(result: CompileResult, sink: list) -> None:
    """What the texflow passes of one pass-manager run reported: statistics, and why any was
    undone."""
    for p in sink:
        if p.statistics:
            result.statistics.setdefault(p.name, {}).update(p.statistics)
        if p.undone:
            result.fallbacks.append(f"{p.name} was undone: {p.undone}")


def rejected_nodes(diagnostics) -> set[str]:
    """The ONNX node names (op location names) of the dispatches whose translation to the
    target IREE rejected in the last run."""
    from texflow.passes.precision.demote_f16 import location_names
    names: set[str] = set()
    for _, loc, msg in diagnostics.errors():
        if msg.startswith("failed to run translation of source executable") and loc:
            names |= location_names(loc)
    return names


def _is_segment(func) -> bool:
    """A streaming segment (texflow-wstream-outline): wrapped by IREE's ABI later."""
    if "iree.reflection" not in func.attributes:
        return False
    d = ir.DictAttr(func.attributes["iree.reflection"])
    return any(d[i].name.startswith("texflow.wstream.") for i in range(len(d)))


def _abi_signature(func) -> tuple[list[str], list[str]]:
    """Tensor types at a function's ABI boundary (hal.tensor.import/export order)."""
    ins, outs = {}, []
    args = list(func.regions[0].blocks[0].arguments)

    def visit(o):
        if o.name == "hal.tensor.import":
            for src in o.operands:
                if str(src.type) != "!hal.buffer_view":
                    continue
                for i, a in enumerate(args):
                    if a == src:
                        ins[i] = type_text(o.results[0].type)
        elif o.name == "hal.tensor.export":
            outs.append(type_text(o.operands[0].type))
        return ir.WalkResult.ADVANCE
    func.operation.walk(visit)
    return [ins[k] for k in sorted(ins)], outs


def _asm(module) -> str:
    return module.get_asm(enable_debug_info=False)  # full constants: the output must compile on (--compile-from)


def finish_streaming_outputs(result: CompileResult, output: str, manifest_tmp: str,
                             archive_tmp: str | None) -> None:
    """Complete and move the streaming side files beside `output` (already written):
    the manifest gains the archive's keys and checksums and the segmented program
    with its digest (the runtime checks module, manifest and archive belong together),
    then `<output>.plan.json` and `<output>.irpa` appear by rename."""
    with open(manifest_tmp) as f:
        manifest = json.load(f)
    manifest_list = manifest if isinstance(manifest, list) else [manifest]
    for m in manifest_list:
        if result.weight_archive:
            m["archive"] = {"file": os.path.basename(output) + ".irpa",
                            "weights": result.weight_archive}
        if result.program and result.program.get("function") == m.get("function"):
            from texflow.streaming.program import program_digest
            m["program"] = result.program
            m["program_digest"] = program_digest(result.program)
            m["module"] = os.path.basename(output)
            from texflow.streaming.segments import plan_segments
            if "segments" in result.program:  # a fenced program runs the compile-time plan as is
                m["segment_plan"] = plan_segments(m, result.program)
    write_atomically(manifest_tmp, json.dumps(manifest, indent=1))
    os.replace(manifest_tmp, output + ".plan.json")
    if archive_tmp and os.path.exists(archive_tmp):
        os.replace(archive_tmp, output + ".irpa")


def _compile_in_child(path: str, options: CompileOptions) -> CompileResult:
    """One forked compilation; an IREE crash comes back as IreeCrash (see compile_isolated)."""
    try:
        return call_forked(lambda: Compiler(options).compile_file(path))
    except ChildCrashed as e:
        raise IreeCrash(f"IREE crashed ({e.signal}) while compiling {path}: this input hits an "
                        "IREE bug (set TEXFLOW_DEBUG=1 and compile without isolation to debug)") from None
    except ChildFailed as e:
        raise TexflowError(f"compilation of {path} failed: internal error {e}") from None


class IreeCrash(TexflowError):
    """IREE died on a signal while compiling (raised by compile_isolated's child)."""


def compile_isolated(path: str, options: CompileOptions) -> CompileResult:
    """Compile in a forked copy of this process, so that an IREE crash (IREE
    3.13 segfaults on some inputs, e.g. ONNX `Unique`) becomes a one-line
    error instead of killing the caller.  It is the same in-process API
    compilation, not an `iree-compile` subprocess; the parent only waits.
    When IREE crashes on what texflow's layout phase made, the model is compiled
    again as plain IREE would (`CompileResult.fallbacks` says so): texflow never
    fails where plain IREE compiles."""
    Compiler(options)  # validate options (target, phases, flags) in the parent
    try:
        return _compile_in_child(path, options)
    except IreeCrash as crash:
        if not options.may_fall_back:
            raise
        try:
            result = _compile_in_child(path, dataclasses.replace(options, layout=False))
        except TexflowError:
            raise crash from None
        result.fallbacks.append(f"IREE crashed on texflow's layout phase output, so the model was "
                                f"compiled as plain IREE would compile it ({crash})")
        return result


def _packed_stream_failed(o: CompileOptions, e: Exception) -> bool:
    """Whether `e` is a packed streamed compile's texflow-wstream failure (an unpacked compile
    may stream: segments can split weights, packing cannot)."""
    return bool(o.memory_budget and o.pack_matmul and o.packs_streamed and
                o.target == "llvm-cpu" and "texflow-wstream" in str(e))


def _compile_streamed(path: str, options: CompileOptions, isolate: bool) -> CompileResult:
    """Compile; a packed fenced streaming compile whose budget a packed weight makes infeasible
    is compiled again unpacked (`Compiler.compile_module` does so in process where it can fall
    back; this covers the texflow-wstream phase's own errors), so packing never turns a budget
    that streams into an error (the result says so)."""
    def once(o):
        return compile_isolated(path, o) if isolate else Compiler(o).compile_file(path)
    try:
        return once(options)
    except TexflowError as e:
        if not _packed_stream_failed(options, e):
            raise
        try:
            result = once(dataclasses.replace(options, pack_matmul=False))
        except TexflowError:
            raise e from None
        result.fallbacks.append(f"the packed model does not stream under this budget ({e}); "
                                "compiled without texflow-pack-matmul")
        return result


def compile_to_files(path: str, options: CompileOptions, output: str | None,
                     isolate: bool = False) -> CompileResult:
    """Compile `path` and write every output atomically: the module (or IR) to `output`
    ("-": stdout; None: nothing written) and, for a streamed compile (a memory budget and an
    output file), the plan `<output>.plan.json` and the weight archive `<output>.irpa` the
    runtime needs beside it.  On an error nothing is left behind."""
    side = bool(options.memory_budget and output and output != "-" and options.plan_manifest is None)
    if side:
        options = dataclasses.replace(options, plan_manifest=output + ".plan.json.tmp",
                                      weight_archive=output + ".irpa.tmp")
    try:
        result = _compile_streamed(path, options, isolate)
        if output:
            write_atomically(output, result.vmfb if result.vmfb is not None else result.mlir)
        if side and os.path.exists(options.plan_manifest):
            finish_streaming_outputs(result, output, options.plan_manifest, options.weight_archive)
    finally:
        if side:
            for tmp in (options.plan_manifest, options.weight_archive):
                if os.path.exists(tmp):
                    os.unlink(tmp)
    return result


def compile_file(path: str, output: str | None = None, isolate: bool = False,
                 **options) -> CompileResult:
    """Python API: compile `path` (.onnx/.mlir); write the .vmfb (and, with a memory budget,
    its plan and weight archive) if `output`.

    `isolate=True` runs the compilation in a forked process (see `compile_isolated`)."""
    return compile_to_files(path, CompileOptions(**options), output, isolate)
