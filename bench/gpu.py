"""GPU benchmark: Ronghe's image engine against the same diffusers pipeline called directly.

One run compares, on the same pipeline object (same weights, dtype and placement):

- **raw**: the diffusers pipeline called directly (``pipe(prompt, ...)``), and
- **Ronghe**: ``ImageEngine.generate`` on a ``PipelineCache``, the path every image task takes
  (registry entry, the cache's dtype and offload choice and placement, the sampler and
  prompt handling, the per-step callback, VAE tiling/slicing, PIL output),

for SD 1.5 at 512², SDXL at 1024² and FLUX.1 [dev] at 1024², real-size architectures with
random weights (``tools/family_models.py``; speed does not depend on the values), batch 1
and 4.  Figures:

- **it/s**: denoising steps per second, from CUDA events recorded at the end of each step
  (in stream order, so nothing waits for them): the GPU's time from the end of step 1 to
  the end of the last step, which leaves out the text encoders, the first step's warm-up and
  the VAE decode.  On a CPU the wall clock stands in for the events;
- **s/image**: the whole call's wall time over the batch;
- **peak VRAM**: ``torch.cuda.max_memory_allocated`` during the call;
- **cold start**: from no model in memory to the first image, in a running process; the
  weights are made on the GPU from configs (a stand-in for reading files, reported apart as
  "build");
- **offload**: each of ``image_offload``'s modes (none, model, sequential) through a fresh
  ``PipelineCache`` on a card limited to 8 GiB (``torch.cuda.set_per_process_memory_fraction``),
  raw diffusers with the same ``enable_*_offload`` beside it; "OOM" where a mode does not fit;
- **LoRA training** steps/s on SDXL and FLUX at 1024², batch 1: Ronghe's
  ``LoraTrainer.train_step`` (engines/training, the family's preset) against a plain peft
  LoRA step on the denoiser as diffusers' ``train_dreambooth_lora_{sdxl,flux}`` make one
  (frozen base in half precision, the same rank and target modules, gradient
  checkpointing, clipping, AdamW; fp16 with fp32 LoRA weights and a loss scaler, bf16 as
  is), on random latents and text states of the real shapes;
- **torch.compile** (optional row, ``--compile``): SD 1.5 through a cache with
  ``compile=True`` (``image_compile``), in a child process with a time limit: the first
  image's extra time (the compile) and the compiled it/s.

How Ronghe gets the model: the registry entry is a folder holding the model's configs only
(``model_index.json`` and the denoiser's ``config.json``, what detection and the variant
read), and while the benchmark runs ``pipelines.load_pipeline``, the step that reads
weights from disk, hands over the random-weight pipeline instead; everything around it in
``PipelineCache._load`` (dtype and offload choice, placement, compile) and ``generate`` is the
real path.  Ronghe's cold start runs first and raw's second, so a first-time cost left over
in the process lands on Ronghe.

Rows are measured in priority order and each section stops being started once ``--budget-s``
is spent; results are written after every section, so a run cut short keeps what it had.

    python bench/gpu.py --compile --json gpu.json --markdown gpu.md  # one H100: < 8 min
    python bench/gpu.py --tiny                                       # tiny models, CPU: ~30 s

``--tiny`` runs every section on tiny components with a few steps (CPU unless ``--device``):
its figures say nothing of speed; it is the suite's test (tests/bench/test_gpu_tiny.py) that
the GPU run is a formality.  docs/benchmarks.md ("Images on a GPU") says how to run it on
the lent H100 and what to carry there.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
# tools/ (the family builders) and src/ (Ronghe, where it is not installed, as on the GPU
# machine, which gets the working tree and wheels but no install).
for _path in (ROOT / "src", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

PROMPT = "a lighthouse on a cliff at dawn, oil painting"
GiB = 2**30
# What the issue asks (issue 28, "GPU benchmark").
RATIO_TARGET = 0.95
ITS_TARGETS = {"sd15": 30.0, "sdxl": 8.0}  # batch 1, offload none, fp16, H100
FITS_8GB = ("sdxl", "flux")
VARIANTS = {"sd15": "", "sdxl": "", "flux": "dev"}
GUIDANCE = {"sd15": 7.0, "sdxl": 7.0, "flux": 3.5}
OFFLOAD_MODES = ("none", "model", "sequential")
SECTIONS = ("cold", "speed", "offload", "train", "compile")
TRAINED = ("sdxl", "flux")


@dataclass(frozen=True)
class Plan:
    tiny: bool
    device: str
    families: tuple[str, ...]
    sections: tuple[str, ...]
    batches: tuple[int, ...]
    sizes: dict[str, int]
    steps: dict[str, int]
    offload_steps: int
    cap_gib: float
    train_steps: int
    # LoRA rank on tiny models (full size: the family's preset's, SDXL 32 and FLUX 16).
    train_rank: int
    text_tokens: int
    budget_s: float
    # Best of this many (raw, Ronghe) pairs at batch 1; larger batches run one pair.
    repeats: int = 2
    # A raw call at each batch size before its pairs (its shapes' kernels, the VAE decode).
    warm: bool = True
    # Torch threads for both paths; None: torch's default, and the engine takes its CPU
    # budget's share as in a server.
    threads: int | None = None

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def scale(self) -> str:
        return "tiny" if self.tiny else "full"


def make_plan(args: argparse.Namespace) -> Plan:
    device = args.device or ("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    families = tuple(f for f in args.families.split(",") if f)
    sections = tuple(s for s in args.sections.split(",") if s)
    for name in families:
        if name not in VARIANTS:
            raise SystemExit(f"--families: {name!r} is not one of {', '.join(VARIANTS)}")
    for name in sections:
        if name not in SECTIONS:
            raise SystemExit(f"--sections: {name!r} is not one of {', '.join(SECTIONS)}")
    if args.tiny:
        # The code path of every row, as quickly as a busy two-core CPU allows: 32² (the
        # smallest side all three tiny models take), batch 2 for the batched rows, 3 steps
        # (two intervals for a rate), one pair per row; one thread on a CPU (on a shared
        # two-core box two spinning threads ran 20x slower).
        return Plan(tiny=True, device=device, families=families, sections=sections,
                    batches=(1, 2), sizes=dict.fromkeys(VARIANTS, 32),
                    steps=dict.fromkeys(VARIANTS, args.steps or 3), offload_steps=3,
                    cap_gib=args.cap_gib, train_steps=2, train_rank=4, text_tokens=16,
                    budget_s=args.budget_s, repeats=1, warm=False,
                    threads=None if device.startswith("cuda") else 1)
    # Enough steps for a stable rate, few enough for the whole run to stay under 8 minutes
    # on one H100 (FLUX at batch 4: ~1.5 s a step).
    steps = (dict.fromkeys(VARIANTS, args.steps) if args.steps
             else {"sd15": 30, "sdxl": 20, "flux": 8})
    return Plan(tiny=False, device=device, families=families, sections=sections,
                batches=(1, 4), sizes={"sd15": 512, "sdxl": 1024, "flux": 1024}, steps=steps,
                offload_steps=4, cap_gib=args.cap_gib, train_steps=args.train_steps,
                train_rank=16, text_tokens=512, budget_s=args.budget_s)


# --- measuring


class StepClock:
    """Marks the end of each denoising step: CUDA events on a GPU (recorded in stream order:
    the CPU never waits for them), the wall clock elsewhere."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.marks: list[Any] = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def rate(self) -> float | None:
        """Steps per second between the first mark and the last (call after a sync)."""
        if len(self.marks) < 2:
            return None
        if self.cuda:
            seconds = self.marks[0].elapsed_time(self.marks[-1]) / 1000
        else:
            seconds = self.marks[-1] - self.marks[0]
        return (len(self.marks) - 1) / seconds if seconds > 0 else None


