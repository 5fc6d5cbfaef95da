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

from ronghe.api.chat.protocol import VendorChatRequest
from ronghe.api.envelopes import describe_validation_error
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


def answer_body(rid: str, content: str, usage: dict[str, Any], code: int = 200,
                msg: str = "ok", task_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": rid,
        "choices": [{"index": 0, "content": content, "message": content,
                     "role": "assistant", "finish_reason": "stop"}],
        "usage": usage, "status": 0,
    }
    if task_id is not None:
        data["task_id"] = task_id
    return {"code": code, "msg": msg, "data": data}


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
