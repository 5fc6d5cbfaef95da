"""The short names ``ronghe models pull`` knows: a small catalogue shipped with the package.

Each entry names a Hugging Face repo, exactly the files the pipeline needs (the fp16 or bf16
safetensors a family runs in; never ``.bin`` pickles, never the same weights twice in another
format), the family it is (``engines/diffusion/families.py``), what it renders best with, and
the licence a user accepts by pulling it.  Entries point at the publishers' own repos, so a
pull verifies every file against the SHA-256 the Hub lists for it.

Sizes and VRAM figures are rough, for ``--list`` and docs/models.md; the pull itself reads
the real sizes from the Hub before it checks the free space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ModelKind = Literal["image", "chat", "lora", "upscaler"]
KINDS: tuple[str, ...] = ("image", "chat", "lora", "upscaler")

# A diffusers folder's configs and tokenizers (every component's).
_FOLDER_META = ("model_index.json", "*/*.json", "*/*.txt", "*/*.model")


@dataclass(frozen=True)
class Recommended:
    """What the model renders best with; written to its sidecar as ``recommended``."""

    steps: int
    guidance: float
    # AUTOMATIC1111's sampler names (issue 29): Euler, Euler a, DPM++ 2M ...
    sampler: str

    def sidecar(self) -> dict[str, Any]:
        return {"num_inference_steps": self.steps, "guidance_scale": self.guidance,
                "sampler_name": self.sampler}


@dataclass(frozen=True)
class Entry:
    name: str
    title: str
    kind: ModelKind
    # A family id of engines/diffusion/families.py; None for chat models.
    family: str | None
    repo: str
    # allow_patterns: the files of the repo to fetch (exact names or fnmatch globs).
    files: tuple[str, ...]
    size_gb: float
    licence: str
    licence_url: str
    # The repo asks you to accept its licence on the Hub first (then a token is needed).
    gated: bool
    description: str
    recommended: Recommended | None = None
    # GPU memory to run it in half precision without offloading, roughly (GB).
    vram_gb: float | None = None
    revision: str = "main"

    @property
    def folder(self) -> bool:
        """A diffusers folder (several files) rather than one file."""
        return len(self.files) > 1 or any(ch in self.files[0] for ch in "*?[")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "kind": self.kind,
                "family": self.family, "repo": self.repo, "files": list(self.files),
                "size_gb": self.size_gb, "vram_gb": self.vram_gb, "licence": self.licence,
                "licence_url": self.licence_url, "gated": self.gated,
                "description": self.description,
                "recommended": self.recommended.sidecar() if self.recommended else None}


def _folder(*components: str) -> tuple[str, ...]:
    """A diffusers folder's configs plus the weights of each component (globs)."""
    return (*_FOLDER_META, *components)


