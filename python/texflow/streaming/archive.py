"""Planned weights as an IREE parameter archive (`.irpa`).

The weights a `texflow-wstream-plan` plan streams are the constants its
`wstream.wait` ops forward (operand 1: an `arith.constant`,
`flow.tensor.constant` or `util.global.load`).  The manifest
(`texflow.wstream.plan/1`) records per group only the weights' locations,
which are not unique (ONNX imports give `loc("")`), so the archive keys are
derived from the IR, deterministically:

    <function>.g<group>.w<k>

`k` being the weight's position among its group's `wstream.wait` ops in block
order (the order `irplan.emit_plan` writes them, which is the manifest's
`weights` order).  Each entry holds the tensor's raw bytes (little-endian,
row-major) and IREE's `TENSORv0` metadata (dtype, shape, as
`iree.runtime.parameter_index_add_numpy_ndarray` writes it) extended with
`texflow.wstream`: group, index, function, MLIR element type and sha256, so
that `read_weight_archive` can check every entry.

Call `weights_from_module` after the `texflow-wstream` phase and before
`texflow-finalize` (which erases the wstream ops), in the process that holds
the module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from texflow import irutil
from texflow.errors import TexflowError
from texflow.constdata import attr_array as _attr_array

FORMAT = "texflow.wstream.irpa/1"
_META_PREFIX = "TENSORv0:"  # iree.runtime.io's _metadata_version + separator

@dataclasses.dataclass
class Weight:
    """One planned weight: its archive key, plan group and value."""
    key: str
    function: str
    group: int
    index: int          # position within its group
    element_type: str   # MLIR element type, e.g. "f32", "bf16"
    array: np.ndarray   # shape as in the IR; bf16 as uint16 bits

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def raw(self) -> bytes:
        return np.ascontiguousarray(self.array).tobytes()

    def sha256(self) -> str:
        return hashlib.sha256(self.raw()).hexdigest()


def weight_key(function: str, group: int, index: int) -> str:
    return f"{function}.g{group}.w{index}"


def _manifests(manifest) -> list[dict]:
    ms = manifest if isinstance(manifest, list) else [manifest]
    for m in ms:
        if not isinstance(m, dict) or m.get("format") != "texflow.wstream.plan/1":
            raise TexflowError("not a texflow.wstream.plan/1 manifest")
    return ms


# -- IR -> numpy ---------------------------------------------------------------

def _module_op(module):
    return irutil.operation(module)


def _element_type(t) -> str:
    from iree.compiler import ir
    return str(ir.RankedTensorType(t).element_type)


def _global_initial_value(module_op, name: str):
    from iree.compiler import ir
    for o in module_op.regions[0].blocks[0].operations:
        o = o.operation
        if o.name == "util.global" and "sym_name" in o.attributes and \
                ir.StringAttr(o.attributes["sym_name"]).value == name:
            if "initial_value" not in o.attributes:
                raise TexflowError(f"global @{name} has no initial value to archive")
            return o.attributes["initial_value"]
    raise TexflowError(f"weight reads global @{name}, which the module does not define")


def _weight_array(module_op, op) -> np.ndarray:
    from iree.compiler import ir
    t = op.results[0].type
    rt = ir.RankedTensorType(t)
    if not rt.has_static_shape:
        raise TexflowError(f"weight {op.location} has a dynamic shape")
    shape, etype = tuple(rt.shape), _element_type(t)
    if op.name in ("arith.constant", "flow.tensor.constant"):
        attr = op.attributes["value"]
    elif op.name == "util.global.load":
        sym = str(op.attributes["global"]).lstrip("@").strip('"')
        attr = _global_initial_value(module_op, sym)
    else:
        raise TexflowError(f"weight {op.location} is defined by {op.name}, not a constant")
    return _attr_array(attr, op, etype, shape)


def weights_from_module(module_op, manifest) -> list[Weight]:
    """The planned weights of `module_op` (after texflow-wstream, before texflow-finalize),
    in (function, group, index) order, checked against `manifest` (dict or list of dicts)."""
    from iree.compiler import ir
    from .irplan import func_name, single_block_functions

    mop = _module_op(module_op)
    by_func = {m["function"]: m for m in _manifests(manifest)}
    out: list[Weight] = []
    seen = set()
    for func in single_block_functions(mop):
        name = func_name(func)
        if name not in by_func:
            continue
        seen.add(name)
        man = by_func[name]
        groups: dict[int, list] = {}
        for o in func.regions[0].blocks[0].operations:
            o = o.operation
            if o.name == "wstream.wait":
                g = ir.IntegerAttr(o.attributes["group"]).value
                groups.setdefault(g, []).append(o.operands[1].owner)
        if not groups:
            raise TexflowError(f"function @{name} has no wstream.wait ops: take the weights after "
                               "the texflow-wstream phase, before texflow-finalize")
        mgroups = man.get("groups", [])
        if sorted(groups) != [g["id"] for g in mgroups]:
            raise TexflowError(f"function @{name}: the IR's weight groups do not match the "
                               "manifest's (was the manifest written for this module?)")
        for g in mgroups:
            ops = groups[g["id"]]
            if len(ops) != len(g.get("weights", ops)):
                raise TexflowError(f"function @{name} group {g['id']}: {len(ops)} weights in IR, "
                                   f"{len(g['weights'])} in the manifest")
            ws = []
            for k, op in enumerate(ops):
                op = irutil.operation(op)
                a = _weight_array(mop, op)
                ws.append(Weight(weight_key(name, g["id"], k), name, g["id"], k,
                                 _element_type(op.results[0].type), a))
            nbytes = sum(w.array.nbytes for w in ws)
            if nbytes != g.get("full_bytes", g["bytes"]):
                raise TexflowError(f"function @{name} group {g['id']}: weights hold {nbytes} "
                                   f"bytes, the manifest says {g['bytes']}")
            out += ws
    missing = set(by_func) - seen
    if missing:
        raise TexflowError(f"manifest names function @{sorted(missing)[0]}, which the module lacks")
    return out


# -- archive -------------------------------------------------------------------

def _metadata(w: Weight, digest: str) -> str:
    a = w.array
    d = {"type": "Tensor", "dtype": str(a.dtype), "shape": list(a.shape),
         "dtype_desc": {"class_name": type(a.dtype).__name__,
                        "is_complex": a.dtype.kind == "c",
                        "is_floating_point": a.dtype.kind == "f",
                        "is_signed": a.dtype.kind in "if",
                        "itemsize": a.dtype.itemsize},
         "texflow.wstream": {"format": FORMAT, "function": w.function, "group": w.group,
                             "index": w.index, "element_type": w.element_type,
                             "sha256": digest}}
    return _META_PREFIX + json.dumps(d, sort_keys=True)


def write_weight_archive(module_op_or_constants, manifest, path: str) -> dict:
    """Write the planned weights to `path` (.irpa) atomically.

    `module_op_or_constants`: the module (after texflow-wstream) or the list
    `weights_from_module` returned.  Returns {key: {"function", "group",
    "index", "shape", "dtype", "element_type", "bytes", "sha256"}} in archive
    order (the key -> (group, shape, dtype, sha256) mapping, plus details)."""
    import iree.runtime as rt

    src = module_op_or_constants
    if isinstance(src, (list, tuple)) and all(isinstance(w, Weight) for w in src):
        weights = list(src)
        _manifests(manifest)
    else:
        weights = weights_from_module(src, manifest)
    keys = [w.key for w in weights]
    if len(set(keys)) != len(keys):
        raise TexflowError("duplicate weight keys in the archive")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise TexflowError(f"output folder does not exist: {d}")
    index = rt.ParameterIndex()
    keep, mapping = [], {}
    for w in weights:
        raw = np.ascontiguousarray(w.array).reshape(-1).view(np.uint8)
        if raw.size == 0:
            raw = np.zeros(0, np.uint8)
        digest = hashlib.sha256(raw.tobytes()).hexdigest()
        keep.append(raw)  # the index references the buffer until the file is written
        index.add_buffer(w.key, raw, metadata=_metadata(w, digest))
        mapping[w.key] = {"function": w.function, "group": w.group, "index": w.index,
                          "shape": list(w.array.shape), "dtype": str(w.array.dtype),
                          "element_type": w.element_type, "bytes": int(raw.size),
                          "sha256": digest}
    from texflow.atomic_io import atomic_output
    with atomic_output(path, suffix=".irpa.tmp") as tmp:
        try:
            index.create_archive_file(tmp)
        except (RuntimeError, ValueError, OSError) as e:
            raise TexflowError(f"cannot write parameter archive {path}: {e}") from None
    return mapping


def read_weight_archive(path: str, verify: bool = True) -> dict[str, np.ndarray]:
    """Load a texflow weight archive: {key: array} (bf16 as uint16 bits), checking each
    entry's sha256; a missing, truncated or corrupt file is a one-line TexflowError."""
    import iree.runtime as rt

    if not os.path.isfile(path):
        raise TexflowError(f"no such parameter archive: {path}")
    index = rt.ParameterIndex()
    try:
        index.load(path, mmap=False)
    except Exception as e:  # IREE raises IndexError, ValueError, RuntimeError, OSError...
        raise TexflowError(f"{path} is not a valid IREE parameter archive "
                           f"({type(e).__name__}: {e})") from None
    out = {}
    for i in range(len(index)):
        e = index[i]
        key = e.key
        try:
            meta = e.metadata.decode()
            if not meta.startswith(_META_PREFIX):
                raise ValueError("no TENSORv0 metadata")
            m = json.loads(meta[len(_META_PREFIX):])
            tx = m["texflow.wstream"]
            if not e.is_file:
                raise ValueError("entry holds no data")
            flat = np.array(e.file_view, dtype=np.uint8, copy=True).reshape(-1)
            arr = flat.view(np.dtype(m["dtype"])).reshape([int(x) for x in m["shape"]])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise TexflowError(f"{path}: entry '{key}' is corrupt or not texflow's ({err})") \
                from None
        if verify and hashlib.sha256(flat.tobytes()).hexdigest() != tx["sha256"]:
            raise TexflowError(f"{path}: entry '{key}' fails its sha256 check (corrupt file)")
        out[key] = arr
    return out


def archive_path_for(vmfb_path: str) -> str:
    """`m.vmfb` -> `m.vmfb.irpa` (beside the module, as the manifest is `m.vmfb.plan.json`)."""
    return vmfb_path + ".irpa"


__all__ = ["FORMAT", "Weight", "archive_path_for", "read_weight_archive", "weight_key",
           "weights_from_module", "write_weight_archive"]
