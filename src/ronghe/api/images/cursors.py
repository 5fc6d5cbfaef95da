"""task_list's ``cursor``: an opaque string that names where the previous page ended.

It is the last task's creation time and id (``ronghe.jobs.paging.Position``) as URL-safe
base64 of a little JSON, so clients treat it as a token and the server may change what is
inside.  It is not signed: it only ever selects among the caller's own tasks (the owner
condition is always applied), so a forged cursor can show nothing a page number could not.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from ronghe.api.fields import Checked
from ronghe.jobs.paging import Position

MAX_CHARS = 200
INVALID = "must be a next_cursor from a task_list answer, or \"\" (from the newest)"


def encode(position: Position) -> str:
    raw = json.dumps({"t": position.created_at.isoformat(), "i": position.id},
                     separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> Position:
    """ValueError (with INVALID) for anything ``encode`` did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        moment = datetime.fromisoformat(data["t"])
        task_id = data["i"]
    except (binascii.Error, ValueError, TypeError, KeyError, RecursionError):
        raise ValueError(INVALID) from None
    if not isinstance(task_id, str) or not 0 < len(task_id) <= 36 or moment.tzinfo is None:
        raise ValueError(INVALID)
    return Position(moment.astimezone(UTC), task_id)


def _check(value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > MAX_CHARS:
        raise ValueError(INVALID)
    decode(value)
    return value


Cursor = Checked(_check, {"maxLength": MAX_CHARS})