@dataclass
class Figures:
    it_s: float | None = None
    s_per_image: float | None = None
    peak_gib: float | None = None
    seconds: float | None = None
    error: str = ""

    @classmethod
    def best(cls, runs: list[Figures]) -> Figures:
        """Best of repeats (least disturbed): highest rate, lowest time, highest peak."""
        ok = [r for r in runs if not r.error]
        if not ok:
            return runs[-1]

        def pick(values: list[float | None], fn: Callable[..., float]) -> float | None:
            present = [v for v in values if v is not None]
            return fn(present) if present else None

        return cls(pick([r.it_s for r in ok], max), pick([r.s_per_image for r in ok], min),
                   pick([r.peak_gib for r in ok], max), pick([r.seconds for r in ok], min))


def sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def free_memory(cuda: bool) -> None:
    """Freed pipelines' VRAM back to the device before the next figure (nothing to measure
    on a CPU, where a collection of this heap takes most of a second)."""
    if cuda:
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def short_error(exc: BaseException) -> str:
    if isinstance(exc, torch.OutOfMemoryError):
        return "OOM"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


def measured(cuda: bool, images: int, call: Callable[[StepClock], Any],
             catch: bool = False) -> Figures:
    """Runs ``call`` (which marks each step on the clock it is given) and takes its figures;
    ``catch``: a failure (OOM under the cap) becomes the figures' error."""
    clock = StepClock(cuda)
    free_memory(cuda)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    try:
        call(clock)
        sync(cuda)
    except Exception as exc:
        if not catch:
            raise
        error = short_error(exc)
        del exc
        free_memory(cuda)
        return Figures(error=error, seconds=time.perf_counter() - started)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / GiB if cuda else None
    return Figures(clock.rate(), seconds / images, peak, seconds)


# --- the two paths


@dataclass
class ModelsConfig:
    """What ``ModelRegistry`` reads (``registry.ModelsConfig``): one configured model."""

    image_models: list[Any]
    image_default_model: str
    models_path: Path | None = None
    loras_path: Path | None = None


class Weights:
    """Stands in for ``pipelines.load_pipeline`` (reading a model's files) while the
    benchmark runs: hands the cache the pipeline that ``sources[path]`` makes or holds."""

    def __init__(self) -> None:
        self.sources: dict[str, Callable[[torch.dtype], Any]] = {}
        self.seconds = 0.0

    def __call__(self, entry: Any, family: Any, dtype: torch.dtype) -> Any:
        started = time.perf_counter()
        pipe = self.sources[str(entry.path)](dtype)
        held = next(p.dtype for p in getattr(pipe, family.denoiser).parameters())
        if held != dtype:
            raise RuntimeError(f"the cache asked for {dtype}, the pipeline holds {held}")
        self.seconds = time.perf_counter() - started
        return pipe


