"""The A1111 <-> diffusers sampler table against the installed diffusers, and the swap on a
shared pipeline."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import diffusers
import pytest

from ronghe.engines.diffusion import samplers
from ronghe.errors import BadRequest

SD_CONFIG = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "steps_offset": 1, "prediction_type": "epsilon", "timestep_spacing": "leading"}


def _params(name: str) -> Any:
    return inspect.signature(getattr(diffusers, name).__init__).parameters


@pytest.mark.parametrize("sampler", list(samplers.DISCRETE.values()), ids=lambda s: s.name)
def test_every_sd_sampler_and_schedule_builds_what_the_table_says(
        sampler: samplers.Sampler) -> None:
    accepted = _params(sampler.scheduler)
    assert set(sampler.options) <= set(accepted)
    # A schedule type is listed only where the class takes what makes it.
    for schedule in samplers.SCHEDULES:
        makes = {k for k, v in samplers.SCHEDULE_OPTIONS[schedule].items()
                 if k != "timestep_spacing" or v == "trailing"}
        assert (schedule in sampler.schedules) == (makes <= set(accepted)), schedule
    own = diffusers.EulerDiscreteScheduler.from_config({**SD_CONFIG, "use_karras_sigmas": True})
    for schedule in sampler.schedules:
        made, used = samplers.build(own, "sd15", sampler.name, schedule)
        assert type(made).__name__ == sampler.scheduler
        assert used == sampler.resolve(schedule)
        config = made.config
        assert config["prediction_type"] == "epsilon"  # the model's training schedule kept
        assert bool(config.get("use_karras_sigmas")) == (used == samplers.KARRAS)
        assert bool(config.get("use_exponential_sigmas")) == (used == samplers.EXPONENTIAL)
        for key, value in sampler.options.items():
            assert config[key] == value
        made.set_timesteps(4)


def test_the_published_table() -> None:
    table = {name: (s.scheduler, dict(s.options), s.automatic)
             for name, s in samplers.DISCRETE.items()}
    assert table["DPM++ 2M"] == ("DPMSolverMultistepScheduler",
                                 {"algorithm_type": "dpmsolver++", "solver_order": 2}, "Karras")
    assert table["DPM++ 2M SDE"][1]["algorithm_type"] == "sde-dpmsolver++"
    assert table["DPM++ 2M SDE"][2] == "Exponential"
    assert table["DPM++ 3M SDE"][1] == {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}
    assert table["DPM++ SDE"][0] == "DPMSolverSinglestepScheduler"
    assert table["DPM2 a"][:1] == ("KDPM2AncestralDiscreteScheduler",)
    assert table["Euler a"][0] == "EulerAncestralDiscreteScheduler"
    assert samplers.SCHEDULE_OPTIONS["SGM Uniform"] == {"timestep_spacing": "trailing"}
    assert samplers.SCHEDULE_OPTIONS["Exponential"] == {"timestep_spacing": "linspace",
                                                        "use_exponential_sigmas": True}


def test_flow_samplers_keep_the_models_shift() -> None:
    own = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    made, used = samplers.build(own, "sd3", "DPM++ 2M", "")
    assert type(made).__name__ == "DPMSolverMultistepScheduler" and used == "Automatic"
    assert made.config["flow_shift"] == 3.0 and made.config["use_flow_sigmas"]
    assert made.config["prediction_type"] == "flow_prediction"
    same, _ = samplers.build(own, "flux", "Euler", "Automatic")
    public = {k: v for k, v in own.config.items() if not k.startswith("_")}
    assert {k: same.config[k] for k in public} == public  # the model's own, unchanged
    karras, _ = samplers.build(own, "zimage", "Euler", "Karras")
    assert karras.config["use_karras_sigmas"] and karras.config["shift"] == 3.0
    for family in samplers.FLOW_FAMILIES:
        assert "Euler" in samplers.samplers_for(family)
        assert "DDIM" not in samplers.samplers_for(family)


def test_check_names_and_refusals() -> None:
    assert samplers.check("demo", "m", "", "") == ("", "")
    assert samplers.check("demo", "m", "", "automatic") == ("", "")
    assert samplers.check("sdxl", "m", " euler  A ", "") == ("Euler a", "Automatic")
    assert samplers.check("sd15", "m", "DPM++ 2M SDE Karras", "") == ("DPM++ 2M SDE", "Karras")
    assert samplers.check("sd15", "m", "DPM2 a", "sgm uniform") == ("DPM2 a", "SGM Uniform")
    cases = [(("sd15", "m", "Restart", ""), "sampler_name"),
             (("flux", "m", "DDIM", ""), "sampler_name"),
             (("qwenimage", "m", "UniPC", ""), "sampler_name"),
             (("sd15", "m", "DDIM", "Exponential"), "scheduler"),
             (("sd15", "m", "DPM++ 2M Karras", "Exponential"), "sampler_name"),
             (("sd15", "m", "", "Karras"), "scheduler"),
             (("sd3", "m", "UniPC", "Karras"), "scheduler")]
    for args, field in cases:
        with pytest.raises(BadRequest) as caught:
            samplers.check(*args)
        assert caught.value.field == field, args
        assert str(caught.value).startswith(field), str(caught.value)


def test_the_model_scheduler_by_a1111_names() -> None:
    ddim = diffusers.DDIMScheduler.from_config(SD_CONFIG)
    assert samplers.model_sampler(ddim) == ("DDIM", "Automatic")
    dpm = diffusers.DPMSolverMultistepScheduler.from_config(
        {**SD_CONFIG, "use_karras_sigmas": True, "algorithm_type": "sde-dpmsolver++"})
    assert samplers.model_sampler(dpm) == ("DPM++ 2M SDE", "Karras")
    pndm = diffusers.PNDMScheduler.from_config(SD_CONFIG)
    assert samplers.model_sampler(pndm) == ("PLMS", "Automatic")


def test_a_swap_is_undone_even_when_the_generation_fails() -> None:
    own = diffusers.DDIMScheduler.from_config(SD_CONFIG)
    pipe = SimpleNamespace(scheduler=own)
    with pytest.raises(RuntimeError), samplers.applied(pipe, "sd15", "Euler a", "") as used:
        assert used == ("Euler a", "Automatic")
        assert type(pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
        raise RuntimeError("the pipeline failed")
    assert pipe.scheduler is own
    with samplers.applied(pipe, "sd15", "", "") as used:
        assert pipe.scheduler is own and used == ("DDIM", "Automatic")


def test_second_order_callbacks_map_onto_the_steps() -> None:
    heun = SimpleNamespace(_num_timesteps=2 * 10 - 1)
    mapped = [samplers.schedule_step(heun, i, 10) for i in range(19)]
    assert mapped[-1] == 9 and mapped == sorted(mapped) and min(mapped) >= -1
    first_order = SimpleNamespace(_num_timesteps=10)
    assert [samplers.schedule_step(first_order, i, 10) for i in range(10)] == list(range(10))
