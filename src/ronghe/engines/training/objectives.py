"""What differs between model families when a LoRA trains: one small strategy per kind.

``LoraTrainer`` (lora.py) owns what every family shares: cached latents and caption
embeddings, aspect-ratio buckets, seeded batches, anchors, the optimizer, checkpoints.  An
``Objective`` says the rest, following the diffusers training script of its kind:

- ``SDObjective`` (SD 1.5, SD 2.x, the demo; ``train_text_to_image_lora.py``): one CLIP text
  encoder, DDPM noise at a uniform timestep, the scheduler's target (noise or v), the UNet
  called with the caption's hidden states.
- ``SDXLObjective`` (``train_dreambooth_lora_sdxl.py``): two CLIP encoders whose penultimate
  states are concatenated, the second one's pooled embedding, and ``add_time_ids`` (original
  size, crop corner, target size) per image, as SDXL was trained with them.
- ``FluxObjective`` (``train_dreambooth_lora_flux.py``): flow matching on the transformer.
  Latents are shifted and scaled by the VAE's factors, noised as ``(1 - σ) x + σ ε`` at a σ
  drawn by the preset's ``weighting_scheme`` (uniform by default, as the script's), packed
  into 2×2 patches with their latent image ids, and the transformer (given σ, the pooled
  CLIP embedding, the T5 states and, for FLUX.1 dev, the distilled guidance input) predicts
  ``ε - x``.

Which strategy a family trains with is read from its txt2img pipeline class
(``objective_for``), so a new SD-like family needs no entry here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ronghe.engines.diffusion.families import TXT2IMG, Family
from ronghe.engines.training.presets import Preset

# Caption embeddings, one row per caption, by name ("embeds", and "pooled" where a family
# has a pooled embedding).  Rows are indexed together.
Cond = dict[str, torch.Tensor]
# T5 tokens of a FLUX caption, as FluxPipeline encodes them at generation: the LoRA then
# sees the same padding it will be used with.
FLUX_MAX_SEQUENCE = 512


class Objective(ABC):
    """One family kind's part of LoRA training over a loaded txt2img pipeline."""

    # The pipeline attribute holding the denoiser the LoRA attaches to.
    denoiser_name: ClassVar[str] = "unet"
    # Bucket sides below 256 px are multiples of this (FLUX packs 2×2 latent patches).
    size_step: ClassVar[int] = 8

    def __init__(self, pipe: Any, preset: Preset) -> None:
        self.pipe = pipe
        self.preset = preset

    @classmethod
    def load(cls, model_dir: Path, family: Family, dtype: torch.dtype | None = None) -> Any:
        """The model's txt2img pipeline (on the CPU), in ``dtype`` (None: as stored, float32)."""
        kwargs: dict[str, Any] = {} if dtype in (None, torch.float32) else {"dtype": dtype}
        pipe = family.pipeline_class(TXT2IMG).from_pretrained(str(model_dir), **kwargs,
                                                                **cls.load_kwargs())
        pipe.set_progress_bar_config(disable=True)
        return pipe

    @classmethod
    def load_kwargs(cls) -> dict[str, Any]:
        return {}

    @property
    def denoiser(self) -> torch.nn.Module:
        return getattr(self.pipe, self.denoiser_name)

    @property
    def device(self) -> torch.device:
        return self.denoiser.device

    def frozen(self) -> list[torch.nn.Module]:
        """Every weight-holding component: all frozen, only the LoRA learns."""
        return [m for m in self.pipe.components.values() if isinstance(m, torch.nn.Module)]

    # --- once per image and caption

    @abstractmethod
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Latents of NCHW pixels in [-1, 1], in the space the denoiser works in."""

    def image_conditioning(self, original: tuple[int, int], crop: tuple[int, int],
                           size: tuple[int, int]) -> torch.Tensor | None:
        """Per-image conditioning beside the caption (SDXL's time ids), from the image's
        (width, height), the crop's (left, top) corner and the trained (width, height)."""
        return None

    @abstractmethod
    def encode_prompts(self, captions: list[str]) -> Cond:
        """Caption embeddings, one row per caption, float32 on the CPU (cached)."""

    def empty(self) -> Cond:
        """The embeddings of the empty caption: what guidance's unconditional pass sees."""
        return {k: v[0] for k, v in self.encode_prompts([""]).items()}

    # --- every step

    @abstractmethod
    def noise(self, latents: torch.Tensor,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noisy latents, timesteps, target) for clean ``latents``, drawn from ``generator``."""

    @abstractmethod
    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Cond,
                image_cond: torch.Tensor | None) -> torch.Tensor:
        """The denoiser's prediction, shaped as the target."""

    def loss(self, pred: torch.Tensor, target: torch.Tensor,
             timesteps: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(pred.float(), target.float())

    def sample_kwargs(self) -> dict[str, Any]:
        """Extra arguments of the pipeline call that renders previews."""
        return {}


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    # Cached tensors live on the CPU in float32 (no-ops there); batches move to the device.
    return tensor.float().cpu()


class SDObjective(Objective):
    """SD 1.5, SD 2.x and the demo: epsilon or v-prediction on a UNet."""

    def __init__(self, pipe: Any, preset: Preset) -> None:
        from diffusers import DDPMScheduler

        super().__init__(pipe, preset)
        # The training noise schedule is the model's own (betas, zero-SNR rescale,
        # prediction type), as diffusers' training scripts take it.
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.prediction_type = self.noise_scheduler.config.prediction_type

    @classmethod
    def load_kwargs(cls) -> dict[str, Any]:
        return {"safety_checker": None, "feature_extractor": None,
                "requires_safety_checker": False}

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        # The distribution's mean: a cached sample would freeze one draw of VAE noise anyway.
        latent = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mean
        return _cpu(latent * vae.config.scaling_factor)

    def encode_prompts(self, captions: list[str]) -> Cond:
        tok, encoder = self.pipe.tokenizer, self.pipe.text_encoder
        ids = tok(captions, padding="max_length", max_length=tok.model_max_length,
                  truncation=True, return_tensors="pt").input_ids
        return {"embeds": _cpu(encoder(ids.to(encoder.device))[0])}

    def noise(self, latents: torch.Tensor,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps,
                                  (len(latents),), generator=generator)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.prediction_type == "v_prediction":
            return noisy, timesteps, self.noise_scheduler.get_velocity(latents, noise, timesteps)
        return noisy, timesteps, noise

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Cond,
                image_cond: torch.Tensor | None) -> torch.Tensor:
        return self.denoiser(noisy, timesteps, encoder_hidden_states=cond["embeds"]).sample


class SDXLObjective(SDObjective):
    """SDXL: two text encoders, a pooled embedding and size/crop time ids."""

    @classmethod
    def load_kwargs(cls) -> dict[str, Any]:
        return {}

    def encode_prompts(self, captions: list[str]) -> Cond:
        # The pipeline's own encoding (penultimate states of both encoders, concatenated;
        # the second's pooled projection), as generation encodes the prompt.
        embeds, _, pooled, _ = self.pipe.encode_prompt(
            captions, device=self.pipe.text_encoder_2.device, num_images_per_prompt=1,
            do_classifier_free_guidance=False)
        return {"embeds": _cpu(embeds), "pooled": _cpu(pooled)}

    def empty(self) -> Cond:
        empty = super().empty()
        if self.pipe.config.get("force_zeros_for_empty_prompt", True):
            # SDXL's unconditional pass at generation is zeros, not the encoded "".
            return {k: torch.zeros_like(v) for k, v in empty.items()}
        return empty

    def image_conditioning(self, original: tuple[int, int], crop: tuple[int, int],
                           size: tuple[int, int]) -> torch.Tensor | None:
        # add_time_ids: original (h, w), crop top-left (top, left), target (h, w).
        return torch.tensor([original[1], original[0], crop[1], crop[0], size[1], size[0]],
                            dtype=torch.float32)

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Cond,
                image_cond: torch.Tensor | None) -> torch.Tensor:
        assert image_cond is not None
        added = {"text_embeds": cond["pooled"], "time_ids": image_cond}
        return self.denoiser(noisy, timesteps, encoder_hidden_states=cond["embeds"],
                             added_cond_kwargs=added).sample


