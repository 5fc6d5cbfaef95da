"""One description per model family: everything Ronghe knows about SD 1.5, SDXL, FLUX ...

A family is told from a diffusers folder's ``model_index.json`` (its pipeline class) or from a
single file's tensor names and shapes (``detect_file``; a LoRA's: ``detect_lora``).  Its entry
says which diffusers pipeline runs each mode, the sizes, steps and guidance it expects, how a
live preview is decoded, where a LoRA attaches, how it is trained, and which precision it
runs in on each kind of device.  Everything else (the models folder, the registry, the
pipeline cache, the engine, the training presets, the CLI) reads these entries; adding a
family is one entry here plus its tests (tools/family_models.py builds tiny ones).

Two kinds of single file exist.  SD 1.5, SD 2.x and SDXL publish whole checkpoints (UNet,
text encoders and VAE in one file, ``single_file="checkpoint"``).  The transformer families
publish the transformer alone, as safetensors or as a GGUF quantisation
(``single_file="transformer"``): such a file takes its text encoders, VAE and scheduler from a
diffusers folder of the same family in the models folder (its *base*), as ComfyUI and Forge
load a transformer file beside separate text encoders.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

TXT2IMG, IMG2IMG, CONTROLNET, CONTROLNET_IMG2IMG, INPAINT = (
    "txt2img", "img2img", "controlnet", "controlnet_img2img", "inpaint")
MODE_NAMES = {TXT2IMG: "text-to-image", IMG2IMG: "image-to-image", CONTROLNET: "ControlNet",
              CONTROLNET_IMG2IMG: "ControlNet", INPAINT: "inpainting"}

Shapes = dict[str, tuple[int, ...]]
# How ``scale`` reaches the model: classifier-free guidance over a negative prompt ("cfg"),
# a guidance value the model was distilled to take as an input (FLUX.1 dev: "embedded"), or
# none at all (few-step distilled models: "none"; the request's scale is ignored).
GuidanceKind = Literal["cfg", "embedded", "none"]


@dataclass(frozen=True)
class Recommended:
    """What a checkpoint of the family renders best with, absent a request's own values."""

    steps: int
    guidance: float
    guidance_kind: GuidanceKind = "cfg"


@dataclass(frozen=True)
class Family:
    id: str
    label: str
    # model_index.json ``_class_name`` values of this family's diffusers folders.
    folder_classes: tuple[str, ...]
    # mode -> diffusers pipeline class name; a mode not listed is not available.
    pipelines: Mapping[str, str]
    # Where the weights being denoised live (and LoRAs attach): "unet" or "transformer".
    denoiser: Literal["unet", "transformer"]
    single_file: Literal["checkpoint", "transformer", "none"]
    # Output sides accepted (multiples of the model's size step).
    min_size: int
    max_size: int
    default_size: int
    recommended: Recommended
    # Whether ``negative_prompt`` reaches the model (FLUX has no negative prompt).
    negative_prompt: bool = True
    # The transformer class a transformer-only file (or GGUF) is loaded into.
    transformer_class: str | None = None
    # Precision on CUDA; MPS takes float16 where this is bfloat16 and CPU keeps float32.
    cuda_dtype: Literal["float16", "bfloat16"] = "bfloat16"
    # Images denoised together on a CPU (larger models would run out of memory there).
    cpu_batch: int = 1
    # LoRA (training and peft) target modules in the denoiser.
    lora_targets: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
    # Whether LoRAs can be trained on it here (engines/training).
    trainable: bool = False
    # Parameters of the whole pipeline (denoiser, text encoders, VAE), in billions: what
    # device.py sizes memory by.
    params_b: float = 0.0
    # Linear latent -> RGB preview (factors rows = latent channels, bias); None: the VAE.
    latent_rgb: tuple[tuple[tuple[float, ...], ...], tuple[float, ...]] | None = None
    # Tells a checkpoint's flavour (dev/schnell, turbo) from its folder's configs.
    variant: Callable[[Mapping[str, Any]], Recommended] | None = None
    # Keys that mark a transformer file of this family: the original layout's (with or
    # without the ``model.diffusion_model.`` prefix) and diffusers' (a transformer folder's
    # weights as one file); SD checkpoints are told apart in checkpoints.py.
    file_keys: tuple[str, ...] = ()
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def is_sd(self) -> bool:
        return self.denoiser == "unet"

    def supports(self, mode: str) -> bool:
        return mode in self.pipelines

    def pipeline_class(self, mode: str) -> Any:
        import diffusers

        try:
            return getattr(diffusers, self.pipelines[mode])
        except KeyError:
            raise ValueError(f"{self.label} has no {MODE_NAMES.get(mode, mode)} "
                             "pipeline") from None

    def recommend(self, configs: Mapping[str, Any]) -> Recommended:
        """The recommendation for one checkpoint: ``configs`` holds its folder's
        ``model_index`` and ``transformer`` configs (either may be missing)."""
        if self.variant is None:
            return self.recommended
        try:
            return self.variant(configs)
        except (KeyError, TypeError, ValueError):
            return self.recommended


