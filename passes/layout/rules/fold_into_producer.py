"""Fold into the producer (ILD&Var -> Fixed, SmartMem's "eliminate 2nd"): a contraction writes
its result directly in the layout a reshape/permute chain after it produces (ILD&Var ops have a
variable output layout).  Its parallel loops are split and reordered to follow the chain's
result; operands indexed by a split loop get a free expand_shape.  Works for any number of
users of the chain's result.  On GPUs only (texflow-eliminate-layout's fold-into-producers):
on llvm-cpu it made small attention blocks slower."""

from __future__ import annotations

import dataclasses
from math import prod

from iree.compiler import ir
from iree.compiler.dialects import linalg, tensor

from texflow import index_expr as ie
from texflow import irutil
from texflow.dialects.layout import TransformOp
from texflow.irutil import result_value
from texflow.ir.structured import (contraction_maps, inputs_of, map_dims, outputs_of, reassoc_attr,
                                   rebuild_generic, static_shape, uses_index_op)

from .common import SECOND, LayoutRule, batch_and_row_loops, chain_to
from .expand_fold import generalizable, generalize_contraction, mixed_radix


@dataclasses.dataclass
class Plan:
    t: TransformOp
    chain: list
    p: object  # the contraction
    inputs: list  # per input: (value, expanded shape or None, reassociation groups)
    new_maps: list
    new_iters: list
    v_shape: list


def _init_kind(init) -> str | None:
    """How a new init of another shape is built like `init`: 'empty', 'fill', else None."""
    p = irutil.producer(init)
    if p is None:
        return None
    return {"tensor.empty": "empty", "linalg.fill": "fill"}.get(p.name)


def _init_like(init, shape):
    """A new init of `shape` built like `init` (tensor.empty, or a fill of one)."""
    et = ir.RankedTensorType(init.type).element_type
    p = irutil.producer(init)
    if p.name == "tensor.empty":
        return tensor.empty(list(shape), et)
    return result_value(linalg.fill(p.operands[0], outs=[tensor.empty(list(shape), et)]))


def _splits_rows_or_batch(maps, iters) -> bool:
    """Whether the result would have more than one batch loop (indexed by every operand and the
    result) or more than one row loop (by the left operand and the result only), or write a
    batch loop inside a row or column loop.  IREE merges neither kind back into one loop, and its
    GPU matmul configuration then does not apply (H200, Vulkan, benchmarks/gpu/h200/
    corpus_vulkan.md): MobileViT-XXS's attention P.V (batch_matmul 16x256x16x256) became a
    matmul_like 4x4x256x16x256 compiled as a subgroup reduction; Swin-Small's window attention
    (192 batches -> 64x3) and its QKV projection (3136 rows -> 8x8x7x7 windows) made the
    model 1.11x slower than plain IREE.  Column loops split (GPT-2's and LLaMA's head split
    folded into their projections) keep IREE's configuration and stay allowed."""
    batch, rows = batch_and_row_loops(maps, iters)
    if len(batch) > 1 or len(rows) > 1:
        return True
    seen_other = False
    for l in map_dims(maps[-1]):
        if l in batch and seen_other:
            return True
        seen_other |= l not in batch
    return False


