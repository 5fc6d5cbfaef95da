"""Loaded pipelines, cached per model and shared between modes.

One model is loaded once as its txt2img pipeline, the one its family (families.py) names, in
the precision and placement ``device.py`` chooses; img2img, inpainting and ControlNet
pipelines are made from it with ``from_pipe``, so they share the denoiser, text encoders and
VAE instead of holding copies.  A transformer-only file (safetensors or GGUF) is loaded into
its family's transformer class and joined to its base folder's other components.  Models
are evicted least recently used when there are more than ``capacity`` or their weights
exceed the memory budget; an evicted model's pipelines, ControlNets and LoRA adapters go
with it, so switching models does not grow memory.
"""

from __future__ import annotations

import gc
import inspect
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import torch

from ronghe.engines.diffusion import device as placement
from ronghe.engines.diffusion.configs import single_file_kwargs
from ronghe.engines.diffusion.families import (
    CONTROLNET,
    CONTROLNET_IMG2IMG,
    IMG2IMG,
    INPAINT,
    TXT2IMG,
    Family,
)
from ronghe.engines.diffusion.registry import ModelEntry, ModelRegistry
from ronghe.errors import NotReady

log = structlog.get_logger(__name__)

# Adapters kept loaded per model; older ones are deleted when a request needs room.
MAX_ADAPTERS = 8

__all__ = ["CONTROLNET", "CONTROLNET_IMG2IMG", "IMG2IMG", "INPAINT", "TXT2IMG",
           "LoraSource", "PipelineCache"]


def module_bytes(modules: list[Any]) -> int:
    total = 0
    for module in modules:
        if isinstance(module, torch.nn.Module):
            for tensor in (*module.parameters(), *module.buffers()):
                total += tensor.numel() * tensor.element_size()
    return total


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*.safetensors") if p.is_file())


@dataclass
class LoraSource:
    """A LoRA to apply: ``key`` identifies its weights; ``load`` returns a diffusers-format
    state dict (called only when the adapter is not loaded yet)."""

    key: str
    name: str
    weight: float
    load: Callable[[], dict[str, torch.Tensor]]


@dataclass
class LoadedModel:
    entry: ModelEntry
    base: Any
    nbytes: int
    derived: dict[tuple[str, tuple[str, ...]], Any] = field(default_factory=dict)
    controlnets: dict[str, Any] = field(default_factory=dict)
    # adapter name -> None, least recently used first.
    adapters: OrderedDict[str, None] = field(default_factory=OrderedDict)
    lora_active: bool = False
    dtype: str = "float32"
    offload: str = "none"
    # The pipeline whose offload hooks the shared components carry now (model/sequential).
    hooked: Any = None


def adapter_name(key: str) -> str:
    # peft keeps adapters in ModuleDicts, so names must be plain identifiers.
    return "lora_" + re.sub(r"[^A-Za-z0-9_]", "_", key)[-100:]


