"""The LoRA trainer: peft LoRA on a model's denoiser (an SD UNet or a FLUX transformer).

One ``LoraTrainer`` holds a loaded base model with a LoRA adapter on its family's
``lora_targets``, the dataset's cached latents and caption embeddings, and the optimizer.
``train_step`` runs one step of the family's objective (``objectives.py``: MSE against the
noise or v for SD, against ``ε - x`` for FLUX's flow matching); everything else here (caching,
buckets, seeded batches, anchors, checkpoints) is the same for every family.

What makes it cheap on a CPU: the VAE and the text encoders are frozen, so each image's
latent and each caption's embedding are computed once up front instead of on every step; so
are the base model's unconditional "anchor" targets (``_prepare_anchors``); only the LoRA
matrices get gradients, and one fused AdamW kernel updates them all.  On an accelerator it
trains in mixed precision, with gradient checkpointing and 8-bit AdamW where they apply
(``precision.py``); the cached tensors stay on the CPU and each batch moves to the device.

What makes it resumable: the batch, flips, noise and timesteps of step ``n`` come from an
RNG seeded with ``(seed, n)``, and the learning rate is a pure function of ``n``, so a run
restored from a checkpoint at step ``n`` continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from ronghe.engines.diffusion import families
from ronghe.engines.diffusion.device import device_kind
from ronghe.engines.training.data import (
    bucket_sizes,
    cover_box,
    nearest_bucket,
    to_size,
    to_tensor,
)
from ronghe.engines.training.objectives import Cond, Objective, objective_for
from ronghe.engines.training.precision import (
    TrainPrecision,
    bitsandbytes_available,
    pick_precision,
)
from ronghe.engines.training.presets import Preset

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


def load_pipeline(model_dir: Path, family: str = "demo",
                  dtype: torch.dtype | None = None) -> Any:
    """A ``family`` model's txt2img pipeline on the CPU, as the trainer loads it."""
    info = families.get(family)
    return objective_for(info).load(model_dir, info, dtype)


class _Bucket:
    """The cached latents of one aspect-ratio bucket and its base-model anchors."""

    def __init__(self, size: tuple[int, int], latents: torch.Tensor, flipped: torch.Tensor,
                 caption_of: torch.Tensor, conds: torch.Tensor | None = None,
                 conds_flipped: torch.Tensor | None = None) -> None:
        self.size = size
        self.latents = latents
        self.flipped = flipped
        self.caption_of = caption_of
        # Per-image conditioning beside the caption (SDXL's time ids), plain and flipped.
        self.conds = conds
        self.conds_flipped = conds_flipped
        # (noisy, timesteps, targets, image conditioning) of the anchor pool.
        self.anchors: tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                            torch.Tensor | None] | None = None

    def image_cond(self, index: torch.Tensor | np.ndarray,
                   flip: torch.Tensor) -> torch.Tensor | None:
        if self.conds is None or self.conds_flipped is None:
            return None
        return torch.where(flip.view(-1, 1), self.conds_flipped[index], self.conds[index])


