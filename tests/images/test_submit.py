"""The one submit path on a Services container, no HTTP: check() turns a request into a
typed job, or raises a typed error naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from ronghe.db.migrate import upgrade
from ronghe.db.models import User
from ronghe.errors import BadRequest, UnknownModel
from ronghe.images import submit
from ronghe.images.job import Mask
from ronghe.images.request import ImageRequest
from ronghe.services import Services
from tests.conftest import DemoModel, make_settings
from tests.image_support import png_bytes


@pytest.fixture
def services(tmp_path: Path, demo_model: DemoModel) -> Iterator[Services]:
    svc = Services.build(make_settings(tmp_path / "data", image_models=[demo_model.spec()]))
    upgrade(svc.db.engine)
    yield svc
    svc.close()


@pytest.fixture
def user(services: Services) -> User:
    return services.auth.add_user("submit@x.co", "longenough")


def upload(services: Services, user: User, image: Image.Image) -> str:
    info = services.files.save(user.id, png_bytes(image), "image/png", "upload",
                               image.width, image.height)
    return services.files.url(info, "http://testserver/")


def request(**fields: object) -> ImageRequest:
    base: dict[str, object] = {"prompt": "a red circle", "n_images": 1,
                               "output_size": "64x64", "strength": 0.6}
    return ImageRequest(**{**base, **fields})  # type: ignore[arg-type]


def test_a_request_becomes_a_complete_job(services: Services, user: User) -> None:
    job = submit.check(services, user, request(select_seed=5, ddim_steps=3))
    assert (job.model, job.seed, job.steps, job.width, job.task_type) == (
        "ronghe-demo", 5, 3, 64, "txt2img")
    assert job.scale > 0 and job.controls == () and job.webhook is None


def test_unknown_models_are_a_typed_error(services: Services, user: User) -> None:
    with pytest.raises(UnknownModel) as versionid:
        submit.check(services, user, request(versionid="nope"))
    assert versionid.value.field == "versionid"
    with pytest.raises(UnknownModel) as model_name:
        submit.check(services, user, request(model_name="nope"))
    assert model_name.value.field == "model_name"
    later = submit.check(services, user, request(versionid=submit.LATER_DEFAULT_VERSIONID))
    assert later.model == "ronghe-demo"


def test_a_mask_paints_over_the_init_image(services: Services, user: User) -> None:
    init = upload(services, user, Image.new("RGB", (64, 64), "blue"))
    mask = upload(services, user, Image.new("L", (64, 64), 255))
    job = submit.check(services, user, request(init_img=init, mask_img=mask))
    assert job.task_type == "inpaint" and isinstance(job.mask, Mask)
    assert job.file_ids == [job.init_file_id, job.mask.file_id]
    with pytest.raises(BadRequest) as alone:
        submit.check(services, user, request(mask_img=mask))
    assert alone.value.field == "mask_img" and "needs init_img" in alone.value.msg