class PipelineCache:
    def __init__(self, registry: ModelRegistry, capacity: int = 2,
                 memory_budget_bytes: int | None = None, device: str = "cpu",
                 dtype: str = "auto", offload: str = "auto", compile: bool = False) -> None:
        from diffusers.utils import logging as diffusers_logging

        # from_pipe warns on every derived pipeline that nothing needs upcasting; noise.
        diffusers_logging.set_verbosity_error()
        self.registry = registry
        self.capacity = max(1, capacity)
        self.budget = memory_budget_bytes or None
        self.device = device
        self.dtype = dtype
        self.offload = offload
        self.compile = compile
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self.lock = threading.RLock()
        self.loads = 0
        self.evictions = 0

    # --- information

    def loaded(self) -> list[str]:
        with self.lock:
            return list(self._models)

    def total_bytes(self) -> int:
        with self.lock:
            return sum(m.nbytes for m in self._models.values())

    # --- loading

    def model(self, entry: ModelEntry) -> LoadedModel:
        with self.lock:
            loaded = self._models.get(entry.name)
            if loaded is not None:
                self._models.move_to_end(entry.name)
                return loaded
            # Make room first, judged by file size, so two large models never coexist.
            self._evict(incoming=disk_bytes(entry.path), keep=None)
            loaded = self._load(entry)
            self._models[entry.name] = loaded
            self._evict(incoming=0, keep=entry.name)
            return loaded

    def _load(self, entry: ModelEntry) -> LoadedModel:
        problem = self.registry.file_problem(entry)
        if problem:
            self.registry.mark_broken(entry.name, problem)
            raise NotReady(f"model {entry.name!r} cannot be used: {problem}")
        family = entry.family_info
        dtype_name = placement.pick_dtype(family, self.device, self.dtype)
        try:
            pipe = load_pipeline(entry, family, getattr(torch, dtype_name))
        except Exception as exc:
            reason = f"loading failed: {type(exc).__name__}: {exc}"[:500]
            self.registry.mark_broken(entry.name, reason)
            log.exception("image model failed to load", model=entry.name)
            raise NotReady(f"model {entry.name!r} cannot be used: {reason}") from exc
        pipe.set_progress_bar_config(disable=True)
        nbytes = module_bytes(list(pipe.components.values()))
        free, _total = placement.cuda_memory(self.device)
        choice = placement.pick_offload(self.offload, self.device, free, nbytes,
                                        family.denoiser)
        loaded = LoadedModel(entry, pipe, nbytes, dtype=dtype_name, offload=choice.mode)
        self.place(loaded, pipe)
        if self.compile and self.device != "cpu":
            denoiser = getattr(pipe, family.denoiser)
            denoiser.compile(mode="max-autotune-no-cudagraphs")
        self.registry.mark_loaded(entry.name)
        self.loads += 1
        log.info("image model loaded", model=entry.name, family=family.id,
                 mib=round(nbytes / 2**20, 1), dtype=dtype_name, offload=choice.mode,
                 why=choice.reason)
        return loaded

    def place(self, loaded: LoadedModel, pipe: Any) -> None:
        """Put ``pipe``'s components where the model's offload mode says, before it runs.
        Offload hooks sit on the shared components, so the pipeline about to run re-installs
        its own (diffusers' ``from_pipe`` does not carry them over)."""
        if self.device == "cpu" or loaded.hooked is pipe:
            return
        if loaded.offload == "none":
            pipe.to(self.device)
        elif loaded.offload == "model":
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            pipe.enable_sequential_cpu_offload(device=self.device)
        loaded.hooked = pipe

    def _evict(self, incoming: int, keep: str | None) -> None:
        def over() -> bool:
            count = len(self._models) + (1 if keep is None else 0)
            if count > self.capacity:
                return True
            return self.budget is not None and self.total_bytes() + incoming > self.budget

        while over():
            victims = [name for name in self._models if name != keep]
            if not victims:
                return
            self.evict(victims[0])

    def evict(self, name: str) -> bool:
        with self.lock:
            loaded = self._models.pop(name, None)
            if loaded is None:
                return False
            loaded.derived.clear()
            loaded.controlnets.clear()
            del loaded
            self.evictions += 1
        gc.collect()
        log.info("image model evicted", model=name)
        return True

    def clear(self) -> None:
        for name in self.loaded():
            self.evict(name)

    # --- pipelines

    def controlnet(self, loaded: LoadedModel, name: str) -> Any:
        model = loaded.controlnets.get(name)
        if model is None:
            path = loaded.entry.controlnets.get(name)
            if path is None:
                raise NotReady(f"model {loaded.entry.name!r} has no ControlNet {name!r}")
            from diffusers import ControlNetModel

            try:
                model = ControlNetModel.from_pretrained(str(path),
                                                        dtype=getattr(torch, loaded.dtype))
            except Exception as exc:
                raise NotReady(f"ControlNet {name!r} of model {loaded.entry.name!r} failed "
                               f"to load: {type(exc).__name__}: {exc}"[:500]) from exc
            if self.device != "cpu" and loaded.offload == "none":
                model.to(self.device)
            loaded.controlnets[name] = model
            loaded.nbytes += module_bytes([model])
        return model

    def pipeline(self, loaded: LoadedModel, mode: str, controlnets: tuple[str, ...] = ()) -> Any:
        if mode == TXT2IMG:
            return loaded.base
        key = (mode, controlnets)
        pipe = loaded.derived.get(key)
        if pipe is None:
            cls = loaded.entry.family_info.pipeline_class(mode)
            extra: dict[str, Any] = {}
            if controlnets:
                models = [self.controlnet(loaded, name) for name in controlnets]
                extra["controlnet"] = models[0] if len(models) == 1 else models
            pipe = derive(cls, loaded.base, **extra)
            pipe.set_progress_bar_config(disable=True)
            loaded.derived[key] = pipe
        return pipe

    # --- LoRA adapters

    def pipeline_for_run(self, loaded: LoadedModel, mode: str,
                         controlnets: tuple[str, ...] = ()) -> Any:
        """``pipeline``, placed on the device and ready to run."""
        pipe = self.pipeline(loaded, mode, controlnets)
        self.place(loaded, pipe)
        return pipe

    def apply_loras(self, loaded: LoadedModel, loras: list[LoraSource]) -> None:
        """Activate exactly these adapters at these weights (none: the plain model)."""
        pipe = loaded.base
        if not loras:
            if loaded.lora_active:
                pipe.disable_lora()
                loaded.lora_active = False
            return
        names = []
        for lora in loras:
            name = adapter_name(lora.key)
            if name not in loaded.adapters:
                self._make_room(loaded, keep={adapter_name(item.key) for item in loras})
                pipe.load_lora_weights(lora.load(), adapter_name=name)
            loaded.adapters[name] = None
            loaded.adapters.move_to_end(name)
            names.append(name)
        pipe.enable_lora()
        pipe.set_adapters(names, [lora.weight for lora in loras])
        loaded.lora_active = True

    def _make_room(self, loaded: LoadedModel, keep: set[str]) -> None:
        while len(loaded.adapters) >= MAX_ADAPTERS:
            victim = next((n for n in loaded.adapters if n not in keep), None)
            if victim is None:
                return
            loaded.base.delete_adapters([victim])
            del loaded.adapters[victim]


