"""Named CPUs and triples (--target-cpu, --target-triple), and llvm-cpu modules that link for
every x86-64 CPU in every precision (issue 16, item 5)."""

import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import pytest

import onnx_models
from texflow.compiler import compile_file
from texflow.errors import TexflowError
from texflow.runtime import Module
from texflow.targets import cpu_target, get_target, pack_tiles

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "python", "texflow", "examples",
                       "example.onnx")


def _host_flags() -> set[str]:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def _runs_here(cpu: str) -> bool:
    """Whether this host executes code for `cpu` (every x86-64 does x86-64; haswell needs AVX2)."""
    need = {"x86-64": set(), "haswell": {"avx2", "fma", "f16c", "bmi2"}}[cpu]
    return need <= _host_flags()


def _embedded_formats(vmfb: bytes, path) -> list[str]:
    path.write_bytes(vmfb)
    with zipfile.ZipFile(path) as z:
        return sorted(re.sub(r"^.*_(embedded_elf_\w+)\.so$", r"\1", n)
                      for n in z.namelist() if n.endswith(".so"))


@pytest.mark.parametrize("cpu", ["znver4", "skylake-avx512", "haswell", "x86-64"])
def test_f16_softmax_links_without_avx512fp16(tmp_path, cpu):
    """None of these CPUs has AVX512-FP16: an f16 max reduction used to become calls to libm's
    fmaxf, which IREE's embedded linker lacks ('undefined symbol: fmaxf at iree-lld')."""
    m = onnx_models.matmul_softmax()
    onnx.save(m, tmp_path / "m.onnx")
    res = compile_file(str(tmp_path / "m.onnx"), precision="f16", target_cpu=cpu)
    assert res.vmfb
    assert res.statistics["texflow-demote-f16"]["max/min reductions accumulated in f32"] == 1
    if cpu in ("haswell", "x86-64") and _runs_here(cpu):
        x = onnx_models.random_inputs(m)
        ref = onnx_models.ort_reference(m, x)[0]
        got = Module(res.vmfb)(*x)[0]
        rel = float(np.max(np.abs(got - ref))) / float(np.max(np.abs(ref)))
        assert 0 < rel < 1e-2  # computed in f16, close to f32


def test_f16_attention_links_on_zen4(tmp_path):
    m = onnx_models.attention()
    onnx.save(m, tmp_path / "a.onnx")
    res = compile_file(str(tmp_path / "a.onnx"), precision="f16", target_cpu="znver4")
    assert res.vmfb and res.statistics["texflow-demote-f16"]["inputs truncated to f16"] == 1


def test_f16_max_reduction_accumulates_in_f32(tmp_path):
    """The max keeps an f32 accumulator (exact: every f16 is an f32, and the maximum is one of
    the inputs); the sum accumulates in f32 as well (texflow-widen-accumulators), and
    everything else stays f16."""
    onnx.save(onnx_models.matmul_softmax(), tmp_path / "m.onnx")
    mlir = compile_file(str(tmp_path / "m.onnx"), precision="f16", compile_to="texflow-layout").mlir
    reductions = [g for g in mlir.split("linalg.generic")[1:] if '"reduction"' in g.split("{", 2)[1]]
    maxes = [g for g in reductions if "arith.maximumf" in g.split("linalg.yield")[0]]
    assert len(maxes) == 1
    body = maxes[0].split("linalg.yield")[0]
    assert re.search(r"arith\.extf %\w+ : f16 to f32", body)
    assert re.search(r"arith\.maximumf %\w+, %\w+ : f32", body)
    sums = [g for g in reductions if "arith.addf" in g.split("linalg.yield")[0]]
    assert sums and all(re.search(r"arith\.addf %\w+, %\w+ : f32", g.split("linalg.yield")[0]) for g in sums)


def test_android_arm64_compiles(tmp_path):
    """Compile-only here: the example for an Android phone's arm64 cores."""
    res = compile_file(EXAMPLE, target_cpu="cortex-a76", target_triple="aarch64-linux-android")
    assert _embedded_formats(res.vmfb, tmp_path / "a76.vmfb") == ["embedded_elf_arm_64"]
    generic = compile_file(EXAMPLE, target_triple="aarch64-linux-android")  # CPU: generic
    assert _embedded_formats(generic.vmfb, tmp_path / "generic.vmfb") == ["embedded_elf_arm_64"]
    assert _embedded_formats(compile_file(EXAMPLE).vmfb, tmp_path / "host.vmfb") == \
        ["embedded_elf_x86_64"]


