"""Build (train) the demo captioner from procedural images.  Resumable, reproducible.

Every batch is drawn from an RNG seeded with (seed, step) and the model has no dropout, so
a run is a function of its seed and step count; the learning rate does not depend on the
total, so a run cut short or extended on resume equals a fresh run with that many steps.
A checkpoint (``<work>/checkpoint.pt``) is written every ``checkpoint_minutes`` and on
SIGTERM/SIGINT.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ronghe.engines import resumable
from ronghe.engines.captioning.demo import data, modules


@dataclass
class CaptionerConfig:
    seed: int = 0
    steps: int = 1264
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 150
    checkpoint_minutes: float = 2.0
    threads: int = 1

    @classmethod
    def smoke(cls, seed: int = 0) -> CaptionerConfig:
        return cls(seed=seed, steps=4, batch_size=4, warmup=2)


# May differ on resume: none changes what a given step computes.
_FREE_ON_RESUME = {"steps", "checkpoint_minutes", "threads"}


def _lr_factor(step: int, warmup: int) -> float:
    """Warm-up, then inverse square root: independent of the total step count."""
    if step < warmup:
        return (step + 1) / warmup
    return math.sqrt(4 * warmup / max(step, 4 * warmup))


class _Trainer:
    def __init__(self, config: CaptionerConfig, work: Path) -> None:
        self.config = config
        self.work = work
        torch.manual_seed(config.seed)
        self.tokenizer = modules.build_tokenizer()
        self.processor = modules.build_processor()
        self.model = modules.build_model(self.tokenizer)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=0.01)
        # The base model's three shapes twice over: they are what the demo world draws.
        self.pool = data.combos() + data.combos(data.shapes.SHAPES)
        self.step = 0
        self.elapsed = 0.0
        self.stop_requested = False

    @property
    def checkpoint_path(self) -> Path:
        return self.work / "checkpoint.pt"

    def save(self) -> None:
        state = {"config": asdict(self.config), "step": self.step, "elapsed": self.elapsed,
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        resumable.save(self.checkpoint_path, state)

    def load(self) -> bool:
        state = resumable.load(self.checkpoint_path, asdict(self.config), _FREE_ON_RESUME)
        if state is None:
            return False
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        return True

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.config.seed, step])
        images, triples = data.sample(rng, self.config.batch_size, self.pool, data.TRAIN)
        pixels = self.processor(images, return_tensors="pt").pixel_values
        texts = [data.caption(*triple) + " </s>" for triple in triples]
        labels = self.tokenizer(texts, padding="max_length", max_length=modules.MAX_TOKENS,
                                truncation=True, return_tensors="pt").input_ids
        labels[labels == self.tokenizer.pad_token_id] = -100
        return pixels, labels

    def train_step(self) -> float:
        cfg = self.config
        pixels, labels = self.batch(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * _lr_factor(self.step, cfg.warmup)
        loss = self.model(pixel_values=pixels, labels=labels).loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        return float(loss.detach())

    def run(self, stop_after: int | None = None) -> bool:
        """Train to the end (True), or checkpoint and stop (False) on a signal."""
        cfg = self.config
        last_save = time.monotonic()
        bar = tqdm(total=cfg.steps, initial=min(self.step, cfg.steps), desc="captioner",
                   unit="step", smoothing=0.05,
                   mininterval=0.1 if sys.stderr.isatty() else 30.0)
        running = None
        done_here = 0
        while self.step < cfg.steps:
            started = time.monotonic()
            loss = self.train_step()
            self.step += 1
            done_here += 1
            self.elapsed += time.monotonic() - started
            running = loss if running is None else 0.98 * running + 0.02 * loss
            bar.update(1)
            if self.step % 50 == 0:
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
        return True


def build(out: Path, config: CaptionerConfig, work: Path, resume: bool = True,
          stop_after: int | None = None) -> dict | None:
    """Train (or resume) and write the captioner folder; None when stopped early."""
    torch.set_num_threads(config.threads)
    work.mkdir(parents=True, exist_ok=True)
    trainer = _Trainer(config, work)
    if resume and trainer.load():
        print(f"resumed from {trainer.checkpoint_path} at step {trainer.step}")

    def request_stop() -> None:
        trainer.stop_requested = True

    with resumable.stop_on_signals(request_stop):
        if not trainer.run(stop_after):
            print(f"stopped at step {trainer.step}; checkpoint saved")
            return None
    return export(trainer, out)


def export(trainer: _Trainer, out: Path) -> dict:
    modules.save(out, trainer.model, trainer.tokenizer, trainer.processor)
    cfg = trainer.config
    meta = {
        "kind": "image-to-text",
        "note": "demo captioner: one plain shape on a plain background",
        "build": {"seed": cfg.seed, "steps": trainer.step, "batch_size": cfg.batch_size,
                  "lr": cfg.lr, "train_seconds": round(trainer.elapsed)},
        "colours": list(data.PALETTE), "shapes": list(data.ALL_SHAPES),
    }
    (out / "ronghe.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