_SD_PIPELINES = {TXT2IMG: "StableDiffusionPipeline",
                 IMG2IMG: "StableDiffusionImg2ImgPipeline",
                 CONTROLNET: "StableDiffusionControlNetPipeline",
                 CONTROLNET_IMG2IMG: "StableDiffusionControlNetImg2ImgPipeline",
                 # Takes 4-channel UNets too: the kept area is re-noised each step.
                 INPAINT: "StableDiffusionInpaintPipeline"}
_SD_RGB = (((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350),
            (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177)), (0.0, 0.0, 0.0))
_SDXL_RGB = (((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068),
              (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188)),
             (0.1084, -0.0175, -0.0011))
# What the Stable Diffusion families share, and what the transformer families share.
_UNET: dict[str, Any] = {"denoiser": "unet", "single_file": "checkpoint", "min_size": 64,
                         "max_size": 2048}
_DIT: dict[str, Any] = {"denoiser": "transformer", "single_file": "transformer",
                        "min_size": 128, "max_size": 2048, "default_size": 1024}
# LoRA targets of the joint (image + text stream) attention of the MMDiT families.
_JOINT_ATTENTION = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj",
                    "add_v_proj", "to_add_out")
# SD checkpoints keep the spec's 50 steps and its scale default (7) as before.
_SD_RECOMMENDED = Recommended(steps=50, guidance=7.0)


def _flux_variant(configs: Mapping[str, Any]) -> Recommended:
    # FLUX.1 dev was distilled to take guidance as an input; schnell to need none, in 4 steps.
    if configs["transformer"].get("guidance_embeds", True):
        return Recommended(steps=28, guidance=3.5, guidance_kind="embedded")
    return Recommended(steps=4, guidance=0.0, guidance_kind="none")


def _flux2_variant(configs: Mapping[str, Any]) -> Recommended:
    # FLUX.2 [klein]: the distilled release runs in 4 steps without guidance; base takes CFG.
    if configs["model_index"].get("is_distilled"):
        return Recommended(steps=4, guidance=1.0, guidance_kind="none")
    return Recommended(steps=50, guidance=4.0)


