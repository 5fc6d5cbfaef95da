"""The HTTP side of the client, with no I/O: requests, answers, errors, retries, streams.

``Call`` and ``Sleep`` are the steps an operation (``_core.py``) yields; ``Wire`` turns a call
into ``httpx`` arguments and an ``httpx.Response`` into the parsed answer or an ``APIError``.
"""

from __future__ import annotations

import json
import mimetypes
import os
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import pydantic

from ronghe.client import errors

T = TypeVar("T")
API = "/api/v1b"
CHAT_PATH = "/v1/nlp/chat/completions"
UPLOAD_BATCH = 8  # files per upload_imgs request: well under the server's upload_max_files
URL_PREFIXES = ("http://", "https://")
ImageInput = str | os.PathLike[str] | bytes | tuple[str, bytes]
Progress = Callable[[Any], None]


@dataclass
class Call:
    method: str
    path: str  # relative to base_url, or an absolute URL (file downloads)
    json: dict[str, Any] | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    auth: Literal["token", "chat"] | None = "token"
    raw: bool = False  # the answer is a file's bytes, not JSON
    retry: bool = True  # retry busy answers (not for logins: a lockout lasts minutes)
    stream: bool = False


@dataclass
class Sleep:
    seconds: float


Op = Generator[Call | Sleep, Any, T]
END = "\x00[DONE]"  # stream_delta's answer to the last event: no model writes a NUL


@dataclass
class Policy:
    """Retries of busy answers (429/503) and polling intervals, in seconds."""

    max_retries: int = 4
    retry_base: float = 0.5
    max_retry_wait: float = 30.0
    poll_interval: float = 0.25
    max_poll_interval: float = 2.0


def _invalid(exc: pydantic.ValidationError) -> errors.ValidationError:
    first = exc.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    return errors.ValidationError(f"{where.lstrip('.')}: {msg}", code=400)