@contextlib.contextmanager
def weights_installed(weights: Weights) -> Iterator[None]:
    from ronghe.engines.diffusion import pipelines

    original = pipelines.load_pipeline
    pipelines.load_pipeline = weights
    try:
        yield
    finally:
        pipelines.load_pipeline = original


def config_folder(root: Path, family: str) -> Path:
    """A folder with the model's configs and no weights: what the registry's detection and
    variant (FLUX dev: guidance embedded) read.  The configs of the tiny build carry the same
    classes and flags as the full one's."""
    from tools import family_models

    folder = root / family
    pipe = family_models.build(family, "tiny", VARIANTS[family])
    pipe.save_config(str(folder))
    denoiser = "unet" if hasattr(pipe, "unet") else "transformer"
    getattr(pipe, denoiser).save_config(str(folder / denoiser))
    return folder


class Bench:
    def __init__(self, plan: Plan, work: Path,
                 outputs: tuple[Path | None, Path | None] = (None, None)) -> None:
        self.plan = plan
        self.work = work
        # (JSON, markdown) paths, rewritten after every section.
        self.outputs = outputs
        self.weights = Weights()
        self.folders: dict[str, Path] = {}
        self.results: dict[str, Any] = {"meta": meta(plan), "speed": [], "cold": [],
                                        "offload": [], "train": [], "compile": [],
                                        "skipped": [], "errors": []}

    # --- helpers

    def elapsed(self) -> float:
        return time.perf_counter() - STARTED

    def dtype(self, family: str) -> torch.dtype:
        from ronghe.engines.diffusion import device as placement
        from ronghe.engines.diffusion.families import get

        return getattr(torch, placement.pick_dtype(get(family), self.plan.device))

    def build(self, family: str, dtype: torch.dtype) -> Any:
        from tools import family_models

        return family_models.build(family, self.plan.scale, VARIANTS[family], dtype=dtype,
                                   device=self.plan.device)

    def engine(self, family: str, source: Callable[[torch.dtype], Any], offload: str = "none",
               compile: bool = False) -> Any:
        """A fresh registry, cache and engine for ``family``; its loads come from ``source``."""
        from ronghe.engines.diffusion.generate import ImageEngine
        from ronghe.engines.diffusion.pipelines import PipelineCache
        from ronghe.engines.diffusion.registry import ModelRegistry
        from ronghe.settings import ImageModelSpec

        if family not in self.folders:
            self.folders[family] = config_folder(self.work, family)
        folder = self.folders[family]
        self.weights.sources[str(folder)] = source
        spec = ImageModelSpec(name=family, path=str(folder), family=family)
        registry = ModelRegistry(ModelsConfig([spec], family))
        cache = PipelineCache(registry, capacity=1, device=self.plan.device, offload=offload,
                              compile=compile)
        return ImageEngine(registry, cache)

    def request(self, family: str, batch: int, steps: int) -> Any:
        from ronghe.engines.diffusion.generate import GenerationRequest

        side = self.plan.sizes[family]
        return GenerationRequest(prompt=PROMPT, seeds=list(range(batch)), width=side,
                                 height=side, steps=steps, guidance=GUIDANCE[family],
                                 model=family)

    def ronghe(self, engine: Any, family: str, batch: int, steps: int,
               catch: bool = False) -> Figures:
        req = self.request(family, batch, steps)

        def call(clock: StepClock) -> None:
            result = engine.generate(req, on_step=lambda _done, _total: clock.mark(),
                                     threads=self.plan.threads)
            assert len(result.images) == batch

        return measured(self.plan.cuda, batch, call, catch)

    def raw(self, pipe: Any, family: str, batch: int, steps: int, catch: bool = False,
            prepare: Callable[[], None] | None = None) -> Figures:
        """The pipeline called as diffusers' documentation calls it (its own defaults: no VAE
        slicing or tiling, whatever an earlier Ronghe run on it set)."""
        side = self.plan.sizes[family]

        def call(clock: StepClock) -> None:
            if prepare is not None:
                prepare()
            for name in ("disable_slicing", "disable_tiling"):
                getattr(pipe.vae, name, lambda: None)()

            def on_end(_pipe: Any, _step: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
                clock.mark()
                return kwargs

            out = pipe(prompt=PROMPT, num_images_per_prompt=batch,
                       generator=[torch.Generator().manual_seed(s) for s in range(batch)],
                       num_inference_steps=steps, guidance_scale=GUIDANCE[family],
                       width=side, height=side, output_type="pil",
                       callback_on_step_end=on_end)
            assert len(out.images) == batch

        return measured(self.plan.cuda, batch, call, catch)

    def save(self, json_path: Path | None, markdown_path: Path | None) -> None:
        self.results["meta"]["elapsed_s"] = round(self.elapsed(), 1)
        if json_path is not None:
            json_path.write_text(json.dumps(self.results, indent=2) + "\n", encoding="utf-8")
        if markdown_path is not None:
            markdown_path.write_text(markdown(self.results), encoding="utf-8")

    def guarded(self, section: str, family: str, run: Callable[[], None]) -> None:
        if section not in self.plan.sections:
            return
        if self.elapsed() > self.plan.budget_s:
            self.results["skipped"].append(f"{section} {family}: time budget spent")
            return
        try:
            run()
        except Exception as exc:
            self.results["errors"].append({"section": section, "family": family,
                                           "error": short_error(exc),
                                           "traceback": traceback.format_exc()[-3000:]})
            print(f"[{section} {family}] failed: {short_error(exc)}", file=sys.stderr)
            del exc
            free_memory(self.plan.cuda)

    # --- sections

    def warm_up(self) -> None:
        """CUDA's context, cuBLAS and cuDNN handles and the common kernels, on a tiny model,
        so the first family's cold start does not pay for the process's."""
        from tools import family_models

        started = time.perf_counter()
        pipe = family_models.build("sd15", "tiny", dtype=self.dtype("sd15"),
                                   device=self.plan.device)
        pipe(prompt=PROMPT, num_inference_steps=2, width=64, height=64, output_type="pil")
        sync(self.plan.cuda)
        del pipe
        free_memory(self.plan.cuda)
        self.results["meta"]["warm_up_s"] = round(time.perf_counter() - started, 2)
        self.results["meta"]["process_to_warm_s"] = round(self.elapsed(), 2)

    def family(self, family: str) -> None:
        """Every section for one family; the pipeline is freed at the end."""
        plan = self.plan
        dtype = self.dtype(family)
        steps = plan.steps[family]
        holder: dict[str, Any] = {}

        def cold() -> None:
            # Ronghe: nothing loaded -> the cache builds (stands in for reading files) and
            # places the model -> the first image.
            engine = self.engine(family, lambda d: self.build(family, d))
            ronghe = self.ronghe(engine, family, 1, steps)
            build_ronghe = self.weights.seconds
            engine.close()
            del engine
            free_memory(plan.cuda)
            # What eviction left behind (the CUDA context and kernels' workspace, no model).
            left = torch.cuda.memory_allocated() / GiB if plan.cuda else None
            # raw: build -> the first image.
            started = time.perf_counter()
            holder["pipe"] = self.build(family, dtype)
            sync(plan.cuda)
            build_raw = time.perf_counter() - started
            raw = self.raw(holder["pipe"], family, 1, steps)
            self.results["cold"].append({
                "family": family, "size": plan.sizes[family], "steps": steps,
                "raw_build_s": build_raw, "raw_first_image_s": raw.seconds,
                "raw_total_s": build_raw + (raw.seconds or 0),
                "ronghe_build_s": build_ronghe,
                "ronghe_first_image_s": (ronghe.seconds or 0) - build_ronghe,
                "ronghe_total_s": ronghe.seconds, "after_evict_gib": left})

        def pipe() -> Any:
            if "pipe" not in holder:
                holder["pipe"] = self.build(family, dtype)
            return holder["pipe"]

        def speed() -> None:
            engine = self.engine(family, lambda _d: pipe())
            self.ronghe(engine, family, 1, 2)  # the load (a hand-over) and a warm-up
            for batch in plan.batches:
                if plan.warm:
                    self.raw(pipe(), family, batch, 3)  # this batch's shapes: kernels, VAE
                raws: list[Figures] = []
                ronghes: list[Figures] = []
                for _ in range(plan.repeats if batch == 1 else 1):
                    raws.append(self.raw(pipe(), family, batch, steps))
                    ronghes.append(self.ronghe(engine, family, batch, steps))
                self.results["speed"].append(row(family, plan.sizes[family], batch, "none",
                                                 None, steps, Figures.best(raws),
                                                 Figures.best(ronghes)))
            engine.cache.clear()
            del engine

        def train() -> None:
            if family not in TRAINED:
                return
            rank = training_preset(family, plan).rank
            if plan.cuda:  # back from the CPU, where the offload section left it
                pipe().to(plan.device)
            if family not in self.folders:
                self.folders[family] = config_folder(self.work, family)
            raw = raw_training(pipe(), family, plan, dtype, rank)
            ronghe = ronghe_training(pipe(), family, plan, self.folders[family])
            self.results["train"].append({
                "family": family, "size": plan.sizes[family], "rank": rank,
                "steps": plan.train_steps, "raw": raw, "ronghe": ronghe,
                "ratio": (ronghe["steps_s"] / raw["steps_s"]
                          if raw["steps_s"] and ronghe["steps_s"] else None)})

        def offload() -> None:
            p = pipe()
            if plan.cuda:
                p.to("cpu")
                free_memory(True)
                total = torch.cuda.get_device_properties(0).total_memory
                torch.cuda.set_per_process_memory_fraction(min(1.0, plan.cap_gib * GiB / total))
            try:
                for mode in OFFLOAD_MODES:
                    self.offload_mode(family, p, mode)
            finally:
                if plan.cuda:
                    torch.cuda.set_per_process_memory_fraction(1.0)

        # In the order of the targets, so a run short of time drops training first.
        self.guarded("cold", family, cold)
        self.save(*self.outputs)
        self.guarded("speed", family, speed)
        self.save(*self.outputs)
        self.guarded("offload", family, offload)
        self.save(*self.outputs)
        self.guarded("train", family, train)
        holder.clear()
        free_memory(plan.cuda)
        self.save(*self.outputs)

    def offload_mode(self, family: str, pipe: Any, mode: str) -> None:
        """One offload mode under the cap: Ronghe through a cache with ``offload=mode``, then
        raw diffusers placed the same way; the pipeline goes back to the CPU after."""
        plan = self.plan
        steps = plan.offload_steps
        engine = self.engine(family, lambda _d: pipe, offload=mode)
        ronghe = self.ronghe(engine, family, 1, steps, catch=True)
        engine.cache.clear()
        del engine
        restore(pipe, plan)

        def place() -> None:
            if not plan.cuda:
                return  # diffusers' offload needs an accelerator; the CPU holds it all
            if mode == "none":
                pipe.to(plan.device)
            elif mode == "model":
                pipe.enable_model_cpu_offload(device=plan.device)
            else:
                pipe.enable_sequential_cpu_offload(device=plan.device)

        raw = self.raw(pipe, family, 1, steps, catch=True, prepare=place)
        restore(pipe, plan)
        self.results["offload"].append(row(family, plan.sizes[family], 1, mode,
                                           plan.cap_gib if plan.cuda else None, steps, raw,
                                           ronghe))

    def compile_row(self) -> None:
        """SD 1.5 through a cache with ``compile=True``, in a child process with what is left
        of the budget: a compile that runs long cannot overrun the whole benchmark.  On a CPU,
        where the cache compiles nothing, the same steps run in this process."""
        family = "sd15"
        left = self.plan.budget_s - self.elapsed()
        if left < 30:
            self.results["skipped"].append("compile: time budget spent")
            return
        eager = next((r["ronghe"]["it_s"] for r in self.results["speed"]
                      if r["family"] == family and r["batch"] == 1), None)
        if not self.plan.cuda:
            child = self.compile_child()
            child.update(eager_it_s=eager, speedup=None)
            self.results["compile"].append(child)
            return
        out = self.work / "compile.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--compile-child",
                   "--device", self.plan.device, "--families", family, "--json", str(out)]
        if self.plan.tiny:
            command.append("--tiny")
        started = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=left,
                                  check=False)
        except subprocess.TimeoutExpired:
            self.results["compile"].append({"family": family, "error":
                                            f"did not finish within {left:.0f} s"})
            return
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"compile child exited {done.returncode}: {done.stderr[-2000:]}")
        child = json.loads(out.read_text(encoding="utf-8"))
        child.update(process_s=time.perf_counter() - started, eager_it_s=eager,
                     speedup=(child["compiled_it_s"] / eager
                              if eager and child.get("compiled_it_s") else None))
        self.results["compile"].append(child)

    def compile_child(self) -> dict[str, Any]:
        family = "sd15"
        dtype = self.dtype(family)
        steps = self.plan.steps[family]
        pipe = self.build(family, dtype)
        engine = self.engine(family, lambda _d: pipe, compile=True)
        first = self.ronghe(engine, family, 1, steps)  # the load and the compile
        loaded = engine.cache.model(engine.registry.get(family))
        denoiser = getattr(loaded.base, loaded.entry.family_info.denoiser)
        again = Figures.best([self.ronghe(engine, family, 1, steps) for _ in range(2)])
        return {"family": family, "size": self.plan.sizes[family], "steps": steps,
                "compiled": getattr(denoiser, "_compiled_call_impl", None) is not None,
                "first_image_s": first.seconds, "steady_image_s": again.seconds,
                "warm_up_s": (first.seconds or 0) - (again.seconds or 0),
                "compiled_it_s": again.it_s, "peak_gib": again.peak_gib}


