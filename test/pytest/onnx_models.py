"""Small ONNX models built with onnx.helper for end-to-end tests.

Weights are random and non-zero (IREE folds zero biases and unit norms away,
which would hide bugs).  `ir_version` is pinned to 9 so that ONNX Runtime
1.18+ loads them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _model(nodes, inputs, outputs, inits, name):
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="texflow-tests")
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


def _w(rng, name, *shape, scale=0.5):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def conv_relu(seed=0):
    """Conv 3x3 + bias + Relu + GlobalAveragePool (a reduction)."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["y"])]
    return _model(nodes, [vi("x", [1, 4, 8, 8])], [vi("y", [1, 8, 1, 1])],
                  [_w(rng, "w", 8, 4, 3, 3), _w(rng, "b", 8)], "conv_relu")


def matmul_softmax(seed=0):
    """MatMul + Add + Softmax over the last axis."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Softmax", ["a"], ["y"], axis=-1)]
    return _model(nodes, [vi("x", [1, 16, 32])], [vi("y", [1, 16, 24])],
                  [_w(rng, "w", 32, 24), _w(rng, "b", 24)], "matmul_softmax")


def transpose_reshape_chain(seed=0, A=3, S=8, B=8, N=5):
    """Transpose -> Reshape -> Transpose -> MatMul: the layout work's bread and butter."""
    rng = np.random.default_rng(seed)
    shape = numpy_helper.from_array(np.array([1, S, A * B], dtype=np.int64), "shape")
    nodes = [helper.make_node("Transpose", ["x"], ["t0"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["t0", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t1"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["t1", "w"], ["y"])]
    return _model(nodes, [vi("x", [1, A, S, B])], [vi("y", [1, A * B, N])],
                  [shape, _w(rng, "w", S, N)], "transpose_reshape_chain")


def attention(seed=0, S=16, D=32, H=4, causal=False):
    """Multi-head self-attention as PyTorch exports it (head split/merge transposes); with
    `causal`, a decoder's additive mask (-1e9 above the diagonal) before the softmax."""
    rng = np.random.default_rng(seed)
    Dh = D // H
    inits = [_w(rng, n, D, D, scale=D ** -0.5) for n in ("wq", "wk", "wv", "wo")]
    inits += [numpy_helper.from_array(np.array([1, S, H, Dh], np.int64), "split"),
              numpy_helper.from_array(np.array([1, S, D], np.int64), "merge"),
              numpy_helper.from_array(np.array(Dh ** -0.5, np.float32), "scale")]
    nodes = []
    for n in ("q", "k", "v"):
        nodes += [helper.make_node("MatMul", ["x", "w" + n], [n + "0"]),
                  helper.make_node("Reshape", [n + "0", "split"], [n + "1"]),
                  helper.make_node("Transpose", [n + "1"], [n + "2"],
                                   perm=[0, 2, 3, 1] if n == "k" else [0, 2, 1, 3])]
    nodes += [helper.make_node("MatMul", ["q2", "k2"], ["s0"]),
              helper.make_node("Mul", ["s0", "scale"], ["s1"]),
              *([helper.make_node("Add", ["s1", "mask"], ["s2"])] if causal else []),
              helper.make_node("Softmax", ["s2" if causal else "s1"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "v2"], ["o0"]),
              helper.make_node("Transpose", ["o0"], ["o1"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["o1", "merge"], ["o2"]),
              helper.make_node("MatMul", ["o2", "wo"], ["y"])]
    if causal:
        inits.append(numpy_helper.from_array(np.triu(np.full((S, S), -1e9, np.float32), 1), "mask"))
    return _model(nodes, [vi("x", [1, S, D])], [vi("y", [1, S, D])], inits, "attention")


def nhwc_elementwise(seed=0, C=8, H=6):
    """Transpose(NHWC) -> Add(NHWC constant) -> Relu -> Transpose(NCHW): the
    transposes cancel once pushed through; the constant is re-laid out."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Add", ["t", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Transpose", ["r"], ["y"], perm=[0, 3, 1, 2])]
    return _model(nodes, [vi("x", [1, C, H, H])], [vi("y", [1, C, H, H])],
                  [_w(rng, "b", 1, H, H, C)], "nhwc_elementwise")


def patchify(seed=0, C=3, H=16, p=4, D=24):
    """ViT-style patch extraction by Reshape/Transpose/Reshape feeding a MatMul."""
    rng = np.random.default_rng(seed)
    h = H // p
    inits = [numpy_helper.from_array(np.array([1, C, h, p, h, p], np.int64), "s1"),
             numpy_helper.from_array(np.array([1, h * h, C * p * p], np.int64), "s2"),
             _w(rng, "w", C * p * p, D, scale=0.2)]
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["a"]),
             helper.make_node("Transpose", ["a"], ["b"], perm=[0, 2, 4, 1, 3, 5]),
             helper.make_node("Reshape", ["b", "s2"], ["c"]),
             helper.make_node("MatMul", ["c", "w"], ["y"])]
    return _model(nodes, [vi("x", [1, C, H, H])], [vi("y", [1, h * h, D])], inits, "patchify")


ALL = {"conv_relu": conv_relu, "matmul_softmax": matmul_softmax,
       "transpose_reshape_chain": transpose_reshape_chain, "attention": attention,
       "nhwc_elementwise": nhwc_elementwise, "patchify": patchify}


def random_inputs(model: onnx.ModelProto, seed=1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in model.graph.input:
        shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
        out.append(rng.standard_normal(shape).astype(np.float32))
    return out


def ort_reference(model: onnx.ModelProto, inputs) -> list[np.ndarray]:
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in model.graph.input]
    return sess.run(None, dict(zip(names, inputs)))


def conv_block(seed=0, C=8, H=10, F=16):
    """A MobileNet-style block in NCHW: 3x3 conv + Relu, depthwise 3x3 + Clip, 1x1 conv,
    a residual Add, and a 3x3 stride-2 conv: the region texflow-select-layout re-lays out."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=F),
             helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"]),
             helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"]),
             helper.make_node("Add", ["c3", "r1"], ["s"]),
             helper.make_node("Conv", ["s", "w4", "b4"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2])]
    inits = [_w(rng, "w1", F, C, 3, 3), _w(rng, "b1", F), _w(rng, "w2", F, 1, 3, 3), _w(rng, "b2", F),
             _w(rng, "w3", F, F, 1, 1), _w(rng, "b3", F), _w(rng, "w4", F, F, 3, 3), _w(rng, "b4", F),
             numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    Ho = (H - 1) // 2 + 1
    return _model(nodes, [vi("x", [1, C, H, H])], [vi("y", [1, F, Ho, Ho])], inits, "conv_block")


def grouped_conv_block(seed=0, C=16, H=12, F=32, groups=4, groups2=2):
    """A ResNeXt/RegNet-style block: a grouped 3x3 conv + bias + Relu, a grouped 3x3 stride-2
    conv with another group count, and a 1x1 conv (ONNX Conv with 1 < group < channels)."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], group=groups),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2],
                              group=groups2),
             helper.make_node("Conv", ["c2", "w3"], ["y"])]
    inits = [_w(rng, "w1", F, C // groups, 3, 3), _w(rng, "b1", F), _w(rng, "w2", F, F // groups2, 3, 3),
             _w(rng, "b2", F), _w(rng, "w3", F, F, 1, 1)]
    Ho = (H - 1) // 2 + 1
    return _model(nodes, [vi("x", [1, C, H, H])], [vi("y", [1, F, Ho, Ho])], inits, "grouped_conv_block")


def standardized_conv(seed=0, C=8, H=10, F=16):
    """NF-ResNet's scaled weight standardization in the graph: the 3x3 filter is centred by its
    mean over (C, KH, KW), divided by its standard deviation and scaled per filter before the
    Conv reads it; then Relu and a 1x1 conv with a plain constant filter."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("ReduceMean", ["w"], ["m"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Sub", ["w", "m"], ["c"]),
             helper.make_node("Mul", ["c", "c"], ["c2"]),
             helper.make_node("ReduceMean", ["c2"], ["v"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Add", ["v", "eps"], ["ve"]),
             helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["c", "sd"], ["wn"]),
             helper.make_node("Mul", ["wn", "gain"], ["ws"]),
             helper.make_node("Conv", ["x", "ws", "b"], ["y1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["y1"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["y"])]
    inits = [_w(rng, "w", F, C, 3, 3), _w(rng, "gain", F, 1, 1, 1), _w(rng, "b", F), _w(rng, "w2", F, F, 1, 1),
             numpy_helper.from_array(np.array(1e-5, np.float32), "eps")]
    return _model(nodes, [vi("x", [1, C, H, H])], [vi("y", [1, F, H, H])], inits, "standardized_conv")


def patch_embed(seed=0, C=3, H=18, p=4, F=24):
    """A ViT patch embedding: a Conv whose stride is its kernel (non-overlapping p x p patches),
    with a bias.  H need not be a multiple of p: the last rows and columns are dropped."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[p, p], strides=[p, p])]
    return _model(nodes, [vi("x", [1, C, H, H])], [vi("y", [1, F, H // p, H // p])],
                  [_w(rng, "w", F, C, p, p, scale=0.2), _w(rng, "b", F)], "patch_embed")


def conv_pool(seed=0, C=4, H=16, F=8):
    """3x3 conv, 3x3 stride-2 MaxPool (padded with -inf), 3x3 conv: ResNet's stem."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["p", "w2", "b2"], ["y"], pads=[1, 1, 1, 1])]
    Ho = (H - 1) // 2 + 1
    return _model(nodes, [vi("x", [1, C, H, H])], [vi("y", [1, F, Ho, Ho])],
                  [_w(rng, "w", F, C, 3, 3), _w(rng, "b", F), _w(rng, "w2", F, F, 3, 3), _w(rng, "b2", F)],
                  "conv_pool")


def dense_mlp(seed=0, S=13, D=48, F=40):
    """A transformer MLP: MatMul on 3-D tokens + bias + Relu, then a Gemm with a transposed
    (N x K) weight, as ONNX exports Linear layers: texflow-pack-matmul's two weight forms."""
    rng = np.random.default_rng(seed)
    shape = numpy_helper.from_array(np.array([S, F], np.int64), "flat")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m"]),
             helper.make_node("Add", ["m", "b1"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Reshape", ["r", "flat"], ["r2"]),
             helper.make_node("Gemm", ["r2", "w2", "b2"], ["y"], transB=1)]
    return _model(nodes, [vi("x", [1, S, D])], [vi("y", [S, D])],
                  [_w(rng, "w1", D, F), _w(rng, "b1", F), shape, _w(rng, "w2", D, F),
                   _w(rng, "b2", D)], "dense_mlp")


def batched_matmul(B=3, M=12, K=8, N=20):
    """A MatMul of two computed (input) 3-D tensors, as attention's scores: no constant side."""
    nodes = [helper.make_node("MatMul", ["a", "b"], ["m"]),
             helper.make_node("Relu", ["m"], ["y"])]
    return _model(nodes, [vi("a", [B, M, K]), vi("b", [B, K, N])], [vi("y", [B, M, N])], [],
                  "batched_matmul")


def windowed_linear(seed=0, W=4, T=7, D=24, F=40):
    """A Linear layer on 4-D activations (Swin's windows x tokens, ConvNeXt's rows x columns):
    ONNX MatMul of [1, W, T, D] by a [D, F] weight, plus a bias.  It arrives as a batch matmul
    of W batches whose right-hand side is the one weight broadcast over the batch."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    return _model(nodes, [vi("x", [1, W, T, D])], [vi("y", [1, W, T, F])],
                  [_w(rng, "w", D, F), _w(rng, "b", F)], "windowed_linear")


def pointwise_block(seed=0, C=16, H=8, F=32):
    """A ResNet bottleneck's 1x1 half in NCHW: 1x1 conv + bias + Relu, 1x1 conv back to C
    channels, a residual Add (no reduction: its Vulkan module runs on any subgroup size)."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"]),
             helper.make_node("Add", ["c2", "x"], ["y"])]
    inits = [_w(rng, "w1", F, C, 1, 1), _w(rng, "b1", F), _w(rng, "w2", C, F, 1, 1), _w(rng, "b2", C)]
    return _model(nodes, [vi("x", [1, C, H, H])], [vi("y", [1, C, H, H])], inits, "pointwise_block")


def large_mean(seed=0, C=64, H=7, level=3000.0):
    """A global average pool of large activations (ResNet-50's head): each mean is ~`level`,
    well inside f16's range, but the sum of H*H of them (~147,000) is not."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Add", ["r", "bias"], ["a"]),
             helper.make_node("GlobalAveragePool", ["a"], ["p"]),
             helper.make_node("Flatten", ["p"], ["y"])]
    inits = [numpy_helper.from_array((level + 100 * rng.standard_normal((1, C, 1, 1))).astype(np.float32), "bias")]
    return _model(nodes, [vi("x", [1, C, H, H])], [vi("y", [1, C])], inits, "large_mean")


def wide_pointwise(seed=0, C=512, F=64, H=9):
    """SqueezeNet 1.1's fire9 squeeze: a 1x1 convolution of 512 channels to 64 on 9x9, + Relu.
    IREE 3.13's SPIR-V code generator rejects its f16 form for vulkan-nvidia ("failed to legalize
    operation 'arith.constant'": a vector<256xf16> zero) and compiles it in f32."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="squeeze"),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    inits = [_w(rng, "w", F, C, 1, 1, scale=0.05), _w(rng, "b", F)]
    return _model(nodes, [vi("x", [1, C, H, H])], [vi("y", [1, F, H, H])], inits, "wide_pointwise")


def fused_qkv_attention(seed=0, S=12, D=24, H=3):
    """GPT-2's attention projections: one MatMul + bias for queries, keys and values, Split
    along the last axis, each part reshaped to heads and transposed, then attention."""
    rng = np.random.default_rng(seed)
    Dh = D // H
    inits = [_w(rng, "wqkv", D, 3 * D, scale=D ** -0.5), _w(rng, "bqkv", 3 * D),
             _w(rng, "wo", D, D, scale=D ** -0.5),
             numpy_helper.from_array(np.array([D, D, D], np.int64), "parts"),
             numpy_helper.from_array(np.array([1, S, H, Dh], np.int64), "split"),
             numpy_helper.from_array(np.array([1, S, D], np.int64), "merge"),
             numpy_helper.from_array(np.array(Dh ** -0.5, np.float32), "scale")]
    nodes = [helper.make_node("MatMul", ["x", "wqkv"], ["p0"]),
             helper.make_node("Add", ["p0", "bqkv"], ["p1"]),
             helper.make_node("Split", ["p1", "parts"], ["q0", "k0", "v0"], axis=2)]
    for n in ("q", "k", "v"):
        nodes += [helper.make_node("Reshape", [n + "0", "split"], [n + "1"]),
                  helper.make_node("Transpose", [n + "1"], [n + "2"],
                                   perm=[0, 2, 3, 1] if n == "k" else [0, 2, 1, 3])]
    nodes += [helper.make_node("MatMul", ["q2", "k2"], ["s0"]),
              helper.make_node("Mul", ["s0", "scale"], ["s1"]),
              helper.make_node("Softmax", ["s1"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "v2"], ["o0"]),
              helper.make_node("Transpose", ["o0"], ["o1"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["o1", "merge"], ["o2"]),
              helper.make_node("MatMul", ["o2", "wo"], ["y"])]
    return _model(nodes, [vi("x", [1, S, D])], [vi("y", [1, S, D])], inits, "fused_qkv_attention")