def derive(cls: Any, base: Any, **extra: Any) -> Any:
    """A pipeline of class ``cls`` over ``base``'s components (shared, not copied), as
    ``from_pipe`` makes one, without its cast of every module to one dtype (float32 unless
    told: a bfloat16 model would be doubled, and a quantised transformer refuses casts)."""
    params = inspect.signature(cls.__init__).parameters
    components = {**base.components, **extra}
    kwargs = {name: value for name, value in components.items() if name in params}
    for name in params:  # settings such as FLUX.2's is_distilled, SD's safety flag
        if name not in kwargs and name in base.config and name not in base.components:
            kwargs[name] = base.config[name]
    pipe = cls(**kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_pipeline(entry: ModelEntry, family: Family, dtype: torch.dtype) -> Any:
    """The model's txt2img pipeline in ``dtype``, on the CPU (``place`` moves it)."""
    cls = family.pipeline_class(TXT2IMG)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if family.pipelines[TXT2IMG] == "StableDiffusionPipeline":
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    if entry.transformer_file:
        assert entry.base_path is not None  # registry.problem() says so before a load
        transformer = load_transformer(entry, family, dtype)
        return cls.from_pretrained(str(entry.base_path), transformer=transformer, **kwargs)
    if entry.single_file:
        # The family's shipped configs and tokenizers: no hub is ever asked.
        pipe = cls.from_single_file(str(entry.path), **kwargs,
                                    **single_file_kwargs(entry.family))
        prediction = entry.meta.get("prediction_type")
        if prediction in ("epsilon", "v_prediction"):
            # e.g. an SD 2.x 512 px (epsilon) checkpoint; the shipped SD 2 config is 2.1's
            pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config,
                                                              prediction_type=prediction)
        return pipe
    return cls.from_pretrained(str(entry.path), **kwargs)


def load_transformer(entry: ModelEntry, family: Family, dtype: torch.dtype) -> Any:
    """A transformer file (original layout, diffusers layout or GGUF) in its family's class,
    configured from the base folder's ``transformer/config.json``."""
    import diffusers

    assert family.transformer_class is not None and entry.base_path is not None
    cls = getattr(diffusers, family.transformer_class)
    kwargs: dict[str, Any] = {"config": str(entry.base_path), "subfolder": "transformer",
                              "local_files_only": True, "torch_dtype": dtype}
    if entry.quantised:
        # The weights stay quantised in memory and are dequantised layer by layer.
        kwargs["quantization_config"] = diffusers.GGUFQuantizationConfig(compute_dtype=dtype)
    return cls.from_single_file(str(entry.path), **kwargs)
