"""The demo model's components, as stock diffusers/transformers classes."""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DDIMScheduler,
    DDPMScheduler,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel

from tools.demo_models.diffusion.shapes import RESOLUTION
from tools.demo_models.diffusion.tokenizer import MAX_LENGTH

LATENT_CHANNELS = 3
TEXT_DIM = 64

# SD 1.5's betas, rescaled to zero terminal SNR: with SD's schedule the last step
# still carries ~7 % of the image, so training teaches the model that a sample's
# mean colour comes from the noise and backgrounds come out muted. v-prediction
# is required once the terminal SNR is zero (epsilon is undefined there).
SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "rescale_betas_zero_snr": True,
    "prediction_type": "v_prediction",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    # Trailing spacing makes sampling actually start at the pure-noise step.
    "timestep_spacing": "trailing",
}


def make_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=RESOLUTION,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=16,
    )


def make_text_encoder() -> CLIPTextModel:
    from tools.demo_models.diffusion.tokenizer import build_tokenizer

    config = CLIPTextConfig(
        vocab_size=len(build_tokenizer()),
        hidden_size=TEXT_DIM,
        intermediate_size=4 * TEXT_DIM,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        projection_dim=TEXT_DIM,
    )
    return CLIPTextModel(config)


def make_controlnet(unet: UNet2DConditionModel) -> ControlNetModel:
    # One conditioning block: no stride-2 convs, because there is no 8x VAE
    # downsampling and the edge map must stay at the 32x32 latent resolution.
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16,))


def make_train_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**{k: v for k, v in SCHEDULE.items() if k != "set_alpha_to_one"})


def make_sample_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULE)


# Identity VAE. Pixels are the latents: training a real tiny VAE on this CPU ran
# at 3-5 s/step, and 32x32x3 pixel space is small enough for the UNet directly.
# AutoencoderKL cannot be switched off, so its weights are set by hand so that
# decode(encode(x)) == x. The hard parts are the GroupNorm + SiLU before each
# conv_out: GroupNorm would subtract the image mean and divide by its spread.
# We carry x, -x and constants +K, -K in one group, so the group mean is exactly
# zero and the std is ~K/2 whatever the image (relative error < 2e-6). Then the
# affine shift of +SHIFT keeps SiLU in its linear range (sigmoid(19) ~ 1 - 6e-9),
# and conv_out subtracts SHIFT again. Every ResNet's second conv is zero, so the
# residual path passes the tensor through unchanged.
_K = 1000.0
_SHIFT = 20.0
_WIDTH = 2 * LATENT_CHANNELS + 2


def make_identity_vae() -> AutoencoderKL:
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=LATENT_CHANNELS,
        block_out_channels=(_WIDTH,),
        layers_per_block=1,
        norm_num_groups=1,
        sample_size=RESOLUTION,
        scaling_factor=1.0,
        mid_block_add_attention=False,
        force_upcast=False,
    )
    with torch.no_grad():
        for param in vae.parameters():
            param.zero_()
        for part in (vae.encoder, vae.decoder):
            _fan_out(part.conv_in)
            # GroupNorm params were zeroed above; set those that matter.
            for module in part.modules():
                if isinstance(module, torch.nn.GroupNorm):
                    module.weight.fill_(1.0)
            norm = part.conv_norm_out
            std = _K / 2
            norm.weight.zero_()
            norm.weight[:LATENT_CHANNELS] = std
            norm.bias[:LATENT_CHANNELS] = _SHIFT
        enc_out = vae.encoder.conv_out  # mean and log-variance
        for c in range(LATENT_CHANNELS):
            enc_out.weight[c, c, 1, 1] = 1.0
            enc_out.bias[c] = -_SHIFT
        # Log-variance so small that sampling the latent distribution is exact.
        enc_out.bias[LATENT_CHANNELS:] = -30.0
        dec_out = vae.decoder.conv_out
        for c in range(3):
            dec_out.weight[c, c, 1, 1] = 1.0
            dec_out.bias[c] = -_SHIFT
        for conv in (vae.quant_conv, vae.post_quant_conv):
            if conv is None:
                continue
            for c in range(conv.out_channels):
                if c < conv.in_channels:
                    conv.weight[c, c, 0, 0] = 1.0
            if conv.out_channels == 2 * LATENT_CHANNELS:
                conv.bias[LATENT_CHANNELS:] = 0.0
    return vae


def _fan_out(conv: torch.nn.Conv2d) -> None:
    """3-channel input -> (x, -x, +K, -K) across the VAE's channels."""
    n = conv.in_channels
    for c in range(n):
        conv.weight[c, c, 1, 1] = 1.0
        conv.weight[n + c, c, 1, 1] = -1.0
    conv.bias[2 * n] = _K
    conv.bias[2 * n + 1] = -_K