class Batch(NamedTuple):
    """One step's inputs, on the CPU: noisy latents, timesteps, caption embeddings, target,
    and the per-image conditioning (None where the family has none)."""

    noisy: torch.Tensor
    timesteps: torch.Tensor
    cond: Cond
    target: torch.Tensor
    image_cond: torch.Tensor | None


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class LoraTrainer:
    def __init__(self, model_dir: Path, preset: Preset, seed: int = 0, family: str = "demo",
                 device: str = "cpu", precision: TrainPrecision | None = None,
                 dtype: str = "auto") -> None:
        """``precision`` None: decided for the family and device (``pick_precision``, with
        ``dtype`` as settings' ``image_dtype``)."""
        from peft import LoraConfig

        self.preset = preset
        self.seed = seed
        self.family = families.get(family)
        self.device = device
        self.precision = precision or pick_precision(self.family, device, dtype,
                                                     bitsandbytes_available())
        self.weights_dtype = _DTYPES[self.precision.weights]
        kind = objective_for(self.family)
        self.pipe = kind.load(model_dir, self.family, self.weights_dtype)
        self.objective: Objective = kind(self.pipe, preset)
        self.denoiser = self.objective.denoiser
        for frozen in self.objective.frozen():
            frozen.requires_grad_(False)
            frozen.eval()
        # Same seed, same initial LoRA; fork_rng keeps the process-wide RNG untouched for
        # whatever else runs in this process.  Made on the CPU, so every device starts alike.
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.denoiser.add_adapter(LoraConfig(
                r=preset.rank, lora_alpha=preset.alpha, init_lora_weights="gaussian",
                target_modules=list(self.family.lora_targets)))
        self.params = [p for p in self.denoiser.parameters() if p.requires_grad]
        if self.weights_dtype != torch.float32:
            # Mixed precision: the LoRA learns in float32 over half-precision base weights.
            for param in self.params:
                param.data = param.data.float()
        if self.precision.gradient_checkpointing:
            self.denoiser.enable_gradient_checkpointing()
        if device_kind(device) != "cpu":
            self.pipe.to(device)
        self.optimizer = self._optimizer()
        self.scaler = (torch.amp.GradScaler(device_kind(device))
                       if self.precision.grad_scaler else None)
        self.denoiser.train()
        self.step = 0
        self.losses: list[float] = []
        self.elapsed = 0.0
        # One per aspect-ratio bucket; a square dataset (or the demo preset) has one.
        self.buckets: list[_Bucket] = []
        self.embeddings: Cond | None = None
        # Per distinct caption: the row of its trigger-only form (kohya's keep_tokens=1),
        # used instead of it at the rate caption_tag_dropout.
        self.short_of = torch.zeros(0, dtype=torch.long)
        self.empty: Cond | None = None

    @property
    def unet(self) -> torch.nn.Module:
        """The denoiser (a UNet for SD families; kept under its SD name for callers)."""
        return self.denoiser

    def _optimizer(self) -> torch.optim.Optimizer:
        if self.precision.optimizer == "adamw8bit":
            import bitsandbytes as bnb

            # 8-bit state: a quarter of AdamW's optimizer memory.
            return bnb.optim.AdamW8bit(self.params, lr=self.preset.learning_rate,
                                       weight_decay=1e-2)
        # fused: one kernel for all LoRA tensors instead of a Python loop over ~100 of them.
        return torch.optim.AdamW(self.params, lr=self.preset.learning_rate,
                                 weight_decay=1e-2, fused=True)

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.precision.autocast is None:
            yield
            return
        with torch.autocast(device_kind(self.device), dtype=_DTYPES[self.precision.autocast]):
            yield

    # --- data

    @torch.no_grad()
    def prepare(self, images: list[Image.Image], captions: list[str],
                on_item: Callable[[int, int], None] | None = None) -> None:
        """Cache latents (and flipped latents) of every image, bucket by bucket, and each
        caption's embedding."""
        if not images or len(images) != len(captions):
            raise ValueError("prepare needs one caption per image and at least one image")
        size = self.preset.resolution
        sizes = (bucket_sizes(size, self.objective.size_step) if self.preset.buckets
                 else [(size, size)])
        unique = list(dict.fromkeys(captions))
        shorts = [c.split(",", 1)[0].strip() for c in unique]
        every = list(dict.fromkeys(unique + shorts))
        position = {caption: i for i, caption in enumerate(every)}
        grouped: dict[tuple[int, int], list[tuple[Any, ...]]] = {}
        with self._vae_for_encoding():
            for index, (image, caption) in enumerate(zip(images, captions, strict=True)):
                width, height = nearest_bucket(image.width, image.height, sizes)
                pixels = to_tensor([to_size(image, width, height)])
                latent = self._encode(pixels)
                flipped = (self._encode(torch.flip(pixels, dims=[3])) if self.preset.flip
                           else latent)
                cond, cond_flipped = self._image_conds(image, width, height)
                grouped.setdefault((width, height), []).append(
                    (latent, flipped, position[caption], cond, cond_flipped))
                if on_item is not None:
                    on_item(index + 1, len(images))
        self.buckets = [_Bucket(key, torch.cat([i[0] for i in items]),
                                torch.cat([i[1] for i in items]),
                                torch.tensor([i[2] for i in items]),
                                *_stacked([i[3] for i in items], [i[4] for i in items]))
                        for key, items in sorted(grouped.items())]
        chunks = [self._embed(every[i:i + ENCODE_CHUNK])
                  for i in range(0, len(every), ENCODE_CHUNK)]
        self.embeddings = {key: torch.cat([chunk[key] for chunk in chunks])
                           for key in chunks[0]}
        self.short_of = torch.arange(len(every))
        for caption, short in zip(unique, shorts, strict=True):
            self.short_of[position[caption]] = position[short]
        self.empty = self.objective.empty()
        if self.preset.keep_unconditional > 0:
            for number, bucket in enumerate(self.buckets):
                bucket.anchors = self._prepare_anchors(bucket, number)

    @property
    def bucket_summary(self) -> list[dict[str, int]]:
        return [{"width": b.size[0], "height": b.size[1], "images": len(b.latents)}
                for b in self.buckets]

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.objective.encode_images(pixels)

    def _embed(self, captions: list[str]) -> Cond:
        return self.objective.encode_prompts(captions)

    @contextlib.contextmanager
    def _vae_for_encoding(self) -> Iterator[None]:
        """The VAE in its encoding precision (float32 over float16 weights: SDXL's VAE
        overflows in float16) while the images are cached, then back for the previews."""
        vae, wanted = self.pipe.vae, _DTYPES[self.precision.vae]
        if vae.dtype == wanted:
            yield
            return
        before = vae.dtype
        vae.to(dtype=wanted)
        try:
            yield
        finally:
            vae.to(dtype=before)

    def _image_conds(self, image: Image.Image, width: int,
                     height: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The family's per-image conditioning of the image as cropped, and of its mirror
        image (whose crop corner is measured from the other side)."""
        cover_w, _, left, top = cover_box(image.width, image.height, width, height)
        original = (image.width, image.height)
        plain = self.objective.image_conditioning(original, (left, top), (width, height))
        if plain is None or not self.preset.flip:
            return plain, plain
        mirrored = self.objective.image_conditioning(
            original, (cover_w - left - width, top), (width, height))
        return plain, mirrored

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """A batch tensor on the device; floats in the weights' precision (no-op on CPU)."""
        if tensor.is_floating_point():
            return tensor.to(self.device, self.weights_dtype)
        return tensor.to(self.device)

    def _predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Cond,
                 image_cond: torch.Tensor | None) -> torch.Tensor:
        moved = {k: self._to_device(v) for k, v in cond.items()}
        extra = self._to_device(image_cond) if image_cond is not None else None
        with self._autocast():
            return self.objective.predict(self._to_device(noisy), timesteps.to(self.device),
                                          moved, extra)

    @torch.no_grad()
    def _prepare_anchors(self, bucket: _Bucket, number: int) -> tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
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
        image_cond = bucket.image_cond(index, flip)
        noisy, timesteps, _ = self.objective.noise(clean, generator)
        targets = []
        self.denoiser.disable_adapters()
        try:
            for i in range(0, size, self.preset.batch_size):
                chunk = slice(i, i + self.preset.batch_size)
                count = len(noisy[chunk])
                empty = {k: v.expand(count, *v.shape) for k, v in self.empty.items()}
                pred = self._predict(noisy[chunk], timesteps[chunk], empty,
                                     image_cond[chunk] if image_cond is not None else None)
                targets.append(pred.float().cpu())
        finally:
            self.denoiser.enable_adapters()
        return noisy, timesteps, torch.cat(targets), image_cond

    # --- training

    def batch(self, step: int) -> Batch:
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
        image_cond = bucket.image_cond(index, flip)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        noisy, timesteps, target = self.objective.noise(latents, generator)
        rows_of = bucket.caption_of[index]
        if self.preset.caption_tag_dropout > 0:
            short = torch.from_numpy(rng.random(len(index)) < self.preset.caption_tag_dropout)
            rows_of = torch.where(short, self.short_of[rows_of], rows_of)
        # Copies already: advanced indexing.
        embeddings = {key: value[rows_of] for key, value in self.embeddings.items()}
        keep = np.flatnonzero(rng.random(len(index)) < self.preset.keep_unconditional)
        if len(keep) and bucket.anchors is not None:
            assert self.empty is not None
            pool_noisy, pool_timesteps, pool_targets, pool_conds = bucket.anchors
            pick = torch.from_numpy(rng.integers(0, len(pool_noisy), size=len(keep)))
            rows = torch.from_numpy(keep)
            noisy[rows] = pool_noisy[pick]
            timesteps[rows] = pool_timesteps[pick]
            target[rows] = pool_targets[pick]
            for key, value in embeddings.items():
                value[rows] = self.empty[key]
            if image_cond is not None and pool_conds is not None:
                image_cond[rows] = pool_conds[pick]
        return Batch(noisy, timesteps, embeddings, target, image_cond)

    def train_step(self) -> float:
        started = time.perf_counter()
        batch = self.batch(self.step)
        factor = lr_factor(self.step, self.preset.steps, self.preset.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = self.preset.learning_rate * factor
        pred = self._predict(batch.noisy, batch.timesteps, batch.cond, batch.image_cond)
        loss = self.objective.loss(pred, batch.target.to(self.device),
                                   batch.timesteps.to(self.device))
        if self.scaler is not None:
            # float16: the loss scaled up so small gradients do not underflow, unscaled
            # before clipping; a step with inf/NaN gradients is skipped and the scale halves.
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, 1.0, foreach=True)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
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
        self.denoiser.eval()
        try:
            size = self.preset.resolution
            return self.pipe(
                prompt, height=size, width=size,
                num_inference_steps=steps or self.preset.sample_steps,
                guidance_scale=self.preset.sample_guidance if guidance is None else guidance,
                generator=torch.Generator().manual_seed(seed),
                **self.objective.sample_kwargs(),
            ).images[0]
        finally:
            self.denoiser.train()

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter in PEFT naming (``down_blocks.2....to_q.lora_A.weight``), float32 on
        the CPU."""
        from peft.utils import get_peft_model_state_dict

        return {k: v.detach().float().cpu().clone().contiguous()
                for k, v in get_peft_model_state_dict(self.denoiser).items()}

    def lora_config(self) -> dict[str, Any]:
        return dict(self.denoiser.peft_config["default"].to_dict())

    # --- checkpoints

    def save_checkpoint(self, folder: Path, extra: dict[str, Any] | None = None) -> Path:
        """Atomically write everything needed to continue from this step."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CHECKPOINT
        tmp = folder / f"{CHECKPOINT}.tmp"
        torch.save({"step": self.step, "lora": self.lora_state_dict(),
                    "optimizer": self.optimizer.state_dict(), "losses": list(self.losses),
                    "elapsed": self.elapsed, "preset": self.preset.to_dict(),
                    "seed": self.seed, "extra": extra or {},
                    "scaler": self.scaler.state_dict() if self.scaler else None}, tmp)
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
        # Compared as presets: a checkpoint written before a field was added still matches.
        preset = state.get("preset")
        if (not isinstance(preset, dict) or Preset.from_dict(preset) != self.preset
                or state.get("seed") != self.seed):
            return None
        set_peft_model_state_dict(self.denoiser, state["lora"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.losses = [float(x) for x in state["losses"]]
        self.elapsed = float(state["elapsed"])
        return dict(state.get("extra") or {})


def _stacked(plain: list[torch.Tensor | None],
             flipped: list[torch.Tensor | None]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A bucket's per-image conditioning as two tensors (None where the family has none)."""
    if any(c is None for c in plain) or any(c is None for c in flipped):
        return None, None
    return torch.stack(plain), torch.stack(flipped)  # type: ignore[arg-type]