def restore(pipe: Any, plan: Plan) -> None:
    """Offload hooks off, the weights back in CPU memory (as the next mode starts)."""
    if not plan.cuda:
        return
    pipe.remove_all_hooks()
    pipe.to("cpu")
    free_memory(True)


def row(family: str, size: int, batch: int, offload: str, cap: float | None, steps: int,
        raw: Figures, ronghe: Figures) -> dict[str, Any]:
    ratio = (ronghe.it_s / raw.it_s) if raw.it_s and ronghe.it_s else None
    return {"family": family, "size": size, "batch": batch, "offload": offload,
            "cap_gib": cap, "steps": steps, "raw": asdict(raw), "ronghe": asdict(ronghe),
            "ratio": ratio}


# --- LoRA training


def train_figures(plan: Plan, run: Callable[[StepClock], int]) -> dict[str, Any]:
    """Steps/s of ``run`` (which marks the clock after each step and returns the LoRA's
    parameter count): the first step is a warm-up, the rate is over the rest."""
    clock = StepClock(plan.cuda)
    free_memory(plan.cuda)
    if plan.cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    params = run(clock)
    sync(plan.cuda)
    return {"steps_s": clock.rate(), "seconds": time.perf_counter() - started,
            "lora_params": params,
            "peak_gib": torch.cuda.max_memory_allocated() / GiB if plan.cuda else None}


