"""The `layout` dialect: SmartMem's layout transformations and quadrant traits.

- `layout.transform` -- one layout transformation of a tensor: a permutation
  (`kind = "permute"`, `permutation` as in linalg.transpose: result dim i is
  source dim permutation[i]) or a row-major reshape (`kind = "reshape"`).
  Chains of them compose by index comprehension (texflow.index_expr).
- `#layout.quadrant<"ild_var">` -- an op's quadrant (input-layout dependent or
  independent x variable or fixed output layout), attached to ops as the
  discardable attribute `layout.quadrant` by texflow-classify-quadrants.
- `#layout.physical<array<i64: order...>, array<i64: dim, factor>>` -- a
  tensor's physical layout (dimension order, optional packing of one dim by a
  factor, e.g. channels by 4 for 2.5D texture texels).

The dialect never reaches IREE's dispatch creation: texflow-lower-layout
turns transforms back into linalg/tensor ops and texflow-verify-lowered
checks that none is left.
"""

from __future__ import annotations

import enum
import re
from math import prod

from iree.compiler import ir

from texflow import index_expr as ie
from .base import TexflowOp, op

QUADRANT_ATTR = "layout.quadrant"
PHYSICAL_ATTR = "layout.physical"


class Quadrant(enum.Enum):
    ILD_VAR = "ild_var"      # conv, matmul, layernorm, softmax
    ILD_FIXED = "ild_fixed"  # reshape, transpose, depth-to-space
    ILI_VAR = "ili_var"      # elementwise
    ILI_FIXED = "ili_fixed"  # gather, slice

    @property
    def dependent(self) -> bool:
        return self in (Quadrant.ILD_VAR, Quadrant.ILD_FIXED)

    @property
    def variable(self) -> bool:
        return self in (Quadrant.ILD_VAR, Quadrant.ILI_VAR)

    def attr(self) -> ir.Attribute:
        return ir.Attribute.parse(f'#layout.quadrant<"{self.value}">')


_QUAD_RE = re.compile(r'#layout\.quadrant<"?(\w+)"?>')


def quadrant_of(operation) -> Quadrant | None:
    """The quadrant recorded on an op (None if unclassified)."""
    attrs = operation.attributes
    if QUADRANT_ATTR not in attrs:
        return None
    return parse_quadrant(str(attrs[QUADRANT_ATTR]))


def parse_quadrant(text: str) -> Quadrant:
    m = _QUAD_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a #layout.quadrant attribute: {text}")
    return Quadrant(m.group(1))  # ValueError for unknown values


def set_quadrant(operation, q: Quadrant) -> None:
    operation.attributes[QUADRANT_ATTR] = q.attr()


_PHYS_RE = re.compile(r"#layout\.physical<array<i64(?::\s*([\d,\s]*))?>,\s*array<i64(?::\s*([\d,\s]*))?>>")


class PhysicalLayout:
    """A tensor's physical layout: dimension order and optional (dim, factor) packing."""

    def __init__(self, order: list[int], pack: tuple[int, int] | None = None):
        self.order = list(order)
        self.pack = pack

    def verify(self, rank: int | None = None) -> list[str]:
        errs = []
        if sorted(self.order) != list(range(len(self.order))):
            errs.append(f"physical order {self.order} is not a permutation")
        if rank is not None and len(self.order) != rank:
            errs.append(f"physical order has {len(self.order)} dims, tensor has {rank}")
        if self.pack is not None:
            d, f = self.pack
            if not (0 <= d < len(self.order)) or f < 2:
                errs.append(f"bad packing {list(self.pack)}: needs a dim in range and a factor >= 2")
        return errs

    def attr(self) -> ir.Attribute:
        order = ", ".join(map(str, self.order))
        pack = f": {self.pack[0]}, {self.pack[1]}" if self.pack else ""
        return ir.Attribute.parse(f"#layout.physical<array<i64: {order}>, array<i64{pack}>>")

    @staticmethod
    def parse(text: str) -> "PhysicalLayout":
        m = _PHYS_RE.fullmatch(text.strip())
        if not m:
            raise ValueError(f"not a #layout.physical attribute: {text}")
        order = [int(x) for x in (m.group(1) or "").split(",") if x.strip()]
        pack = [int(x) for x in (m.group(2) or "").split(",") if x.strip()]
        if pack and len(pack) != 2:
            raise ValueError(f"packing must be [dim, factor]: {text}")
        return PhysicalLayout(order, tuple(pack) if pack else None)

    def __repr__(self):
        return f"PhysicalLayout({self.order}, {self.pack})"


def _static_shape(t) -> list[int] | None:
    try:
        rt = ir.RankedTensorType(t)
    except ValueError:
        return None
    if not rt.has_static_shape:
        return None
    return list(rt.shape)


