"""The corpus: real architectures, small configurations, random perturbed weights.

The suite (models.py) is the eight models texflow was tuned on; the corpus is the models a
user brings (issue 16): vision CNNs with squeeze-excitation, depthwise, grouped and shuffled
channels, dense concatenation; plain, hierarchical/windowed and hybrid vision transformers;
text encoders; decoders with GQA, rotary, ALiBi and parallel attention/MLP blocks; a
diffusion UNet and a VAE decoder; audio encoders.  Each is built from its library's own
classes (torchvision, timm, transformers, diffusers) with random weights (no model hub is
reachable), perturbed (models.perturb) and exported to ONNX by models.build, so the cache
holds the same files as the suite's (model.onnx, inputs.npz, ONNX Runtime's ref.npz,
meta.json) under `cache_dir()/corpus/<name>/`.

Configurations are small so that one compile takes seconds on a 2-core machine: two
transformer layers, widths of 256, 64-128 tokens, 160x160 images for most CNNs (224 where
the architecture fixes its resolution: attention biases, token-mixing MLPs, windows).  Where
a configuration is reduced from the named model (fewer blocks, a narrower classifier), the
summary says so.  A model that fails to export keeps its error in `export-error.txt` and is
reported as not exported (`build()` raises ExportError), never dropped.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from . import models
from .models import ModelSpec, SEED, _FirstOutput, _image, import_torch, import_torchvision

SEQ_ENC = 128  # text encoders
SEQ_DEC = 64  # decoders
VOCAB = 8192


def root() -> Path:
    return models.cache_dir() / "corpus"


class ExportError(RuntimeError):
    """The model could not be built or exported to ONNX (the message is the one-line cause)."""


def _tokens(vocab: int, seq: int):
    torch = import_torch()
    g = torch.Generator().manual_seed(SEED + 1)
    # ids >= 3: clear of the pad/bos/eos ids (RoBERTa's position ids count non-pad tokens)
    return torch.randint(3, vocab, (1, seq), generator=g, dtype=torch.int64)


def _randn(*shape, seed=SEED + 3):
    torch = import_torch()
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# -- torchvision ------------------------------------------------------------------------
def _tv(fn_name, size=160, **kw):
    def build():
        tv = import_torchvision()
        return getattr(tv.models, fn_name)(weights=None, **kw), (_image(3, size, size),), ["input"]
    return build


def build_resnext_small():
    tv = import_torchvision()
    from torchvision.models.resnet import Bottleneck, ResNet
    return ResNet(Bottleneck, [1, 1, 1, 1], groups=32, width_per_group=4), (_image(3, 160, 160),), \
        ["input"]


def build_vgg11_small():
    torch = import_torch()
    tv = import_torchvision()
    m = tv.models.vgg11(weights=None)
    m.avgpool = torch.nn.AdaptiveAvgPool2d((1, 1))  # 512-wide classifier instead of 25088x4096
    m.classifier = torch.nn.Sequential(
        torch.nn.Linear(512, 512), torch.nn.ReLU(True), torch.nn.Dropout(),
        torch.nn.Linear(512, 512), torch.nn.ReLU(True), torch.nn.Dropout(),
        torch.nn.Linear(512, 1000))
    return m, (_image(3, 128, 128),), ["input"]


def build_alexnet_small():
    torch = import_torch()
    tv = import_torchvision()
    m = tv.models.alexnet(weights=None)
    m.classifier = torch.nn.Sequential(  # 1024-wide instead of 4096
        torch.nn.Dropout(), torch.nn.Linear(256 * 6 * 6, 1024), torch.nn.ReLU(True),
        torch.nn.Dropout(), torch.nn.Linear(1024, 1024), torch.nn.ReLU(True),
        torch.nn.Linear(1024, 1000))
    return m, (_image(3, 224, 224),), ["input"]


def build_swin_small():
    tv = import_torchvision()
    from torchvision.models.swin_transformer import SwinTransformer
    m = SwinTransformer(patch_size=[4, 4], embed_dim=96, depths=[2, 2, 2, 2],
                        num_heads=[3, 6, 12, 24], window_size=[7, 7])
    return m, (_image(3, 224, 224),), ["input"]


def build_lraspp():
    tv = import_torchvision()
    m = tv.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                         num_classes=21)
    w = _FirstOutput.wrap(m, lambda m, x: m(x)["out"])
    return w, (_image(3, 160, 160),), ["input"]


def build_deeplabv3():
    tv = import_torchvision()
    m = tv.models.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                            num_classes=21, aux_loss=False)
    w = _FirstOutput.wrap(m, lambda m, x: m(x)["out"])
    return w, (_image(3, 160, 160),), ["input"]


# -- timm -------------------------------------------------------------------------------
def _timm(arch, size, **kw):
    def build():
        import timm
        m = timm.create_model(arch, pretrained=False, **kw)
        return m, (_image(3, size, size),), ["input"]
    return build


# -- transformers: encoders ---------------------------------------------------------------
def _hf_encoder(cls_name, cfg_name, seq=SEQ_ENC, output=0, **cfg):
    def build():
        import transformers
        c = getattr(transformers, cfg_name)(**cfg)
        c._attn_implementation = "eager"
        m = getattr(transformers, cls_name)(c)
        vocab = getattr(c, "vocab_size", VOCAB)
        w = _FirstOutput.wrap(m, lambda m, ids: m(input_ids=ids, return_dict=False)[output])
        return w, (_tokens(vocab, seq),), ["input_ids"]
    return build


_ENC = dict(vocab_size=VOCAB, hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=1024)


# -- transformers: decoders ---------------------------------------------------------------
def _hf_decoder(cls_name, cfg_name, seq=SEQ_DEC, **cfg):
    def build():
        import transformers
        c = getattr(transformers, cfg_name)(use_cache=False, **cfg)
        c._attn_implementation = "eager"
        m = getattr(transformers, cls_name)(c)
        w = _FirstOutput.wrap(m, lambda m, ids: m(input_ids=ids, use_cache=False,
                                                  return_dict=False)[0])
        return w, (_tokens(c.vocab_size, seq),), ["input_ids"]
    return build


_DEC = dict(vocab_size=4096, hidden_size=256, intermediate_size=688, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=512)


# -- diffusers / audio / segmentation -------------------------------------------------------
def build_unet2d():
    torch = import_torch()
    from diffusers import UNet2DModel
    m = UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
                    block_out_channels=(32, 64, 64),
                    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                    norm_num_groups=16, attention_head_dim=16)
    w = _FirstOutput.wrap(m, lambda m, s, t: m(s, t, return_dict=False)[0])
    return w, (_randn(1, 3, 32, 32), torch.tensor([500.0])), ["sample", "timestep"]


def build_vae_decoder():
    from diffusers import AutoencoderKL
    m = AutoencoderKL(in_channels=3, out_channels=3,
                      down_block_types=("DownEncoderBlock2D",) * 3,
                      up_block_types=("UpDecoderBlock2D",) * 3,
                      block_out_channels=(32, 64, 64), layers_per_block=1, latent_channels=4,
                      norm_num_groups=16, sample_size=64)
    w = _FirstOutput.wrap(m, lambda m, z: m.decode(z, return_dict=False)[0])
    return w, (_randn(1, 4, 16, 16),), ["latent"]


def build_whisper_encoder():
    from transformers import WhisperConfig, WhisperModel
    c = WhisperConfig(d_model=256, encoder_layers=2, encoder_attention_heads=4,
                      encoder_ffn_dim=1024, decoder_layers=1, decoder_attention_heads=4,
                      decoder_ffn_dim=1024, num_mel_bins=80, max_source_positions=250)
    c._attn_implementation = "eager"
    enc = WhisperModel(c).get_encoder()
    w = _FirstOutput.wrap(enc, lambda m, x: m(x, return_dict=False)[0])
    return w, (_randn(1, 80, 500),), ["input_features"]


def build_wav2vec2():
    from transformers import Wav2Vec2Config, Wav2Vec2Model
    c = Wav2Vec2Config(hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=1024, conv_dim=(128,) * 7,
                       num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=16,
                       mask_time_prob=0.0)
    c._attn_implementation = "eager"
    m = Wav2Vec2Model(c)
    w = _FirstOutput.wrap(m, lambda m, x: m(x, return_dict=False)[0])
    return w, (_randn(1, 8000),), ["input_values"]


def build_segformer():
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    c = SegformerConfig(depths=[1, 1, 1, 1], hidden_sizes=[32, 64, 160, 256],
                        decoder_hidden_size=128, num_labels=19)
    c._attn_implementation = "eager"
    m = SegformerForSemanticSegmentation(c)
    w = _FirstOutput.wrap(m, lambda m, x: m(pixel_values=x, return_dict=False)[0])
    return w, (_image(3, 160, 160),), ["pixel_values"]


def build_deit_hf():
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher
    c = DeiTConfig(hidden_size=192, num_hidden_layers=4, num_attention_heads=3,
                   intermediate_size=768, image_size=224, patch_size=16, num_labels=1000)
    c._attn_implementation = "eager"
    m = DeiTForImageClassificationWithTeacher(c)
    w = _FirstOutput.wrap(m, lambda m, x: m(pixel_values=x, return_dict=False)[0])
    return w, (_image(),), ["pixel_values"]


def _spec(name, family, summary, build):
    s = ModelSpec(name, summary, build, default=False)
    FAMILY[name] = family
    return s


FAMILY: dict[str, str] = {}

CORPUS: dict[str, ModelSpec] = {s.name: s for s in (
    # vision CNNs (torchvision)
    _spec("efficientnet_b0", "cnn", "EfficientNet-B0 (torchvision; SE, depthwise, SiLU), 1x3x160x160",
          _tv("efficientnet_b0")),
    _spec("mobilenet_v3_small", "cnn", "MobileNetV3-Small (torchvision; SE, hardswish), 1x3x160x160",
          _tv("mobilenet_v3_small")),
    _spec("mobilenet_v3_large", "cnn", "MobileNetV3-Large (torchvision; SE, hardswish), 1x3x160x160",
          _tv("mobilenet_v3_large")),
    _spec("regnet_y_400mf", "cnn", "RegNetY-400MF (torchvision; grouped convs, SE), 1x3x160x160",
          _tv("regnet_y_400mf")),
    _spec("regnet_x_400mf", "cnn", "RegNetX-400MF (torchvision; grouped convs), 1x3x160x160",
          _tv("regnet_x_400mf")),
    _spec("resnext_small", "cnn", "ResNeXt-50 32x4d blocks, one per stage (torchvision ResNet, "
          "groups=32), 1x3x160x160", build_resnext_small),
    _spec("shufflenet_v2", "cnn", "ShuffleNetV2 x1.0 (torchvision; channel shuffle, split), "
          "1x3x160x160", _tv("shufflenet_v2_x1_0")),
    _spec("densenet121", "cnn", "DenseNet-121 (torchvision; dense concatenation), 1x3x160x160",
          _tv("densenet121")),
    _spec("squeezenet", "cnn", "SqueezeNet 1.1 (torchvision; fire modules), 1x3x160x160",
          _tv("squeezenet1_1")),
    _spec("mnasnet", "cnn", "MNASNet 0.5 (torchvision), 1x3x160x160", _tv("mnasnet0_5")),
    _spec("googlenet", "cnn", "GoogLeNet / Inception v1 (torchvision, no aux heads), 1x3x160x160",
          _tv("googlenet", aux_logits=False, init_weights=True)),
    _spec("convnext_tiny", "cnn", "ConvNeXt-Tiny (torchvision; 7x7 depthwise, LayerNorm), "
          "1x3x224x224", _tv("convnext_tiny", size=224)),
    _spec("vgg11", "cnn", "VGG-11 features (torchvision) with a 512-wide classifier, 1x3x128x128",
          build_vgg11_small),
    _spec("alexnet", "cnn", "AlexNet features (torchvision) with a 1024-wide classifier, "
          "1x3x224x224", build_alexnet_small),
    _spec("lraspp_mobilenet_v3", "cnn", "LR-ASPP MobileNetV3-Large segmentation (torchvision; "
          "bilinear upsampling), 1x3x160x160", build_lraspp),
    # vision CNNs (timm)
    _spec("ghostnet", "cnn", "GhostNet 1.0 (timm; ghost modules: cheap depthwise + concat), "
          "1x3x160x160", _timm("ghostnet_100", 160)),
    _spec("tf_efficientnet_b0", "cnn", "TF-EfficientNet-B0 (timm; TF 'same' padding as Pad ops), "
          "1x3x160x160", _timm("tf_efficientnet_b0", 160)),
    _spec("mobilenetv4_small", "cnn", "MobileNetV4-Conv-Small (timm; universal inverted bottleneck), "
          "1x3x160x160", _timm("mobilenetv4_conv_small", 160)),
    # vision transformers
    _spec("deit_tiny", "vit", "DeiT-Tiny distilled, 4 layers (timm; class + distillation tokens), "
          "1x3x224x224", _timm("deit_tiny_distilled_patch16_224", 224, depth=4)),
    _spec("deit_hf", "vit", "DeiT with teacher head, 4 layers, d=192 (transformers), 1x3x224x224",
          build_deit_hf),
    _spec("swin_small", "vit", "Swin-T-shaped, depths 2-2-2-2 (torchvision; shifted windows), "
          "1x3x224x224", build_swin_small),
    _spec("mixer_s16", "vit", "MLP-Mixer S/16 (timm; token-mixing MLPs), 1x3x224x224",
          _timm("mixer_s16_224", 224)),
    _spec("mobilevit_xxs", "hybrid", "MobileViT-XXS (timm; conv + unfold/fold attention), "
          "1x3x256x256", _timm("mobilevit_xxs", 256)),
    _spec("levit_128s", "hybrid", "LeViT-128S (timm; conv stem, attention biases, BN-linear), "
          "1x3x224x224", _timm("levit_128s", 224)),
    _spec("efficientformer_l1", "hybrid", "EfficientFormer-L1 (timm; pool mixers + final "
          "attention), 1x3x224x224", _timm("efficientformer_l1", 224)),
    _spec("poolformer_s12", "hybrid", "PoolFormer-S12 (timm; average-pool token mixer, GroupNorm), "
          "1x3x160x160", _timm("poolformer_s12", 160)),
    _spec("edgenext_xxs", "hybrid", "EdgeNeXt-XX-Small (timm; split depthwise + transposed "
          "attention), 1x3x224x224", _timm("edgenext_xx_small", 224)),
    _spec("segformer", "hybrid", "SegFormer-B0-shaped, depths 1-1-1-1 (transformers; reduced "
          "attention, Mix-FFN, bilinear decoder), 1x3x160x160", build_segformer),
    # text encoders
    _spec("bert", "encoder", f"BERT, 2 layers, d=256 (transformers BertModel), 1x{SEQ_ENC} tokens",
          _hf_encoder("BertModel", "BertConfig", **_ENC)),
    _spec("distilbert", "encoder", f"DistilBERT, 2 layers, d=256 (transformers), 1x{SEQ_ENC} tokens",
          _hf_encoder("DistilBertModel", "DistilBertConfig", vocab_size=VOCAB, dim=256, n_layers=2,
                      n_heads=4, hidden_dim=1024)),
    _spec("albert", "encoder", f"ALBERT, 2 shared layers, d=256, embeddings 128 (transformers), "
          f"1x{SEQ_ENC} tokens", _hf_encoder("AlbertModel", "AlbertConfig", embedding_size=128, **_ENC)),
    _spec("roberta", "encoder", f"RoBERTa, 2 layers, d=256 (transformers; position ids from the "
          f"padding mask), 1x{SEQ_ENC} tokens",
          _hf_encoder("RobertaModel", "RobertaConfig", max_position_embeddings=514, **_ENC)),
    _spec("electra", "encoder", f"ELECTRA discriminator, 2 layers, d=256, embeddings 128 "
          f"(transformers), 1x{SEQ_ENC} tokens",
          _hf_encoder("ElectraModel", "ElectraConfig", embedding_size=128, **_ENC)),
    _spec("clip_text", "encoder", "CLIP text encoder, 2 layers, d=256, pooled at the EOS token "
          "(transformers CLIPTextModel; causal mask, argmax pooling), 1x77 tokens",
          _hf_encoder("CLIPTextModel", "CLIPTextConfig", seq=77, output=1, vocab_size=VOCAB,
                      hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=1024, max_position_embeddings=77, eos_token_id=2)),
    _spec("deberta_v2", "encoder", f"DeBERTa-v2, 2 layers, d=256 (transformers; disentangled "
          f"relative attention), 1x{SEQ_ENC} tokens",
          _hf_encoder("DebertaV2Model", "DebertaV2Config", relative_attention=True,
                      position_buckets=64, pos_att_type=["p2c", "c2p"], max_relative_positions=-1,
                      **_ENC)),
    _spec("t5_encoder", "encoder", f"T5 encoder, 2 layers, d=256 (transformers; relative position "
          f"buckets, RMSNorm), 1x{SEQ_ENC} tokens",
          _hf_encoder("T5EncoderModel", "T5Config", vocab_size=VOCAB, d_model=256, d_kv=64, d_ff=1024,
                      num_layers=2, num_heads=4)),
    _spec("mobilebert", "encoder", f"MobileBERT, 2 layers (transformers; bottlenecks, NoNorm), "
          f"1x{SEQ_ENC} tokens", _hf_encoder("MobileBertModel", "MobileBertConfig", vocab_size=VOCAB,
                                           num_hidden_layers=2)),
    # decoders
    _spec("llama", "decoder", f"LLaMA, 2 layers, d=256, 4 heads / 2 KV heads (GQA), RoPE "
          f"(transformers), 1x{SEQ_DEC} tokens",
          _hf_decoder("LlamaForCausalLM", "LlamaConfig", num_key_value_heads=2, **_DEC)),
    _spec("qwen2", "decoder", f"Qwen2, 2 layers, d=256, GQA 4/2, RoPE, QKV bias (transformers), "
          f"1x{SEQ_DEC} tokens", _hf_decoder("Qwen2ForCausalLM", "Qwen2Config", num_key_value_heads=2,
                                           **_DEC)),
    _spec("mistral", "decoder", f"Mistral, 2 layers, d=256, GQA 4/2, RoPE, sliding window 32 "
          f"(transformers), 1x{SEQ_DEC} tokens",
          _hf_decoder("MistralForCausalLM", "MistralConfig", num_key_value_heads=2, sliding_window=32,
                      **_DEC)),
    _spec("gemma", "decoder", f"Gemma, 2 layers, d=256, multi-query, GeGLU, RoPE (transformers), "
          f"1x{SEQ_DEC} tokens", _hf_decoder("GemmaForCausalLM", "GemmaConfig", num_key_value_heads=1,
                                           head_dim=64, **_DEC)),
    _spec("phi", "decoder", f"Phi, 2 layers, d=256 (transformers; parallel attention/MLP, partial "
          f"rotary), 1x{SEQ_DEC} tokens", _hf_decoder("PhiForCausalLM", "PhiConfig",
                                                    partial_rotary_factor=0.5, **_DEC)),
    _spec("gpt_neox", "decoder", f"GPT-NeoX, 2 layers, d=256 (transformers; parallel residual, "
          f"rotary on 25%), 1x{SEQ_DEC} tokens",
          _hf_decoder("GPTNeoXForCausalLM", "GPTNeoXConfig", use_parallel_residual=True,
                      rotary_pct=0.25, **_DEC)),
    _spec("falcon", "decoder", f"Falcon, 2 layers, d=256 (transformers; parallel attention, "
          f"multi-query, RoPE), 1x{SEQ_DEC} tokens",
          _hf_decoder("FalconForCausalLM", "FalconConfig", vocab_size=4096, hidden_size=256,
                      num_hidden_layers=2, num_attention_heads=4, parallel_attn=True,
                      multi_query=True, new_decoder_architecture=False, alibi=False)),
    _spec("gptj", "decoder", f"GPT-J, 2 layers, d=256 (transformers; parallel block, interleaved "
          f"rotary on 32 dims), 1x{SEQ_DEC} tokens",
          _hf_decoder("GPTJForCausalLM", "GPTJConfig", vocab_size=4096, n_embd=256, n_layer=2,
                      n_head=4, rotary_dim=32, n_positions=512)),
    _spec("bloom", "decoder", f"BLOOM, 2 layers, d=256 (transformers; ALiBi), 1x{SEQ_DEC} tokens",
          _hf_decoder("BloomForCausalLM", "BloomConfig", vocab_size=4096, hidden_size=256, n_layer=2,
                      n_head=4)),
    _spec("gpt2", "decoder", f"GPT-2, 2 layers, d=256 (transformers; Conv1D), 1x{SEQ_DEC} tokens",
          _hf_decoder("GPT2LMHeadModel", "GPT2Config", vocab_size=4096, n_embd=256, n_layer=2,
                      n_head=4, n_positions=512)),
    _spec("opt", "decoder", f"OPT, 2 layers, d=256 (transformers; learned offset positions), "
          f"1x{SEQ_DEC} tokens",
          _hf_decoder("OPTForCausalLM", "OPTConfig", vocab_size=4096, hidden_size=256,
                      num_hidden_layers=2, num_attention_heads=4, ffn_dim=1024,
                      word_embed_proj_dim=256, max_position_embeddings=512)),
    # diffusion, audio
    _spec("ddpm_unet", "diffusion", "DDPM UNet (diffusers UNet2DModel; widths 32/64/64, "
          "self-attention block), 1x3x32x32 + timestep", build_unet2d),
    _spec("vae_decoder", "diffusion", "VAE decoder (diffusers AutoencoderKL.decode; widths 32/64/64, "
          "mid attention), 1x4x16x16 latents -> 1x3x64x64", build_vae_decoder),
    _spec("whisper_encoder", "audio", "Whisper encoder, 2 layers, d=256 (transformers; conv "
          "front end, 250 positions), 1x80x500 mel frames", build_whisper_encoder),
    _spec("wav2vec2", "audio", "wav2vec 2.0, 2 layers, d=256, conv widths 128 (transformers; "
          "conv feature extractor, grouped positional conv), 1x8000 samples", build_wav2vec2),
    # held out: added 2026-12-08, after every pass and cost model they could have shaped; run as
    # a user would, and kept in the corpus so that later changes answer to them too
    _spec("repvgg_a0", "cnn", "RepVGG-A0 (timm; 3x3 + 1x1 + identity branches summed), "
          "1x3x160x160", _timm("repvgg_a0", 160)),
    _spec("dla34", "cnn", "DLA-34 (timm; iterative deep aggregation, concat trees), 1x3x160x160",
          _timm("dla34", 160)),
    _spec("rexnet", "cnn", "ReXNet 1.0 (timm; SE, partial residuals onto more channels, SiLU), "
          "1x3x160x160", _timm("rexnet_100", 160)),
    _spec("hrnet_small", "cnn", "HRNet-W18-Small (timm; parallel resolutions, nearest upsampling "
          "fusion), 1x3x160x160", _timm("hrnet_w18_small", 160)),
    _spec("resnest14d", "cnn", "ResNeSt-14d (timm; split attention: grouped conv, softmax over "
          "radix), 1x3x160x160", _timm("resnest14d", 160)),
    _spec("vovnet19_dw", "cnn", "VoVNet-19-DW (timm; one-shot aggregation concat, eSE), "
          "1x3x160x160", _timm("ese_vovnet19b_dw", 160)),
    _spec("pvt_v2_b0", "vit", "PVTv2-B0 (timm; spatial-reduction attention, overlapping patch "
          "embeddings, depthwise conv in the MLP), 1x3x224x224", _timm("pvt_v2_b0", 224)),
    _spec("efficientvit_b0", "hybrid", "EfficientViT-B0 (timm, MIT; ReLU linear attention, "
          "multi-scale aggregation), 1x3x224x224", _timm("efficientvit_b0", 224)),
    _spec("tiny_vit_5m", "hybrid", "TinyViT-5M (timm; MBConv stages, windowed attention with "
          "bias), 1x3x224x224", _timm("tiny_vit_5m_224", 224)),
    _spec("xcit_nano", "vit", "XCiT-Nano, 4 layers (timm; cross-covariance attention over "
          "channels, local patch interaction), 1x3x224x224", _timm("xcit_nano_12_p16_224", 224, depth=4)),
    _spec("squeezebert", "encoder", "SqueezeBERT-shaped, 2 layers, d=256 (transformers; grouped "
          f"1-D convolutions for projections), 1x{SEQ_ENC} tokens",
          _hf_encoder("SqueezeBertModel", "SqueezeBertConfig", embedding_size=256, q_groups=4,
                      k_groups=4, v_groups=4, post_attention_groups=1, intermediate_groups=4,
                      output_groups=4, **_ENC)),
    _spec("mpnet", "encoder", f"MPNet-shaped, 2 layers, d=256 (transformers; relative position "
          f"buckets), 1x{SEQ_ENC} tokens", _hf_encoder("MPNetModel", "MPNetConfig", **_ENC)),
    # held out, second batch (2026-12-08)
    _spec("dpn68", "cnn", "DPN-68 (timm; dual paths: grouped 3x3 convolutions, residual + dense "
          "concat), 1x3x160x160", _timm("dpn68", 160)),
    _spec("mixnet_s", "cnn", "MixNet-S (timm; mixed depthwise kernels 3/5/7/9 over channel "
          "splits), 1x3x160x160", _timm("mixnet_s", 160)),
    _spec("inception_v3", "cnn", "Inception-v3 (timm; 1x7/7x1 factorized convolutions, "
          "branch concat), 1x3x160x160", _timm("inception_v3", 160)),
    _spec("nf_resnet26", "cnn", "NF-ResNet-26 (timm; scaled weight standardization: filters "
          "computed from weights), 1x3x160x160", _timm("nf_resnet26", 160)),
    _spec("deeplabv3_mnv3", "cnn", "DeepLabV3 MobileNetV3-Large (torchvision; dilated "
          "convolutions, ASPP, bilinear upsampling), 1x3x160x160", build_deeplabv3),
    _spec("cait_xxs", "vit", "CaiT-XXS, 4 layers (timm; LayerScale, class attention), "
          "1x3x224x224", _timm("cait_xxs24_224", 224, depth=4)),
    _spec("crossvit_tiny", "vit", "CrossViT-Tiny (timm; two patch sizes, cross attention between "
          "branches), 1x3x240x240", _timm("crossvit_tiny_240", 240)),
    _spec("coat_lite_tiny", "vit", "CoaT-Lite-Tiny (timm; convolutional relative position "
          "encoding, factorized attention), 1x3x224x224", _timm("coat_lite_tiny", 224)),
    _spec("gcvit_xxtiny", "hybrid", "GC ViT-XXTiny (timm; global context tokens, windowed "
          "attention), 1x3x224x224", _timm("gcvit_xxtiny", 224)),
    _spec("visformer_tiny", "hybrid", "Visformer-Tiny (timm; conv stages then attention with "
          "1x1 conv projections), 1x3x224x224", _timm("visformer_tiny", 224)),
    _spec("convbert", "encoder", "ConvBERT-shaped, 2 layers, d=256 (transformers; span-based "
          f"dynamic convolution heads), 1x{SEQ_ENC} tokens",
          _hf_encoder("ConvBertModel", "ConvBertConfig", embedding_size=256, **_ENC)),
    _spec("funnel", "encoder", "Funnel-Transformer-shaped, blocks 1-1, d=256 (transformers; "
          f"pooled query sequences), 1x{SEQ_ENC} tokens",
          _hf_encoder("FunnelBaseModel", "FunnelConfig", vocab_size=VOCAB, d_model=256, n_head=4,
                      d_head=64, d_inner=1024, block_sizes=[1, 1], num_decoder_layers=1)),
)}

# Added after the passes and cost models were written (see the comment in CORPUS).
HELD_OUT = ["repvgg_a0", "dla34", "rexnet", "hrnet_small", "resnest14d", "vovnet19_dw", "pvt_v2_b0",
            "efficientvit_b0", "tiny_vit_5m", "xcit_nano", "squeezebert", "mpnet",
            "dpn68", "mixnet_s", "inception_v3", "nf_resnet26", "deeplabv3_mnv3", "cait_xxs",
            "crossvit_tiny", "coat_lite_tiny", "gcvit_xxtiny", "visformer_tiny", "convbert", "funnel"]

# The smallest models, for the quick test (built and compiled in seconds).
QUICK = ["squeezenet", "gpt2"]


def resolve(names) -> list[str]:
    """'all', 'quick', 'held-out', a family name (cnn, vit, hybrid, encoder, decoder, diffusion, audio) or a
    comma-separated list of model names."""
    if names is None or names == "all":
        return list(CORPUS)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = []
    for n in names:
        if n == "all":
            out += list(CORPUS)
        elif n == "quick":
            out += QUICK
        elif n == "held-out":
            out += HELD_OUT
        elif n in set(FAMILY.values()):
            out += [m for m, f in FAMILY.items() if f == n]
        elif n in CORPUS:
            out.append(n)
        else:
            raise ValueError(f"unknown corpus model or family '{n}' (families: "
                             f"{', '.join(sorted(set(FAMILY.values())))}; models: {', '.join(CORPUS)})")
    return list(dict.fromkeys(out))


def build(name: str, rebuild: bool = False, log=print) -> models.CachedModel:
    """Build, export and cache one corpus model; raises ExportError (remembered in
    `export-error.txt`, retried only with `rebuild`) when the model cannot be exported."""
    d = root() / name
    err = d / "export-error.txt"
    if err.exists() and not rebuild:
        raise ExportError(err.read_text().strip())
    try:
        return models.build(name, rebuild=rebuild, log=log, spec=CORPUS[name], root=root())
    except ImportError as e:
        raise ExportError(f"not built: {type(e).__name__}: {e}") from None
    except Exception as e:  # noqa: BLE001
        msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
        d.mkdir(parents=True, exist_ok=True)
        err.write_text(msg + "\n")
        (d / "export-traceback.txt").write_text(traceback.format_exc())
        raise ExportError(msg) from None


# -- suite and corpus models by one name: `vit`, `corpus:deit_tiny` ---------------------------
PREFIX = "corpus:"


def resolve_any(spec: str) -> list[str]:
    """Comma-separated suite names (or 'default' / 'all') and corpus models as `corpus:NAME` or
    `corpus:FAMILY`: the suite's first, then the corpus's, as names `build_any` takes."""
    items = [x.strip() for x in spec.split(",") if x.strip()]
    suite = [x for x in items if not x.startswith(PREFIX)]
    out = models.resolve(",".join(suite)) if suite else []
    for x in items:
        if x.startswith(PREFIX):
            out += [PREFIX + c for c in resolve(x[len(PREFIX):])]
    return out


def spec_any(name: str) -> ModelSpec:
    """The ModelSpec of a suite model (`vit`) or a corpus model (`corpus:deit_tiny`)."""
    return CORPUS[name[len(PREFIX):]] if name.startswith(PREFIX) else models.MODELS[name]


def build_any(name: str, rebuild: bool = False, log=print) -> models.CachedModel:
    if name.startswith(PREFIX):
        return build(name[len(PREFIX):], rebuild=rebuild, log=log)
    return models.build(name, rebuild=rebuild, log=log)
