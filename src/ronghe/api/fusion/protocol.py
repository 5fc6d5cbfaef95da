"""The fusion request: every chat field as on the chat endpoint, plus the image fields.

Image fields carry an ``mh_`` prefix (``mh_scale`` …) and are validated by ``task_submit``'s
own model, so they accept exactly what task_submit accepts; an error names the field as it
was sent.  The early draft's unprefixed names (``model_name``, ``scale``, ``miaohua_token`` …)
are accepted too; the ``mh_`` name wins when both are sent.
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ronghe.api.chat.params import STREAM, UsageInfo
from ronghe.api.chat.protocol import VendorChatRequest, VendorChoice
from ronghe.api.envelopes import ChatOk, Sparse, chat_ok, describe_validation_error
from ronghe.api.images.protocol import Flag, TaskSubmitRequest

PREFIX = "mh_"
# Early-draft names sent without the prefix (field-notes / later-editions).
DRAFT_NAMES = ("model_name", "output_size", "select_seed", "scale", "controlnet_model")
# The image task's own fields that fusion decides itself.
NOT_SETTABLE = {"prompt", "token"}
# One picture per drawing turn: the answer's content is one URL.
N_IMAGES = 1

DRAWING_REQUEST = "This is a drawing request*&^**#"


class FusionRequest(VendorChatRequest):
    model_config = ConfigDict(extra="allow")

    output_img: Flag = True
    mh_key: str = Field(default="", max_length=512)
    # Whether ``data: [DONE]`` ends a stream: the table promises it, one load-test client
    # counts it as an error and sends false.
    stream_done: Flag = True
    _image_fields: dict[str, Any] = PrivateAttr(default_factory=dict)
    _sent_as: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _draft_token(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("mh_key") and data.get("miaohua_token"):
            data = {**data, "mh_key": data["miaohua_token"]}
        return data

    @model_validator(mode="after")
    def _image(self) -> FusionRequest:
        extra = self.model_extra or {}
        fields: dict[str, Any] = {}
        sent_as: dict[str, str] = {}
        for name in DRAFT_NAMES:
            if name in extra and extra[name] is not None:
                fields[name], sent_as[name] = extra[name], name
        for key, value in extra.items():
            name = key[len(PREFIX):]
            if key.startswith(PREFIX) and name in TaskSubmitRequest.model_fields \
                    and name not in NOT_SETTABLE and value is not None:
                fields[name], sent_as[name] = value, key
        fields.setdefault("n_images", N_IMAGES)
        try:
            TaskSubmitRequest.model_validate(fields)
        except ValidationError as exc:
            msg, field = describe_validation_error(RequestValidationError(exc.errors()))
            if field:
                head = field.split(".")[0].split("[")[0]
                msg = sent_as.get(head, PREFIX + head) + msg[len(head):]
            raise ValueError(msg) from None
        self._image_fields, self._sent_as = fields, sent_as
        return self

    def image_request(self, prompt: str) -> TaskSubmitRequest:
        return TaskSubmitRequest.model_validate({**self._image_fields, "prompt": prompt})

    def sent_name(self, field: str) -> str:
        """The name a task_submit field was sent under (``scale`` -> ``mh_scale``)."""
        return self._sent_as.get(field, PREFIX + field)


def usage_body(usage: dict[str, int], picture: bool) -> dict[str, Any]:
    return {**usage, "picture": picture}


class FusionUsage(UsageInfo):
    picture: bool = Field(description="whether the answer is a drawing's URL")


class FusionCompletion(Sparse):
    """The chat answer's ``data``; ``task_id`` only when a picture was drawn."""

    id: str
    choices: list[VendorChoice] = Field(description="one: the answer, or the picture's URL")
    usage: FusionUsage
    status: int = Field(description="0 ok")
    task_id: str | None = Field(default=None, description="the drawing's image task, for "
                                "task_result; sent only when the answer is a picture")


FusionResponse = ChatOk[FusionCompletion]
# Statuses: a bad field, key or image token (403: mh_key of another user), a body too large,
# the image submit limits, the engine or drawing failing, busy or loading, too slow.
FUSION_ERRORS = (400, 401, 403, 413, 429, 502, 503, 504)
FUSION_STREAM: dict[str, Any] = {
    **STREAM,
    "description": "With `stream: true`: server-sent events, `data: <chunk>` lines (and "
                   "`: progress` comments while drawing), ending with `data: [DONE]` "
                   "unless `stream_done` is false",
}


def answer_body(rid: str, content: str, usage: dict[str, Any], code: int = 200,
                msg: str = "ok", task_id: str | None = None) -> FusionResponse:
    choice = VendorChoice(message=content, content=content, finish_reason="stop")
    drawn = {"task_id": task_id} if task_id is not None else {}  # passed, so sent
    data = FusionCompletion(id=rid, choices=[choice], usage=FusionUsage(**usage), status=0,
                            **drawn)
    return chat_ok(data, code, msg)


def chunk(rid: str, delta: str, usage: dict[str, Any], finish_reason: str = "",
          task_id: str | None = None) -> dict[str, Any]:
    """The latest edition's stream chunk: ``code: 0``, ``msg: "OK"``, ``finish_reason: ""``
    until the last chunk, which has ``"stop"``, an empty delta and the real counts."""
    data: dict[str, Any] = {
        "id": rid,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        "usage": usage, "status": 0,
    }
    if task_id is not None:
        data["task_id"] = task_id
    return {"code": 0, "msg": "OK", "data": data}
