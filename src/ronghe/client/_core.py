"""What the client does, written once for ``Client`` and ``AsyncClient``.

Each operation is a generator that yields ``Call`` (an HTTP request) and ``Sleep`` steps and
receives the parsed answer of each call; the sync and async clients only run the steps
(``_sync.py``, ``_async.py``).  So polling, backoff, lazy login and error mapping exist once;
``_wire.py`` holds the HTTP translation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ronghe.client import errors
from ronghe.client._wire import (
    API,
    UPLOAD_BATCH,
    URL_PREFIXES,
    Call,
    ImageInput,
    Op,
    Progress,
    Sleep,
    Wire,
    file_part,
    messages_of,
    validated,
)
from ronghe.client.models import (
    ApiKey,
    CancelResult,
    ChatReply,
    DatasetPage,
    ModelPage,
    PngInfo,
    TaskPage,
    TaskResult,
    Token,
    TrainedModel,
    TrainProgress,
)

# task_submit's fields that take an image: a local one is uploaded first.
IMAGE_FIELDS = ("init_img", "mask_img")


class Core(Wire):
    """Every operation of the API, as a generator of steps."""

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

    # --- chat API keys (Ronghe's own endpoints; the web app uses them too)

    def create_api_key(self, name: str) -> Op[ApiKey]:
        yield from self.ensure_token()
        body = yield Call("POST", f"{API}/api_keys/create", json={"name": name})
        return ApiKey.model_validate(body["info"])

    def api_keys(self) -> Op[list[ApiKey]]:
        yield from self.ensure_token()
        body = yield Call("POST", f"{API}/api_keys/list", json={})
        return [ApiKey.model_validate(k) for k in (body.get("info") or {}).get("items", [])]

    def revoke_api_key(self, key_id: int) -> Op[None]:
        yield from self.ensure_token()
        yield Call("POST", f"{API}/api_keys/revoke", json={"id": key_id})

    # --- chat

    def chat_call(self, messages: str | Iterable[Any], stream: bool,
                  params: dict[str, Any]) -> Call:
        from ronghe.api.chat.protocol import VendorChatRequest

        body = validated(VendorChatRequest, {"messages": messages_of(messages),
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

        # A local image (init_img, mask_img) is uploaded first: the server takes only its
        # own upload URLs.
        local = {k: fields[k] for k in IMAGE_FIELDS
                 if fields.get(k) and not (isinstance(fields[k], str)
                                           and fields[k].startswith(URL_PREFIXES))}
        body = validated(TaskSubmitRequest, {k: v for k, v in fields.items()
                                             if k not in local})
        yield from self.ensure_token()
        for key, item in local.items():
            body[key] = (yield from self.upload([item]))[0]
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

    def upscale_submit(self, image: ImageInput, upscaler: str, scale: float) -> Op[str]:
        """``POST /api/v1b/upscale``: a URL the API gave (an upload, a generated image) or
        a local image (uploaded first); returns the task id."""
        from ronghe.api.images.upscale import UpscaleBody

        remote = isinstance(image, str) and image.startswith(URL_PREFIXES)
        body = validated(UpscaleBody, {"init_img": image if remote else "",
                                       "upscaler": upscaler, "scale": scale})
        yield from self.ensure_token()
        if not remote:
            body["init_img"] = (yield from self.upload([image]))[0]
        answer = yield Call("POST", f"{API}/upscale", json=body)
        return str(answer.get("task_id") or (answer.get("info") or {}).get("task_id"))

    def upscale(self, image: ImageInput, upscaler: str, scale: float,
                on_progress: Progress | None, timeout: float | None) -> Op[TaskResult]:
        task_id = yield from self.upscale_submit(image, upscaler, scale)
        final = yield from self.wait(task_id, on_progress, timeout)
        if final.state != "done":
            raise errors.TaskFailed(f"upscale {task_id} {final.state}: "
                                    f"{final.error_msg or final.state}", task=final)
        return final

    def upscalers(self) -> Op[list[dict[str, Any]]]:
        yield from self.ensure_token()
        body = yield Call("GET", f"{API}/upscalers")
        return list(body.get("info") or [])

    def cancel(self, task_id: str) -> Op[CancelResult]:
        yield from self.ensure_token()
        body = yield Call("POST", f"{API}/task_cancel", json={"task_id": task_id})
        return CancelResult.model_validate(body.get("info") or {"task_id": task_id,
                                                                 "state": "unknown"})

    def tasks(self, page: int, per_page: int, state: str | None,
              kind: str, cursor: str = "") -> Op[TaskPage]:
        yield from self.ensure_token()
        query: dict[str, Any] = {"per_page": per_page, "kind": kind}
        # The server takes a page number or a cursor, not both.
        query.update({"cursor": cursor} if cursor else {"page": page})
        if state:
            query["state"] = state
        body = yield Call("POST", f"{API}/task_list", json=query)
        return TaskPage.model_validate(body.get("info") or {})

    def fetch(self, url: str) -> Call:
        return Call("GET", url, auth=None, raw=True)

    def png_info(self, image: ImageInput) -> Op[PngInfo]:
        """The generation settings an image carries: an upload's or generated image's URL,
        or a local image (uploaded first)."""
        yield from self.ensure_token()
        if not (isinstance(image, str) and image.startswith(URL_PREFIXES)):
            image = (yield from self.upload([image]))[0]
        body = yield Call("POST", f"{API}/png_info", json={"init_img": image})
        return PngInfo.model_validate(body.get("info") or {})

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
