"""The LoRA trainer: peft LoRA on a Stable Diffusion UNet's attention projections.

One ``LoraTrainer`` holds a loaded base model with a LoRA adapter, the dataset's cached
latents and caption embeddings, and the optimizer.  ``train_step`` runs one step of the
standard diffusion objective (MSE against the noise, or against v for v-prediction models).

What makes it cheap on a CPU: the VAE and the text encoder are frozen, so each image's latent
and each caption's embedding are computed once up front instead of on every step; so are the
base model's unconditional "anchor" targets (``_prepare_anchors``); only the LoRA matrices get
gradients, and one fused AdamW kernel updates them all.

What makes it resumable: the batch, flips, noise and timesteps of step ``n`` come from an
RNG seeded with ``(seed, n)``, and the learning rate is a pure function of ``n``, so a run
restored from a checkpoint at step ``n`` continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ronghe.engines.training.data import bucket_sizes, nearest_bucket, to_size, to_tensor
from ronghe.engines.training.presets import TARGET_MODULES, Preset

CHECKPOINT = "checkpoint.pt"
# Caption embeddings are computed in chunks so a large dataset never builds one huge batch.
ENCODE_CHUNK = 16
# Size of the pool of unconditional anchors, per batch item (see _prepare_anchors).
ANCHORS_PER_BATCH_ITEM = 16


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def load_pipeline(model_dir: Path) -> Any:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        str(model_dir), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class _Bucket:
    """The cached latents of one aspect-ratio bucket and its base-model anchors."""

    def __init__(self, size: tuple[int, int], latents: torch.Tensor, flipped: torch.Tensor,
                 caption_of: torch.Tensor) -> None:
        self.size = size
        self.latents = latents
        self.flipped = flipped
        self.caption_of = caption_of
        self.anchors: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None


class LoraTrainer:
    def __init__(self, model_dir: Path, preset: Preset, seed: int = 0) -> None:
        from diffusers import DDPMScheduler
        from peft import LoraConfig

        self.preset = preset
        self.seed = seed
        self.pipe = load_pipeline(model_dir)
        self.unet = self.pipe.unet
        self.vae = self.pipe.vae
        self.text_encoder = self.pipe.text_encoder
        for frozen in (self.unet, self.vae, self.text_encoder):
            frozen.requires_grad_(False)
        self.vae.eval()
        self.text_encoder.eval()
        # The training noise schedule is the model's own (betas, zero-SNR rescale,
        # prediction type), as diffusers' training scripts take it.
        self.noise_scheduler = DDPMScheduler.from_config(self.pipe.scheduler.config)
        self.prediction_type = self.noise_scheduler.config.prediction_type
        # Same seed, same initial LoRA; fork_rng keeps the process-wide RNG untouched for
        # whatever else runs in this process.
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.unet.add_adapter(LoraConfig(
                r=preset.rank, lora_alpha=preset.alpha, init_lora_weights="gaussian",
                target_modules=list(TARGET_MODULES)))
        self.params = [p for p in self.unet.parameters() if p.requires_grad]
        # fused: one kernel for all LoRA tensors instead of a Python loop over ~100 of them.
        self.optimizer = torch.optim.AdamW(self.params, lr=preset.learning_rate,
                                           weight_decay=1e-2, fused=True)
        self.unet.train()
        self.step = 0
        self.losses: list[float] = []
        self.elapsed = 0.0
        # One per aspect-ratio bucket; a square dataset (or the demo preset) has one.
        self.buckets: list[_Bucket] = []
        self.embeddings: torch.Tensor | None = None
        # Per distinct caption: the row of its trigger-only form (kohya's keep_tokens=1),
        # used instead of it at the rate caption_tag_dropout.
        self.short_of = torch.zeros(0, dtype=torch.long)
        self.empty: torch.Tensor | None = None

    # --- data

    @torch.no_grad()
    def prepare(self, images: list[Image.Image], captions: list[str],
                on_item: Callable[[int, int], None] | None = None) -> None:
        """Cache latents (and flipped latents) of every image, bucket by bucket, and each
        caption's embedding."""
        if not images or len(images) != len(captions):
            raise ValueError("prepare needs one caption per image and at least one image")
        size = self.preset.resolution
        sizes = bucket_sizes(size) if self.preset.buckets else [(size, size)]
        unique = list(dict.fromkeys(captions))
        shorts = [c.split(",", 1)[0].strip() for c in unique]
        every = list(dict.fromkeys(unique + shorts))
        position = {caption: i for i, caption in enumerate(every)}
        grouped: dict[tuple[int, int], list[tuple[torch.Tensor, torch.Tensor, int]]] = {}
        for index, (image, caption) in enumerate(zip(images, captions, strict=True)):
            width, height = nearest_bucket(image.width, image.height, sizes)
            pixels = to_tensor([to_size(image, width, height)])
            latent = self._encode(pixels)
            flipped = (self._encode(torch.flip(pixels, dims=[3])) if self.preset.flip
                       else latent)
            grouped.setdefault((width, height), []).append((latent, flipped, position[caption]))
            if on_item is not None:
                on_item(index + 1, len(images))
        self.buckets = [_Bucket(key, torch.cat([i[0] for i in items]),
                                torch.cat([i[1] for i in items]),
                                torch.tensor([i[2] for i in items]))
                        for key, items in sorted(grouped.items())]
        self.embeddings = torch.cat([self._embed(every[i:i + ENCODE_CHUNK])
                                     for i in range(0, len(every), ENCODE_CHUNK)])
        self.short_of = torch.arange(len(every))
        for caption, short in zip(unique, shorts, strict=True):
            self.short_of[position[caption]] = position[short]
        self.empty = self._embed([""])[0]
        if self.preset.keep_unconditional > 0:
            for number, bucket in enumerate(self.buckets):
                bucket.anchors = self._prepare_anchors(bucket, number)

    @property
    def bucket_summary(self) -> list[dict[str, int]]:
        return [{"width": b.size[0], "height": b.size[1], "images": len(b.latents)}
                for b in self.buckets]

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        # The distribution's mean: a cached sample would freeze one draw of VAE noise anyway.
        latent = self.vae.encode(pixels).latent_dist.mean
        return latent * self.vae.config.scaling_factor

    def _embed(self, captions: list[str]) -> torch.Tensor:
        tok = self.pipe.tokenizer
        ids = tok(captions, padding="max_length", max_length=tok.model_max_length,
                  truncation=True, return_tensors="pt").input_ids
        return self.text_encoder(ids)[0]

    @torch.no_grad()
    def _prepare_anchors(self, bucket: _Bucket,
                         number: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Base-model predictions for empty captions on a pool of noisy training latents.

        Classifier-free guidance extrapolates from the unconditional prediction towards the
        conditional one.  A LoRA on every attention layer also drags the unconditional
        prediction towards the training images, which shrinks exactly the difference that
        guidance amplifies: on the demo model the concept then vanishes at guidance 5-7.
        So a share of each batch (``keep_unconditional``) is an *anchor*: empty caption, and
        the frozen base model's own prediction as the target, which keeps that difference
        the LoRA's.  The targets do not depend on the LoRA, so they are computed once here
        (with the adapter switched off) instead of by an extra forward pass every step."""
        assert self.empty is not None
        size = ANCHORS_PER_BATCH_ITEM * self.preset.batch_size
        generator = torch.Generator().manual_seed(self.seed + 1 + number)
        index = torch.randint(0, len(bucket.latents), (size,), generator=generator)
        flip = (torch.rand(size, generator=generator) < 0.5).view(-1, 1, 1, 1)
        clean = torch.where(flip, bucket.flipped[index], bucket.latents[index])
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (size,),
                                  generator=generator)
        noisy = self.noise_scheduler.add_noise(clean, noise, timesteps)
        targets = []
        self.unet.disable_adapters()
        try:
            for i in range(0, size, self.preset.batch_size):
                chunk = slice(i, i + self.preset.batch_size)
                empty = self.empty.expand(len(noisy[chunk]), -1, -1)
                targets.append(self.unet(noisy[chunk], timesteps[chunk],
                                         encoder_hidden_states=empty).sample)
        finally:
            self.unet.enable_adapters()
        return noisy, timesteps, torch.cat(targets)

    # --- training

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Noisy latents, timesteps, embeddings and targets of step ``step``, a pure function
        of it (and of the seed)."""
        assert self.buckets and self.embeddings is not None
        rng = np.random.default_rng([self.seed, step])
        bucket = self.buckets[0]
        if len(self.buckets) > 1:
            # Buckets take turns in proportion to their images, as kohya's loader does.
            counts = np.array([len(b.latents) for b in self.buckets], dtype=np.float64)
            bucket = self.buckets[int(rng.choice(len(self.buckets), p=counts / counts.sum()))]
        count = len(bucket.latents)
        size = self.preset.batch_size
        index = (rng.permutation(count)[:size] if size <= count
                 else rng.integers(0, count, size=size))
        flip = torch.from_numpy(rng.random(len(index)) < 0.5).view(-1, 1, 1, 1)
        latents = torch.where(flip, bucket.flipped[index], bucket.latents[index])
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps,
                                  (len(index),), generator=generator)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        rows_of = bucket.caption_of[index]
        if self.preset.caption_tag_dropout > 0:
            short = torch.from_numpy(rng.random(len(index)) < self.preset.caption_tag_dropout)
            rows_of = torch.where(short, self.short_of[rows_of], rows_of)
        embeddings = self.embeddings[rows_of]
        keep = np.flatnonzero(rng.random(len(index)) < self.preset.keep_unconditional)
        if len(keep) and bucket.anchors is not None:
            assert self.empty is not None
            pool_noisy, pool_timesteps, pool_targets = bucket.anchors
            pick = torch.from_numpy(rng.integers(0, len(pool_noisy), size=len(keep)))
            rows = torch.from_numpy(keep)
            noisy[rows] = pool_noisy[pick]
            timesteps[rows] = pool_timesteps[pick]
            target[rows] = pool_targets[pick]
            embeddings[rows] = self.empty  # a copy already: advanced indexing
        return noisy, timesteps, embeddings, target

    def train_step(self) -> float:
        started = time.perf_counter()
        noisy, timesteps, embeddings, target = self.batch(self.step)
        factor = lr_factor(self.step, self.preset.steps, self.preset.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = self.preset.learning_rate * factor
        pred = self.unet(noisy, timesteps, encoder_hidden_states=embeddings).sample
        loss = F.mse_loss(pred.float(), target.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at step {self.step + 1}; "
                                     "lower the learning rate")
        self.step += 1
        self.losses.append(value)
        self.elapsed += time.perf_counter() - started
        return value

    # --- sampling and weights

    @torch.no_grad()
    def sample(self, prompt: str, seed: int, steps: int | None = None,
               guidance: float | None = None) -> Image.Image:
        """One image from the base model with the LoRA as trained so far."""
        self.unet.eval()
        try:
            size = self.preset.resolution
            return self.pipe(
                prompt, height=size, width=size,
                num_inference_steps=steps or self.preset.sample_steps,
                guidance_scale=self.preset.sample_guidance if guidance is None else guidance,
                generator=torch.Generator().manual_seed(seed),
            ).images[0]
        finally:
            self.unet.train()

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter in PEFT naming (``down_blocks.2....to_q.lora_A.weight``)."""
        from peft.utils import get_peft_model_state_dict

        return {k: v.detach().clone().contiguous()
                for k, v in get_peft_model_state_dict(self.unet).items()}

    # --- checkpoints

    def save_checkpoint(self, folder: Path, extra: dict[str, Any] | None = None) -> Path:
        """Atomically write everything needed to continue from this step."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CHECKPOINT
        tmp = folder / f"{CHECKPOINT}.tmp"
        torch.save({"step": self.step, "lora": self.lora_state_dict(),
                    "optimizer": self.optimizer.state_dict(), "losses": list(self.losses),
                    "elapsed": self.elapsed, "preset": self.preset.to_dict(),
                    "seed": self.seed, "extra": extra or {}}, tmp)
        os.replace(tmp, path)
        return path

    def load_checkpoint(self, folder: Path) -> dict[str, Any] | None:
        """Restore from ``folder`` if it holds a checkpoint of this same run; returns its
        ``extra``, or None when there is nothing (usable) to resume from."""
        from peft.utils import set_peft_model_state_dict

        path = folder / CHECKPOINT
        if not path.is_file():
            return None
        state = torch.load(path, weights_only=True)
        if state.get("preset") != self.preset.to_dict() or state.get("seed") != self.seed:
            return None
        set_peft_model_state_dict(self.unet, state["lora"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.losses = [float(x) for x in state["losses"]]
        self.elapsed = float(state["elapsed"])
        return dict(state.get("extra") or {})