class FluxObjective(Objective):
    """FLUX.1 dev and schnell: rectified flow on the transformer's packed latents."""

    denoiser_name = "transformer"
    size_step = 16

    def __init__(self, pipe: Any, preset: Preset) -> None:
        from diffusers import FlowMatchEulerDiscreteScheduler

        super().__init__(pipe, preset)
        # A copy of the model's schedule: its 1000 training sigmas (shifted where the
        # model's schedule is static), as the script's ``noise_scheduler_copy``.
        self.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
        self.train_steps = int(self.scheduler.config.num_train_timesteps)
        # FLUX.1 dev takes the guidance it was distilled on as an input; schnell has none.
        self.guided = bool(self.denoiser.config.guidance_embeds)
        self.text_ids: torch.Tensor | None = None

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        latent = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mean
        shift = vae.config.shift_factor or 0.0
        return _cpu((latent - shift) * vae.config.scaling_factor)

    def encode_prompts(self, captions: list[str]) -> Cond:
        embeds, pooled, text_ids = self.pipe.encode_prompt(
            captions, prompt_2=None, device=self.pipe.text_encoder_2.device,
            max_sequence_length=FLUX_MAX_SEQUENCE)
        # The text tokens' positions: all zeros, one row per token, the same for every caption.
        self.text_ids = _cpu(text_ids)
        return {"embeds": _cpu(embeds), "pooled": _cpu(pooled)}

    def noise(self, latents: torch.Tensor,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from diffusers.training_utils import compute_density_for_timestep_sampling

        noise = torch.randn(latents.shape, generator=generator)
        u = compute_density_for_timestep_sampling(
            weighting_scheme=self.preset.weighting_scheme, batch_size=len(latents),
            logit_mean=self.preset.logit_mean, logit_std=self.preset.logit_std,
            mode_scale=self.preset.mode_scale, generator=generator)
        indices = (u * self.train_steps).long().clamp(0, self.train_steps - 1)
        timesteps = self.scheduler.timesteps[indices].float()
        sigmas = self.scheduler.sigmas[indices].float().view(-1, 1, 1, 1)
        noisy = (1.0 - sigmas) * latents + sigmas * noise
        return noisy, timesteps, noise - latents

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Cond,
                image_cond: torch.Tensor | None) -> torch.Tensor:
        from diffusers import FluxPipeline

        assert self.text_ids is not None, "encode_prompts runs before training"
        batch, channels, height, width = noisy.shape
        packed = FluxPipeline._pack_latents(noisy, batch, channels, height, width)
        img_ids = FluxPipeline._prepare_latent_image_ids(batch, height // 2, width // 2,
                                                         noisy.device, noisy.dtype)
        guidance = (torch.full((batch,), self.preset.train_guidance, device=noisy.device)
                    if self.guided else None)
        pred = self.denoiser(
            hidden_states=packed, timestep=timesteps / self.train_steps, guidance=guidance,
            pooled_projections=cond["pooled"], encoder_hidden_states=cond["embeds"],
            txt_ids=self.text_ids.to(noisy.device, noisy.dtype), img_ids=img_ids,
            return_dict=False)[0]
        scale = self.pipe.vae_scale_factor
        return FluxPipeline._unpack_latents(pred, height * scale, width * scale, scale)

    def loss(self, pred: torch.Tensor, target: torch.Tensor,
             timesteps: torch.Tensor) -> torch.Tensor:
        from diffusers.training_utils import compute_loss_weighting_for_sd3

        sigmas = (timesteps.float() / self.train_steps).view(-1, 1, 1, 1).to(pred.device)
        weighting = compute_loss_weighting_for_sd3(self.preset.weighting_scheme, sigmas)
        per_sample = (weighting.float() * (pred.float() - target.float()) ** 2)
        return per_sample.reshape(len(target), -1).mean(1).mean()


# txt2img pipeline class -> the objective its family trains with.
OBJECTIVES: dict[str, type[Objective]] = {
    "StableDiffusionPipeline": SDObjective,
    "StableDiffusionXLPipeline": SDXLObjective,
    "FluxPipeline": FluxObjective,
}


def objective_for(family: Family) -> type[Objective]:
    try:
        return OBJECTIVES[family.pipelines[TXT2IMG]]
    except KeyError:
        raise ValueError(f"LoRA training does not support {family.label} models") from None