def test_cpu_resolution():
    assert cpu_target("cortex-a76", "aarch64-linux-android").format == "embedded-elf-arm_64"
    assert "+fullfp16" in cpu_target("cortex-a76", "aarch64-linux-android").features
    assert cpu_target("znver4", None).avx512 and not cpu_target("haswell", None).avx512
    assert pack_tiles() is None  # the host: the pass's own 'auto'
    assert pack_tiles("znver4") == "16x16x1"
    assert pack_tiles("haswell") == "8x8x1"
    assert pack_tiles("generic", "aarch64-linux-android") == "8x8x1"
    from texflow.passes.pipelines import parse_pipeline, pipeline_text, with_tiles

    def tiled(text, cpu):
        return pipeline_text(with_tiles(parse_pipeline(text), pack_tiles(cpu)))
    assert tiled("cse,texflow-pack-matmul,canonicalize", "haswell") == \
        "cse,texflow-pack-matmul{tiles=8x8x1},canonicalize"
    assert tiled("texflow-pack-matmul{min-flops=9}", "znver4") == \
        "texflow-pack-matmul{tiles=16x16x1 min-flops=9}"
    assert tiled("texflow-pack-matmul{tiles=4x4x1}", "znver4") == "texflow-pack-matmul{tiles=4x4x1}"
    assert tiled("texflow-pack-matmul{min-flops=9}", "host") == "texflow-pack-matmul{min-flops=9}"
    t = get_target("llvm-cpu").for_cpu("znver4")
    assert "--iree-llvmcpu-target-cpu=znver4" in t.flags
    assert "--iree-llvmcpu-target-cpu=host" not in t.flags
    assert get_target("llvm-cpu").for_cpu("host") is get_target("llvm-cpu")


@pytest.mark.parametrize("cpu,tile", [("haswell", 8), ("znver4", 16)])
def test_pack_matmul_tiles_follow_the_named_cpu(tmp_path, cpu, tile):
    onnx.save(onnx_models.dense_mlp(S=64, D=128, F=128), tmp_path / "m.onnx")
    mlir = compile_file(str(tmp_path / "m.onnx"), target_cpu=cpu, compile_to="texflow-layout").mlir
    shapes = re.findall(r"linalg\.mmt4d ins\(%\S+ %\S+ : tensor<\d+x\d+x(\d+)x1xf32>, "
                        r"tensor<\d+x\d+x(\d+)x1xf32>\)", mlir)
    assert shapes and all(s == (str(tile), str(tile)) for s in shapes), shapes


def _cli(*args):
    p = subprocess.run([sys.executable, "-m", "texflow.cli.compile", *map(str, args)],
                       capture_output=True, text=True)
    return p.returncode, p.stderr


@pytest.mark.parametrize("args,pattern", [
    (["--target-cpu=notacpu"], "unknown CPU 'notacpu'"),
    (["--target-triple=bogus-triple"], "cannot compile for target triple 'bogus-triple'"),
    (["--target-cpu=a b"], "not a CPU or triple name"),
    (["--target=vulkan-generic", "--target-cpu=znver4"], "apply to llvm-cpu"),
    (["--target-cpu=haswell", "--iree-llvmcpu-target-cpu=znver4"], "disagree"),
])
def test_bad_cpu_or_triple_is_a_one_line_error(tmp_path, args, pattern):
    out = tmp_path / "m.vmfb"
    rc, err = _cli(EXAMPLE, *args, "-o", out)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc != 0 and len(lines) == 1, err
    assert lines[0].startswith("texflow-compile: error: ") and pattern in lines[0], err
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".texflow-")]


def test_passed_through_iree_cpu_flag_is_the_named_cpu(tmp_path):
    """--iree-llvmcpu-target-cpu=X means --target-cpu=X, so pack-matmul's tiles follow it too."""
    onnx.save(onnx_models.dense_mlp(S=64, D=128, F=128), tmp_path / "m.onnx")
    rc, err = _cli(tmp_path / "m.onnx", "--iree-llvmcpu-target-cpu=haswell",
                   "--compile-to=texflow-layout", "-o", tmp_path / "m.mlir")
    assert rc == 0, err
    assert "x8x1xf32>" in (tmp_path / "m.mlir").read_text()
    with pytest.raises(TexflowError, match="unknown CPU"):
        compile_file(EXAMPLE, target_cpu="notacpu")
