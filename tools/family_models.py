"""Random-weight pipelines of every served family, tiny for tests or real-size for benchmarks.

``build(family, scale)`` makes a diffusers pipeline from configs alone, the way diffusers'
own tests make theirs: small (``tiny``) or real-size (``full``: the published architecture's
shapes, for speed and memory figures, which do not depend on the values) denoisers, CLIP, T5
and Qwen3 text encoders, and tokenizers built here from the CLIP vocabulary shipped in the
package.  Nothing is downloaded.  ``save`` writes one as a diffusers folder, as a user drops
a model into ``<data>/models``; ``save_transformer_file`` writes its transformer alone in the
original (single-file) layout, as FLUX and Z-Image transformers are published.

Random weights show no picture; what they show is that the code path a real checkpoint
takes (detection, loading, each mode, LoRA, previews, training) runs end to end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch

Scale = Literal["tiny", "full"]
TINY_VOCAB = 1000
# Every family's text is one short prompt in these tests; the encoders' lengths are real.
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                 "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                 "{% endif %}")


def _words() -> list[str]:
    from ronghe.engines.diffusion.configs import CLIP_VOCAB

    vocab = json.loads(CLIP_VOCAB.read_text(encoding="utf-8"))
    words = [w[:-4] for w in vocab if w.endswith("</w>") and w[:-4].isalpha()]
    return words[:TINY_VOCAB]


def clip_tokenizer() -> Any:
    from transformers import CLIPTokenizer

    from ronghe.engines.diffusion.configs import CLIP_MERGES, CLIP_VOCAB

    # transformers 5 takes the files as ``vocab``/``merges`` (as configs.clip_tokenizer does)
    return CLIPTokenizer(vocab=str(CLIP_VOCAB), merges=str(CLIP_MERGES),
                         model_max_length=77, pad_token="<|endoftext|>")


def _word_level(specials: list[str]) -> Any:
    """A word-level tokenizer over common English words (lower-cased)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    vocab = {tok: i for i, tok in enumerate(specials + _words())}
    tok = Tokenizer(WordLevel(vocab, unk_token=specials[-1]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def t5_tokenizer() -> Any:
    """A SentencePiece-style unigram tokenizer (what T5's is) over common English words."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import T5TokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    pieces = [(t, 0.0) for t in specials] + [("\u2581" + w, -1.0 - i / 1000)
                                             for i, w in enumerate(_words())]
    pieces += [(c, -20.0) for c in "abcdefghijklmnopqrstuvwxyz\u2581"]
    tok = Tokenizer(Unigram(pieces, unk_id=2))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                       special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                           unk_token="<unk>", extra_ids=0, model_max_length=512)


def qwen_tokenizer() -> Any:
    from transformers import Qwen2TokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<unk>"]
    tok = _word_level(specials)
    out = Qwen2TokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>",
                             eos_token="<|im_end|>", unk_token="<unk>",
                             model_max_length=32768)
    out.chat_template = CHAT_TEMPLATE
    return out


def clip_text(hidden: int, layers: int, heads: int, projection: int | None = None) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=hidden * 4,
                            num_hidden_layers=layers, num_attention_heads=heads,
                            max_position_embeddings=77, projection_dim=projection or hidden,
                            hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407,
                            pad_token_id=49407)
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(config)


def t5_text(d_model: int, layers: int, heads: int, vocab: int, xxl: bool = False) -> Any:
    """A T5 encoder; ``xxl``: T5 v1.1 XXL's feed-forward (10240 wide, gated GELU) and 32
    position buckets, so a full-size one has the 4.76 B parameters FLUX and SD 3 carry."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=vocab, d_model=d_model,
                                   d_ff=10240 if xxl else d_model * 2,
                                   feed_forward_proj="gated-gelu" if xxl else "relu",
                                   d_kv=d_model // heads, num_layers=layers, num_heads=heads,
                                   relative_attention_num_buckets=32 if xxl else 8,
                                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))


def qwen3_text(hidden: int, layers: int, heads: int, vocab: int, causal_lm: bool) -> Any:
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3Model

    config = Qwen3Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=heads, head_dim=hidden // heads,
                         max_position_embeddings=1024, tie_word_embeddings=False)
    return (Qwen3ForCausalLM if causal_lm else Qwen3Model)(config)


def vae(latent: int, blocks: tuple[int, ...], shift: float | None = None,
        scaling: float = 0.18215) -> Any:
    from diffusers import AutoencoderKL

    n = len(blocks)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent,
                         down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=blocks,
                         layers_per_block=1 if blocks[0] <= 64 else 2,
                         norm_num_groups=min(32, blocks[0]), scaling_factor=scaling,
                         shift_factor=shift, use_quant_conv=shift is None,
                         use_post_quant_conv=shift is None, sample_size=32)


def flow_scheduler(dynamic: bool, shift: float = 3.0) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    if dynamic:
        return FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5,
                                               max_shift=1.15, base_image_seq_len=256,
                                               max_image_seq_len=4096)
    return FlowMatchEulerDiscreteScheduler(shift=shift)


