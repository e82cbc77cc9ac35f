"""Benchmark models: built offline from their libraries' config classes, exported to ONNX.

The machines reach package registries but no model hub, so every model is a real
architecture with random weights.  Fresh initialisations have zero biases and unit
norms that IREE folds away (trained weights never allow that), so every parameter and
batch-norm statistic is perturbed with small noise before export.

Each model is cached under `cache_dir()/<name>/`:
  model.onnx   the exported model (one file, ONNX IR version <= 10 for onnxruntime 1.31)
  inputs.npz   reference inputs, keys in0, in1, ... in the model's input order
  ref.npz      ONNX Runtime CPU outputs for those inputs, keys out0, out1, ...
  meta.json    input/output names and shapes, parameter count, versions, export time
Delete a folder (or pass `rebuild=True`) to rebuild it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import types
from pathlib import Path
from typing import Callable

import numpy as np

SEED = 20261121
SEQ = 128  # token count of the language models (fixed, batch 1)


def cache_dir() -> Path:
    d = os.environ.get("TEXFLOW_CACHE")
    base = Path(d) if d else Path.home() / ".cache" / "texflow"
    return base / "models"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str
    build: Callable[[], tuple]  # -> (torch module, tuple of example inputs, input names)
    default: bool = True  # part of the default suite


@dataclasses.dataclass
class CachedModel:
    name: str
    dir: Path

    @property
    def onnx_path(self) -> Path:
        return self.dir / "model.onnx"

    @property
    def meta(self) -> dict:
        return json.loads((self.dir / "meta.json").read_text())

    def inputs(self) -> list[np.ndarray]:
        with np.load(self.dir / "inputs.npz") as z:
            return [z[f"in{i}"] for i in range(len(z.files))]

    def reference(self) -> list[np.ndarray]:
        with np.load(self.dir / "ref.npz") as z:
            return [z[f"out{i}"] for i in range(len(z.files))]


# -- torch / torchvision import ------------------------------------------------------
def import_torch():
    """Import torch, warning about a CUDA build (the suite is specified on the CPU build)."""
    import torch
    if torch.version.cuda:
        import warnings
        warnings.warn(f"torch {torch.__version__} is a CUDA build; the bench extra expects the CPU "
                      f"build (pip install torch==2.13.0 on these machines)")
    return torch


def import_torchvision():
    """PyPI's torchvision wheel registers fake kernels for ops (torchvision::nms, ...) that
    its C++ library defines; next to the CPU torch build that library does not load and the
    import fails ('operator torchvision::nms does not exist').  The models need none of those
    ops, so the meta-registration module is replaced by an empty one before import."""
    import_torch()
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except RuntimeError:
            for k in [k for k in sys.modules if k.startswith("torchvision")]:
                del sys.modules[k]
            sys.modules["torchvision._meta_registrations"] = types.ModuleType(
                "torchvision._meta_registrations")
            import torchvision  # noqa: F401
    return sys.modules["torchvision"]


def perturb(module, seed: int = SEED) -> None:
    """Add small noise to every parameter and batch-norm statistic (in place)."""
    torch = import_torch()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in module.named_parameters():
            if p.dtype.is_floating_point:
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.02)
        for name, b in module.named_buffers():
            if not b.dtype.is_floating_point:
                continue
            if name.endswith("running_var"):
                b.mul_(torch.rand(b.shape, generator=g, dtype=b.dtype) + 0.5)
            elif name.endswith("running_mean"):
                b.add_(torch.randn(b.shape, generator=g, dtype=b.dtype) * 0.1)


class _FirstOutput:
    """Wraps a HuggingFace/diffusers model so that forward returns one tensor."""

    @staticmethod
    def wrap(model, call):
        torch = import_torch()

        class W(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.m = model

            def forward(self, *args):
                return call(self.m, *args)

        return W()


def _tokens(vocab: int, seq: int = SEQ):
    torch = import_torch()
    g = torch.Generator().manual_seed(SEED + 1)
    return torch.randint(0, vocab, (1, seq), generator=g, dtype=torch.int64)


def _image(c=3, h=224, w=224):
    torch = import_torch()
    g = torch.Generator().manual_seed(SEED + 2)
    return torch.randn((1, c, h, w), generator=g)


# -- builders --------------------------------------------------------------------------
def build_vit_tiny():
    from transformers import ViTConfig, ViTForImageClassification
    cfg = ViTConfig(hidden_size=192, num_hidden_layers=12, num_attention_heads=3,
                    intermediate_size=768, image_size=224, patch_size=16, num_labels=1000,
                    attn_implementation="eager")
    m = ViTForImageClassification(cfg)
    w = _FirstOutput.wrap(m, lambda m, x: m(pixel_values=x, return_dict=False)[0])
    return w, (_image(),), ["pixel_values"]


def build_bert_small():
    from transformers import BertConfig, BertModel
    cfg = BertConfig(hidden_size=512, num_hidden_layers=4, num_attention_heads=8,
                     intermediate_size=2048, attn_implementation="eager")
    m = BertModel(cfg, add_pooling_layer=False)
    w = _FirstOutput.wrap(m, lambda m, ids: m(input_ids=ids, return_dict=False)[0])
    return w, (_tokens(cfg.vocab_size),), ["input_ids"]


def build_gpt2_4l():
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(n_layer=4, n_embd=768, n_head=12, n_positions=1024, use_cache=False,
                     attn_implementation="eager")
    m = GPT2LMHeadModel(cfg)
    w = _FirstOutput.wrap(m, lambda m, ids: m(input_ids=ids, use_cache=False, return_dict=False)[0])
    return w, (_tokens(cfg.vocab_size),), ["input_ids"]


def build_llama_4l():
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(hidden_size=512, intermediate_size=1376, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=2, vocab_size=32000,
                      max_position_embeddings=2048, use_cache=False, attn_implementation="eager")
    m = LlamaForCausalLM(cfg)
    w = _FirstOutput.wrap(m, lambda m, ids: m(input_ids=ids, use_cache=False, return_dict=False)[0])
    return w, (_tokens(cfg.vocab_size),), ["input_ids"]


def build_mobilenet_v2():
    tv = import_torchvision()
    return tv.models.mobilenet_v2(), (_image(),), ["input"]


def build_resnet18():
    tv = import_torchvision()
    return tv.models.resnet18(), (_image(),), ["input"]


def build_resnet50():
    tv = import_torchvision()
    return tv.models.resnet50(), (_image(),), ["input"]


def build_sd_unet_small():
    torch = import_torch()
    from diffusers import UNet2DConditionModel
    m = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(64, 128, 128),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=256, attention_head_dim=8, norm_num_groups=32)
    g = torch.Generator().manual_seed(SEED + 3)
    sample = torch.randn((1, 4, 32, 32), generator=g)
    t = torch.tensor([500.0])
    ctx = torch.randn((1, 77, 256), generator=g)
    w = _FirstOutput.wrap(m, lambda m, s, t, c: m(s, t, encoder_hidden_states=c, return_dict=False)[0])
    return w, (sample, t, ctx), ["sample", "timestep", "encoder_hidden_states"]


MODELS: dict[str, ModelSpec] = {s.name: s for s in (
    ModelSpec("vit", "ViT-Tiny (transformers ViTForImageClassification, 12 layers, d=192), 1x3x224x224",
              build_vit_tiny),
    ModelSpec("bert", f"BERT-small (transformers BertModel, 4 layers, d=512), 1x{SEQ} tokens",
              build_bert_small),
    ModelSpec("gpt2", f"GPT-2-4L (transformers GPT2LMHeadModel, d=768, 4 layers, no KV cache), "
              f"1x{SEQ} tokens", build_gpt2_4l),
    ModelSpec("llama", f"LLaMA-4L (transformers LlamaForCausalLM, d=512, 8 heads / 2 KV heads (GQA), "
              f"RoPE), 1x{SEQ} tokens", build_llama_4l),
    ModelSpec("mobilenetv2", "MobileNetV2 (torchvision), 1x3x224x224", build_mobilenet_v2),
    ModelSpec("resnet18", "ResNet-18 (torchvision), 1x3x224x224", build_resnet18),
    ModelSpec("sdunet", "SD UNet small (diffusers UNet2DConditionModel, widths 64/128/128, "
              "1x4x32x32 latents, 77x256 context)", build_sd_unet_small),
    ModelSpec("resnet50", "ResNet-50 (torchvision), 1x3x224x224", build_resnet50, default=False),
)}

DEFAULT_MODELS = [n for n, s in MODELS.items() if s.default]


def resolve(names: str | list[str] | None) -> list[str]:
    if names is None or names == "default":
        return list(DEFAULT_MODELS)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if names == ["all"]:
        return list(MODELS)
    bad = [n for n in names if n not in MODELS]
    if bad:
        raise ValueError(f"unknown model(s) {', '.join(bad)} (known: {', '.join(MODELS)})")
    return names


# -- export ----------------------------------------------------------------------------
def _export(module, args, input_names, path: Path) -> None:
    torch = import_torch()
    import onnx
    # per-process names and an atomic replace: two runs building the same model into the
    # shared cache (e.g. two tuning preparations at once) must not remove each other's files
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.onnx")
    with torch.no_grad():
        try:
            prog = torch.onnx.export(module, args, dynamo=True, input_names=input_names,
                                     output_names=["output"], opset_version=18,
                                     external_data=False, verbose=False)
            prog.save(str(tmp), external_data=False)
        except Exception as e:  # noqa: BLE001  (fall back to the legacy exporter)
            print(f"  dynamo export failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                  f"trying the legacy exporter", file=sys.stderr)
            torch.onnx.export(module, args, str(tmp), dynamo=False, input_names=input_names,
                              output_names=["output"], opset_version=17)
    m = onnx.load(str(tmp), load_external_data=True)
    if m.ir_version > 10:
        m.ir_version = 10  # onnxruntime 1.31 refuses newer IR versions
    part = path.with_name(f"{path.stem}.{os.getpid()}.part.onnx")
    onnx.save(m, str(part), save_as_external_data=False)
    os.replace(part, path)
    tmp.unlink()
    for f in path.parent.iterdir():  # any external-data side file of the temporary export
        if f.name.startswith(tmp.name) and f != path:
            f.unlink()


def ort_session(path, threads: int = 0):
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_run(path, inputs: list[np.ndarray], threads: int = 0) -> list[np.ndarray]:
    s = ort_session(path, threads)
    names = [i.name for i in s.get_inputs()]
    return s.run(None, dict(zip(names, inputs)))


def build(name: str, rebuild: bool = False, log=print, spec: ModelSpec | None = None,
          root: Path | None = None) -> CachedModel:
    """Build, export and cache one model (a no-op when the cache is complete).  `spec` and
    `root` (default: the suite's MODELS and cache_dir()) let another collection of models,
    such as the corpus (corpus.py), use the same machinery."""
    spec = spec or MODELS[name]
    d = (root or cache_dir()) / name
    cm = CachedModel(name, d)
    if not rebuild and all((d / f).exists() for f in ("model.onnx", "inputs.npz", "ref.npz", "meta.json")):
        return cm
    d.mkdir(parents=True, exist_ok=True)
    torch = import_torch()
    import_torchvision()  # before transformers/diffusers, which import it
    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    log(f"  building {name}: {spec.summary}")
    module, args, input_names = spec.build()
    module.eval()
    perturb(module)
    n_params = sum(p.numel() for p in module.parameters())
    with torch.no_grad():
        torch_out = module(*args)
    _export(module, args, input_names, cm.onnx_path)
    inputs = [a.detach().numpy() for a in args]
    np.savez(d / "inputs.npz", **{f"in{i}": a for i, a in enumerate(inputs)})
    ref = ort_run(cm.onnx_path, inputs)
    np.savez(d / "ref.npz", **{f"out{i}": a for i, a in enumerate(ref)})
    torch_diff = float(np.max(np.abs(ref[0] - torch_out.detach().numpy())))
    import onnx
    mo = onnx.load(str(cm.onnx_path), load_external_data=False)
    meta = {
        "name": name, "summary": spec.summary, "parameters": int(n_params),
        "inputs": [{"name": n, "shape": list(a.shape), "dtype": str(a.dtype)}
                   for n, a in zip(input_names, inputs)],
        "outputs": [{"shape": list(r.shape), "dtype": str(r.dtype)} for r in ref],
        "onnx_bytes": cm.onnx_path.stat().st_size, "opset": [o.version for o in mo.opset_import
                                                             if o.domain in ("", "ai.onnx")],
        "ir_version": mo.ir_version, "max_abs_diff_ort_vs_torch": torch_diff,
        "export_seconds": round(time.perf_counter() - t0, 1), "versions": versions(),
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=1))
    log(f"  built {name} in {meta['export_seconds']} s ({n_params / 1e6:.1f} M parameters, "
        f"ORT vs torch max abs diff {torch_diff:.2e})")
    return cm


def versions() -> dict:
    import importlib.metadata as md
    out = {}
    for p in ("iree-base-compiler", "iree-base-runtime", "onnx", "onnxruntime", "torch",
              "torchvision", "transformers", "diffusers", "onnxscript", "numpy"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return out
