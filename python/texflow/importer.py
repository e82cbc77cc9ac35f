"""ONNX -> MLIR (torch-onnx dialect), in-process, with IREE's ONNX importer.

Runs the same steps as `iree-import-onnx` (shape inference, then the
NodeImporter) but into the compiler session's own context, and turns every
way an ONNX file can be bad into a one-line `TexflowError`.
"""

from __future__ import annotations

import os

import onnx
from google.protobuf.message import DecodeError

from .errors import TexflowError


def load_onnx(path: str) -> onnx.ModelProto:
    if not os.path.exists(path):
        raise TexflowError(f"no such file: {path}")
    try:
        model = onnx.load(path)
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        raise TexflowError(f"malformed ONNX file {path}: {e}") from None
    if not model.graph.node and not model.graph.output:
        raise TexflowError(f"malformed ONNX file {path}: empty graph")
    check_model(model, path)
    return model


def check_model(model: onnx.ModelProto, name: str = "model") -> None:
    unknown = sorted({f"{n.domain + '.' if n.domain else ''}{n.op_type}"
                      for n in model.graph.node
                      if not onnx.defs.has(n.op_type, n.domain or "")})
    if unknown:
        raise TexflowError(f"unknown ONNX op(s) in {name}: {', '.join(unknown)}")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0]
        raise TexflowError(f"invalid ONNX model {name}: {first}") from None


def import_onnx(model: onnx.ModelProto, session) -> object:
    """Import `model` into `session.context`; returns the module operation."""
    from iree.compiler.extras import onnx_importer

    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as e:  # onnx raises several unrelated types here
        raise TexflowError(f"ONNX shape inference failed: {str(e).splitlines()[0]}") from None
    try:
        info = onnx_importer.ModelInfo(model)
        module = info.create_module(context=session.context).operation
        imp = onnx_importer.NodeImporter.define_function(info.main_graph, module)
        imp.import_all()
    except onnx_importer.OnnxImportError as e:
        raise TexflowError(f"ONNX import failed: {e}") from None
    try:
        ok = module.verify()
    except Exception as e:  # MLIRError in recent bindings
        ok, detail = False, str(e).splitlines()[0]
    else:
        detail = "verifier failed"
    if not ok:
        raise TexflowError(f"ONNX import produced invalid IR: {detail}")
    return module