# --- one builder per family: (scale, variant) -> pipeline


def _sd(family: str, scale: Scale) -> Any:
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )

    xl = family == "sdxl"
    if scale == "full":
        from ronghe.engines.diffusion.configs import config_dir

        config = dict(UNet2DConditionModel.load_config(config_dir(family) / "unet"))
        unet = UNet2DConditionModel.from_config(config)
        autoencoder = vae(4, (128, 256, 512, 512), scaling=0.13025 if xl else 0.18215)
        te = clip_text(768, 12, 12)
        te2 = clip_text(1280, 32, 20, projection=1280) if xl else None
    else:
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4,
            out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), norm_num_groups=32,
            cross_attention_dim=64 if xl else 32, attention_head_dim=(2, 4),
            use_linear_projection=xl,
            addition_embed_type="text_time" if xl else None,
            addition_time_embed_dim=8 if xl else None,
            projection_class_embeddings_input_dim=80 if xl else None,
            transformer_layers_per_block=(1, 2) if xl else 1)
        autoencoder = vae(4, (32, 32, 32, 32))
        te = clip_text(32, 2, 4)
        te2 = clip_text(32, 2, 4, projection=32) if xl else None
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", steps_offset=1,
                                       timestep_spacing="leading")
    if xl:
        return StableDiffusionXLPipeline(vae=autoencoder, text_encoder=te, text_encoder_2=te2,
                                         tokenizer=clip_tokenizer(),
                                         tokenizer_2=clip_tokenizer(), unet=unet,
                                         scheduler=scheduler)
    return StableDiffusionPipeline(vae=autoencoder, text_encoder=te, tokenizer=clip_tokenizer(),
                                   unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def _flux(scale: Scale, variant: str = "dev") -> Any:
    from diffusers import FluxPipeline, FluxTransformer2DModel

    guided = variant == "dev"
    if scale == "full":
        transformer = FluxTransformer2DModel(guidance_embeds=guided)
        te, te2 = clip_text(768, 12, 12), t5_text(4096, 24, 64, 32128, xxl=True)
        autoencoder = vae(16, (128, 256, 512, 512), shift=0.1159, scaling=0.3611)
    else:
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
            attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
            pooled_projection_dim=32, guidance_embeds=guided, axes_dims_rope=(4, 6, 6))
        te, te2 = clip_text(32, 2, 4), t5_text(32, 2, 4, TINY_VOCAB + 30)
        autoencoder = vae(16, (32, 32, 32, 32), shift=0.1159, scaling=0.3611)
    return FluxPipeline(scheduler=flow_scheduler(dynamic=True), vae=autoencoder,
                        text_encoder=te, tokenizer=clip_tokenizer(), text_encoder_2=te2,
                        tokenizer_2=t5_tokenizer(), transformer=transformer)


def _sd3(scale: Scale) -> Any:
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline

    if scale == "full":  # SD 3.5 medium's shapes
        transformer = SD3Transformer2DModel(
            sample_size=128, patch_size=2, in_channels=16, num_layers=24,
            attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
            caption_projection_dim=1536, pooled_projection_dim=2048, out_channels=16,
            pos_embed_max_size=384, qk_norm="rms_norm",
            dual_attention_layers=tuple(range(13)))
        te, te2 = clip_text(768, 12, 12, projection=768), clip_text(1280, 32, 20, 1280)
        te3 = t5_text(4096, 24, 64, 32128, xxl=True)
        autoencoder = vae(16, (128, 256, 512, 512), shift=0.0609, scaling=1.5305)
    else:
        transformer = SD3Transformer2DModel(
            sample_size=32, patch_size=2, in_channels=16, num_layers=2,
            attention_head_dim=16, num_attention_heads=2, joint_attention_dim=64,
            caption_projection_dim=32, pooled_projection_dim=64, out_channels=16,
            pos_embed_max_size=96, qk_norm="rms_norm", dual_attention_layers=(0,))
        te, te2 = clip_text(32, 2, 4, projection=32), clip_text(32, 2, 4, projection=32)
        te3 = t5_text(64, 2, 4, TINY_VOCAB + 30)
        autoencoder = vae(16, (32, 32, 32, 32), shift=0.0609, scaling=1.5305)
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=flow_scheduler(dynamic=False), vae=autoencoder,
        text_encoder=te, tokenizer=clip_tokenizer(), text_encoder_2=te2,
        tokenizer_2=clip_tokenizer(), text_encoder_3=te3, tokenizer_3=t5_tokenizer())


