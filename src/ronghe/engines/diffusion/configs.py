"""The configs ``from_single_file`` needs, shipped in the package so no hub is contacted.

``src/ronghe/models/configs/<family>/`` holds a diffusers pipeline's JSON configs (model
index, scheduler, UNet, VAE, text encoders) for SD 1.5, SD 2.x (2.1, 768 px v-prediction)
and SDXL base, without weights; the CLIP BPE vocabulary every family shares is one copy in
``configs/clip/`` (generated from open_clip's ``bpe_simple_vocab_16e6.txt.gz``, MIT), so
the tokenizers are built here from it and handed to ``from_single_file`` ready-made.
The demo family's config is the bundled demo model's own folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ronghe.engines.diffusion.families import FAMILIES
from ronghe.engines.shipped import default_model_path

CONFIGS = Path(__file__).resolve().parents[2] / "models" / "configs"
CLIP_VOCAB = CONFIGS / "clip" / "vocab.json"
CLIP_MERGES = CONFIGS / "clip" / "merges.txt"
# The families whose whole checkpoints load from one file (the demo's config is its folder).
SHIPPED = tuple(f.id for f in FAMILIES.values() if f.single_file == "checkpoint" and f.id != "demo")
TOKENIZER_KEYS = ("bos_token", "eos_token", "pad_token", "unk_token", "model_max_length")


def config_dir(family: str) -> Path:
    if family == "demo":
        return default_model_path()
    if family not in SHIPPED:
        raise ValueError(f"no shipped config for family {family!r}; known: demo, "
                         + ", ".join(SHIPPED))
    return CONFIGS / family


def tokenizer_names(family: str) -> list[str]:
    """The pipeline's tokenizer components (``tokenizer``, and ``tokenizer_2`` for SDXL)."""
    index = json.loads((config_dir(family) / "model_index.json").read_text(encoding="utf-8"))
    return sorted(name for name, value in index.items()
                  if isinstance(value, list) and value[1:] == ["CLIPTokenizer"])


def clip_tokenizer(folder: Path) -> Any:
    """A CLIP tokenizer from the shared vocabulary and ``folder``'s tokenizer_config.json."""
    from transformers import CLIPTokenizer

    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    return CLIPTokenizer(vocab=str(CLIP_VOCAB), merges=str(CLIP_MERGES),
                         **{k: config[k] for k in TOKENIZER_KEYS if k in config})


def single_file_kwargs(family: str) -> dict[str, Any]:
    """What ``Pipeline.from_single_file`` needs to load a ``family`` checkpoint offline."""
    folder = config_dir(family)
    kwargs: dict[str, Any] = {"config": str(folder), "local_files_only": True}
    if family != "demo":  # the demo folder has its own tokenizer files
        for name in tokenizer_names(family):
            kwargs[name] = clip_tokenizer(folder / name)
    return kwargs