def raw_training(pipe: Any, family: str, plan: Plan, dtype: torch.dtype,
                 rank: int) -> dict[str, Any]:
    """A plain peft LoRA step on the denoiser as diffusers' ``train_dreambooth_lora_sdxl``
    and ``_flux`` make one (frozen base in half precision, fp16 with fp32 LoRA weights and a
    loss scaler, bf16 as is, autocast, gradient checkpointing, gradient clipping at 1, AdamW),
    on random inputs of the real shapes."""
    from peft import LoraConfig

    from ronghe.engines.diffusion.families import get

    info = get(family)
    denoiser = getattr(pipe, info.denoiser)

    def run(clock: StepClock) -> int:
        denoiser.requires_grad_(False)
        denoiser.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                        target_modules=list(info.lora_targets)))
        params = [p for p in denoiser.parameters() if p.requires_grad]
        half16 = dtype == torch.float16
        if half16:  # diffusers' cast_training_params
            for param in params:
                param.data = param.data.float()
        if plan.cuda:
            denoiser.enable_gradient_checkpointing()
        denoiser.train()
        optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2, fused=True)
        scaler = torch.amp.GradScaler(enabled=half16 and plan.cuda)
        forward, target = training_inputs(denoiser, family, plan.sizes[family], plan, dtype)
        try:
            for _ in range(1 + plan.train_steps):
                with (torch.autocast("cuda", dtype=dtype) if plan.cuda
                      else contextlib.nullcontext()):
                    prediction = forward()
                loss = torch.nn.functional.mse_loss(prediction.float(), target.float())
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                clock.mark()
        finally:
            unload(denoiser)
        return sum(p.numel() for p in params)

    return train_figures(plan, run)