FAMILIES: dict[str, Family] = {f.id: f for f in (
    Family(
        id="demo", label="the demo model", folder_classes=("StableDiffusionPipeline",),
        pipelines=MappingProxyType(_SD_PIPELINES), **_UNET, default_size=512,
        recommended=_SD_RECOMMENDED,
        cuda_dtype="float16", cpu_batch=8, trainable=True, params_b=0.001,
        notes="bundled; renders one coloured shape"),
    Family(
        id="sd15", label="SD 1.5", folder_classes=("StableDiffusionPipeline",),
        pipelines=MappingProxyType(_SD_PIPELINES), **_UNET, default_size=512,
        recommended=_SD_RECOMMENDED,
        cuda_dtype="float16", cpu_batch=2, trainable=True, params_b=1.07, latent_rgb=_SD_RGB),
    Family(
        id="sd2", label="SD 2.x", folder_classes=("StableDiffusionPipeline",),
        pipelines=MappingProxyType(_SD_PIPELINES), **_UNET, default_size=768,
        recommended=_SD_RECOMMENDED,
        cuda_dtype="float16", params_b=1.3, latent_rgb=_SD_RGB),
    Family(
        id="sdxl", label="SDXL", folder_classes=("StableDiffusionXLPipeline",),
        pipelines=MappingProxyType({
            TXT2IMG: "StableDiffusionXLPipeline", IMG2IMG: "StableDiffusionXLImg2ImgPipeline",
            CONTROLNET: "StableDiffusionXLControlNetPipeline",
            CONTROLNET_IMG2IMG: "StableDiffusionXLControlNetImg2ImgPipeline",
            INPAINT: "StableDiffusionXLInpaintPipeline"}),
        **_UNET, default_size=1024, recommended=_SD_RECOMMENDED, cuda_dtype="float16",
        trainable=True, params_b=3.5, latent_rgb=_SDXL_RGB,
        notes="VAE upcast to float32 where the fp16 VAE overflows"),
    Family(
        id="flux", label="FLUX.1", folder_classes=("FluxPipeline",),
        pipelines=MappingProxyType({TXT2IMG: "FluxPipeline", IMG2IMG: "FluxImg2ImgPipeline",
                                    INPAINT: "FluxInpaintPipeline"}),
        **_DIT, transformer_class="FluxTransformer2DModel",
        recommended=Recommended(steps=28, guidance=3.5, guidance_kind="embedded"),
        variant=_flux_variant, negative_prompt=False, trainable=True, params_b=16.9,
        lora_targets=_JOINT_ATTENTION,
        file_keys=("double_blocks.0.img_attn.norm.key_norm.scale",
                   "single_transformer_blocks.0.attn.to_q.weight")),
    Family(
        id="sd3", label="SD 3 / 3.5", folder_classes=("StableDiffusion3Pipeline",),
        pipelines=MappingProxyType({TXT2IMG: "StableDiffusion3Pipeline",
                                    IMG2IMG: "StableDiffusion3Img2ImgPipeline",
                                    INPAINT: "StableDiffusion3InpaintPipeline"}),
        **_DIT, transformer_class="SD3Transformer2DModel",
        recommended=Recommended(steps=28, guidance=4.5), params_b=8.0,
        lora_targets=_JOINT_ATTENTION,
        file_keys=("joint_blocks.0.context_block.adaLN_modulation.1.bias",
                   "pos_embed.proj.weight")),
    Family(
        id="zimage", label="Z-Image", folder_classes=("ZImagePipeline",),
        pipelines=MappingProxyType({TXT2IMG: "ZImagePipeline", IMG2IMG: "ZImageImg2ImgPipeline",
                                    INPAINT: "ZImageInpaintPipeline"}),
        **_DIT, transformer_class="ZImageTransformer2DModel",
        # Z-Image-Turbo, the release people run: 8 DiT forwards, no guidance.
        recommended=Recommended(steps=9, guidance=0.0, guidance_kind="none"), params_b=10.2,
        lora_targets=("to_q", "to_k", "to_v", "to_out.0"),
        file_keys=("layers.0.adaLN_modulation.0.weight",
                   "noise_refiner.0.attention.to_q.weight"),
        notes="defaults follow Z-Image-Turbo; a base checkpoint's sidecar can say "
              "recommended steps and guidance"),
    Family(
        id="flux2", label="FLUX.2 [klein]", folder_classes=("Flux2KleinPipeline",),
        pipelines=MappingProxyType({TXT2IMG: "Flux2KleinPipeline",
                                    # No img2img pipeline: the inpainting one with a
                                    # mask over everything is img2img (generate.py).
                                    IMG2IMG: "Flux2KleinInpaintPipeline",
                                    INPAINT: "Flux2KleinInpaintPipeline"}),
        **_DIT, transformer_class="Flux2Transformer2DModel",
        recommended=Recommended(steps=4, guidance=1.0, guidance_kind="none"),
        variant=_flux2_variant, negative_prompt=False, params_b=8.0,
        lora_targets=(*_JOINT_ATTENTION, "to_qkv_mlp_proj"),
        file_keys=("single_stream_modulation.lin.weight",
                   "single_transformer_blocks.0.attn.to_qkv_mlp_proj.weight")),
)}
# Order matters where keys overlap: FLUX.2's files also have double_blocks keys.
_FILE_ORDER = ("flux2", "flux", "sd3", "zimage")
ORIGINAL_PREFIXES = ("", "model.diffusion_model.", "diffusion_model.")


class UnknownFamily(ValueError):
    """Nothing in the file or folder matches a family this server serves."""


def get(family_id: str) -> Family:
    try:
        return FAMILIES[family_id]
    except KeyError:
        raise UnknownFamily(f"unknown model family {family_id!r}; known: "
                            + ", ".join(FAMILIES)) from None


def ids() -> tuple[str, ...]:
    return tuple(FAMILIES)


def of_folder_class(class_name: str | None) -> list[Family]:
    """The families whose folders carry this pipeline class (SD's three share one)."""
    return [f for f in FAMILIES.values() if class_name in f.folder_classes]


def folder_classes() -> list[str]:
    return sorted({c for f in FAMILIES.values() for c in f.folder_classes})


def transformer_file_family(shapes: Shapes) -> Family | None:
    """The transformer family of an original-layout transformer file, or None."""
    names = set(shapes)
    for family_id in _FILE_ORDER:
        family = FAMILIES[family_id]
        if any(p + k in names for k in family.file_keys for p in ORIGINAL_PREFIXES):
            return family
    return None


def lora_transformer_family(names: list[str]) -> Family | None:
    """The transformer family a LoRA was made for, from its key names (diffusers, kohya or
    the original layout), or None.  Ambiguous files take a sidecar's ``family``."""
    joined = "\n".join(names)

    def has(*parts: str) -> bool:
        return any(part in joined for part in parts)

    # FLUX.2 fuses its single blocks' projections and modulates per stream.
    if has("to_qkv_mlp_proj", "stream_modulation", "qkv_mlp"):
        return FAMILIES["flux2"]
    if has("single_transformer_blocks", "single_blocks", "double_blocks"):
        return FAMILIES["flux"]
    if has("joint_blocks") or (has("transformer_blocks") and has("add_q_proj", "add_k_proj")):
        return FAMILIES["sd3"]
    if re.search(r"(^|[._])layers[._]\d+[._]attention", joined, re.MULTILINE) or has(
            "noise_refiner", "context_refiner"):
        return FAMILIES["zimage"]
    return None
