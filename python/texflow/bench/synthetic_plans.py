"""Synthetic stage graphs for scale tests and benchmarks (nothing allocated)."""

from __future__ import annotations

import math
import random

from texflow.streaming.model import CAPACITY_RATIO, Group, Problem, Stage


def _stage(kind, flops, traffic, dev, chunk_bytes, name="", act=0):
    compute = max(flops / dev["flops_per_s"], traffic / dev["mem_bytes_per_s"]) + dev["dispatch_s"]
    chunk_s = chunk_bytes / dev["weight_read_bytes_per_s"]
    cap = min(int(CAPACITY_RATIO[kind] * traffic // chunk_bytes), int(compute / chunk_s))
    return Stage(compute_s=compute, capacity=cap, act_bytes=act, kind=kind, name=name)


# A mid-range phone GPU reading weights from UFS flash (FlashMem's setting).
PHONE = {"flops_per_s": 1.0e12, "mem_bytes_per_s": 30e9, "dispatch_s": 20e-6,
         "weight_read_bytes_per_s": 1.5e9}


def chain(n: int, seed: int = 0, chunk_bytes: int = 1 << 20, budget_frac: float = 0.25,
          dev=PHONE) -> Problem:
    """n stages cycling matmul / elementwise / reduction, weights of 0.5-8 MiB
    on matmuls, one group in ten reused up to 20 stages later."""
    rng = random.Random(seed)
    stages, groups = [], []
    for i in range(n):
        kind = ("reusable", "elemental", "reusable", "hierarchical")[i % 4]
        if kind == "reusable":
            wbytes = int(rng.uniform(0.5, 8) * (1 << 20))
            m = rng.choice((16, 64, 256))
            flops = 2 * m * wbytes / 2  # fp16 weights
            act = m * 4096 * 2
            traffic = wbytes + 2 * act
            stages.append(_stage(kind, flops, traffic, dev, chunk_bytes, f"s{i}", act))
            last = i if rng.random() > 0.1 else min(n - 1, i + rng.randint(1, 20))
            groups.append(Group(chunks=math.ceil(wbytes / chunk_bytes), first=i, last=last,
                                bytes=wbytes, name=f"w{i}"))
        else:
            act = rng.choice((16, 64, 256)) * 4096 * 2
            stages.append(_stage(kind, act, 2 * act, dev, chunk_bytes, f"s{i}", act))
    total = sum(g.chunks for g in groups) * chunk_bytes
    budget = int(total * budget_frac) + max(s.act_bytes for s in stages) + 16 * chunk_bytes
    return Problem(stages=stages, groups=groups, budget=budget, chunk_bytes=chunk_bytes,
                   chunk_s=chunk_bytes / dev["weight_read_bytes_per_s"])


def gpt_neo_2_7b(budget: int = 1 << 30, tokens: int = 128, chunk_bytes: int = 4 << 20,
                 dev=PHONE) -> Problem:
    """GPT-Neo-2.7B-shaped prefill: 32 layers, d=2560, fp16, ~2.7 B parameters.
    The LM head shares the token embedding (used first and last)."""
    d, ff, vocab, ctx, layers = 2560, 10240, 50257, 2048, 32
    stages, groups = [], []
    act = tokens * d * 2

    def add(kind, name, flops, traffic, weights=(), act_b=act):
        s = len(stages)
        stages.append(_stage(kind, flops, traffic, dev, chunk_bytes, name, act_b))
        for wname, wbytes, last in weights:
            groups.append(Group(chunks=math.ceil(wbytes / chunk_bytes), first=s,
                                last=s if last is None else last, bytes=wbytes, name=wname))

    n_stages = 2 + layers * 10 + 1
    add("elemental", "embed", tokens * d, act + tokens * d * 2,
        [("wte", vocab * d * 2, n_stages - 1), ("wpe", ctx * d * 2, None)])
    for l in range(layers):
        mm = lambda k, n: 2 * tokens * k * n  # noqa: E731
        add("hierarchical", f"h{l}.ln1", 8 * tokens * d, 2 * act, [(f"h{l}.ln1", 2 * d * 2, None)])
        add("reusable", f"h{l}.qkv", mm(d, 3 * d), 3 * d * d * 2 + 4 * act,
            [(f"h{l}.qkv", 3 * d * d * 2, None)], 4 * act)
        add("reusable", f"h{l}.scores", 2 * tokens * tokens * d, 2 * act + tokens * tokens * 20 * 2,
            act_b=2 * act + tokens * tokens * 20 * 2)
        add("hierarchical", f"h{l}.softmax", 5 * tokens * tokens * 20, 2 * tokens * tokens * 20 * 2,
            act_b=act + 2 * tokens * tokens * 20 * 2)
        add("reusable", f"h{l}.attnv", 2 * tokens * tokens * d, 2 * act + tokens * tokens * 20 * 2,
            act_b=2 * act + tokens * tokens * 20 * 2)
        add("reusable", f"h{l}.out", mm(d, d), d * d * 2 + 3 * act,
            [(f"h{l}.out", d * d * 2 + d * 2, None)], 3 * act)
        add("hierarchical", f"h{l}.ln2", 8 * tokens * d, 2 * act, [(f"h{l}.ln2", 2 * d * 2, None)])
        add("reusable", f"h{l}.fc1", mm(d, ff), d * ff * 2 + act + 4 * act,
            [(f"h{l}.fc1", d * ff * 2 + ff * 2, None)], 5 * act)
        add("elemental", f"h{l}.gelu", 8 * tokens * ff, 8 * act, act_b=9 * act)
        add("reusable", f"h{l}.fc2", mm(ff, d), d * ff * 2 + 5 * act,
            [(f"h{l}.fc2", d * ff * 2 + d * 2, None)], 6 * act)
    add("hierarchical", "ln_f", 8 * tokens * d, 2 * act, [("ln_f", 2 * d * 2, None)])
    add("reusable", "lm_head", 2 * tokens * d * vocab, vocab * d * 2 + tokens * vocab * 2,
        act_b=act + tokens * vocab * 2)
    assert len(stages) == n_stages
    return Problem(stages=stages, groups=groups, budget=budget, chunk_bytes=chunk_bytes,
                   chunk_s=chunk_bytes / dev["weight_read_bytes_per_s"])
