"""``AsyncClient``: the same methods as ``Client`` for asyncio code, on ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Literal, TypeVar, overload

import httpx

from ronghe.client._core import Core
from ronghe.client._wire import (
    CHAT_PATH,
    END,
    Call,
    ImageInput,
    Op,
    Policy,
    Progress,
    Sleep,
    as_list,
    unreachable,
)
from ronghe.client.errors import AuthError
from ronghe.client.images import AsyncGeneratedImage
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

T = TypeVar("T")


class AsyncClient:
    """A Ronghe (or any fusion-API) server, from asyncio code: see ``Client``.

    Credentials: ``token`` (from ``get_token``), or ``email`` and ``password`` (the client
    logs in on its first call), and for chat also ``api_key``.  Busy answers (429/503) are
    retried ``max_retries`` times with backoff, honouring ``Retry-After``.
    """

    def __init__(self, base_url: str, *, token: str | None = None, api_key: str | None = None,
                 email: str | None = None, password: str | None = None,
                 timeout: float = 60.0, max_retries: int = 4, policy: Policy | None = None,
                 chat_path: str = CHAT_PATH, http: httpx.AsyncClient | None = None) -> None:
        policy = policy or Policy(max_retries=max_retries)
        self._core = Core(base_url, token=token, api_key=api_key, email=email,
                          password=password, policy=policy, chat_path=chat_path)
        self._http = http or httpx.AsyncClient(base_url=self._core.base_url, timeout=timeout)

    @property
    def token(self) -> str | None:
        return self._core.token

    @property
    def base_url(self) -> str:
        return self._core.base_url

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- running operations

    async def _run(self, op: Op[T]) -> T:
        value: Any = None
        while True:
            try:
                step = op.send(value)
            except StopIteration as stop:
                return stop.value
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                value = None
            else:
                try:
                    value = await self._send(step)
                except AuthError as exc:
                    if exc.status != 401 or not self._core.may_relogin(step):
                        raise
                    await self._run(self._core.login(self._core.email or "",
                                                  self._core.password or ""))
                    value = await self._send(step)

    async def _send(self, call: Call) -> Any:
        kwargs = self._core.request(call)
        for attempt in itertools.count():
            try:
                response = await self._http.request(**kwargs)
            except httpx.TransportError as exc:
                raise unreachable(self.base_url, exc) from exc
            delay = self._core.retry_delay(call, response, attempt)
            if delay is None:
                return self._core.parse(call, response)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _stream(self, call: Call) -> AsyncIterator[str]:
        kwargs = self._core.request(call)
        for attempt in itertools.count():
            try:
                async with self._http.stream(**kwargs) as response:
                    if response.status_code < 400:
                        async for line in response.aiter_lines():
                            delta = self._core.stream_delta(line)
                            if delta is END:
                                return
                            if delta:
                                yield delta
                        return
                    await response.aread()
                    delay = self._core.retry_delay(call, response, attempt)
                    if delay is None:
                        raise self._core.error(response)
            except httpx.TransportError as exc:
                raise unreachable(self.base_url, exc) from exc
            await asyncio.sleep(delay)

    # --- accounts

    async def login(self, email: str, password: str) -> Token:
        """``get_token``: the token is kept for later calls (``client.token``)."""
        return await self._run(self._core.login(email, password))

    async def logout(self) -> None:
        """``revoke_token``: the token stops working, here and everywhere."""
        await self._run(self._core.logout())

    # --- chat API keys

    async def create_api_key(self, name: str = "") -> ApiKey:
        """A chat API key for yourself; its secret is ``.key``, shown only in this answer."""
        return await self._run(self._core.create_api_key(name))

    async def api_keys(self) -> list[ApiKey]:
        """Your active API keys (no secrets)."""
        return await self._run(self._core.api_keys())

    async def revoke_api_key(self, key_id: int) -> None:
        await self._run(self._core.revoke_api_key(key_id))

    # --- chat

    @overload
    async def chat(self, messages: str | Iterable[Any], *, stream: Literal[False] = False,
             **params: Any) -> ChatReply: ...

    @overload
    async def chat(self, messages: str | Iterable[Any], *, stream: Literal[True],
             **params: Any) -> AsyncIterator[str]: ...

    async def chat(self, messages: str | Iterable[Any], *, stream: bool = False,
             **params: Any) -> ChatReply | AsyncIterator[str]:
        """A chat answer to a question or a message list (``{"role", "content"}`` dicts or
        ``(role, content)`` pairs); with ``stream=True`` an iterator of text deltas.
        ``params``: ``model``, ``temperature``, ``top_p``, ``max_new_tokens``,
        ``repetition_penalty``, ``user``."""
        if not stream:
            return await self._run(self._core.chat(messages, params))
        await self._run(self._core.chat_auth())
        return self._stream(self._core.chat_call(messages, True, params))

    # --- image tasks

    async def submit(self, prompt: str = "", **fields: Any) -> str:
        """``task_submit`` with any of its fields; ``init_img`` and ``mask_img`` may be
        local files or bytes (uploaded first).  Returns the task id."""
        return await self._run(self._core.submit({"prompt": prompt, **fields}))

    async def result(self, task_id: str) -> TaskResult:
        return await self._run(self._core.result(task_id))

    async def results(self, task_ids: Sequence[str]) -> list[TaskResult]:
        return await self._run(self._core.results(task_ids))

    async def wait(self, task_id: str, *, on_progress: Progress | None = None,
             timeout: float | None = None) -> TaskResult:
        """Polls (with backoff) until the task is done, failed or cancelled."""
        return await self._run(self._core.wait(task_id, on_progress, timeout))

    async def generate(self, prompt: str = "", *, on_progress: Progress | None = None,
                 timeout: float | None = None, **fields: Any) -> list[AsyncGeneratedImage]:
        """Submits a task, waits for it and returns its images; raises ``TaskFailed`` if it
        fails or is cancelled.  ``on_progress`` gets each ``TaskResult`` polled."""
        final = await self._run(self._core.generate({"prompt": prompt, **fields}, on_progress,
                                              timeout))
        return self.images(final)

    def images(self, result: TaskResult) -> list[AsyncGeneratedImage]:
        return [AsyncGeneratedImage(self, result, image) for image in result.images]

    async def upscale(self, image: ImageInput, *, upscaler: str = "Lanczos",
                      scale: float = 2.0, on_progress: Progress | None = None,
                      timeout: float | None = None) -> AsyncGeneratedImage:
        """Upscales one image as a task and returns it (``Client.upscale``)."""
        final = await self._run(self._core.upscale(image, upscaler, scale, on_progress,
                                                   timeout))
        return self.images(final)[0]

    async def upscale_submit(self, image: ImageInput, *, upscaler: str = "Lanczos",
                             scale: float = 2.0) -> str:
        return await self._run(self._core.upscale_submit(image, upscaler, scale))

    async def upscalers(self) -> list[dict[str, Any]]:
        return await self._run(self._core.upscalers())

    async def cancel(self, task_id: str) -> CancelResult:
        return await self._run(self._core.cancel(task_id))

    async def tasks(self, page: int = 1, per_page: int = 20, state: str | None = None,
                    kind: str = "image", cursor: str = "") -> TaskPage:
        """``task_list``: your tasks, newest first; ``state`` (pending, running, done,
        failed, cancelled) and ``kind`` (image, train, all) filter.  ``cursor`` (a previous
        page's ``next_cursor``) pages by position instead of number: while you page, tasks
        submitted meanwhile neither repeat nor hide one."""
        return await self._run(self._core.tasks(page, per_page, state, kind, cursor))

    async def png_info(self, image: ImageInput) -> PngInfo:
        """The generation settings an image carries (A1111's parameters text, as Ronghe,
        AUTOMATIC1111 and Civitai write it): an upload's or generated image's URL, or a
        local path or bytes (uploaded first).  ``generate(**info.settings)`` redraws it."""
        return await self._run(self._core.png_info(image))

    async def download(self, url: str) -> bytes:
        return await self._send(self._core.fetch(url))

    # --- uploads, datasets, training

    async def upload(self, images: ImageInput | Sequence[ImageInput], *,
               on_progress: Any = None) -> list[str]:
        """Uploads paths, bytes or (name, bytes) pairs; returns their URLs in order.
        ``on_progress(done, total)`` after each batch."""
        return await self._run(self._core.upload(as_list(images), on_progress))

    async def create_dataset(self, name: str, images: Sequence[ImageInput],
                       description: str = "") -> int:
        """A dataset of upload URLs and/or local images (uploaded first); its id."""
        return await self._run(self._core.create_dataset(name, as_list(images), description))

    async def datasets(self, page: int = 1, per_page: int = 20) -> DatasetPage:
        return await self._run(self._core.datasets(page, per_page))

    async def train(self, name: str, data: Sequence[int] | Sequence[ImageInput], *,
              trigger_word: str = "", main_body: str = "Style",
              on_progress: Progress | None = None, timeout: float | None = None,
              **fields: Any) -> TrainedModel:
        """Trains a LoRA called ``name`` on dataset ids or images (made into a dataset
        first) and waits for it; ``on_progress`` gets each ``TrainProgress``.  ``fields``:
        ``steps``, ``rank``, ``learning_rate``, ``seed``, ``base_model``, ``description``."""
        return await self._run(self._core.train(name, data, {"trigger_word": trigger_word,
                                                       "main_body": main_body, **fields},
                                          on_progress, timeout))

    async def train_submit(self, name: str, dataset_ids: Sequence[int], **fields: Any) -> str:
        return await self._run(self._core.train_submit({"name": name, "dataset": list(dataset_ids),
                                                  **fields}))

    async def train_progress(self, task_id: str) -> TrainProgress:
        return await self._run(self._core.train_progress(task_id))

    async def wait_training(self, task_id: str, *, on_progress: Progress | None = None,
                      timeout: float | None = None) -> TrainProgress:
        return await self._run(self._core.wait_training(task_id, on_progress, timeout))

    async def train_cancel(self, task_id: str) -> CancelResult:
        return await self._run(self._core.train_cancel(task_id))

    # --- catalog

    async def models(self, kind: str = "base", *, page: int = 1, per_page: int = 20,
               query: str = "") -> ModelPage:
        """``models/base``, ``models/lora`` (public LoRAs) or ``models/private`` (yours)."""
        return await self._run(self._core.models(kind, page, per_page, query))

    async def generation_form(self) -> list[dict[str, Any]]:
        return await self._run(self._core.generation_form())


__all__ = ["AsyncClient"]
