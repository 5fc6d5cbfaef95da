"""Classifier-free guidance at full scale for the noisiest part of the schedule only.

Guidance pushes a sample away from the unconditional prediction. While the noise is high
that is what makes the prompt's colours and layout win; once the layout is set, the same
push exaggerates edges: on the demo model, guidance 5 over all 20 steps draws squares with
ears and pinched sides and circles with four lobes, and guidance 5 for the first 30 % of
the schedule, then 1.5, draws round circles and straighter squares (docs/demo-model.md has
the figures). This is "guidance in a limited interval" (Kynkaanniemi et al., 2024), with a
lower scale instead of none after it: a scale above 1 keeps the pipelines' doubled
(unconditional + conditional) batch, so it works unchanged in every diffusers pipeline,
ControlNet and inpainting included (their control and mask inputs are doubled up front).

A model opts in through its ``ronghe.json``: ``recommended.guidance_end`` (the share of the
schedule, 0-1, run at the requested scale) and ``recommended.late_guidance_scale`` (> 1, the
most the rest gets). Models without them are guided as asked, all the way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Run after each denoising step with the pipeline and the index of the step just done.
StepHook = Callable[[Any, int], None]


@dataclass(frozen=True)
class GuidanceSchedule:
    # Share of the schedule (from pure noise) run at the requested scale; 1.0: all of it.
    end: float = 1.0
    # The scale after that, when the requested one is higher (> 1: the batch stays doubled).
    late_scale: float = 1.0

    @classmethod
    def from_recommended(cls, recommended: Mapping[str, Any]) -> GuidanceSchedule:
        """The schedule a model's ``recommended`` settings ask for; none when malformed."""
        end, late = recommended.get("guidance_end"), recommended.get("late_guidance_scale")
        if not (isinstance(end, int | float) and isinstance(late, int | float)):
            return cls()
        if not (0.0 < end < 1.0 and late > 1.0):
            return cls()
        return cls(float(end), float(late))

    @property
    def active(self) -> bool:
        return self.end < 1.0

    def recommended(self) -> dict[str, float]:
        """The ``recommended`` keys ``from_recommended`` reads back (none when inactive)."""
        if not self.active:
            return {}
        return {"guidance_end": self.end, "late_guidance_scale": self.late_scale}

    def full_steps(self, steps: int) -> int:
        """How many of a ``steps``-step schedule run at the requested scale."""
        return max(1, min(steps, round(self.end * steps))) if self.active else steps

    def start(self, scale: float, steps: int, skipped: int = 0) -> tuple[float, StepHook]:
        """The scale to call the pipeline with, and a hook to run after each step.

        ``skipped``: steps of the schedule img2img leaves out (it starts part way down);
        a run that starts past the end of the full-scale part is at the late scale from its
        first step. The hook takes the pipeline and the index of the step just done."""
        full = self.full_steps(steps)
        late = min(scale, self.late_scale) if self.active else scale

        def hook(pipe: Any, step: int) -> None:
            if skipped + step + 1 >= full:
                pipe._guidance_scale = late  # what diffusers' own dynamic-CFG recipe sets

        return (late if skipped >= full else scale), hook


def pipeline_arguments(schedule: GuidanceSchedule, scale: float, steps: int) -> dict[str, Any]:
    """Keyword arguments for calling a diffusers pipeline directly with this schedule."""
    first, hook = schedule.start(scale, steps)

    def callback(pipe: Any, step: int, _timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        hook(pipe, step)
        return kwargs

    return {"num_inference_steps": steps, "guidance_scale": first,
            "callback_on_step_end": callback}
