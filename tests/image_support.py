"""Helpers shared by the image tests: pictures to upload, a real LoRA, task polling."""

from __future__ import annotations

import dataclasses
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ronghe.engines.diffusion.generate import GenerationRequest
from ronghe.engines.diffusion.registry import ModelEntry
from tools.demo_models.diffusion import shapes

PROMPT = "a red circle on a blue background"
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def on(entry: ModelEntry, request: GenerationRequest) -> GenerationRequest:
    """``request`` for the model ``entry``."""
    return dataclasses.replace(request, model=entry.name)


def drawn(colour: str, shape: str, background: str, size: int = 128,
          seed: int = 0) -> Image.Image:
    """A clean shape picture, drawn at the demo's 32 px and scaled up like an upload."""
    image, _ = shapes.draw(colour, shape, background, np.random.default_rng(seed))
    return image.resize((size, size), Image.Resampling.NEAREST)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def lora_weights(model_path: Path, seed: int = 0, gain: float = 4.0) -> bytes:
    """A LoRA for the model's UNet in diffusers format (``save_lora_weights``), with
    deterministic non-zero weights, so applying it visibly changes the images."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(str(model_path / "unet"))
    torch.manual_seed(seed)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                target_modules=LORA_TARGETS))
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.mul_(gain)
    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    with tempfile.TemporaryDirectory() as tmp:
        StableDiffusionPipeline.save_lora_weights(tmp, unet_lora_layers=state,
                                                  safe_serialization=True)
        return (Path(tmp) / "pytorch_lora_weights.safetensors").read_bytes()


def add_lora(services: Any, user_id: int, name: str, model_path: Path, base_model: str,
             state: str = "ready", public: bool = False, seed: int = 0) -> int:
    """A catalog row with weights in storage, laid out as training writes them."""
    info = services.loras.create(user_id, name, base_model, description=f"{name} test LoRA",
                                 trigger_word=name, state="training")
    prefix = f"u{user_id}/loras/{info.id}"
    services.files.storage.put(f"{prefix}/pytorch_lora_weights.safetensors",
                               lora_weights(model_path, seed), "application/octet-stream")
    services.loras.update(info.id, state=state, weights_key=prefix, public=public)
    return info.id


def wait_done(client: Any, token: str, task_id: str, timeout: float = 120,
              states: tuple[str, ...] = ("done", "failed", "cancelled")) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.post("/api/v1b/task_result", json={"token": token, "task_id": task_id}).json()
        if body.get("state") in states:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} still {body.get('state')} after {timeout}s")
        time.sleep(0.05)


def fetch_image(client: Any, url: str) -> Image.Image:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content)).convert("RGB")


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    b = b.resize(a.size, Image.Resampling.BICUBIC) if b.size != a.size else b
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())
