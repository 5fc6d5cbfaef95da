"""LoRA training speed: Ronghe's trainer against a plain diffusers + peft loop.

Both train the same LoRA (rank, alpha, target modules, learning rate, batch size,
resolution, AdamW, gradient clipping) on the same base model and the same images, with the
same torch thread count.  The plain loop is the one diffusers' ``train_text_to_image_lora.py``
runs: every step its dataset transform resizes, crops, flips and normalises the batch's
images and tokenizes their captions (the script's ``preprocess_train``; PIL and numpy stand
in for torchvision, which is not installed), the VAE and the text encoder encode them, then
the UNet runs forward and backward.  Ronghe's trainer (``LoraTrainer.train_step``) caches
latents and caption embeddings once, so a step is the UNet alone.  On the tiny demo model the
VAE and text encoder cost little, so the two should be close; on SD 1.5 the per-step VAE
encode at 512 px is a large share of a step.

Steps are timed in alternating blocks (plain, Ronghe, plain, …, which goes first
alternates), and the ratio is the median of the per-pair ratios, so load that drifts during
the run (the machine is shared) moves both halves of a pair alike.  Target: >= 1.0.

Two Ronghe variants are timed: ``ronghe`` is the preset as users get it (a share of each
batch are unconditional anchors whose targets were computed once before training, see
docs/training.md) and ``ronghe-same-work`` turns the anchors off, so both sides compute
exactly the same loss.

    python bench/training.py --blocks 6 --steps 20 --threads 1
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# `python bench/training.py` puts only bench/ on the path: the pictures are drawn by the
# demo models' tools (tools/demo_models, in the repository, not in the package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ImageOps

from ronghe.engines.shipped import default_model_path
from ronghe.engines.training.data import to_square, to_tensor
from ronghe.engines.training.lora import LoraTrainer, load_pipeline, lr_factor
from ronghe.engines.training.presets import TARGET_MODULES, Preset, preset_for
from tools.demo_models.diffusion import shapes

CAPTION = "purple star style"


def images(count: int) -> list:
    rng = np.random.default_rng(0)
    return [shapes.draw("purple", "star", "white", rng)[0] for _ in range(count)]


class PlainLoop:
    """diffusers' train_text_to_image_lora.py, minus accelerate (one CPU process)."""

    def __init__(self, model: Path, preset: Preset, pictures: list, seed: int = 0) -> None:
        from diffusers import DDPMScheduler
        from peft import LoraConfig

        self.preset = preset
        pipe = load_pipeline(model)
        self.unet, self.vae, self.text_encoder = pipe.unet, pipe.vae, pipe.text_encoder
        self.tokenizer = pipe.tokenizer
        for frozen in (self.unet, self.vae, self.text_encoder):
            frozen.requires_grad_(False)
        self.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        torch.manual_seed(seed)
        self.unet.add_adapter(LoraConfig(r=preset.rank, lora_alpha=preset.alpha,
                                         init_lora_weights="gaussian",
                                         target_modules=list(TARGET_MODULES)))
        self.params = [p for p in self.unet.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=preset.learning_rate,
                                           weight_decay=1e-2)
        self.pictures = pictures
        self.step = 0
        self.unet.train()

    def load_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """What the script's DataLoader hands over: transformed pixels and token ids."""
        index = torch.randperm(len(self.pictures))[: self.preset.batch_size].tolist()
        squares = [to_square(self.pictures[i], self.preset.resolution) for i in index]
        squares = [ImageOps.mirror(s) if self.preset.flip and random.random() < 0.5 else s
                   for s in squares]
        ids = self.tokenizer([CAPTION] * len(index), padding="max_length",
                             max_length=self.tokenizer.model_max_length, truncation=True,
                             return_tensors="pt").input_ids
        return to_tensor(squares), ids

    def train_step(self) -> float:
        pixels, ids = self.load_batch()
        with torch.no_grad():
            latents = self.vae.encode(pixels).latent_dist.sample()
            latents = latents * self.vae.config.scaling_factor
            hidden = self.text_encoder(ids)[0]
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps,
                                  (len(latents),))
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        if self.scheduler.config.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        for group in self.optimizer.param_groups:
            group["lr"] = self.preset.learning_rate * lr_factor(
                self.step, self.preset.steps, self.preset.warmup_steps)
        pred = self.unet(noisy, timesteps, encoder_hidden_states=hidden).sample
        loss = F.mse_loss(pred.float(), target.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return float(loss.detach())


def timed(step: Callable[[], float], steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--main-body", default="Style")
    parser.add_argument("--family", default="demo")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--blocks", type=int, default=6, help="timed blocks per side")
    parser.add_argument("--steps", type=int, default=20, help="steps per block")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    preset = preset_for(args.family, args.main_body)
    pictures = images(args.images)
    sides: dict[str, Callable[[], float]] = {}
    plain = PlainLoop(args.model, preset, pictures)
    sides["plain"] = plain.train_step
    for name, variant in (("ronghe", preset),
                          ("ronghe-same-work", replace(preset, keep_unconditional=0.0))):
        trainer = LoraTrainer(args.model, variant, seed=0)
        trainer.prepare(pictures, [CAPTION] * len(pictures))
        sides[name] = trainer.train_step
    for step in sides.values():
        for _ in range(args.warmup):
            step()

    rates: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for block in range(args.blocks):
        order = names if block % 2 == 0 else names[::-1]
        for name in order:
            rates[name].append(timed(sides[name], args.steps))

    print(f"model {args.model.name}, family {args.family}, main_body {args.main_body}: "
          f"rank {preset.rank}, batch {preset.batch_size}, {preset.resolution}px, "
          f"{args.threads} thread(s), {args.blocks} blocks x {args.steps} steps, "
          f"load average {os.getloadavg()[0]:.2f}")
    for name in names:
        print(f"  {name:18s} {statistics.median(rates[name]):6.2f} steps/s "
              f"(blocks {min(rates[name]):.2f}-{max(rates[name]):.2f})")
    for name in names[1:]:
        ratios = [r / p for r, p in zip(rates[name], rates["plain"], strict=True)]
        print(f"  ratio {name} / plain: {statistics.median(ratios):.3f} "
              f"(pairs {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
