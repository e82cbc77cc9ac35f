"""texflow-fuse-attention and texflow-rewrite-softmax (passes/cpu/rewrite_softmax.py and passes/cpu/fuse_attention.py) on ONNX models.

- Narrow-head attention (Q.K^T -> scale -> softmax -> .V, as PyTorch exports it) becomes one
  iree_linalg_ext.attention and computes what ONNX Runtime does, for several sequence lengths
  (not multiples of any tile) and head widths; the statistics show the fusion happened.
- Wider heads keep separate ops, with the softmax rewritten into three generics.
- A softmax that is not between two contractions (or behind a decoder's mask) is rewritten, not
  fused.
- --no-pack-matmul (IREE's own CPU forms) leaves both passes out.
"""

import numpy as np
import pytest

import onnx_models
from texflow.compiler import CompileOptions, Compiler
from texflow.runtime import Module


def _run(model, tmp_path, **kw):
    import onnx
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    res = Compiler(CompileOptions(target="llvm-cpu", **kw)).compile_file(str(path))
    inputs = onnx_models.random_inputs(model)
    outs = Module(res.vmfb, driver="local-task")(*inputs)
    ref = onnx_models.ort_reference(model, inputs)
    assert len(ref) >= 1 and len(outs) == len(ref), (len(outs), len(ref))
    for o, r in zip(outs, ref):
        np.testing.assert_allclose(o, r, rtol=1e-4, atol=1e-5)
    return res.statistics


@pytest.mark.parametrize("S,D,H", [(12, 24, 3), (33, 32, 2), (7, 16, 4)])
def test_narrow_head_attention_is_fused(S, D, H, tmp_path):
    stats = _run(onnx_models.attention(S=S, D=D, H=H), tmp_path)
    assert stats["texflow-fuse-attention"] == {"attentions fused": 1}
    assert "texflow-rewrite-softmax" not in stats  # the fused softmax is gone


def test_wide_heads_keep_separate_ops_with_the_softmax_rewritten(tmp_path):
    stats = _run(onnx_models.attention(S=10, D=64, H=2), tmp_path)  # 32-wide heads
    assert stats["texflow-fuse-attention"] == {"attentions left (heads wider than max-head-dim)": 1}
    assert stats["texflow-rewrite-softmax"] == {"softmaxes rewritten": 1}


def test_masked_attention_keeps_separate_ops_with_the_softmax_rewritten(tmp_path):
    """A decoder's additive mask sits between Q.K^T and the softmax: not the fused pattern
    (the attention op here takes no mask), but its softmax is still rewritten."""
    stats = _run(onnx_models.attention(S=12, D=24, H=3, causal=True), tmp_path)
    assert "texflow-fuse-attention" not in stats
    assert stats["texflow-rewrite-softmax"] == {"softmaxes rewritten": 1}


def test_softmax_without_attention_is_rewritten(tmp_path):
    stats = _run(onnx_models.matmul_softmax(), tmp_path)
    assert stats["texflow-rewrite-softmax"] == {"softmaxes rewritten": 1}
    assert "texflow-fuse-attention" not in stats


def test_no_pack_matmul_keeps_iree_forms(tmp_path):
    stats = _run(onnx_models.attention(S=12, D=24, H=3), tmp_path, pack_matmul=False)
    assert "texflow-fuse-attention" not in stats and "texflow-rewrite-softmax" not in stats