def ronghe_training(pipe: Any, family: str, plan: Plan, folder: Path) -> dict[str, Any]:
    """Ronghe's ``LoraTrainer`` (engines/training) on the same pipeline: its family preset at
    the benchmark's size (one bucket, no flips, batch 1), one random image and caption
    cached by ``prepare``, then ``train_step``.  Its loader hands the pipeline over, as the
    engine's does."""
    from dataclasses import replace
    from unittest import mock

    from PIL import Image

    from ronghe.engines.diffusion.families import get
    from ronghe.engines.training.lora import LoraTrainer
    from ronghe.engines.training.objectives import objective_for

    preset = training_preset(family, plan)
    side = plan.sizes[family]
    preset = replace(preset, resolution=side, buckets=False, flip=False, batch_size=1,
                     keep_unconditional=0.0, caption_tag_dropout=0.0)

    def hand_over(_cls: Any, _model_dir: Path, _family: Any, _dtype: Any = None) -> Any:
        return pipe

    kind = objective_for(get(family))

    def run(clock: StepClock) -> int:
        with mock.patch.object(kind, "load", classmethod(hand_over)):
            trainer = LoraTrainer(folder, preset, family=family, device=plan.device)
        try:
            noise = torch.randint(0, 256, (side, side, 3), dtype=torch.uint8).numpy()
            trainer.prepare([Image.fromarray(noise)], ["sks lighthouse, on a cliff"])
            if plan.cuda:  # the peak of the steps, not of prepare's VAE encode
                torch.cuda.reset_peak_memory_stats()
            for _ in range(1 + plan.train_steps):
                trainer.train_step()  # ends in float(loss): the step is done when it returns
                clock.mark()
            return sum(p.numel() for p in trainer.params)
        finally:
            unload(trainer.denoiser)
            del trainer

    return train_figures(plan, run)


def training_preset(family: str, plan: Plan) -> Any:
    from dataclasses import replace

    from ronghe.engines.training.presets import preset_for

    preset = preset_for(family, "Architecture")
    return replace(preset, rank=plan.train_rank) if plan.tiny else preset


def unload(denoiser: Any) -> None:
    """The LoRA layers out of the shared denoiser, as it was before training."""
    denoiser.disable_gradient_checkpointing()
    denoiser.eval()
    denoiser.unload_lora()
    denoiser.requires_grad_(False)