class FoldIntoProducer(LayoutRule):
    name = "fold-into-producer"
    actions = SECOND

    def match(self, t: TransformOp):
        if t.kind != "permute":
            return None
        chain = chain_to(t.result)
        if not chain or not any(c.kind == "permute" for c in chain):
            return None
        if any(len(list(c.result.uses)) != 1 for c in chain[:-1]):
            return None
        r = chain[0].source
        p = irutil.producer(r)
        if p is None or len(list(r.uses)) != 1 or len(p.results) != 1:
            return None
        if not self.permits(p, chain[0].operation):
            return None
        cm = contraction_maps(p)
        if cm is None or "reduction" not in cm[1] or uses_index_op(p):
            return None
        maps, iters = cm
        if any(map_dims(m) is None for m in maps):
            return None
        r_shape, v_shape = static_shape(r), static_shape(t.result)
        if r_shape is None or v_shape is None:
            return None
        m = ie.identity_map(len(r_shape))
        for c in chain:
            m = ie.compose(m, c.index_map(), c.result_shape)
        digits = []
        for j, e in enumerate(m):
            if e.is_const() and e.const == 0 and r_shape[j] == 1:
                digits.append([])
                continue
            d = mixed_radix(e, v_shape, r_shape[j])
            if d is None:
                return None
            digits.append(d)
        used = [vd for ds in digits for vd, _ in ds]
        if len(used) != len(set(used)) or any(v_shape[i] > 1 and i not in used for i in range(len(v_shape))):
            return None
        # pair unit dims of r with unit dims of v (a batch of 1 stays a loop of 1)
        free_units = [i for i, n in enumerate(v_shape) if n == 1 and i not in used]
        for j, ds in enumerate(digits):
            if not ds and free_units:
                digits[j] = [(free_units.pop(0), 1)]
        out_dims = map_dims(maps[-1])
        n_in = len(inputs_of(p))
        if any(iters[out_dims[j]] != "parallel" for j in range(len(r_shape))):
            return None
        # new loop numbering: old loops in order, r-dim loops replaced by their digits
        loop_of_r = {out_dims[j]: j for j in range(len(r_shape))}
        new_loops, new_iters, vdim_loop = {}, [], {}
        for l in range(maps[0].n_dims):
            if l in loop_of_r:
                ids = []
                for vd, _ in digits[loop_of_r[l]]:
                    vdim_loop[vd] = len(new_iters)
                    ids.append(len(new_iters))
                    new_iters.append("parallel")
                new_loops[l] = ids
            else:
                new_loops[l] = [len(new_iters)]
                new_iters.append(iters[l])
        for i, n in enumerate(v_shape):  # unit dims of v that no digit covers
            if i not in vdim_loop:
                vdim_loop[i] = len(new_iters)
                new_iters.append("parallel")
        n_new = len(new_iters)

        def amap(ids):
            return ir.AffineMap.get(n_new, 0, [ir.AffineDimExpr.get(i) for i in ids])

        inputs, new_maps = [], []
        for v, mp in zip(inputs_of(p), maps[:n_in]):
            dims = map_dims(mp)
            shape = static_shape(v)
            if shape is None:
                return None
            groups, nshape, ids, k = [], [], [], 0
            for d, n in zip(dims, shape):
                if d in loop_of_r and len(digits[loop_of_r[d]]) != 1:
                    sizes = [sz for _, sz in digits[loop_of_r[d]]]
                    if not sizes:  # unit r dim read by this operand: keep it as a unit
                        groups.append([k]); nshape.append(n); k += 1
                        ids.append(n_new)  # placeholder: refused below
                        continue
                    if prod(sizes) != n:
                        return None  # broadcast over a split loop
                    groups.append(list(range(k, k + len(sizes))))
                    nshape += sizes
                    ids += new_loops[d]
                    k += len(sizes)
                else:
                    groups.append([k]); nshape.append(n); k += 1
                    ids += new_loops[d] if new_loops[d] else [n_new]
            if n_new in ids:
                return None
            inputs.append((v, nshape if nshape != shape else None, groups))
            new_maps.append(amap(ids))
        if _init_kind(outputs_of(p)[0]) is None or not generalizable(p):
            return None
        new_maps.append(amap([vdim_loop[i] for i in range(len(v_shape))]))
        if _splits_rows_or_batch(new_maps, new_iters):
            return None
        return Plan(t, chain, p, inputs, new_maps, new_iters, v_shape)

    def rewrite(self, plan: Plan) -> None:
        t, p = plan.t, plan.p
        n = len(plan.chain)
        with ir.InsertionPoint(p), p.location:
            new_ins = []
            for v, nshape, groups in plan.inputs:
                if nshape is not None:
                    et = ir.RankedTensorType(v.type).element_type
                    v = result_value(tensor.expand_shape(ir.RankedTensorType.get(nshape, et), v,
                                                         reassoc_attr(groups), [], nshape))
                new_ins.append(v)
            init = _init_like(outputs_of(p)[0], plan.v_shape)
        g = generalize_contraction(p)
        with ir.InsertionPoint(g), g.location:
            new = rebuild_generic(g, new_ins, [init], plan.new_maps, plan.new_iters, [t.result.type])
            new.move_before(g)
        t.result.replace_all_uses_with(new.results[0])
        for c in reversed(plan.chain):
            if not list(c.result.uses):
                c.operation.erase()
        if not list(g.results[0].uses):
            g.erase()
        self.bump("transforms folded into the producing contraction's output", n)
