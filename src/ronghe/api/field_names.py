"""Errors in a front door's own field names.

The submit path (``ronghe.images.submit``) names fields as ``task_submit`` does
(``output_size``, ``model_name`` …); a front door with other names for them (the OpenAI
Images API's ``size`` and ``model``, A1111's ``width`` and ``override_settings.…``) hands its
clients the error in its own names, the field and the message's leading field name alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from ronghe.errors import RongheError


def renamed(exc: RongheError, names: Mapping[str, str]) -> RongheError:
    """``exc`` with its field renamed by ``names`` (submit path's name -> the door's),
    matched on the field's first part (``lora_configs`` of ``lora_configs[0].versionid``)."""
    field = (exc.field or "").split(".")[0].split("[")[0]
    ours = names.get(field)
    if ours is None:
        return exc
    if exc.msg.startswith(field):
        exc.msg = ours + exc.msg[len(field):]
    exc.field = ours
    return exc
