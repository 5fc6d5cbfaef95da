"""Write a build's EMA weights as diffusers folders, with the metadata Ronghe reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from tools.demo_models.diffusion import modules, shapes
from tools.demo_models.diffusion.build import PHASES

if TYPE_CHECKING:
    from tools.demo_models.diffusion.build import _Trainer


def export(trainer: _Trainer, out: Path, controlnet_out: Path) -> dict:
    from diffusers import StableDiffusionPipeline

    cfg = trainer.config
    pipe = StableDiffusionPipeline(
        vae=modules.make_identity_vae(),
        text_encoder=trainer.ema_text,
        tokenizer=trainer.tokenizer,
        unet=trainer.ema_unet,
        scheduler=modules.make_sample_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out, safe_serialization=True)
    _write_slow_tokenizer_files(trainer.tokenizer, out / "tokenizer")
    metadata = {
        "family": "demo",
        "native_resolution": shapes.RESOLUTION,
        "note": "renders at 32x32 pixels; callers resize up to the requested size",
        "prediction_type": "v_prediction",
        "recommended": dict(cfg.sample),
        "build": {
            "seed": cfg.seed,
            "steps": _steps_done(trainer, "unet"),
            "controlnet_steps": _steps_done(trainer, "controlnet"),
            "batch_size": cfg.batch_size,
            "train_seconds": round(trainer.elapsed["unet"]),
            "refine_steps": _steps_done(trainer, "refine"),
            "refine_train_seconds": round(trainer.elapsed["refine"]),
            "init_from": cfg.init_from or None,
            "controlnet_train_seconds": round(trainer.elapsed["controlnet"]),
        },
        "held_out": [list(combo) for combo in shapes.HELD_OUT],
        # A re-export keeps the ControlNets built on this model since (build-controlnet).
        "controlnet": {**_known_controlnets(out), "canny": controlnet_out.name},
    }
    (out / "ronghe.json").write_text(json.dumps(metadata, indent=2) + "\n")
    if trainer.controlnet is not None:
        controlnet_out.mkdir(parents=True, exist_ok=True)
        trainer.controlnet.save_pretrained(controlnet_out, safe_serialization=True)
        (controlnet_out / "ronghe.json").write_text(
            json.dumps(
                {"family": "demo", "control": "canny", "base": out.name, **metadata["build"]},
                indent=2,
            )
            + "\n"
        )
    return metadata


def _steps_done(trainer: _Trainer, phase: str) -> int:
    """Steps trained in ``phase``: the live count in the current phase (the ControlNet's
    once done), what was recorded on leaving an earlier one, none in a later one."""
    if phase == trainer.phase or (phase, trainer.phase) == ("controlnet", "done"):
        return trainer.step
    if PHASES.index(phase) > PHASES.index(trainer.phase):
        return 0
    return trainer.unet_steps_done if phase == "unet" else trainer.refine_steps_done


def _write_slow_tokenizer_files(tokenizer, folder: Path) -> None:
    """vocab.json + merges.txt, so transformers 4.x's slow CLIPTokenizer loads it too."""
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    (folder / "vocab.json").write_text(json.dumps(model["vocab"], indent=1) + "\n")
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


def _known_controlnets(out: Path) -> dict[str, str]:
    meta = out / "ronghe.json"
    return json.loads(meta.read_text()).get("controlnet", {}) if meta.exists() else {}
