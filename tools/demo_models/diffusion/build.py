"""Build (train) the demo model and its canny ControlNet. Resumable.

Three phases, all on procedurally drawn 32x32 images:
1. UNet + text encoder, trained jointly (text-to-image, v-prediction, zero-SNR).
1b. "refine": from phase 1's EMA weights, captions of varied length and word order and
   more weight on the low-noise steps that draw edges.
2. ControlNet (canny edges -> image) on top of the frozen phase-1b model.

Training state is checkpointed to ``<work>/checkpoint.pt`` every few minutes and
on SIGTERM/SIGINT; batches are drawn from an RNG seeded with (seed, phase, step),
so a resumed run sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tools.demo_models import resumable
from tools.demo_models.diffusion import modules, shapes
from tools.demo_models.diffusion.tokenizer import build_tokenizer


@dataclass
class BuildConfig:
    seed: int = 0
    # The shipped build (src/ronghe/models/demo/ronghe.json -> build).
    steps: int = 5000
    controlnet_steps: int = 700
    batch_size: int = 32
    lr: float = 1e-3
    controlnet_lr: float = 5e-4
    warmup: int = 200
    empty_caption_p: float = 0.1
    controlnet_empty_caption_p: float = 0.2
    # Min-SNR-style cap: steps with SNR + 1 above this are down-weighted, so the
    # many easy low-noise steps do not drown the high-noise ones that fix colour
    # and layout. Capping SNR + 1 rather than SNR keeps a weight of 1 at the
    # zero-SNR terminal step (v-prediction's min(SNR, g)/(SNR+1) would be 0 there).
    snr_gamma: float = 5.0
    ema_decay: float = 0.999
    # Phase 1b (issue 17). A fresh optimizer on phase 1's EMA weights; its own warm-up and
    # the same total-independent decay. A share of captions is varied (shapes.varied_caption)
    # so prompts with extra words keep their meaning, and gamma 20 gives the low-noise steps
    # that draw crisp edges about four times phase 1's weight.
    refine_steps: int = 2400
    refine_lr: float = 5e-4
    refine_warmup: int = 100
    refine_snr_gamma: float = 20.0
    varied_caption_p: float = 0.6
    # A phase-1 model folder whose UNet and text encoder stand in for phase 1 (skipping
    # it): the 5000-step weights shipped before phase 1b, which phase 1 here reproduces.
    init_from: str = ""
    checkpoint_minutes: float = 3.0
    threads: int = 2
    # Recorded in ronghe.json; sampling defaults the eval (and the API) should use. Full
    # guidance for the first 30 % of the steps, then 1.5 (engines/diffusion/guidance.py).
    sample: dict[str, float] = field(
        default_factory=lambda: {"num_inference_steps": 20, "guidance_scale": 5.0,
                                 "guidance_end": 0.3, "late_guidance_scale": 1.5}
    )

    @classmethod
    def smoke(cls, seed: int = 0) -> BuildConfig:
        """Same architecture, a handful of tiny batches: exercises the machinery only."""
        return cls(seed=seed, steps=6, refine_steps=4, controlnet_steps=4, batch_size=4,
                   warmup=2, refine_warmup=2)


# Config fields that may differ on resume: none of them changes what a given
# step computes (the LR schedule does not depend on the total step count).
_FREE_ON_RESUME = {"checkpoint_minutes", "steps", "refine_steps", "controlnet_steps",
                   "threads", "sample"}
PHASES = ("unet", "refine", "controlnet", "done")


def _lr_factor(step: int, warmup: int) -> float:
    """Linear warm-up, then inverse-square-root decay.

    Deliberately independent of the total step count (unlike cosine): a build
    stopped at step N is exactly a build run with ``steps=N``, so a run on a busy
    machine can be cut short or extended on resume and stay reproducible. The EMA
    of the weights does the smoothing a final LR decay would otherwise do.
    """
    if step < warmup:
        return (step + 1) / warmup
    return math.sqrt(5 * warmup / max(step, 5 * warmup))


def _to_tensor(images: list) -> torch.Tensor:
    array = np.stack([np.asarray(image, dtype=np.float32) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0


class _Trainer:
    def __init__(self, config: BuildConfig, work: Path) -> None:
        self.config = config
        self.work = work
        torch.manual_seed(config.seed)
        self.tokenizer = build_tokenizer()
        self.unet = modules.make_unet()
        self.text_encoder = modules.make_text_encoder()
        self.ema_unet = copy.deepcopy(self.unet).requires_grad_(False)
        self.ema_text = copy.deepcopy(self.text_encoder).requires_grad_(False)
        self.noise_scheduler = modules.make_train_scheduler()
        alphas = self.noise_scheduler.alphas_cumprod
        self.sqrt_alpha = alphas.sqrt()
        self.sqrt_sigma = (1 - alphas).sqrt()
        snr = alphas / (1 - alphas)
        self.loss_weight = torch.clamp(config.snr_gamma / (snr + 1), max=1.0)
        self.refine_loss_weight = torch.clamp(config.refine_snr_gamma / (snr + 1), max=1.0)
        self.optimizer = torch.optim.AdamW(
            [*self.unet.parameters(), *self.text_encoder.parameters()],
            lr=config.lr,
            weight_decay=0.01,
        )
        self.controlnet: torch.nn.Module | None = None
        self.cn_optimizer: torch.optim.Optimizer | None = None
        self.phase = "unet"
        self.step = 0
        self.unet_steps_done = 0
        self.refine_steps_done = 0
        self.elapsed = {"unet": 0.0, "refine": 0.0, "controlnet": 0.0}
        self.stop_requested = False

    # -- state -------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.work / "checkpoint.pt"

    def save(self) -> None:
        state = {
            "config": asdict(self.config),
            "phase": self.phase,
            "step": self.step,
            "unet_steps_done": self.unet_steps_done,
            "refine_steps_done": self.refine_steps_done,
            "elapsed": self.elapsed,
            "unet": self.unet.state_dict(),
            "text_encoder": self.text_encoder.state_dict(),
            "ema_unet": self.ema_unet.state_dict(),
            "ema_text": self.ema_text.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        if self.controlnet is not None and self.cn_optimizer is not None:
            state["controlnet"] = self.controlnet.state_dict()
            state["cn_optimizer"] = self.cn_optimizer.state_dict()
        resumable.save(self.checkpoint_path, state)

    def load(self) -> bool:
        state = resumable.load(self.checkpoint_path, asdict(self.config), _FREE_ON_RESUME)
        if state is None:
            return False
        self.phase, self.step, self.elapsed = state["phase"], state["step"], state["elapsed"]
        self.unet_steps_done = state["unet_steps_done"]
        self.refine_steps_done = state["refine_steps_done"]
        self.unet.load_state_dict(state["unet"])
        self.text_encoder.load_state_dict(state["text_encoder"])
        self.ema_unet.load_state_dict(state["ema_unet"])
        self.ema_text.load_state_dict(state["ema_text"])
        self.optimizer.load_state_dict(state["optimizer"])
        if "controlnet" in state:
            self._start_controlnet()
            assert self.controlnet is not None and self.cn_optimizer is not None
            self.controlnet.load_state_dict(state["controlnet"])
            self.cn_optimizer.load_state_dict(state["cn_optimizer"])
        # Last: _start_controlnet reseeds the global RNG.
        torch.set_rng_state(state["torch_rng"])
        if self.phase == "done" and self.step < self.config.controlnet_steps:
            self.phase = "controlnet"  # resumed with more ControlNet steps
        return True

    # -- training ----------------------------------------------------------
    def start_from(self, folder: Path) -> None:
        """Take a diffusers folder's UNet and text encoder as phase 1's result."""
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        meta = json.loads((folder / "ronghe.json").read_text())
        if meta["build"].get("refine_steps"):
            raise ValueError(f"{folder} has had phase 1b already "
                             f"({meta['build']['refine_steps']} steps); --init-from takes a "
                             "phase-1 model, as phase 1b would otherwise run twice")
        unet = UNet2DConditionModel.from_pretrained(folder / "unet").state_dict()
        text = CLIPTextModel.from_pretrained(folder / "text_encoder").state_dict()
        for model, weights in ((self.unet, unet), (self.ema_unet, unet),
                               (self.text_encoder, text), (self.ema_text, text)):
            model.load_state_dict(weights)
        self.step = meta["build"]["steps"]
        self.elapsed["unet"] = meta["build"]["train_seconds"]
        self._enter("refine")

    def _enter(self, phase: str) -> None:
        """Leave the current phase for ``phase`` (whose step count starts at 0)."""
        if phase == "refine":
            self.unet_steps_done = self.step
            # Its noise starts from the seed, not from where phase 1 left torch's RNG, so a
            # build --init-from a saved phase 1 equals one that trained phase 1 itself.
            torch.manual_seed(self.config.seed + 2)
            # Live weights restart from the smoothed ones; Adam's moments start afresh.
            self.unet.load_state_dict(self.ema_unet.state_dict())
            self.text_encoder.load_state_dict(self.ema_text.state_dict())
            self.optimizer = torch.optim.AdamW(
                [*self.unet.parameters(), *self.text_encoder.parameters()],
                lr=self.config.refine_lr, weight_decay=0.01)
        else:
            self.refine_steps_done = self.step
            self._start_controlnet()
        self.phase, self.step = phase, 0

    def _batch(self, phase: str, step: int, empty_p: float):
        # Streams 0 and 1 are phase 1's and the ControlNet's since the first build.
        stream = {"unet": 0, "controlnet": 1, "refine": 2}[phase]
        rng = np.random.default_rng([self.config.seed, stream, step])
        images, _, combos = shapes.sample_batch(rng, self.config.batch_size)
        varied = self.config.varied_caption_p if phase == "refine" else 0.0
        captions = [
            "" if rng.random() < empty_p
            else shapes.varied_caption(combo, rng) if rng.random() < varied
            else combo.caption
            for combo in combos
        ]
        ids = self.tokenizer(
            captions, padding="max_length", truncation=True, return_tensors="pt"
        ).input_ids
        return images, ids

    def _noisy(self, x0: torch.Tensor):
        t = torch.randint(0, len(self.sqrt_alpha), (x0.shape[0],))
        noise = torch.randn_like(x0)
        a = self.sqrt_alpha[t].view(-1, 1, 1, 1)
        s = self.sqrt_sigma[t].view(-1, 1, 1, 1)
        return a * x0 + s * noise, t, a * noise - s * x0

    def _loss(self, pred: torch.Tensor, target: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        per_sample = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))
        weight = self.refine_loss_weight if self.phase == "refine" else self.loss_weight
        return (per_sample * weight[t]).mean()

    def _ema(self, decay: float) -> None:
        with torch.no_grad():
            for ema, live in ((self.ema_unet, self.unet), (self.ema_text, self.text_encoder)):
                for e, p in zip(ema.parameters(), live.parameters(), strict=True):
                    e.lerp_(p, 1 - decay)

    def train_unet_step(self) -> float:
        """One step of phase 1 or 1b (``self.phase`` says which)."""
        cfg = self.config
        images, ids = self._batch(self.phase, self.step, cfg.empty_caption_p)
        x0 = _to_tensor(images)
        xt, t, target = self._noisy(x0)
        lr, warmup = (cfg.refine_lr, cfg.refine_warmup) if self.phase == "refine" else (
            cfg.lr, cfg.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * _lr_factor(self.step, warmup)
        hidden = self.text_encoder(ids)[0]
        pred = self.unet(xt, t, encoder_hidden_states=hidden).sample
        loss = self._loss(pred, target, t)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            [*self.unet.parameters(), *self.text_encoder.parameters()], 1.0
        )
        self.optimizer.step()
        # EMA warm-up so a short (smoke) build is not dominated by the random init.
        self._ema(min(cfg.ema_decay, (1 + self.step) / (10 + self.step)))
        return float(loss.detach())

    def _start_controlnet(self) -> None:
        self.ema_unet.requires_grad_(False)
        self.ema_text.requires_grad_(False)
        torch.manual_seed(self.config.seed + 1)
        self.controlnet = modules.make_controlnet(self.ema_unet)
        self.cn_optimizer = torch.optim.AdamW(
            self.controlnet.parameters(), lr=self.config.controlnet_lr, weight_decay=0.01
        )

    def train_controlnet_step(self) -> float:
        cfg = self.config
        assert self.controlnet is not None and self.cn_optimizer is not None
        images, ids = self._batch("controlnet", self.step, cfg.controlnet_empty_caption_p)
        x0 = _to_tensor(images)
        control = _to_tensor([shapes.canny(image) for image in images]) * 0.5 + 0.5
        xt, t, target = self._noisy(x0)
        for group in self.cn_optimizer.param_groups:
            group["lr"] = cfg.controlnet_lr * _lr_factor(self.step, cfg.warmup)
        with torch.no_grad():
            hidden = self.ema_text(ids)[0]
        down, mid = self.controlnet(
            xt, t, encoder_hidden_states=hidden, controlnet_cond=control, return_dict=False
        )
        pred = self.ema_unet(
            xt,
            t,
            encoder_hidden_states=hidden,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample
        loss = self._loss(pred, target, t)
        self.cn_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.controlnet.parameters(), 1.0)
        self.cn_optimizer.step()
        return float(loss.detach())

    def run(self, log_every: int = 50, stop_after: int | None = None) -> bool:
        """Train to the end (True), or checkpoint and stop early (False) after
        ``stop_after`` steps or on SIGTERM/SIGINT."""
        cfg = self.config
        last_save = time.monotonic()
        done_here = 0
        totals = {"unet": cfg.steps, "refine": cfg.refine_steps,
                  "controlnet": cfg.controlnet_steps}
        for phase, total in totals.items():
            if PHASES.index(phase) < PHASES.index(self.phase):
                continue
            if phase != self.phase:
                self._enter(phase)
                self.save()
            train = self.train_controlnet_step if phase == "controlnet" else self.train_unet_step
            bar = tqdm(
                total=total,
                initial=min(self.step, total),
                desc=phase,
                unit="step",
                smoothing=0.05,
                # A log file gets a line every 30 s instead of one per step.
                mininterval=0.1 if sys.stderr.isatty() else 30.0,
            )
            running = None
            while self.step < total:
                started = time.monotonic()
                loss = train()
                self.step += 1
                done_here += 1
                self.elapsed[phase] += time.monotonic() - started
                running = loss if running is None else 0.98 * running + 0.02 * loss
                bar.update(1)
                if self.step % log_every == 0:
                    bar.set_postfix(loss=f"{running:.4f}")
                if time.monotonic() - last_save > cfg.checkpoint_minutes * 60:
                    self.save()
                    last_save = time.monotonic()
                if self.stop_requested or (stop_after is not None and done_here >= stop_after):
                    bar.close()
                    self.save()
                    return False
            bar.close()
            self.save()
        self.phase = "done"
        self.save()
        return True


def build(
    out: Path,
    controlnet_out: Path,
    config: BuildConfig,
    work: Path,
    resume: bool = True,
) -> dict | None:
    """Train (or resume) and write both diffusers folders.

    Returns the metadata, or None when stopped by a signal before the end (the
    checkpoint is saved; run again to resume).
    """
    torch.set_num_threads(config.threads)
    work.mkdir(parents=True, exist_ok=True)
    trainer = _Trainer(config, work)
    if resume and trainer.load():
        print(f"resumed from {trainer.checkpoint_path}: phase {trainer.phase}, step {trainer.step}")
    elif config.init_from:
        trainer.start_from(Path(config.init_from))
        print(f"phase 1 taken from {config.init_from} ({trainer.unet_steps_done} steps)")

    def request_stop() -> None:
        trainer.stop_requested = True

    with resumable.stop_on_signals(request_stop):
        if trainer.phase != "done" and not trainer.run():
            print(f"stopped at phase {trainer.phase}, step {trainer.step}; checkpoint saved")
            return None
    from tools.demo_models.diffusion.export import export

    return export(trainer, out, controlnet_out)
