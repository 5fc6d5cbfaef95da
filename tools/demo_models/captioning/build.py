"""Build (train) the demo captioner from procedural images.  Resumable, reproducible.

Every batch is drawn from an RNG seeded with (seed, step) and the model has no dropout, so
a run is a function of its seed and step count; the learning rate does not depend on the
total, so a run cut short or extended on resume equals a fresh run with that many steps.
A checkpoint (``<work>/checkpoint.pt``) is written every ``checkpoint_minutes`` and on
SIGTERM/SIGINT.

Two training-only aids, neither in the saved model (a plain VisionEncoderDecoderModel):
classification heads for colour, shape and background on the mean-pooled encoder output,
whose loss is added to the caption's (the caption gives the shape one token's worth of
gradient, through the decoder), and a curriculum that starts on greyscale pairs only.
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

from tools.demo_models import resumable
from tools.demo_models.captioning import data, modules


@dataclass
class CaptionerConfig:
    seed: int = 0
    steps: int = 6000
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 150
    # The auxiliary heads' loss (see the module docstring); the shape's counts shape_weight
    # times, as the shape is the word the encoder is slowest to learn.
    aux_weight: float = 1.0
    shape_weight: float = 3.0
    # Curriculum: the share of each batch drawn from greyscale pairs falls from all of it to
    # easy_floor over easy_steps.  Shapes are learnt on one colour pair in a few hundred
    # steps; on all 12 x 11 pairs at once the loss sat at the shape prior for over 1,000.
    easy_steps: int = 800
    easy_floor: float = 0.25
    checkpoint_minutes: float = 2.0
    threads: int = 1

    @classmethod
    def smoke(cls, seed: int = 0) -> CaptionerConfig:
        return cls(seed=seed, steps=4, batch_size=4, warmup=2, easy_steps=2)


# The curriculum's colours: pairs of these differ in brightness alone.
EASY_COLOURS = ("black", "white", "grey")
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
        width = self.model.encoder.config.hidden_size
        colours = len(data.PALETTE)
        self.heads = torch.nn.ModuleDict({
            "colour": torch.nn.Linear(width, colours),
            "shape": torch.nn.Linear(width, len(data.ALL_SHAPES)),
            "background": torch.nn.Linear(width, colours)})
        self.optimizer = torch.optim.AdamW(self._parameters(), lr=config.lr, weight_decay=0.01)
        # The base model's three shapes twice over: they are what the demo world draws.
        self.pool = data.combos() + data.combos(data.shapes.SHAPES)
        self.easy = [t for t in self.pool if t[0] in EASY_COLOURS and t[2] in EASY_COLOURS]
        self.step = 0
        self.elapsed = 0.0
        self.stop_requested = False

    def _parameters(self) -> list[torch.nn.Parameter]:
        return [*self.model.parameters(), *self.heads.parameters()]

    @property
    def checkpoint_path(self) -> Path:
        return self.work / "checkpoint.pt"

    def save(self) -> None:
        state = {"config": asdict(self.config), "step": self.step, "elapsed": self.elapsed,
                 "model": self.model.state_dict(), "heads": self.heads.state_dict(),
                 "optimizer": self.optimizer.state_dict()}
        resumable.save(self.checkpoint_path, state)

    def load(self) -> bool:
        state = resumable.load(self.checkpoint_path, asdict(self.config), _FREE_ON_RESUME)
        if state is None:
            return False
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.model.load_state_dict(state["model"])
        self.heads.load_state_dict(state["heads"])
        self.optimizer.load_state_dict(state["optimizer"])
        return True

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, step])
        share = max(cfg.easy_floor, 1 - step / cfg.easy_steps) if cfg.easy_steps else 0.0
        easy = round(share * cfg.batch_size)
        images, triples = data.sample(rng, easy, self.easy, data.TRAIN)
        more, more_triples = data.sample(rng, cfg.batch_size - easy, self.pool, data.TRAIN)
        images, triples = images + more, triples + more_triples
        pixels = self.processor(images, return_tensors="pt").pixel_values
        texts = [data.caption(*triple) + " </s>" for triple in triples]
        labels = self.tokenizer(texts, padding="max_length", max_length=modules.MAX_TOKENS,
                                truncation=True, return_tensors="pt").input_ids
        labels[labels == self.tokenizer.pad_token_id] = -100
        colours, shape_names = list(data.PALETTE), list(data.ALL_SHAPES)
        targets = {"colour": torch.tensor([colours.index(t[0]) for t in triples]),
                   "shape": torch.tensor([shape_names.index(t[1]) for t in triples]),
                   "background": torch.tensor([colours.index(t[2]) for t in triples])}
        return pixels, labels, targets

    def train_step(self) -> float:
        cfg = self.config
        pixels, labels, targets = self.batch(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * _lr_factor(self.step, cfg.warmup)
        encoded = self.model.encoder(pixel_values=pixels)
        loss = self.model(encoder_outputs=encoded, labels=labels).loss
        caption_loss = float(loss.detach())
        if cfg.aux_weight:
            pooled = encoded.last_hidden_state.mean(dim=1)
            weights = {"colour": 1.0, "shape": cfg.shape_weight, "background": 1.0}
            aux = sum(weight * torch.nn.functional.cross_entropy(self.heads[name](pooled),
                                                                 targets[name])
                      for name, weight in weights.items())
            loss = loss + cfg.aux_weight * aux
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self._parameters(), 1.0)
        self.optimizer.step()
        return caption_loss

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
    # A fresh tokenizer (the same vocabulary): the trainer's carries the padding and
    # truncation its last batch set, which would be saved into tokenizer.json.
    modules.save(out, trainer.model, modules.build_tokenizer(), trainer.processor)
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
