"""Builds texflow's bundled example model (example.onnx) and its reference.

A small convolutional network in the shape TF->ONNX converters emit: the
network computes in NCHW, but every channel-wise block (scale, bias,
activation) was written in NHWC, so each block is wrapped in a
Transpose(NHWC) ... Transpose(NCHW) pair, and the input is fed NHWC ->
NCHW.  Plain IREE fuses some of those transposes into neighbouring
dispatches but keeps the strided reads and extra dispatches; texflow moves
the transposes through the layout-independent ops until they cancel and
re-lays out the constants at compile time.

    python -m texflow.examples.make_example   # rewrites example.onnx, example_input.npy, example_ref.npy
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).parent
C0, C1, C2, HW, CLASSES = 8, 32, 32, 32, 10


def build(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def w(name, *shape, scale=0.3):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def node(op, ins, out, **kw):
        nodes.append(helper.make_node(op, ins, [out], **kw))
        return out

    x = node("Transpose", ["x"], "x_nchw", perm=[0, 3, 1, 2])  # the model's input is NHWC
    h = node("Conv", [x, w("w0", C1, C0, 3, 3), w("b0", C1)], "c0", pads=[1, 1, 1, 1])
    # block 1: NHWC-wrapped batch-norm (scale+shift) and ReLU
    t = node("Transpose", [h], "t1", perm=[0, 2, 3, 1])
    t = node("Mul", [t, w("s1", C1, scale=0.5)], "m1")
    t = node("Add", [t, w("a1", C1)], "a1o")
    t = node("Relu", [t], "r1")
    h = node("Transpose", [t], "t1b", perm=[0, 3, 1, 2])
    h = node("Conv", [h, w("w1", C2, C1, 1, 1), w("b1", C2)], "c1")
    # block 2: NHWC-wrapped positional bias (a full NHWC constant) and SiLU
    t = node("Transpose", [h], "t2", perm=[0, 2, 3, 1])
    t = node("Add", [t, w("pos", 1, HW, HW, C2, scale=0.1)], "a2")
    sg = node("Sigmoid", [t], "sg2")
    t = node("Mul", [t, sg], "silu2")
    h = node("Transpose", [t], "t2b", perm=[0, 3, 1, 2])
    h = node("Conv", [h, w("w2", C2, C2, 3, 3, scale=0.1), w("b2", C2)], "c2", pads=[1, 1, 1, 1])
    # head, ViT style: the feature map becomes tokens (flatten(2).transpose(1, 2)),
    # a token projection, then mean over tokens and a classifier
    inits.append(numpy_helper.from_array(np.array([1, C2, HW * HW], np.int64), "tok_shape"))
    t = node("Reshape", [h, "tok_shape"], "tok")
    t = node("Transpose", [t], "tokT", perm=[0, 2, 1])
    t = node("MatMul", [t, w("wt", C2, C2, scale=C2 ** -0.5)], "proj")
    t = node("Relu", [t], "r3")
    t = node("ReduceMean", [t], "pooled", axes=[1], keepdims=0)
    node("Gemm", [t, w("wf", C2, CLASSES), w("bf", CLASSES)], "y")
    g = helper.make_graph(nodes, "example", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, HW, HW, C0])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, CLASSES])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="texflow-example")
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


def main():
    m = build()
    onnx.save(m, HERE / "example.onnx")
    x = np.random.default_rng(1).standard_normal((1, HW, HW, C0)).astype(np.float32)
    np.save(HERE / "example_input.npy", x)
    import onnxruntime as ort
    ref = ort.InferenceSession(str(HERE / "example.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.save(HERE / "example_ref.npy", ref)
    print(f"wrote {HERE / 'example.onnx'} ({(HERE / 'example.onnx').stat().st_size} bytes)")


if __name__ == "__main__":
    main()
