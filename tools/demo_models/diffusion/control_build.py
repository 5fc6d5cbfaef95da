"""Build (train) a further ControlNet for the shipped demo model: ``brightness`` or ``tile``.

The recipe of the canny ControlNet (``build.py``'s phase 2), on the frozen shipped model:
the same procedural images, a single conditioning block, lr 5e-4, 20 % empty captions.  Only
the control map differs, and it is made by the very functions Ronghe serves with
(``engines/diffusion/control``), so training and serving see the same maps.  Resumable: the
state is checkpointed every few minutes and on SIGTERM/SIGINT, and batch ``n`` is drawn from
an RNG seeded with (seed, kind, n), so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ronghe.engines.diffusion import control
from tools.demo_models import resumable
from tools.demo_models.diffusion import modules, shapes
from tools.demo_models.diffusion.build import _lr_factor, _to_tensor
from tools.demo_models.diffusion.tokenizer import build_tokenizer

KINDS = ("brightness", "tile")


def control_map(kind: str, image: Image.Image, rate: int = 1) -> Image.Image:
    """The map a ``kind`` ControlNet reads, as the API makes it for ``brightness`` and
    ``tile_resample`` at the 32x32 render size."""
    size = image.size
    if kind == "brightness":
        return control.control_image(image, size, "brightness")
    return control.control_image(image, size, "tile_resample", rate=rate)


@dataclass
class ControlBuildConfig:
    kind: str = "brightness"
    seed: int = 0
    steps: int = 700
    batch_size: int = 32
    lr: float = 5e-4
    warmup: int = 200
    snr_gamma: float = 5.0
    empty_caption_p: float = 0.2
    checkpoint_minutes: float = 3.0
    threads: int = 2

    @classmethod
    def smoke(cls, kind: str, seed: int = 0) -> ControlBuildConfig:
        return cls(kind=kind, seed=seed, steps=3, batch_size=4, warmup=2)


_FREE_ON_RESUME = {"steps", "checkpoint_minutes", "threads"}


class _Trainer:
    def __init__(self, config: ControlBuildConfig, model: Path, work: Path) -> None:
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        if config.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        self.config, self.work = config, work
        self.tokenizer = build_tokenizer()
        self.unet = UNet2DConditionModel.from_pretrained(model / "unet").requires_grad_(False)
        self.text = CLIPTextModel.from_pretrained(model / "text_encoder").requires_grad_(False)
        self.unet.eval()
        self.text.eval()
        scheduler = modules.make_train_scheduler()
        alphas = scheduler.alphas_cumprod
        self.sqrt_alpha, self.sqrt_sigma = alphas.sqrt(), (1 - alphas).sqrt()
        snr = alphas / (1 - alphas)
        self.loss_weight = torch.clamp(config.snr_gamma / (snr + 1), max=1.0)
        torch.manual_seed(config.seed + 1 + KINDS.index(config.kind))
        self.controlnet = modules.make_controlnet(self.unet)
        self.optimizer = torch.optim.AdamW(self.controlnet.parameters(), lr=config.lr,
                                           weight_decay=0.01)
        self.step, self.elapsed, self.stop_requested = 0, 0.0, False

    @property
    def checkpoint_path(self) -> Path:
        return self.work / f"controlnet-{self.config.kind}.pt"

    def save(self) -> None:
        state = {"config": asdict(self.config), "step": self.step, "elapsed": self.elapsed,
                 "controlnet": self.controlnet.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
        resumable.save(self.checkpoint_path, state)

    def load(self) -> bool:
        state = resumable.load(self.checkpoint_path, asdict(self.config), _FREE_ON_RESUME)
        if state is None:
            return False
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.controlnet.load_state_dict(state["controlnet"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        return True

    def _batch(self, step: int):
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, 2 + KINDS.index(cfg.kind), step])
        images, _, combos = shapes.sample_batch(rng, cfg.batch_size)
        # tile: every down_sample_rate the API accepts, 1 (the image itself) to 8 (4x4 px).
        rates = rng.integers(control.DOWN_SAMPLE_MIN, control.DOWN_SAMPLE_MAX + 1,
                             size=len(images))
        maps = [control_map(cfg.kind, im, int(r)) for im, r in zip(images, rates, strict=True)]
        captions = ["" if rng.random() < cfg.empty_caption_p else c.caption for c in combos]
        ids = self.tokenizer(captions, padding="max_length", truncation=True,
                             return_tensors="pt").input_ids
        return _to_tensor(images), _to_tensor(maps) * 0.5 + 0.5, ids

    def train_step(self) -> float:
        cfg = self.config
        x0, cond, ids = self._batch(self.step)
        t = torch.randint(0, len(self.sqrt_alpha), (x0.shape[0],))
        noise = torch.randn_like(x0)
        a, s = self.sqrt_alpha[t].view(-1, 1, 1, 1), self.sqrt_sigma[t].view(-1, 1, 1, 1)
        xt, target = a * x0 + s * noise, a * noise - s * x0
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * _lr_factor(self.step, cfg.warmup)
        with torch.no_grad():
            hidden = self.text(ids)[0]
        down, mid = self.controlnet(xt, t, encoder_hidden_states=hidden, controlnet_cond=cond,
                                    return_dict=False)
        pred = self.unet(xt, t, encoder_hidden_states=hidden,
                         down_block_additional_residuals=down,
                         mid_block_additional_residual=mid).sample
        per_sample = torch.nn.functional.mse_loss(pred, target, reduction="none").mean((1, 2, 3))
        loss = (per_sample * self.loss_weight[t]).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.controlnet.parameters(), 1.0)
        self.optimizer.step()
        return float(loss.detach())

    def run(self, stop_after: int | None = None) -> bool:
        """Train to the end (True), or checkpoint and stop (False) on SIGTERM/SIGINT or
        after ``stop_after`` steps."""
        last_save, running, done_here = time.monotonic(), None, 0
        bar = tqdm(total=self.config.steps, initial=self.step, desc=self.config.kind,
                   unit="step", mininterval=0.1 if sys.stderr.isatty() else 30.0)
        while self.step < self.config.steps:
            started = time.monotonic()
            loss = self.train_step()
            self.step += 1
            done_here += 1
            self.elapsed += time.monotonic() - started
            running = loss if running is None else 0.98 * running + 0.02 * loss
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}", refresh=False)
            if time.monotonic() - last_save > self.config.checkpoint_minutes * 60:
                self.save()
                last_save = time.monotonic()
            if self.stop_requested or (stop_after is not None and done_here >= stop_after):
                bar.close()
                self.save()
                return False
        bar.close()
        self.save()
        return True


def build(model: Path, out: Path, config: ControlBuildConfig, work: Path,
          resume: bool = True) -> dict | None:
    """Train (or resume) and write the ControlNet folder; None when stopped by a signal."""
    torch.set_num_threads(config.threads)
    work.mkdir(parents=True, exist_ok=True)
    trainer = _Trainer(config, model, work)
    if resume and trainer.load():
        print(f"resumed from {trainer.checkpoint_path}: step {trainer.step}")

    def request_stop() -> None:
        trainer.stop_requested = True

    with resumable.stop_on_signals(request_stop):
        if not trainer.run():
            print(f"stopped at step {trainer.step}; checkpoint saved")
            return None
    meta = {"family": "demo", "control": config.kind, "base": model.name, "seed": config.seed,
            "controlnet_steps": trainer.step, "batch_size": config.batch_size,
            "controlnet_train_seconds": round(trainer.elapsed)}
    out.mkdir(parents=True, exist_ok=True)
    trainer.controlnet.save_pretrained(out, safe_serialization=True)
    (out / "ronghe.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