ENTRIES: tuple[Entry, ...] = (
    Entry("sd15", "Stable Diffusion 1.5", "image", "sd15",
          "stable-diffusion-v1-5/stable-diffusion-v1-5",
          ("v1-5-pruned-emaonly-fp16.safetensors",), 2.1,
          "CreativeML OpenRAIL-M",
          "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5", False,
          "The classic 512 px model; the most LoRAs and fine-tunes are made for it.",
          Recommended(25, 7.0, "DPM++ 2M"), 4),
    Entry("sdxl", "Stable Diffusion XL 1.0 (base)", "image", "sdxl",
          "stabilityai/stable-diffusion-xl-base-1.0", ("sd_xl_base_1.0.safetensors",), 6.9,
          "CreativeML Open RAIL++-M",
          "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0", False,
          "1024 px pictures with far better composition and text than SD 1.5.",
          Recommended(30, 6.0, "DPM++ 2M"), 8),
    Entry("sdxl-turbo", "SDXL Turbo", "image", "sdxl", "stabilityai/sdxl-turbo",
          ("sd_xl_turbo_1.0_fp16.safetensors",), 6.9,
          "Stability AI Community License",
          "https://huggingface.co/stabilityai/sdxl-turbo", False,
          "SDXL distilled to draw a 512 px picture in 1-4 steps, without guidance.",
          Recommended(1, 0.0, "Euler a"), 8),
    Entry("flux-schnell", "FLUX.1 [schnell]", "image", "flux",
          "black-forest-labs/FLUX.1-schnell",
          _folder("transformer/*.safetensors", "text_encoder/*.safetensors",
                  "text_encoder_2/*.safetensors", "vae/*.safetensors"), 33.7,
          "Apache-2.0", "https://huggingface.co/black-forest-labs/FLUX.1-schnell", False,
          "FLUX.1 distilled to 4 steps without guidance; Apache-2.0.",
          Recommended(4, 0.0, "Euler"), 24),
    Entry("flux-dev", "FLUX.1 [dev]", "image", "flux", "black-forest-labs/FLUX.1-dev",
          _folder("transformer/*.safetensors", "text_encoder/*.safetensors",
                  "text_encoder_2/*.safetensors", "vae/*.safetensors"), 33.7,
          "FLUX.1 [dev] Non-Commercial License",
          "https://huggingface.co/black-forest-labs/FLUX.1-dev", True,
          "FLUX.1's guidance-distilled model: the best quality of FLUX.1, non-commercial.",
          Recommended(28, 3.5, "Euler"), 24),
    Entry("sd3.5-medium", "Stable Diffusion 3.5 Medium", "image", "sd3",
          "stabilityai/stable-diffusion-3.5-medium",
          _folder("transformer/*.safetensors", "text_encoder/*.safetensors",
                  "text_encoder_2/*.safetensors", "text_encoder_3/*.safetensors",
                  "vae/*.safetensors"), 16.3,
          "Stability AI Community License",
          "https://huggingface.co/stabilityai/stable-diffusion-3.5-medium", True,
          "SD 3.5's 2.5 B model: good prompt following at 1024 px on mid-range cards.",
          Recommended(40, 4.5, "Euler"), 10),
    Entry("z-image-turbo", "Z-Image-Turbo", "image", "zimage", "Tongyi-MAI/Z-Image-Turbo",
          _folder("transformer/*.safetensors", "text_encoder/*.safetensors",
                  "vae/*.safetensors"), 20.5,
          "Apache-2.0", "https://huggingface.co/Tongyi-MAI/Z-Image-Turbo", False,
          "A 6 B model distilled to 8 steps; photographic, with Chinese and English text.",
          Recommended(9, 0.0, "Euler"), 16),
    Entry("flux2-klein", "FLUX.2 [klein] 4B", "image", "flux2",
          "black-forest-labs/FLUX.2-klein-4B",
          _folder("transformer/*.safetensors", "text_encoder/*.safetensors",
                  "vae/*.safetensors"), 15.6,
          "Apache-2.0", "https://huggingface.co/black-forest-labs/FLUX.2-klein-4B", False,
          "FLUX.2's small distilled model: 4 steps, consumer cards.",
          Recommended(4, 1.0, "Euler"), 13),
    Entry("qwen2.5-0.5b", "Qwen2.5 0.5B Instruct (Q4_K_M)", "chat", None,
          "Qwen/Qwen2.5-0.5B-Instruct-GGUF", ("qwen2.5-0.5b-instruct-q4_k_m.gguf",), 0.4,
          "Apache-2.0", "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF", False,
          "A small multilingual chat model (Chinese and English) that runs on any CPU."),
    Entry("qwen2.5-1.5b", "Qwen2.5 1.5B Instruct (Q4_K_M)", "chat", None,
          "Qwen/Qwen2.5-1.5B-Instruct-GGUF", ("qwen2.5-1.5b-instruct-q4_k_m.gguf",), 1.1,
          "Apache-2.0", "https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct-GGUF", False,
          "A better chat model that still answers quickly on a laptop CPU."),
)
BY_NAME: dict[str, Entry] = {e.name: e for e in ENTRIES}


def find(name: str) -> Entry | None:
    return BY_NAME.get(name.strip().lower())
