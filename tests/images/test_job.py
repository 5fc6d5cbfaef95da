"""ImageJob and CaptionJob: the params a task row holds, written and read back."""

from __future__ import annotations

import json
from typing import Any

from ronghe.images.job import CaptionJob, Control, ImageJob, Lora, Mask, Outpaint
from ronghe.webhooks.request import Webhook

# A row as task_submit stored it before the job was typed (issue 27): add_prompt's decision
# at the top level, beside the input, as the worker remembered it then.
BEFORE_THE_JOB: dict[str, Any] = {
    "model": "ronghe-demo", "model_name": "", "prompt": "a red circle", "neg_prompt": "blurry",
    "n_images": 2, "scale": 5.0, "seed": 11, "width": 64, "height": 64, "steps": 4,
    "strength": 0.6, "init_file_id": "init-1",
    "controls": [{"cn": "canny", "file_id": "ctl-1", "processor": "canny", "weight": 0.8,
                  "start": 0.1, "end": 0.9, "low": 50, "high": 150, "rate": 1,
                  "annotators": ""}],
    "loras": [{"id": 7, "name": "stripes", "weight": 0.5}], "add_prompt": True,
    "task_type": "controlnet", "outpaint": None, "versionid": "stripes",
    "webhook": {"url": "https://example.com/hook", "events": ["completed"]},
    "enriched_prompt": "a red circle, soft light",
}


def every_part() -> ImageJob:
    return ImageJob(
        model="ronghe-demo", model_name="m", prompt="p", neg_prompt="n", n_images=3,
        scale=1.5, seed=2**32 - 1, width=96, height=64, steps=7, strength=1.0,
        task_type="outpaint", versionid=42, init_file_id="init",
        controls=(Control("canny", "c1", "invert", 0.5, 0.2, 0.8, 10, 20, 1, ""),
                  Control("tile", "c2", "tile_resample", rate=4, annotators="/a")),
        loras=(Lora(7, "stripes", 0.5), Lora(8, "dots", 1.0)), add_prompt=True,
        outpaint=Outpaint("src", 1.5, "topleft", (64, 48)), mask=Mask("mask"),
        webhook=Webhook("https://example.com/hook", ("started", "completed")))


def test_every_part_round_trips_through_params() -> None:
    job = every_part()
    params = job.to_params()
    assert ImageJob.from_params(params) == job
    # Stored as JSON: what comes back from the database reads the same.
    assert ImageJob.from_params(json.loads(json.dumps(params))) == job
    assert params["outpaint"]["source_size"] == [64, 48]
    assert params["webhook"] == {"url": "https://example.com/hook",
                                 "events": ["started", "completed"]}
    assert job.file_ids == ["init", "c1", "c2", "src", "mask"]


def test_absent_parts_leave_the_row_as_it_was() -> None:
    job = ImageJob(model="ronghe-demo", prompt="p", neg_prompt="", n_images=1, scale=7.0,
                   seed=1, width=64, height=64, steps=4, strength=0.6, task_type="txt2img")
    params = job.to_params()
    assert "mask" not in params and "webhook" not in params and params["outpaint"] is None
    assert ImageJob.from_params(params) == job


def test_a_row_stored_before_the_job_was_typed_still_loads() -> None:
    job = ImageJob.from_params(BEFORE_THE_JOB)
    assert job.controls[0] == Control("canny", "ctl-1", "canny", 0.8, 0.1, 0.9, 50, 150)
    assert job.loras == (Lora(7, "stripes", 0.5),) and job.versionid == "stripes"
    assert job.webhook == Webhook("https://example.com/hook", ("completed",))
    # The worker's decision is not part of the input.
    assert job.to_params() == {k: v for k, v in BEFORE_THE_JOB.items()
                               if k != "enriched_prompt"}
    # Rows from before versionid, outpaint and the processors' rate and annotators.
    oldest = {k: v for k, v in BEFORE_THE_JOB.items() if k not in ("versionid", "outpaint")}
    oldest["controls"] = [{k: v for k, v in oldest["controls"][0].items()
                           if k not in ("rate", "annotators")}]
    old = ImageJob.from_params(oldest)
    assert old.versionid == "" and old.outpaint is None
    assert (old.controls[0].rate, old.controls[0].annotators) == (1, "")


def test_the_caption_job_round_trips() -> None:
    assert CaptionJob.from_params(CaptionJob("f1").to_params()) == CaptionJob("f1")


def test_mask_options_and_output_format_round_trip_and_old_rows_load() -> None:
    job = ImageJob(model="ronghe-demo", prompt="p", neg_prompt="", n_images=1, scale=7.0,
                   seed=1, width=64, height=64, steps=4, strength=0.6, task_type="inpaint",
                   init_file_id="init", mask=Mask("m", blur=9, invert=True, only_masked=True,
                                                  padding=12, fill=0),
                   output_format="png")
    params = json.loads(json.dumps(job.to_params()))
    assert ImageJob.from_params(params) == job
    assert params["output_format"] == "png" and params["mask"]["padding"] == 12
    # A mask stored before its options existed: A1111's defaults; jpeg by default.
    old = {**params, "mask": {"file_id": "m"}}
    del old["output_format"]
    loaded = ImageJob.from_params(old)
    assert loaded.mask == Mask("m", blur=4, invert=False, only_masked=False, padding=32, fill=1)
    assert loaded.output_format == "jpeg" and "output_format" not in loaded.to_params()