def validated(model: type[pydantic.BaseModel], fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` checked by the server's request model, as the JSON to send."""
    unknown = sorted(set(fields) - set(model.model_fields))
    if unknown:
        raise TypeError(f"unknown field(s) {', '.join(unknown)}; known: "
                        + ", ".join(sorted(set(model.model_fields) - {"token"})))
    try:
        body = model.model_validate(fields)
    except pydantic.ValidationError as exc:
        raise _invalid(exc) from None
    return body.model_dump(mode="json", exclude_unset=True, exclude={"token"})


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg" if data.startswith(b"\xff\xd8") else "application/octet-stream"


def file_part(item: ImageInput, index: int) -> tuple[str, bytes, str]:
    """(filename, bytes, content type) of a path, raw bytes or a (name, bytes) pair."""
    if isinstance(item, tuple):
        name, data = item
    elif isinstance(item, bytes):
        name, data = f"image{index}", item
    else:
        path = Path(item)
        name, data = path.name, path.read_bytes()
    ctype = mimetypes.guess_type(name)[0] or _sniff(data)
    return name, data, ctype


def as_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """One image or several."""
    if isinstance(images, str | bytes | os.PathLike | tuple):
        return [images]  # type: ignore[list-item]
    return list(images)


def messages_of(messages: str | Iterable[Any]) -> list[dict[str, str]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    out = []
    for m in messages:
        if isinstance(m, pydantic.BaseModel):
            m = m.model_dump()
        elif isinstance(m, tuple):
            m = {"role": m[0], "content": m[1]}
        out.append({"role": m["role"], "content": m["content"]})
    return out


class Wire:
    """Credentials, policy and the translation of calls and answers; no I/O of its own."""

    def __init__(self, base_url: str, *, token: str | None, api_key: str | None,
                 email: str | None, password: str | None, policy: Policy | None,
                 chat_path: str = CHAT_PATH) -> None:
        if not base_url.startswith(URL_PREFIXES):
            raise ValueError(f"base_url must start with http:// or https:// (got {base_url!r})")
        self.base_url = base_url.rstrip("/")
        self.token, self.api_key = token or None, api_key or None
        self.email, self.password = email, password
        self.policy = policy or Policy()
        self.chat_path = chat_path

    # --- requests and answers

    def request(self, call: Call) -> dict[str, Any]:
        """keyword arguments of ``httpx.Client.request`` for a call."""
        headers: dict[str, str] = {}
        body = call.json
        data = None
        if call.auth == "token":
            if not self.token:
                raise errors.AuthError("this call needs a token: log in (email and password) "
                                       "or pass token=")
            headers["Authorization"] = f"Bearer {self.token}"
            # The first edition reads the token from the body or form, later ones the header.
            if call.files is not None:
                data = {"token": self.token}
            else:
                body = {"token": self.token, **(body or {})}
        elif call.auth == "chat":
            secret = self.api_key or self.token
            if not secret:
                raise errors.AuthError("chat needs an API key or a token: pass api_key=, "
                                       "token=, or email and password")
            headers["Authorization"] = f"Bearer {secret}"
        kwargs: dict[str, Any] = {"method": call.method, "url": call.path, "headers": headers}
        if call.files is not None:
            kwargs.update(files=call.files, data=data)
        elif body is not None and call.method != "GET":
            kwargs["json"] = body
        return kwargs

    def may_relogin(self, call: Call) -> bool:
        """A token call refused 401 when the password is known: the token expired or was
        revoked, so log in again and repeat the call once."""
        return call.auth == "token" and bool(self.email and self.password)

    def retry_delay(self, call: Call, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before trying a busy answer again, or None to give up."""
        if response.status_code not in (429, 503) or not call.retry:
            return None
        if attempt >= self.policy.max_retries:
            return None
        after = errors.parse_retry_after(response.headers.get("retry-after"))
        backoff = self.policy.retry_base * 2 ** attempt
        return min(after if after is not None else backoff, self.policy.max_retry_wait)

    def error(self, response: httpx.Response) -> errors.APIError:
        try:
            body = response.json()
        except ValueError:
            body = None
        msg, code = response.reason_phrase or "request failed", response.status_code
        if isinstance(body, dict):
            inner = body.get("error")  # the OpenAI shape, from a gateway in front
            if isinstance(inner, dict):
                msg = str(inner.get("message", msg))
            else:
                msg = str(body.get("msg") or body.get("detail") or msg)
                code = body.get("code", code) if isinstance(body.get("code"), int) else code
        elif response.text.strip():
            msg = response.text.strip()[:300]
        retry_after = errors.parse_retry_after(response.headers.get("retry-after"))
        return errors.error_for(response.status_code, code, msg, body, retry_after)

    def parse(self, call: Call, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise self.error(response)
        if call.raw:
            return response.content
        try:
            body = response.json()
        except ValueError:
            raise errors.APIError(f"{call.path}: the answer is not JSON: "
                                  f"{response.text[:200]!r}", status=response.status_code
                                  ) from None
        code = body.get("code") if isinstance(body, dict) else None
        if isinstance(code, int) and code not in (0, 200):
            raise errors.error_for(response.status_code, code, str(body.get("msg", "")), body)
        return body

    def stream_delta(self, line: str) -> str | None:
        """The text of one server-sent event line; None for framing, ``END`` at the end; an
        error chunk (a failure after the stream began) raises."""
        if not line.startswith("data:"):
            return None
        payload = line[5:].strip()
        if payload == "[DONE]":
            return END
        chunk = json.loads(payload)
        code = chunk.get("code", 200)
        if code not in (0, 200):
            raise errors.error_for(code, code, str(chunk.get("msg", "")), chunk)
        choices = (chunk.get("data") or {}).get("choices") or [{}]
        delta = choices[0].get("delta")
        return delta if isinstance(delta, str) else None


def unreachable(base_url: str, exc: httpx.TransportError) -> errors.ConnectionFailed:
    detail = str(exc) or type(exc).__name__
    return errors.ConnectionFailed(f"no answer from {base_url}: {detail}")
