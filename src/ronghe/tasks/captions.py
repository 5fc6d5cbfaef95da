"""The caption task (``img2txt``): one uploaded image in, its caption out.

A task like an image task, on the same short queue: it runs in the image worker under the
same CPU budget (a torch lease), never in the API's event loop, and counts against the
user's task limits like every other heavy call.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from ronghe.errors import BadRequest, NotFound, NotReady
from ronghe.images.job import CaptionJob
from ronghe.tasks.context import CaptionTaskContext


def run(ctx: CaptionTaskContext) -> dict[str, Any]:
    import torch

    from ronghe.engines.cpu import budget

    if ctx.captioner is None:
        raise NotReady("no captioner is configured on this worker (captioner_model)")
    try:
        info = ctx.files.get(CaptionJob.from_params(ctx.params).file_id, ctx.task.user_id)
        image = Image.open(io.BytesIO(ctx.files.read(info)))
        image.load()
    except (NotFound, FileNotFoundError):
        raise BadRequest("init_img: the image was deleted before it was captioned",
                         field="init_img") from None
    ctx.progress(0.1, {"stage": "captioning"})
    with budget.lease("torch") as threads:
        torch.set_num_threads(threads)
        caption = ctx.captioner(image)
    ctx.check()
    return {"caption": caption}