@op
class TransformOp(TexflowOp):
    """layout.transform: a permutation or row-major reshape of a tensor."""

    OPERATION_NAME = "layout.transform"

    @classmethod
    def create(cls, source: ir.Value, result_type: ir.Type, kind: str,
               permutation: list[int] | None = None, loc=None) -> "TransformOp":
        attrs = {"kind": ir.StringAttr.get(kind)}
        if permutation is not None:
            attrs["permutation"] = ir.DenseI64ArrayAttr.get(list(permutation))
        o = ir.Operation.create(cls.OPERATION_NAME, results=[result_type], operands=[source],
                                attributes=attrs, loc=loc)
        return o.opview

    @classmethod
    def permute(cls, source, permutation, loc=None):
        shape = _static_shape(source.type)
        et = ir.RankedTensorType(source.type).element_type
        rtype = ir.RankedTensorType.get([shape[p] for p in permutation], et)
        return cls.create(source, rtype, "permute", permutation, loc)

    @classmethod
    def reshape(cls, source, shape, loc=None):
        et = ir.RankedTensorType(source.type).element_type
        return cls.create(source, ir.RankedTensorType.get(list(shape), et), "reshape", None, loc)

    # accessors
    @property
    def source(self) -> ir.Value:
        return self.operation.operands[0]

    @property
    def result(self) -> ir.Value:
        return self.operation.results[0]

    @property
    def kind(self) -> str:
        return ir.StringAttr(self.operation.attributes["kind"]).value

    @property
    def permutation(self) -> list[int] | None:
        if "permutation" not in self.operation.attributes:
            return None
        return list(ir.DenseI64ArrayAttr(self.operation.attributes["permutation"]))

    @property
    def source_shape(self) -> list[int]:
        return _static_shape(self.source.type)

    @property
    def result_shape(self) -> list[int]:
        return _static_shape(self.result.type)

    def index_map(self) -> list:
        """result[d...] = source[map(d...)] as index_expr expressions."""
        if self.kind == "permute":
            return ie.permute_map(self.permutation)
        return ie.reshape_map(self.source_shape, self.result_shape)

    def verify_op(self) -> list[str]:
        o = self.operation
        if len(o.operands) != 1 or len(o.results) != 1:
            return ["expects one operand and one result"]
        if "kind" not in o.attributes:
            return ["requires a 'kind' attribute"]
        try:
            kind = self.kind
        except ValueError:
            return ["'kind' must be a string"]
        src, res = self.source_shape, self.result_shape
        if src is None or res is None:
            return ["operates on statically shaped ranked tensors"]
        et_s = ir.RankedTensorType(self.source.type).element_type
        et_r = ir.RankedTensorType(self.result.type).element_type
        if et_s != et_r:
            return [f"element types differ: {et_s} vs {et_r}"]
        if kind == "permute":
            perm = self.permutation
            if perm is None:
                return ["kind 'permute' requires a 'permutation' attribute"]
            if sorted(perm) != list(range(len(src))):
                return [f"permutation {perm} is not a permutation of {len(src)} dims"]
            expect = [src[p] for p in perm]
            if expect != res:
                return [f"result shape {res} != permuted source shape {expect}"]
            return []
        if kind == "reshape":
            if "permutation" in o.attributes:
                return ["kind 'reshape' takes no 'permutation'"]
            if prod(src) != prod(res):
                return [f"reshape changes the element count ({prod(src)} -> {prod(res)})"]
            return []
        return [f"unknown kind '{kind}' (permute or reshape)"]


def verify_attributes(module) -> list[tuple[str, str]]:
    """Check every `layout.quadrant` / `layout.physical` attribute in the module."""
    errors = []

    def visit(o):
        attrs = o.attributes
        if QUADRANT_ATTR in attrs:
            try:
                parse_quadrant(str(attrs[QUADRANT_ATTR]))
            except ValueError:
                errors.append((str(o.location), f"'{o.name}' op has an invalid quadrant "
                               f"{attrs[QUADRANT_ATTR]} (ild_var, ild_fixed, ili_var, ili_fixed)"))
        if PHYSICAL_ATTR in attrs:
            try:
                layouts = ir.ArrayAttr(attrs[PHYSICAL_ATTR])
                items = [str(layouts[i]) for i in range(len(layouts))]
            except ValueError:
                items = [str(attrs[PHYSICAL_ATTR])]
            for i, text in enumerate(items):
                try:
                    pl = PhysicalLayout.parse(text)
                    rank = None
                    if i < len(o.results):
                        s = _static_shape(o.results[i].type)
                        rank = len(s) if s is not None else None
                    for e in pl.verify(rank):
                        errors.append((str(o.location), f"'{o.name}' op: {e}"))
                except ValueError as e:
                    errors.append((str(o.location), f"'{o.name}' op: {e}"))
        return ir.WalkResult.ADVANCE
    module.operation.walk(visit)
    return errors
