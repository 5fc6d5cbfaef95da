"""The image task on a context built by hand: no app, no dispatcher, no Services container."""

from __future__ import annotations

import dataclasses
import io
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ronghe.db.migrate import upgrade
from ronghe.engines.diffusion.engine import build_engine
from ronghe.engines.diffusion.output import read_metadata
from ronghe.errors import NotReady
from ronghe.images.job import ImageJob, Mask
from ronghe.jobs.runner import JobContext
from ronghe.queues import Kind, image_queue
from ronghe.services import Services
from ronghe.tasks import images
from ronghe.tasks.context import ImageTaskContext
from tests.conftest import DemoModel, make_settings
from tests.image_support import PROMPT


@pytest.fixture
def services(tmp_path: Path, demo_model: DemoModel) -> Iterator[Services]:
    svc = Services.build(make_settings(tmp_path / "data", image_models=[demo_model.spec()],
                                       image_worker_process=False, cpu_threads=1))
    upgrade(svc.db.engine)
    yield svc
    svc.close()


def params(**changes: Any) -> dict[str, Any]:
    base = {"model": "ronghe-demo", "model_name": "", "prompt": PROMPT, "neg_prompt": "",
            "n_images": 2, "scale": 5.0, "seed": 11, "width": 64, "height": 64, "steps": 4,
            "strength": 0.6, "init_file_id": None, "controls": [], "loras": [],
            "add_prompt": False, "task_type": "txt2img"}
    return {**base, **changes}


def run(services: Services, enrich: Any = None, **changes: Any) -> tuple[dict[str, Any], str]:
    user = services.auth.add_user(f"{uuid.uuid4().hex[:12]}@x.co", "longenough").id
    task = services.tasks.create(user, Kind.IMAGE, image_queue("demo"), params(**changes))
    claimed = services.tasks.claim(task.id, "test-worker")
    assert claimed is not None
    engine = build_engine(services.settings, services.image_models)
    with JobContext(services.tasks, claimed, "test-worker", threading.Event()) as job:
        ctx = ImageTaskContext(job, services.files, services.loras, engine, enrich, None)
        try:
            return images.run(ctx), task.id
        finally:
            engine.close()


def test_the_task_stores_every_image_with_its_metadata(services: Services) -> None:
    result, task_id = run(services)
    assert [im["seed"] for im in result["images"]] == [11, 12]
    assert result["steps_run"] == 4 and result["prompt"] == PROMPT
    first = result["images"][0]
    assert first["large"] == images.output_file_id(task_id, 0, "large")
    info = services.files.get(first["large"], services.tasks.get(task_id).user_id)
    meta = read_metadata(services.files.read(info))
    assert meta["seed"] == 11 and meta["task_id"] == task_id and meta["model"] == "ronghe-demo"
    assert services.tasks.get(task_id).progress >= 0.01  # reported through the context


def test_add_prompt_uses_the_context_s_rewrite_or_fails_without_one(
        services: Services) -> None:
    result, _ = run(services, enrich=lambda p: f"{p}, soft light", add_prompt=True)
    assert result["prompt"] == f"{PROMPT}, soft light"
    assert result["original_prompt"] == PROMPT
    with pytest.raises(NotReady, match="no chat engine"):
        run(services, add_prompt=True, n_images=1)


def test_add_prompt_that_adds_nothing_generates_from_the_prompt(services: Services) -> None:
    result, task_id = run(services, enrich=lambda p: p, add_prompt=True, n_images=1)
    assert result["prompt"] == PROMPT and result["prompt_added"] is False
    info = services.files.get(result["images"][0]["large"])
    assert "original_prompt" not in read_metadata(services.files.read(info))
    assert services.tasks.get(task_id).params["memo"]["enriched_prompt"] == PROMPT


def test_the_enriched_prompt_is_stored_before_generating_and_reused_on_a_rerun(
        services: Services) -> None:
    user = services.auth.add_user("rerun@x.co", "longenough").id
    task = services.tasks.create(user, Kind.IMAGE, image_queue("demo"),
                                 params(add_prompt=True, n_images=1))
    engine = build_engine(services.settings, services.image_models)
    try:
        first = services.tasks.claim(task.id, "worker-1")
        assert first is not None
        with JobContext(services.tasks, first, "worker-1", threading.Event()) as job:
            ctx = ImageTaskContext(job, services.files, services.loras, engine,
                                   lambda p: f"{p}, soft light", None)
            assert images.enriched_prompt(ctx) == f"{PROMPT}, soft light"
        # The worker dies here, before generating; the task runs again elsewhere.
        assert services.tasks.release(task.id, "worker-1", "worker lost")
        stored = services.tasks.get(task.id).params
        assert stored["memo"]["enriched_prompt"] == f"{PROMPT}, soft light"
        second = services.tasks.claim(task.id, "worker-2")
        assert second is not None

        def never(_: str) -> str:
            raise AssertionError("the chat model was asked again")

        with JobContext(services.tasks, second, "worker-2", threading.Event()) as job:
            result = images.run(ImageTaskContext(job, services.files, services.loras,
                                                 engine, never, None))
        assert result["prompt"] == f"{PROMPT}, soft light" and result["prompt_added"]
    finally:
        engine.close()


def test_a_task_stored_before_the_memo_keeps_its_decided_prompt(services: Services) -> None:
    """Rows from before issue 27 have add_prompt's decision beside the input: a re-run
    after the upgrade uses it and asks the chat model nothing."""

    def never(_: str) -> str:
        raise AssertionError("the chat model was asked again")

    result, task_id = run(services, enrich=never, add_prompt=True, n_images=1,
                          enriched_prompt=f"{PROMPT}, decided before")
    assert result["prompt"] == f"{PROMPT}, decided before" and result["prompt_added"]
    assert "memo" not in services.tasks.get(task_id).params


def test_a_mask_paints_only_its_white_area(services: Services) -> None:
    from PIL import Image, ImageDraw

    from tests.image_support import png_bytes

    user = services.auth.add_user("mask@x.co", "longenough").id
    init = Image.new("RGB", (64, 64), (0, 0, 255))
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 31, 63), fill=255)  # repaint the left half
    saved = [services.files.save(user, png_bytes(im), "image/png", "upload", 64, 64).id
             for im in (init, mask)]
    job = ImageJob.from_params(params(init_file_id=saved[0], task_type="inpaint",
                                      n_images=1, strength=1.0))
    job = dataclasses.replace(job, mask=Mask(saved[1]))
    task = services.tasks.create(user, Kind.IMAGE, image_queue("demo"), job.to_params())
    claimed = services.tasks.claim(task.id, "test-worker")
    assert claimed is not None
    engine = build_engine(services.settings, services.image_models)
    try:
        with JobContext(services.tasks, claimed, "test-worker", threading.Event()) as ctx:
            result = images.run(ImageTaskContext(ctx, services.files, services.loras, engine,
                                                 None, None))
    finally:
        engine.close()
    info = services.files.get(result["images"][0]["large"], user)
    out = np.asarray(Image.open(io.BytesIO(services.files.read(info))).convert("RGB"),
                     dtype=float)
    # The kept half is the init image's blue (JPEG aside); the painted half is the model's.
    assert np.abs(out[:, 40:] - [0, 0, 255]).mean() < 12
    assert np.abs(out[:, :24] - [0, 0, 255]).mean() > 30
    assert read_metadata(services.files.read(info))["task_type"] == "inpaint"
