"""Samplers and schedule types by AUTOMATIC1111's names, as diffusers schedulers.

A request may name ``sampler_name`` (A1111's: ``Euler a``, ``DPM++ 2M`` …) and ``scheduler``
(the schedule type: ``Automatic``, ``Karras``, ``Exponential``, ``SGM Uniform``).  Each name
maps onto a diffusers scheduler class and options following diffusers' published table
(docs: api/schedulers/overview, "A1111/k-diffusion ↔ Diffusers" and "Noise schedules and
schedule types"):

- ``DPM++ 2M`` = ``DPMSolverMultistepScheduler``; ``… SDE`` adds
  ``algorithm_type="sde-dpmsolver++"``; ``DPM++ 3M SDE`` is the same at ``solver_order=3``;
  ``DPM++ SDE`` = ``DPMSolverSinglestepScheduler``; ``DPM2``/``DPM2 a`` = ``KDPM2…``;
  ``Euler``/``Euler a``/``Heun``/``LMS``/``DDIM``/``UniPC``/``LCM``/``PLMS`` their namesakes;
- ``Karras`` = ``use_karras_sigmas=True``; ``Exponential`` = ``timestep_spacing="linspace"``
  and ``use_exponential_sigmas=True``; ``SGM Uniform`` = ``timestep_spacing="trailing"``;
- ``Automatic`` is what A1111 (1.9+) gives each sampler by default: Karras for DPM++ 2M,
  DPM++ SDE, DPM2 and DPM2 a, Exponential for DPM++ 2M SDE and 3M SDE, the model's own
  spacing for the rest.

A new scheduler is made with ``from_config`` of the model's own, so it keeps the model's
training schedule (betas, prediction type, zero-terminal-SNR) and changes only the sampling
method.  The flow-matching families (FLUX, SD 3.x, Qwen-Image, Z-Image, FLUX.2) run
``FlowMatchEulerDiscreteScheduler``; they list only what works with their pipelines: Euler
(their own; Karras/Exponential sigmas too), UniPC and DPM++ 2M on flow sigmas where the
pipeline hands the scheduler its own sigmas (``use_flow_sigmas``), Heun for SD 3.

No sampler named means the model's own scheduler object, untouched: the same pixels as
before samplers existed.  A named one is set on the pipeline for one generation and the
model's own put back after it (``applied``), because pipelines are cached and share their
components: a swap must not leak into the next request.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ronghe.errors import BadRequest

AUTOMATIC, KARRAS, EXPONENTIAL, SGM_UNIFORM = "Automatic", "Karras", "Exponential", "SGM Uniform"
SCHEDULES = (AUTOMATIC, KARRAS, EXPONENTIAL, SGM_UNIFORM)
# The scheduler options each schedule type sets (only those the class takes are passed).
SCHEDULE_OPTIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    AUTOMATIC: MappingProxyType({}),
    KARRAS: MappingProxyType({"use_karras_sigmas": True}),
    EXPONENTIAL: MappingProxyType({"timestep_spacing": "linspace",
                                   "use_exponential_sigmas": True}),
    SGM_UNIFORM: MappingProxyType({"timestep_spacing": "trailing"}),
})
# Reset on every named sampler, so one never inherits another's sigmas from the model's own
# config (an SD checkpoint shipped with DPM++ 2M Karras asked for Euler gets plain Euler).
SIGMA_FLAGS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")
FLOW_FAMILIES = frozenset({"flux", "sd3", "qwenimage", "zimage", "flux2"})
# Flow families whose pipelines drop their own sigmas for a ``use_flow_sigmas`` scheduler
# (Qwen-Image and Z-Image always pass theirs, which DPM-Solver and UniPC cannot take).
FLOW_SIGMA_FAMILIES = frozenset({"flux", "sd3", "flux2"})


@dataclass(frozen=True)
class Sampler:
    """One A1111 sampler: the diffusers class, its options, the schedule types it takes
    and the one ``Automatic`` stands for."""

    name: str
    scheduler: str
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    schedules: tuple[str, ...] = SCHEDULES
    automatic: str = AUTOMATIC
    # Flow-matching variants take the model's shift as ``flow_shift``.
    flow: bool = False
    # Whether it can start from an image: the flow families' img2img and inpainting
    # pipelines noise the image with ``scheduler.scale_noise``, which only the flow-matching
    # schedulers have.
    paints_over: bool = True

    def resolve(self, schedule: str) -> str:
        """The schedule type actually used ("Automatic" is the sampler's default)."""
        return self.automatic if schedule in ("", AUTOMATIC) else schedule


def _sd(name: str, scheduler: str, automatic: str = AUTOMATIC,
        schedules: tuple[str, ...] = SCHEDULES, **options: Any) -> Sampler:
    return Sampler(name, scheduler, MappingProxyType(options), schedules, automatic)


_SPACING_ONLY = (AUTOMATIC, SGM_UNIFORM)
# Stable Diffusion (1.x, 2.x, XL, the demo): discrete-time schedulers.
DISCRETE: Mapping[str, Sampler] = MappingProxyType({s.name: s for s in (
    _sd("Euler", "EulerDiscreteScheduler"),
    _sd("Euler a", "EulerAncestralDiscreteScheduler", schedules=_SPACING_ONLY),
    _sd("DPM++ 2M", "DPMSolverMultistepScheduler", KARRAS, algorithm_type="dpmsolver++",
        solver_order=2),
    _sd("DPM++ 2M SDE", "DPMSolverMultistepScheduler", EXPONENTIAL,
        algorithm_type="sde-dpmsolver++", solver_order=2),
    # diffusers' table: DPM++ SDE is the single-step solver (no torchsde needed).
    _sd("DPM++ SDE", "DPMSolverSinglestepScheduler", KARRAS,
        (AUTOMATIC, KARRAS, EXPONENTIAL), algorithm_type="dpmsolver++", solver_order=2),
    _sd("DPM++ 3M SDE", "DPMSolverMultistepScheduler", EXPONENTIAL,
        algorithm_type="sde-dpmsolver++", solver_order=3),
    _sd("DDIM", "DDIMScheduler", schedules=_SPACING_ONLY),
    _sd("UniPC", "UniPCMultistepScheduler"),
    _sd("LMS", "LMSDiscreteScheduler"),
    _sd("Heun", "HeunDiscreteScheduler"),
    _sd("DPM2", "KDPM2DiscreteScheduler", KARRAS),
    _sd("DPM2 a", "KDPM2AncestralDiscreteScheduler", KARRAS),
    # A1111 lists LCM for every model: it is what an LCM checkpoint or LCM-LoRA wants.
    _sd("LCM", "LCMScheduler", schedules=_SPACING_ONLY),
    _sd("PLMS", "PNDMScheduler", schedules=_SPACING_ONLY, skip_prk_steps=True),
)})
_FLOW_EULER = Sampler("Euler", "FlowMatchEulerDiscreteScheduler",
                      schedules=(AUTOMATIC, KARRAS, EXPONENTIAL))
_FLOW_UNIPC = Sampler("UniPC", "UniPCMultistepScheduler", MappingProxyType({
    "use_flow_sigmas": True, "prediction_type": "flow_prediction"}), (AUTOMATIC,), flow=True,
    paints_over=False)
_FLOW_DPM = Sampler("DPM++ 2M", "DPMSolverMultistepScheduler", MappingProxyType({
    "use_flow_sigmas": True, "prediction_type": "flow_prediction",
    "algorithm_type": "dpmsolver++", "solver_order": 2}), (AUTOMATIC,), flow=True,
    paints_over=False)
_FLOW_HEUN = Sampler("Heun", "FlowMatchHeunDiscreteScheduler", schedules=(AUTOMATIC,))


def _flow(*samplers: Sampler) -> Mapping[str, Sampler]:
    return MappingProxyType({s.name: s for s in samplers})


# Per flow family.  DPM++ 2M asserts dynamic shifting whenever a pipeline passes ``mu``,
# which FLUX's and FLUX.2's always do (schnell's config is not dynamic): SD 3 only.  Heun's
# set_timesteps takes no sigmas, which only SD 3's pipeline does not pass.
FLOW: Mapping[str, Mapping[str, Sampler]] = MappingProxyType({
    "flux": _flow(_FLOW_EULER, _FLOW_UNIPC),
    "flux2": _flow(_FLOW_EULER, _FLOW_UNIPC),
    "sd3": _flow(_FLOW_EULER, _FLOW_DPM, _FLOW_UNIPC, _FLOW_HEUN),
    "qwenimage": _flow(_FLOW_EULER),
    "zimage": _flow(_FLOW_EULER),
})
# Old-style names that carry their schedule ("DPM++ 2M Karras", as A1111 before 1.9 and its
# API clients still send).
SUFFIXES = {" karras": KARRAS, " exponential": EXPONENTIAL}


def samplers_for(family: str) -> Mapping[str, Sampler]:
    """The samplers a family's models take, in the order the form lists them."""
    if family in FLOW_FAMILIES:
        return FLOW.get(family, _flow(_FLOW_EULER))
    return DISCRETE


def describe(family: str) -> list[dict[str, Any]]:
    """The form's choices for a family: each sampler with its schedule types."""
    return [{"name": s.name, "schedules": list(s.schedules), "automatic": s.automatic,
             "paints_over": s.paints_over} for s in samplers_for(family).values()]


def _find(table: Mapping[str, Sampler], name: str) -> Sampler | None:
    wanted = " ".join(name.split()).lower()
    return next((s for s in table.values() if s.name.lower() == wanted), None)


def check(family: str, model: str, sampler_name: str, scheduler: str,
          paints_over: bool = False) -> tuple[str, str]:
    """The request's sampler and schedule type in A1111's spelling (("", "") when none is
    named: the model's own), or a 400 naming ``sampler_name`` or ``scheduler``.
    ``paints_over``: the task starts from an image (img2img, inpainting, outpainting, or
    hires fix's second pass)."""
    sampler_name, scheduler = sampler_name.strip(), scheduler.strip()
    table = samplers_for(family)
    schedule = next((s for s in SCHEDULES if s.lower() == " ".join(scheduler.split()).lower()),
                    None)
    if scheduler and schedule is None:
        raise BadRequest(f"scheduler must be one of {', '.join(SCHEDULES)} "
                         f"(got {scheduler!r})", field="scheduler")
    if not sampler_name:
        if schedule not in (None, AUTOMATIC):
            raise BadRequest(f"scheduler: {schedule!r} needs a sampler_name (the model's own "
                             "sampler takes only Automatic)", field="scheduler")
        return "", ""
    sampler = _find(table, sampler_name)
    if sampler is None:
        lowered = sampler_name.lower()
        for suffix, implied in SUFFIXES.items():
            base = _find(table, sampler_name[:-len(suffix)]) if lowered.endswith(suffix) else None
            if base is not None and schedule in (None, AUTOMATIC, implied):
                sampler, schedule = base, implied
                break
    if sampler is None:
        known = _find(DISCRETE, sampler_name) or _find(FLOW["sd3"], sampler_name)
        why = (f"is not available for model {model!r} ({family})" if known
               else "is not a sampler")
        raise BadRequest(f"sampler_name: {sampler_name!r} {why}; model {model!r} takes "
                         + ", ".join(table), field="sampler_name")
    if paints_over and not sampler.paints_over:
        others = ", ".join(s.name for s in table.values() if s.paints_over)
        raise BadRequest(f"sampler_name: {sampler.name} draws from noise only on {family} "
                         f"models; img2img, inpainting, outpainting and hires fix take "
                         f"{others}", field="sampler_name")
    used = sampler.resolve(schedule or AUTOMATIC)
    if used not in sampler.schedules:
        raise BadRequest(f"scheduler: {sampler.name} takes {', '.join(sampler.schedules)} "
                         f"(got {schedule!r})", field="scheduler")
    return sampler.name, schedule or AUTOMATIC


def build(own: Any, family: str, sampler_name: str, schedule: str) -> tuple[Any, str]:
    """A new scheduler for ``sampler_name`` and ``schedule`` made from the model's own
    (``own``), and the schedule type it uses."""
    import diffusers

    sampler = samplers_for(family)[sampler_name]
    used = sampler.resolve(schedule)
    cls = getattr(diffusers, sampler.scheduler)
    accepted = inspect.signature(cls.__init__).parameters
    options: dict[str, Any] = {k: False for k in SIGMA_FLAGS if k in accepted}
    options.update(sampler.options)
    options.update(SCHEDULE_OPTIONS[used])
    if sampler.flow:
        # The flow-matching config's shift, under the name DPM-Solver and UniPC give it.
        options["flow_shift"] = float(own.config.get("shift", 1.0))
    config = {k: v for k, v in own.config.items() if k in accepted}
    return cls.from_config(config, **{k: v for k, v in options.items() if k in accepted}), used


def model_sampler(scheduler: Any) -> tuple[str, str]:
    """The A1111 names of a model's own scheduler (its class name when A1111 has none)."""
    config = scheduler.config
    name = type(scheduler).__name__
    if name == "DPMSolverMultistepScheduler":
        sde = config.get("algorithm_type") == "sde-dpmsolver++"
        order = int(config.get("solver_order", 2))
        label = ("DPM++ 3M SDE" if order == 3 else "DPM++ 2M SDE") if sde else "DPM++ 2M"
    else:
        label = {
            "EulerDiscreteScheduler": "Euler", "EulerAncestralDiscreteScheduler": "Euler a",
            "DPMSolverSinglestepScheduler": "DPM++ SDE", "DDIMScheduler": "DDIM",
            "UniPCMultistepScheduler": "UniPC", "LMSDiscreteScheduler": "LMS",
            "HeunDiscreteScheduler": "Heun", "KDPM2DiscreteScheduler": "DPM2",
            "KDPM2AncestralDiscreteScheduler": "DPM2 a", "LCMScheduler": "LCM",
            "PNDMScheduler": "PLMS", "FlowMatchEulerDiscreteScheduler": "Euler",
            "FlowMatchHeunDiscreteScheduler": "Heun",
        }.get(name, name)
    schedule = (KARRAS if config.get("use_karras_sigmas") else
                EXPONENTIAL if config.get("use_exponential_sigmas") else AUTOMATIC)
    return label, schedule


def used(own: Any, family: str, sampler_name: str, schedule: str) -> tuple[str, str]:
    """What a generation runs with: the named sampler and its schedule type, else the
    model's own scheduler (``own``) by A1111's names."""
    if not sampler_name:
        return model_sampler(own)
    return sampler_name, samplers_for(family)[sampler_name].resolve(schedule)


@contextmanager
def applied(pipe: Any, family: str, sampler_name: str,
            schedule: str) -> Iterator[tuple[str, str]]:
    """Runs the block with the named sampler on ``pipe`` and yields (sampler, schedule
    type) used; with none named, the model's own scheduler, untouched.  The model's own is
    put back afterwards, whatever happens."""
    own = pipe.scheduler
    if not sampler_name:
        yield model_sampler(own)
        return
    scheduler, schedule_used = build(own, family, sampler_name, schedule)
    pipe.scheduler = scheduler
    try:
        yield sampler_name, schedule_used
    finally:
        pipe.scheduler = own


def schedule_step(pipe: Any, step: int, steps: int) -> int:
    """The index of the schedule step a pipeline callback's ``step`` ends.

    Second-order samplers (Heun, DPM2) call back about twice per step: their ``2n - 1``
    timesteps map onto the ``n`` steps asked for, so progress and the guidance schedule
    follow the steps, not the model calls.  For the rest this is ``step`` itself."""
    calls = int(getattr(pipe, "_num_timesteps", 0) or 0)
    if calls <= steps or steps <= 0:
        return step
    return ((step + 1) * steps) // calls - 1
