"""What the client does, written once for ``Client`` and ``AsyncClient``.

Each operation is a generator that yields ``Call`` (an HTTP request) and ``Sleep`` steps and
receives the parsed answer of each call; the sync and async clients only run the steps
(``_sync.py``, ``_async.py``).  So polling, backoff, lazy login and error mapping exist once.
"""

from __future__ import annotations

import json
import mimetypes
import os
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import pydantic

from ronghe.client import errors
from ronghe.client.models import (
    CancelResult,
    ChatReply,
    DatasetPage,
    ModelPage,
    TaskPage,
    TaskResult,
    Token,
    TrainedModel,
    TrainProgress,
)

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


class Core:
    """Credentials, policy and every operation; no I/O of its own."""

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

    # --- accounts

    def login(self, email: str, password: str) -> Op[Token]:
        body = yield Call("POST", f"{API}/get_token", json={"email": email, "password": password},
                          auth=None, retry=False)
        answer = Token.model_validate(body.get("info") if "token" not in body else body)
        self.token, self.email, self.password = answer.token, email, password
        return answer

    def ensure_token(self) -> Op[None]:
        if not self.token and self.email and self.password:
            yield from self.login(self.email, self.password)

    def logout(self) -> Op[None]:
        if self.token:
            yield Call("POST", f"{API}/revoke_token", json={})
        self.token = None

    # --- chat

    def chat_call(self, messages: str | Iterable[Any], stream: bool,
                  params: dict[str, Any]) -> Call:
        from ronghe.api.chat.protocol import ChatCompletionRequest

        body = validated(ChatCompletionRequest, {"messages": messages_of(messages),
                                                 "stream": stream, **params})
        body["stream"] = stream
        return Call("POST", self.chat_path, json=body, auth="chat", stream=stream)

    def chat_auth(self) -> Op[None]:
        if not self.api_key:
            yield from self.ensure_token()

    def chat(self, messages: str | Iterable[Any], params: dict[str, Any]) -> Op[ChatReply]:
        yield from self.chat_auth()
        body = yield self.chat_call(messages, False, params)
        data = body.get("data") or {}
        choice = (data.get("choices") or [{}])[0]
        text = choice.get("message")
        text = text if isinstance(text, str) else choice.get("content", "")
        return ChatReply(id=data.get("id", ""), text=text or "",
                         finish_reason=choice.get("finish_reason"), usage=data.get("usage"))

    # --- image tasks

    def submit(self, fields: dict[str, Any]) -> Op[str]:
        from ronghe.api.images.protocol import TaskSubmitRequest

        init = fields.get("init_img")
        # A local image is uploaded first: the server takes only its own upload URLs.
        local = bool(init) and not (isinstance(init, str) and init.startswith(URL_PREFIXES))
        body = validated(TaskSubmitRequest, {k: v for k, v in fields.items()
                                             if not (local and k == "init_img")})
        yield from self.ensure_token()
        if local:
            body["init_img"] = (yield from self.upload([init]))[0]
        answer = yield Call("POST", f"{API}/task_submit", json=body)
        # One real client reads info.task_id: accept both shapes.
        return str(answer.get("task_id") or (answer.get("info") or {}).get("task_id"))

    def result(self, task_id: str) -> Op[TaskResult]:
        yield from self.ensure_token()
        body = yield Call("POST", f"{API}/task_result", json={"task_id": task_id})
        info = body.get("info") if "state" not in body else body
        return TaskResult.model_validate({"task_id": task_id, **info})

    def results(self, task_ids: Sequence[str]) -> Op[list[TaskResult]]:
        yield from self.ensure_token()
        body = yield Call("POST", f"{API}/task_results", json={"task_ids": list(task_ids)})
        return [TaskResult.model_validate({"task_id": i, **item})
                for i, item in zip(task_ids, body.get("info") or [], strict=False)]

    def poll(self, fetch: Callable[[], Op[Any]], on_progress: Progress | None,
             timeout: float | None, what: str) -> Op[Any]:
        """Asks until the state is final, waiting longer between unchanged answers."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval, last = self.policy.poll_interval, None
        while True:
            current = yield from fetch()
            if on_progress is not None:
                on_progress(current)
            if current.finished:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.WaitTimeout(f"{what} is still {current.state} after {timeout:g} s")
            seen = current.model_dump(include={"state", "progress", "step"})
            interval = (self.policy.poll_interval if seen != last
                        else min(interval * 1.5, self.policy.max_poll_interval))
            last = seen
            yield Sleep(interval if deadline is None
                        else max(0.0, min(interval, deadline - time.monotonic())))

    def wait(self, task_id: str, on_progress: Progress | None = None,
             timeout: float | None = None) -> Op[TaskResult]:
        return (yield from self.poll(lambda: self.result(task_id), on_progress, timeout,
                                     f"task {task_id}"))

    def generate(self, fields: dict[str, Any], on_progress: Progress | None,
                 timeout: float | None) -> Op[TaskResult]:
        task_id = yield from self.submit(fields)
        final = yield from self.wait(task_id, on_progress, timeout)
        if final.state != "done":
            reason = final.error_msg or final.state
            raise errors.TaskFailed(f"task {task_id} {final.state}: {reason}", task=final)
        return final

    def cancel(self, task_id: str) -> Op[CancelResult]:
        yield from self.ensure_token()
        body = yield Call("POST", f"{API}/task_cancel", json={"task_id": task_id})
        return CancelResult.model_validate(body.get("info") or {"task_id": task_id,
                                                                 "state": "unknown"})

    def tasks(self, page: int, per_page: int, state: str | None,
              kind: str) -> Op[TaskPage]:
        yield from self.ensure_token()
        query: dict[str, Any] = {"page": page, "per_page": per_page, "kind": kind}
        if state:
            query["state"] = state
        body = yield Call("POST", f"{API}/task_list", json=query)
        return TaskPage.model_validate(body.get("info") or {})

    def fetch(self, url: str) -> Call:
        return Call("GET", url, auth=None, raw=True)

    # --- uploads, datasets, training

    def upload(self, items: Sequence[ImageInput],
               on_progress: Callable[[int, int], None] | None = None) -> Op[list[str]]:
        yield from self.ensure_token()
        urls: list[str] = []
        for start in range(0, len(items), UPLOAD_BATCH):
            batch = items[start:start + UPLOAD_BATCH]
            files = [("init_img", file_part(item, start + i)) for i, item in enumerate(batch)]
            body = yield Call("POST", f"{API}/upload_imgs", files=files)
            urls.extend(body["info"])
            if on_progress is not None:
                on_progress(len(urls), len(items))
        return urls

    def create_dataset(self, name: str, images: Sequence[ImageInput],
                       description: str = "") -> Op[int]:
        from ronghe.api.training.protocol import DatasetCreate

        local = [i for i in images if not (isinstance(i, str) and i.startswith(URL_PREFIXES))]
        uploaded = iter((yield from self.upload(local)) if local else [])
        urls = [i if isinstance(i, str) and i.startswith(URL_PREFIXES) else next(uploaded)
                for i in images]
        body = validated(DatasetCreate, {"name": name, "images": urls,
                                         "description": description})
        answer = yield Call("POST", f"{API}/dataset", json=body)
        return int(answer["info"]["dataset_id"])

    def datasets(self, page: int, per_page: int) -> Op[DatasetPage]:
        yield from self.ensure_token()
        body = yield Call("POST", f"{API}/dataset_all", json={"page": page,
                                                               "per_page": per_page})
        return DatasetPage.model_validate(body)

    def train_submit(self, fields: dict[str, Any]) -> Op[str]:
        from ronghe.api.training.protocol import TrainSubmit

        body = validated(TrainSubmit, fields)
        yield from self.ensure_token()
        answer = yield Call("POST", f"{API}/train_submit", json=body)
        return str((answer.get("info") or answer)["task_id"])

    def train_progress(self, task_id: str) -> Op[TrainProgress]:
        yield from self.ensure_token()
        body = yield Call("POST", f"{API}/train_progress", json={"task_id": task_id})
        return TrainProgress.model_validate(body)

    def train_cancel(self, task_id: str) -> Op[CancelResult]:
        yield from self.ensure_token()
        body = yield Call("POST", f"{API}/train_cancel", json={"task_id": task_id})
        return CancelResult.model_validate(body.get("info") or {"task_id": task_id,
                                                                 "state": "unknown"})

    def wait_training(self, task_id: str, on_progress: Progress | None = None,
                      timeout: float | None = None) -> Op[TrainProgress]:
        return (yield from self.poll(lambda: self.train_progress(task_id), on_progress,
                                     timeout, f"training {task_id}"))

    def train(self, name: str, data: Sequence[int] | Sequence[ImageInput],
              fields: dict[str, Any], on_progress: Progress | None,
              timeout: float | None) -> Op[TrainedModel]:
        yield from self.ensure_token()
        if data and all(isinstance(d, int) and not isinstance(d, bool) for d in data):
            dataset_ids = [int(d) for d in data]  # type: ignore[arg-type]
        else:
            images: list[ImageInput] = list(data)  # type: ignore[arg-type]
            dataset_ids = [(yield from self.create_dataset(name, images))]
        task_id = yield from self.train_submit({"name": name, "dataset": dataset_ids, **fields})
        final = yield from self.wait_training(task_id, on_progress, timeout)
        if final.state != "done":
            raise errors.TaskFailed(f"training {task_id} {final.state}: "
                                    f"{final.error_msg or final.state}", task=final)
        return TrainedModel(name=final.model_name or name, model_id=final.model_id,
                            task_id=task_id, base_model=final.base_model,
                            trigger_word=final.trigger_word, samples=final.samples)

    # --- catalog

    def models(self, kind: str, page: int, per_page: int, query: str) -> Op[ModelPage]:
        if kind not in ("base", "lora", "private"):
            raise ValueError(f"kind must be base, lora or private (got {kind!r})")
        if kind == "private":
            yield from self.ensure_token()
        body = yield Call("POST", f"{API}/models/{kind}",
                          json={"page": page, "per_page": per_page, "query": query},
                          auth="token" if kind == "private" else None)
        return ModelPage.model_validate(body.get("info") or {})

    def generation_form(self) -> Op[list[dict[str, Any]]]:
        yield from self.ensure_token()
        call = Call("GET", f"{API}/get_generation_form", auth="token" if self.token else None)
        body = yield call
        return list(body.get("info") or [])


def unreachable(base_url: str, exc: httpx.TransportError) -> errors.ConnectionFailed:
    detail = str(exc) or type(exc).__name__
    return errors.ConnectionFailed(f"no answer from {base_url}: {detail}")