def training_inputs(denoiser: Any, family: str, side: int, plan: Plan,
                    dtype: torch.dtype) -> tuple[Callable[[], torch.Tensor], torch.Tensor]:
    """(the denoiser's forward on one random training sample, its target)."""
    device = plan.device
    latent = side // 8
    config = denoiser.config
    make = {"device": device, "dtype": dtype}
    if family != "flux":
        noise = torch.randn(1, config.in_channels, latent, latent, **make)
        sample = torch.randn_like(noise)
        t = torch.randint(0, 1000, (1,), device=device)
        text = torch.randn(1, 77, config.cross_attention_dim, **make)
        added: dict[str, torch.Tensor] | None = None
        if config.addition_embed_type == "text_time":  # SDXL: pooled text and size ids
            pooled = config.projection_class_embeddings_input_dim \
                - 6 * config.addition_time_embed_dim
            added = {"text_embeds": torch.randn(1, pooled, **make),
                     "time_ids": torch.tensor([[side, side, 0, 0, side, side]], **make)}

        def unet() -> torch.Tensor:
            return denoiser(sample, t, encoder_hidden_states=text, added_cond_kwargs=added,
                            return_dict=False)[0]

        return unet, noise
    from diffusers import FluxPipeline

    tokens = (latent // 2) ** 2
    latents = torch.randn(1, tokens, config.in_channels, **make)
    noise = torch.randn_like(latents)
    sigma = torch.rand(1, device=device, dtype=dtype)
    noisy = (1 - sigma) * latents + sigma * noise
    text = torch.randn(1, plan.text_tokens, config.joint_attention_dim, **make)
    pooled = torch.randn(1, config.pooled_projection_dim, **make)
    guidance = torch.full((1,), 3.5, **make) if config.guidance_embeds else None
    img_ids = FluxPipeline._prepare_latent_image_ids(1, latent // 2, latent // 2, device, dtype)
    txt_ids = torch.zeros(plan.text_tokens, 3, **make)

    def transformer() -> torch.Tensor:
        return denoiser(hidden_states=noisy, timestep=sigma, guidance=guidance,
                        pooled_projections=pooled, encoder_hidden_states=text,
                        txt_ids=txt_ids, img_ids=img_ids, return_dict=False)[0]

    return transformer, noise - latents  # flow matching: the velocity


# --- reporting


def meta(plan: Plan) -> dict[str, Any]:
    import diffusers

    info: dict[str, Any] = {
        "tiny": plan.tiny, "device": plan.device, "python": platform.python_version(),
        "torch": torch.__version__, "diffusers": diffusers.__version__,
        "plan": {k: v for k, v in asdict(plan).items()},
        "note": ("tiny components on this device: the figures say nothing of speed"
                 if plan.tiny else "real-size architectures, random weights")}
    if plan.cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_gib=round(props.total_memory / GiB, 1),
                    cuda=torch.version.cuda)
    else:
        info.update(cpu=platform.processor() or platform.machine(),
                    threads=torch.get_num_threads())
    return info


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def figure(fig: dict[str, Any], key: str, digits: int = 2) -> str:
    return fig["error"] if fig.get("error") else fmt(fig.get(key), digits)


def targets(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(target, verdict) for each of the issue's targets the run can judge."""
    tiny = results["meta"]["tiny"]
    out: list[tuple[str, str]] = []

    def verdict(ok: bool | None) -> str:
        if ok is None:
            return "not measured"
        return ("pass" if ok else "FAIL") + (" (tiny: not meaningful)" if tiny else "")

    rows = results["speed"] + [r for r in results["offload"] if r["ratio"] is not None]
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    out.append((f"Ronghe >= {RATIO_TARGET} x raw it/s in every row",
                verdict(min(ratios) >= RATIO_TARGET if ratios else None)
                + (f"; lowest {min(ratios):.3f}" if ratios else "")))
    for family, target in ITS_TARGETS.items():
        r = next((r for r in results["speed"] if r["family"] == family and r["batch"] == 1),
                 None)
        its = r["ronghe"]["it_s"] if r else None
        out.append((f"{family} batch 1 >= {target:g} it/s (H100, fp16)",
                    "n/a on tiny components" if tiny else
                    verdict(its >= target if its else None) + (f"; {its:.1f}" if its else "")))
    for family in FITS_8GB:
        modes = [r["offload"] for r in results["offload"]
                 if r["family"] == family and not r["ronghe"]["error"]]
        ran = any(r["family"] == family for r in results["offload"])
        out.append((f"{family} runs within {results['meta']['plan']['cap_gib']:g} GiB",
                    "n/a on CPU" if not results["meta"]["device"].startswith("cuda") else
                    verdict(bool(modes) if ran else None)
                    + (f" ({', '.join(modes)})" if modes else "")))
    return out


def markdown(results: dict[str, Any]) -> str:
    m = results["meta"]
    where = (f"{m['gpu']} ({m['gpu_gib']} GiB), CUDA {m['cuda']}" if "gpu" in m
             else f"CPU, {m['threads']} torch thread(s)")
    lines = [f"### bench/gpu.py: {where}, torch {m['torch']}, diffusers {m['diffusers']}"
             + (" — TINY components: not meaningful for speed" if m["tiny"] else ""), ""]
    lines += [f"Elapsed {fmt(m.get('elapsed_s'), 0)} s; warm-up on a tiny model (imports, and "
              f"on a GPU the CUDA context and common kernels) done "
              f"{fmt(m.get('process_to_warm_s'))} s after start.", ""]
    head = ("| family | size | batch | offload | cap GiB | steps | raw it/s | Ronghe it/s "
            "| ratio (target ≥ 0.95) | raw s/image | Ronghe s/image | raw peak GiB "
            "| Ronghe peak GiB |")
    lines += [head, "|" + "---|" * 13]
    for r in results["speed"] + results["offload"]:
        raw, ron = r["raw"], r["ronghe"]
        lines.append(
            f"| {r['family']} | {r['size']}² | {r['batch']} | {r['offload']} "
            f"| {fmt(r['cap_gib'], 0)} | {r['steps']} | {figure(raw, 'it_s')} "
            f"| {figure(ron, 'it_s')} | {fmt(r['ratio'], 3)} | {figure(raw, 's_per_image', 3)} "
            f"| {figure(ron, 's_per_image', 3)} | {figure(raw, 'peak_gib')} "
            f"| {figure(ron, 'peak_gib')} |")
    if results["cold"]:
        lines += ["", "Cold start to the first image (batch 1; build = weights made on the "
                  "device, standing in for reading files):", "",
                  "| family | steps | raw build s | raw first image s | raw total s "
                  "| Ronghe build s | Ronghe first image s | Ronghe total s "
                  "| VRAM left after eviction GiB |",
                  "|" + "---|" * 9]
        for c in results["cold"]:
            lines.append(f"| {c['family']} | {c['steps']} | {fmt(c['raw_build_s'])} "
                         f"| {fmt(c['raw_first_image_s'])} | {fmt(c['raw_total_s'])} "
                         f"| {fmt(c['ronghe_build_s'])} | {fmt(c['ronghe_first_image_s'])} "
                         f"| {fmt(c['ronghe_total_s'])} | {fmt(c['after_evict_gib'])} |")
    if results["train"]:
        lines += ["", "LoRA training, batch 1 (raw: a plain peft step as diffusers' dreambooth "
                  "LoRA scripts make one; Ronghe: `LoraTrainer.train_step` with the family's "
                  "preset):", "",
                  "| family | size | rank | raw steps/s | Ronghe steps/s | ratio "
                  "| raw peak GiB | Ronghe peak GiB | LoRA params (M) raw / Ronghe |",
                  "|" + "---|" * 9]
        for t in results["train"]:
            raw, ron = t["raw"], t["ronghe"]
            lines.append(f"| {t['family']} | {t['size']}² | {t['rank']} "
                         f"| {fmt(raw['steps_s'], 3)} | {fmt(ron['steps_s'], 3)} "
                         f"| {fmt(t['ratio'], 3)} | {fmt(raw['peak_gib'])} "
                         f"| {fmt(ron['peak_gib'])} | {raw['lora_params'] / 1e6:.2f} / "
                         f"{ron['lora_params'] / 1e6:.2f} |")
    if results["compile"]:
        lines += ["", "torch.compile (`image_compile: true`; batch 1, optional row):", "",
                  "| family | compiled | first image s | steady s/image | warm-up cost s "
                  "| compiled it/s | eager it/s | speed-up |", "|" + "---|" * 8]
        for c in results["compile"]:
            if c.get("error"):
                lines.append(f"| {c['family']} | {c['error']} |" + " |" * 6)
                continue
            lines.append(f"| {c['family']} | {c['compiled']} | {fmt(c['first_image_s'])} "
                         f"| {fmt(c['steady_image_s'], 3)} | {fmt(c['warm_up_s'])} "
                         f"| {fmt(c['compiled_it_s'])} | {fmt(c.get('eager_it_s'))} "
                         f"| {fmt(c.get('speedup'))} |")
    lines += ["", "| target (issue 28) | verdict |", "|---|---|"]
    lines += [f"| {t} | {v} |" for t, v in targets(results)]
    for s in results["skipped"]:
        lines.append(f"\nSkipped: {s}")
    for e in results["errors"]:
        lines.append(f"\nError in {e['section']} {e['family']}: {e['error']}")
    return "\n".join(lines) + "\n"


# --- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true",
                        help="tiny components, a few steps (CPU unless --device): the test")
    parser.add_argument("--device", default="", help="cuda, cuda:N or cpu (default: cuda "
                        "when there is one, cpu with --tiny)")
    parser.add_argument("--families", default="sd15,sdxl,flux")
    parser.add_argument("--sections", default="cold,speed,offload,train",
                        help=f"of {', '.join(SECTIONS)}; add 'compile' for the compile row")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile row")
    parser.add_argument("--steps", type=int, default=0, help="denoising steps per call "
                        "(default: sd15 30, sdxl 20, flux 8; tiny 3)")
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--cap-gib", type=float, default=8.0)
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="no section starts after this many seconds since start")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compile and "compile" not in args.sections:
        args.sections += ",compile"
    return args


def quiet() -> None:
    import structlog
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    plan = make_plan(args)
    if plan.threads:
        torch.set_num_threads(plan.threads)
    quiet()
    # Everything imported so far lives as long as the process: the collections that
    # freeing a model runs (here and in PipelineCache.evict) then skip it (~1 s each on a
    # busy CPU otherwise).
    gc.freeze()
    with tempfile.TemporaryDirectory(prefix="ronghe-bench-gpu-") as tmp:
        bench = Bench(plan, Path(tmp), (args.json, args.markdown))
        with weights_installed(bench.weights):
            if args.compile_child:
                assert args.json is not None
                args.json.write_text(json.dumps(bench.compile_child()), encoding="utf-8")
                return 0
            bench.warm_up()
            for family in plan.families:
                bench.family(family)
            if "compile" in plan.sections:
                bench.guarded("compile", "sd15", bench.compile_row)
        bench.save(args.json, args.markdown)
        print(markdown(bench.results))
        return 1 if bench.results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