def _zimage(scale: Scale) -> Any:
    from diffusers import ZImagePipeline, ZImageTransformer2DModel

    if scale == "full":
        transformer = ZImageTransformer2DModel()
        te = qwen3_text(2560, 36, 32, 151936, causal_lm=False)
        autoencoder = vae(16, (128, 256, 512, 512), shift=0.1159, scaling=0.3611)
    else:
        transformer = ZImageTransformer2DModel(
            in_channels=16, dim=32, n_layers=1, n_refiner_layers=1, n_heads=2, n_kv_heads=2,
            cap_feat_dim=32, axes_dims=[4, 6, 6], axes_lens=[256, 64, 64])
        te = qwen3_text(32, 2, 2, TINY_VOCAB + 6, causal_lm=False)
        autoencoder = vae(16, (32, 32, 32, 32), shift=0.1159, scaling=0.3611)
    return ZImagePipeline(scheduler=flow_scheduler(dynamic=False), vae=autoencoder,
                          text_encoder=te, tokenizer=qwen_tokenizer(), transformer=transformer)


def _flux2(scale: Scale, variant: str = "distilled") -> Any:
    from diffusers import AutoencoderKLFlux2, Flux2KleinPipeline, Flux2Transformer2DModel

    if scale == "full":  # FLUX.2 [klein] 4B's shapes
        transformer = Flux2Transformer2DModel(
            in_channels=128, num_layers=5, num_single_layers=20, attention_head_dim=128,
            num_attention_heads=24, joint_attention_dim=7680, guidance_embeds=False,
            axes_dims_rope=(32, 32, 32, 32))
        te = qwen3_text(2560, 36, 32, 151936, causal_lm=True)
        autoencoder = AutoencoderKLFlux2()
    else:
        # The pipeline stacks the text encoder's layers 9, 18 and 27: 28 thin layers.
        transformer = Flux2Transformer2DModel(
            in_channels=32, num_layers=1, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=48, timestep_guidance_channels=32,
            guidance_embeds=False, axes_dims_rope=(4, 4, 4, 4))
        te = qwen3_text(16, 28, 2, TINY_VOCAB + 6, causal_lm=True)
        autoencoder = AutoencoderKLFlux2(
            block_out_channels=(32, 32, 32, 32), latent_channels=8, layers_per_block=1,
            norm_num_groups=32, sample_size=32)
    return Flux2KleinPipeline(scheduler=flow_scheduler(dynamic=True), vae=autoencoder,
                              text_encoder=te, tokenizer=qwen_tokenizer(),
                              transformer=transformer, is_distilled=variant == "distilled")


BUILDERS: dict[str, Callable[..., Any]] = {
    "sd15": lambda scale, variant="": _sd("sd15", scale),
    "sdxl": lambda scale, variant="": _sd("sdxl", scale),
    "flux": _flux,
    "sd3": lambda scale, variant="": _sd3(scale),
    "zimage": lambda scale, variant="": _zimage(scale),
    "flux2": _flux2,
}
# The families the HTTP tests and `bench/gpu.py --tiny` run (and their variants).
SERVED = ("flux", "sd3", "zimage", "flux2")


def build(family: str, scale: Scale = "tiny", variant: str = "", seed: int = 0,
          dtype: torch.dtype = torch.float32, device: str = "cpu") -> Any:
    """A random-weight pipeline of ``family`` (same seed, same weights).

    The weights are made in ``dtype`` on ``device`` from the start: a full FLUX.1 made in
    float32 (68 GB) and then cast would not fit an 80 GB GPU beside its bfloat16 copy, and
    initialising 17 B parameters on a GPU takes seconds where a CPU takes minutes."""
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            pipe = BUILDERS[family](scale, variant) if variant else BUILDERS[family](scale)
    finally:
        torch.set_default_dtype(previous)
    if dtype != torch.float32:  # buffers some modules make in float32 explicitly
        pipe.to(dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save(family: str, folder: Path, variant: str = "", seed: int = 0) -> Path:
    """A tiny ``family`` model as a diffusers folder (what a user drops into models/)."""
    build(family, "tiny", variant, seed).save_pretrained(str(folder))
    return folder


def save_transformer_file(pipe: Any, path: Path) -> Path:
    """The pipeline's transformer alone in diffusers' layout as one .safetensors file (the
    loaders convert original-layout files to this same layout)."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in pipe.transformer.state_dict().items()}
    save_file(state, str(path))
    return path


def save_gguf(pipe: Any, path: Path, arch: str = "flux") -> Path:
    """The transformer as a GGUF file, as the community quantises them: linear layers'
    weights whose rows are a multiple of the block size in Q8_0, everything else (norms,
    embeddings used as tensors, biases) in F32."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    q8 = gguf.GGMLQuantizationType.Q8_0
    block = gguf.GGML_QUANT_SIZES[q8][0]
    linear = {f"{name}.weight" for name, module in pipe.transformer.named_modules()
              if isinstance(module, torch.nn.Linear)}
    for name, tensor in pipe.transformer.state_dict().items():
        data = tensor.detach().float().cpu().numpy()
        if name in linear and data.shape[-1] % block == 0:
            packed = gguf.quants.quantize(data, q8)
            writer.add_tensor(name, packed, raw_shape=packed.shape, raw_dtype=q8)
        else:
            writer.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
