"""Chat on a local GGUF model through llama-cpp-python.

- Up to ``chat_parallel`` generations per model run at once, as sequences of one llama.cpp
  context decoded in shared batches (``batching``); others wait in a bounded queue
  (``queue_size``), and beyond that ``start`` raises ``Busy`` at once.
- Every request has ``n_ctx`` tokens of KV cache to itself (a slot); a conversation longer
  than that is a 400 naming the limit, before anything runs.
- The prompt is the GGUF's own ``tokenizer.chat_template`` rendered in a Jinja sandbox, and
  every count in ``usage`` comes from the model's tokenizer.  Both run in a worker thread, as
  does building the grammar: they take time in proportion to the text, and on the event loop
  a long conversation would hold up every other request.
- Sampling follows Hugging Face ``generate`` (``sampling``); ``response_format`` and forced
  tool calls constrain it with a llama.cpp grammar (``structured``, ``tools``).
- The worker checks each sequence's cancel flag between decode steps, so a client that goes
  away frees its slot within one token.
- Output bytes go through an incremental UTF-8 decoder per sequence: a token may end inside a
  multi-byte character (most Chinese characters span two tokens), and a delta never carries
  half of one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import structlog

from ronghe.engines.cpu import CpuBudget, budget
from ronghe.engines.llm.base import ChatDelta, ChatMessage, ChatStream, GenerationParams
from ronghe.engines.llm.batching import BatchRunner, End, EngineStats, Item, Job
from ronghe.engines.llm.bundled import resolve_model_path
from ronghe.engines.llm.llama_model import LoadedModel
from ronghe.engines.llm.sampling import Grammar, Sampler, build_sampler
from ronghe.engines.llm.structured import response_grammar
from ronghe.engines.llm.tools import ToolCallStream, prepare_tools
from ronghe.errors import BadRequest, NotReady

log = structlog.get_logger(__name__)

__all__ = ["EngineStats", "LlamaCppEngine"]

_T = TypeVar("_T")


class _Stream:
    def __init__(self, engine: LlamaCppEngine, job: Job) -> None:
        self._engine = engine
        self._job = job
        self._done = False
        self._held: list[Item] = []  # taken from the queue but not yet returned

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> ChatDelta:
        if self._done:
            raise StopAsyncIteration
        queue = self._job.queue
        item = self._held.pop() if self._held else await queue.get()
        if isinstance(item, End):
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if item.finish_reason is not None:
            return item
        # A consumer that fell behind (a slow client, a busy CPU) gets the backlog as one
        # delta: fewer events to encode and send, so it catches up instead of lagging more.
        merged = [item]
        while not queue.empty():
            following = queue.get_nowait()
            if isinstance(following, ChatDelta) and following.finish_reason is None:
                merged.append(following)
            else:
                self._held.append(following)
                break
        if len(merged) == 1:
            return item
        return ChatDelta("".join(d.text for d in merged),
                         logprobs=tuple(lp for d in merged for lp in d.logprobs))

    async def aclose(self) -> None:
        self._done = True
        self._engine._cancel(self._job)


class LlamaCppEngine:
    def __init__(self, name: str, path: str, *, n_ctx: int = 8192, queue_size: int = 16,
                 timeout_seconds: float = 300, cpu: CpuBudget = budget,
                 n_batch: int = 512, parallel: int = 4) -> None:
        self.name = name
        self.path = path
        self._n_ctx_wanted = n_ctx
        self._queue_size = queue_size
        self._timeout = timeout_seconds
        self._cpu = cpu
        self._n_batch = n_batch
        self._parallel = max(1, parallel)
        self._load_lock = threading.Lock()
        self._model: LoadedModel | None = None
        self._runner: BatchRunner | None = None
        self._closed = False
        # Worker threads reading the model (templating, tokenizing, building a sampler):
        # aclose waits for them before it frees the model under them.
        self._readers = 0
        self._read_done = threading.Condition()

    # --- information

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def parallel(self) -> int:
        return self._parallel

    def context_length(self) -> int:
        """Tokens one request may use, prompt and reply together."""
        return self._model.n_ctx_seq if self._model else self._n_ctx_wanted

    def stats(self) -> EngineStats:
        return self._runner.stats() if self._runner else EngineStats()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "engine": "llama_cpp", "path": self.path,
                "context": self.context_length(), "parallel": self._parallel,
                "loaded": self.loaded}

    async def count_tokens(self, messages: list[ChatMessage]) -> int:
        return len(await self.prompt_tokens(messages))

    async def prompt_tokens(self, messages: list[ChatMessage]) -> list[int]:
        """The tokens the model sees for these messages: chat template applied, tokenized."""
        model = await self._ensure_loaded()
        # Both take time in proportion to the text: a worker thread's, not the event loop's.
        return await anyio.to_thread.run_sync(self._reading, _tokenize, model, messages)

    # --- generation

    async def start(self, params: GenerationParams) -> ChatStream:
        if self._closed:
            raise NotReady(f"chat model {self.name!r} is shutting down")
        model = await self._ensure_loaded()
        runner = self._runner
        assert runner is not None
        runner.reserve()  # a full queue answers 503 before the prompt costs anything
        made: list[Sampler] = []
        try:
            # Templating, tokenizing and building the grammar run in a worker thread, so a
            # long conversation never stalls the event loop (and every other request on it).
            prompt, room, sampler = await anyio.to_thread.run_sync(
                self._reading, self._prepare, model, params, made)
        except BaseException:
            # Cancelled while the thread ran: the sampler it made has no job to free it.
            for leftover in made:
                leftover.free()
            runner.release()
            raise
        job = Job(params, prompt, min(params.max_new_tokens or room, room), sampler,
                  asyncio.get_running_loop(), time.monotonic() + self._timeout)
        try:
            runner.submit(job)
        except BaseException:
            sampler.free()
            raise
        stream: ChatStream = _Stream(self, job)
        if params.tools and params.tool_choice != "none":
            stream = ToolCallStream(stream)
        return stream

    def _prepare(self, model: LoadedModel, params: GenerationParams,
                 made: list[Sampler]) -> tuple[list[int], int, Sampler]:
        """In a worker thread: the prompt's tokens, the room left for the reply, and the
        sampler (also appended to ``made``, so a cancelled caller can free it)."""
        messages, tool_grammar = prepare_tools(params)
        prompt = _tokenize(model, messages)
        limit = model.n_ctx_seq
        room = limit - len(prompt)
        if room < 1:
            raise BadRequest(
                f"messages: the conversation is {len(prompt)} tokens but model {self.name!r} "
                f"has a context of {limit} tokens per request (n_ctx: each of its "
                f"{self._parallel} parallel slots holds that many); send fewer or shorter "
                "messages", field="messages")
        bad = [t for t in params.logit_bias if not 0 <= t < model.n_vocab]
        if bad:
            raise BadRequest(f"logit_bias: token ids must be 0-{model.n_vocab - 1} for model "
                             f"{self.name!r} (got {bad[0]})", field="logit_bias")
        grammar: Grammar | None = tool_grammar or response_grammar(params.response_format)
        if grammar is None and params.grammar:
            grammar = Grammar(params.grammar, field="grammar")  # a caller's own GBNF (fusion)
        sampler = build_sampler(model.vocab, model.n_vocab, limit, params, prompt, grammar)
        made.append(sampler)
        return prompt, room, sampler

    def _reading(self, work: Callable[..., _T], *args: Any) -> _T:
        """Runs ``work`` (in a worker thread) as a reader of the model, unless closing."""
        with self._read_done:
            if self._closed:
                raise NotReady(f"chat model {self.name!r} is shutting down")
            self._readers += 1
        try:
            return work(*args)
        finally:
            with self._read_done:
                self._readers -= 1
                self._read_done.notify_all()

    def _wait_for_readers(self) -> None:
        with self._read_done:
            self._read_done.wait_for(lambda: self._readers == 0)

    async def aclose(self) -> None:
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None:
            await asyncio.to_thread(runner.close)
        await asyncio.to_thread(self._wait_for_readers)
        if self._model is not None:
            self._model.close()
            self._model = None

    # --- loading

    async def _ensure_loaded(self) -> LoadedModel:
        if self._model is None:
            await asyncio.to_thread(self._load)
        assert self._model is not None
        return self._model

    def _load(self) -> None:
        with self._load_lock:
            if self._model is not None:
                return
            try:
                path = resolve_model_path(self.path)
                if not path.is_file():
                    raise FileNotFoundError(f"no file at {path}")
                model = LoadedModel(path, n_ctx=self._n_ctx_wanted, parallel=self._parallel,
                                    n_batch=self._n_batch, threads=self._cpu.total)
            except (OSError, ValueError, RuntimeError) as exc:
                raise NotReady(f"chat model {self.name!r} failed to load from "
                               f"{self.path!r}: {exc}") from exc
            self._runner = BatchRunner(model, name=self.name, cpu=self._cpu,
                                       queue_size=self._queue_size,
                                       timeout_seconds=self._timeout)
            self._model = model
            log.info("chat model loaded", model=self.name, path=str(path),
                     n_ctx=model.n_ctx_seq, parallel=self._parallel)

    def _cancel(self, job: Job) -> None:
        if self._runner is not None:
            self._runner.cancel(job)
        else:
            job.cancel.set()


def _tokenize(model: LoadedModel, messages: list[ChatMessage]) -> list[int]:
    return model.tokenize(model.template.render(messages))
