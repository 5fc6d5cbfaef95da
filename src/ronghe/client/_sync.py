"""``Client``: the API from synchronous code, on ``httpx.Client``."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
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
from ronghe.client.images import GeneratedImage
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


class Client:
    """A Ronghe (or any fusion-API) server.

    Credentials: ``token`` (from ``get_token``), or ``email`` and ``password`` (the client
    logs in on its first call), and for chat also ``api_key``.  Busy answers (429/503) are
    retried ``max_retries`` times with backoff, honouring ``Retry-After``.
    """

    def __init__(self, base_url: str, *, token: str | None = None, api_key: str | None = None,
                 email: str | None = None, password: str | None = None,
                 timeout: float = 60.0, max_retries: int = 4, policy: Policy | None = None,
                 chat_path: str = CHAT_PATH, http: httpx.Client | None = None) -> None:
        policy = policy or Policy(max_retries=max_retries)
        self._core = Core(base_url, token=token, api_key=api_key, email=email,
                          password=password, policy=policy, chat_path=chat_path)
        self._http = http or httpx.Client(base_url=self._core.base_url, timeout=timeout)

    @property
    def token(self) -> str | None:
        return self._core.token

    @property
    def base_url(self) -> str:
        return self._core.base_url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running operations

    def _run(self, op: Op[T]) -> T:
        value: Any = None
        while True:
            try:
                step = op.send(value)
            except StopIteration as stop:
                return stop.value
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                value = None
            else:
                try:
                    value = self._send(step)
                except AuthError as exc:
                    if exc.status != 401 or not self._core.may_relogin(step):
                        raise
                    self._run(self._core.login(self._core.email or "",
                                                  self._core.password or ""))
                    value = self._send(step)

    def _send(self, call: Call) -> Any:
        kwargs = self._core.request(call)
        for attempt in itertools.count():
            try:
                response = self._http.request(**kwargs)
            except httpx.TransportError as exc:
                raise unreachable(self.base_url, exc) from exc
            delay = self._core.retry_delay(call, response, attempt)
            if delay is None:
                return self._core.parse(call, response)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _stream(self, call: Call) -> Iterator[str]:
        kwargs = self._core.request(call)
        for attempt in itertools.count():
            try:
                with self._http.stream(**kwargs) as response:
                    if response.status_code < 400:
                        for line in response.iter_lines():
                            delta = self._core.stream_delta(line)
                            if delta is END:
                                return
                            if delta:
                                yield delta
                        return
                    response.read()
                    delay = self._core.retry_delay(call, response, attempt)
                    if delay is None:
                        raise self._core.error(response)
            except httpx.TransportError as exc:
                raise unreachable(self.base_url, exc) from exc
            time.sleep(delay)

    # --- accounts

    def login(self, email: str, password: str) -> Token:
        """``get_token``: the token is kept for later calls (``client.token``)."""
        return self._run(self._core.login(email, password))

    def logout(self) -> None:
        """``revoke_token``: the token stops working, here and everywhere."""
        self._run(self._core.logout())

    # --- chat API keys

    def create_api_key(self, name: str = "") -> ApiKey:
        """A chat API key for yourself; its secret is ``.key``, shown only in this answer."""
        return self._run(self._core.create_api_key(name))

    def api_keys(self) -> list[ApiKey]:
        """Your active API keys (no secrets)."""
        return self._run(self._core.api_keys())

    def revoke_api_key(self, key_id: int) -> None:
        self._run(self._core.revoke_api_key(key_id))

    # --- chat

    @overload
    def chat(self, messages: str | Iterable[Any], *, stream: Literal[False] = False,
             **params: Any) -> ChatReply: ...

    @overload
    def chat(self, messages: str | Iterable[Any], *, stream: Literal[True],
             **params: Any) -> Iterator[str]: ...

    def chat(self, messages: str | Iterable[Any], *, stream: bool = False,
             **params: Any) -> ChatReply | Iterator[str]:
        """A chat answer to a question or a message list (``{"role", "content"}`` dicts or
        ``(role, content)`` pairs); with ``stream=True`` an iterator of text deltas.
        ``params``: ``model``, ``temperature``, ``top_p``, ``max_new_tokens``,
        ``repetition_penalty``, ``user``."""
        if not stream:
            return self._run(self._core.chat(messages, params))
        self._run(self._core.chat_auth())
        return self._stream(self._core.chat_call(messages, True, params))

    # --- image tasks

    def submit(self, prompt: str = "", **fields: Any) -> str:
        """``task_submit`` with any of its fields; ``init_img`` and ``mask_img`` may be
        local files or bytes (uploaded first).  Returns the task id."""
        return self._run(self._core.submit({"prompt": prompt, **fields}))

    def result(self, task_id: str) -> TaskResult:
        return self._run(self._core.result(task_id))

    def results(self, task_ids: Sequence[str]) -> list[TaskResult]:
        return self._run(self._core.results(task_ids))

    def wait(self, task_id: str, *, on_progress: Progress | None = None,
             timeout: float | None = None) -> TaskResult:
        """Polls (with backoff) until the task is done, failed or cancelled."""
        return self._run(self._core.wait(task_id, on_progress, timeout))

    def generate(self, prompt: str = "", *, on_progress: Progress | None = None,
                 timeout: float | None = None, **fields: Any) -> list[GeneratedImage]:
        """Submits a task, waits for it and returns its images; raises ``TaskFailed`` if it
        fails or is cancelled.  ``on_progress`` gets each ``TaskResult`` polled."""
        final = self._run(self._core.generate({"prompt": prompt, **fields}, on_progress,
                                              timeout))
        return self.images(final)

    def images(self, result: TaskResult) -> list[GeneratedImage]:
        return [GeneratedImage(self, result, image) for image in result.images]

    def upscale(self, image: ImageInput, *, upscaler: str = "Lanczos", scale: float = 2.0,
                on_progress: Progress | None = None,
                timeout: float | None = None) -> GeneratedImage:
        """Upscales one image (a URL the API gave, e.g. ``GeneratedImage.url``, or a local
        path or bytes, uploaded first) as a task, waits for it and returns the image.
        ``upscaler``: Lanczos, Nearest or a model of the server's (``upscalers()``);
        ``scale`` 1-4."""
        final = self._run(self._core.upscale(image, upscaler, scale, on_progress, timeout))
        return self.images(final)[0]

    def upscale_submit(self, image: ImageInput, *, upscaler: str = "Lanczos",
                       scale: float = 2.0) -> str:
        """``upscale`` without waiting: the task id (``wait`` or ``result`` it)."""
        return self._run(self._core.upscale_submit(image, upscaler, scale))

    def upscalers(self) -> list[dict[str, Any]]:
        """The upscalers (name, kind, architecture, scale, problem): hr_upscaler's and
        ``upscale``'s choices."""
        return self._run(self._core.upscalers())

    def cancel(self, task_id: str) -> CancelResult:
        return self._run(self._core.cancel(task_id))

    def tasks(self, page: int = 1, per_page: int = 20, state: str | None = None,
              kind: str = "image", cursor: str = "") -> TaskPage:
        """``task_list``: your tasks, newest first; ``state`` (pending, running, done,
        failed, cancelled) and ``kind`` (image, train, all) filter.  ``cursor`` (a previous
        page's ``next_cursor``) pages by position instead of number: while you page, tasks
        submitted meanwhile neither repeat nor hide one."""
        return self._run(self._core.tasks(page, per_page, state, kind, cursor))

    def png_info(self, image: ImageInput) -> PngInfo:
        """The generation settings an image carries (A1111's parameters text, as Ronghe,
        AUTOMATIC1111 and Civitai write it): an upload's or generated image's URL, or a
        local path or bytes (uploaded first).  ``generate(**info.settings)`` redraws it."""
        return self._run(self._core.png_info(image))

    def download(self, url: str) -> bytes:
        return self._send(self._core.fetch(url))

    # --- uploads, datasets, training

    def upload(self, images: ImageInput | Sequence[ImageInput], *,
               on_progress: Any = None) -> list[str]:
        """Uploads paths, bytes or (name, bytes) pairs; returns their URLs in order.
        ``on_progress(done, total)`` after each batch."""
        return self._run(self._core.upload(as_list(images), on_progress))

    def create_dataset(self, name: str, images: Sequence[ImageInput],
                       description: str = "") -> int:
        """A dataset of upload URLs and/or local images (uploaded first); its id."""
        return self._run(self._core.create_dataset(name, as_list(images), description))

    def datasets(self, page: int = 1, per_page: int = 20) -> DatasetPage:
        return self._run(self._core.datasets(page, per_page))

    def train(self, name: str, data: Sequence[int] | Sequence[ImageInput], *,
              trigger_word: str = "", main_body: str = "Style",
              on_progress: Progress | None = None, timeout: float | None = None,
              **fields: Any) -> TrainedModel:
        """Trains a LoRA called ``name`` on dataset ids or images (made into a dataset
        first) and waits for it; ``on_progress`` gets each ``TrainProgress``.  ``fields``:
        ``steps``, ``rank``, ``learning_rate``, ``seed``, ``base_model``, ``description``."""
        return self._run(self._core.train(name, data, {"trigger_word": trigger_word,
                                                       "main_body": main_body, **fields},
                                          on_progress, timeout))

    def train_submit(self, name: str, dataset_ids: Sequence[int], **fields: Any) -> str:
        return self._run(self._core.train_submit({"name": name, "dataset": list(dataset_ids),
                                                  **fields}))

    def train_progress(self, task_id: str) -> TrainProgress:
        return self._run(self._core.train_progress(task_id))

    def wait_training(self, task_id: str, *, on_progress: Progress | None = None,
                      timeout: float | None = None) -> TrainProgress:
        return self._run(self._core.wait_training(task_id, on_progress, timeout))

    def train_cancel(self, task_id: str) -> CancelResult:
        return self._run(self._core.train_cancel(task_id))

    # --- catalog

    def models(self, kind: str = "base", *, page: int = 1, per_page: int = 20,
               query: str = "") -> ModelPage:
        """``models/base``, ``models/lora`` (public LoRAs) or ``models/private`` (yours)."""
        return self._run(self._core.models(kind, page, per_page, query))

    def generation_form(self) -> list[dict[str, Any]]:
        return self._run(self._core.generation_form())


__all__ = ["Client"]
