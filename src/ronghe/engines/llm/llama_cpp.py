"""Chat on a local GGUF model through llama-cpp-python.

- One generation at a time per model, in the model's own worker thread: a llama.cpp context
  holds one KV cache, and interleaving two requests in it would corrupt both.  Others wait in
  a bounded queue (``queue_size``); beyond that ``start`` raises ``Busy`` at once.
- The prompt is the GGUF's own ``tokenizer.chat_template`` rendered in a Jinja sandbox, and
  every count in ``usage`` comes from the model's tokenizer.
- Sampling follows Hugging Face ``generate``: repetition penalty (over prompt *and* output)
  -> temperature -> top-p, after OpenAI's logit bias and frequency/presence penalties.
  llama-cpp-python's own chain runs top-p before temperature and penalises only the last 64
  generated tokens, so the chain is built here.
- The worker checks a cancel flag between tokens (and between prompt batches), so a client
  that goes away frees the model within one token.
- Output bytes go through an incremental UTF-8 decoder: a token may end inside a multi-byte
  character (most Chinese characters span two tokens), and a delta never carries half of one.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np
import structlog

from ronghe.engines.cpu import CpuBudget, budget
from ronghe.engines.llm.base import (
    ChatDelta,
    ChatMessage,
    FinishReason,
    GenerationParams,
    Usage,
)
from ronghe.engines.llm.bundled import resolve_model_path
from ronghe.engines.llm.text import CHATML, ChatTemplate, StopMatcher
from ronghe.errors import BadRequest, Busy, NotReady, Timeout

log = structlog.get_logger(__name__)

class _End:
    """Queue marker: the stream is over."""


_END = _End()
_Item = ChatDelta | BaseException | _End


@dataclass
class EngineStats:
    running: int = 0
    waiting: int = 0
    completed: int = 0
    cancelled: int = 0
    rejected: int = 0
    failed: int = 0


@dataclass(eq=False)  # identity-hashed: jobs live in a set
class _Job:
    params: GenerationParams
    prompt: list[int]
    max_new_tokens: int
    loop: asyncio.AbstractEventLoop
    deadline: float
    queue: asyncio.Queue[_Item] = field(default_factory=asyncio.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)
    # Both guarded by the engine's state lock.
    started: bool = False
    dropped: bool = False  # cancelled while still waiting in the queue

    def put(self, item: _Item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone, so is the listener
            self.cancel.set()


class _Stream:
    def __init__(self, engine: LlamaCppEngine, job: _Job) -> None:
        self._engine = engine
        self._job = job
        self._done = False
        self._held: list[_Item] = []  # taken from the queue but not yet returned

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> ChatDelta:
        if self._done:
            raise StopAsyncIteration
        queue = self._job.queue
        item = self._held.pop() if self._held else await queue.get()
        if isinstance(item, _End):
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if item.finish_reason is not None:
            return item
        # A consumer that fell behind (a slow client, a busy CPU) gets the backlog as one
        # delta: fewer events to encode and send, so it catches up instead of lagging more.
        texts = [item.text]
        while not queue.empty():
            following = queue.get_nowait()
            if isinstance(following, ChatDelta) and following.finish_reason is None:
                texts.append(following.text)
            else:
                self._held.append(following)
                break
        return item if len(texts) == 1 else ChatDelta("".join(texts))

    async def aclose(self) -> None:
        self._done = True
        self._engine._cancel(self._job)


class LlamaCppEngine:
    def __init__(self, name: str, path: str, *, n_ctx: int = 8192, queue_size: int = 16,
                 timeout_seconds: float = 300, cpu: CpuBudget = budget,
                 n_batch: int = 512) -> None:
        self.name = name
        self.path = path
        self._n_ctx_wanted = n_ctx
        self._queue_size = queue_size
        self._timeout = timeout_seconds
        self._cpu = cpu
        self._lease = f"llama:{name}"
        self._n_batch = n_batch
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"llama-{name}")
        self._load_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._llm: llama_cpp.Llama | None = None
        self._template: ChatTemplate | None = None
        self._bos_text = ""
        self._n_ctx = 0
        self._threads = 0
        self._piece_buf = ctypes.create_string_buffer(64)
        self._jobs: set[_Job] = set()
        self._stats = EngineStats()
        self._closed = False

    # --- information

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def context_length(self) -> int:
        return self._n_ctx or self._n_ctx_wanted

    def stats(self) -> EngineStats:
        with self._state_lock:
            return EngineStats(**vars(self._stats))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "engine": "llama_cpp", "path": self.path,
                "context": self.context_length(), "loaded": self.loaded}

    async def count_tokens(self, messages: list[ChatMessage]) -> int:
        return len(await self.prompt_tokens(messages))

    async def prompt_tokens(self, messages: list[ChatMessage]) -> list[int]:
        """The tokens the model sees for these messages: chat template applied, tokenized."""
        await self._ensure_loaded()
        return self._prompt_tokens(messages)

    # --- generation

    async def start(self, params: GenerationParams) -> _Stream:
        if self._closed:
            raise NotReady(f"chat model {self.name!r} is shutting down")
        await self._ensure_loaded()
        prompt = self._prompt_tokens(params.messages)
        room = self._n_ctx - len(prompt)
        if room < 1:
            raise BadRequest(
                f"messages: the conversation is {len(prompt)} tokens but model {self.name!r} "
                f"has a context of {self._n_ctx} tokens; send fewer or shorter messages",
                field="messages",
            )
        assert self._llm is not None
        n_vocab = self._llm.n_vocab()
        bad = [t for t in params.logit_bias if not 0 <= t < n_vocab]
        if bad:
            raise BadRequest(f"logit_bias: token ids must be 0-{n_vocab - 1} for model "
                             f"{self.name!r} (got {bad[0]})", field="logit_bias")
        with self._state_lock:
            if self._stats.running + self._stats.waiting >= 1 + self._queue_size:
                self._stats.rejected += 1
                raise Busy(f"chat model {self.name!r} is busy ({self._queue_size} requests "
                           "already waiting); retry later")
            self._stats.waiting += 1
        job = _Job(params, prompt, min(params.max_new_tokens or room, room),
                   asyncio.get_running_loop(), time.monotonic() + self._timeout)
        with self._state_lock:
            self._jobs.add(job)
        self._executor.submit(self._run, job)
        return _Stream(self, job)

    async def aclose(self) -> None:
        self._closed = True
        with self._state_lock:
            jobs = list(self._jobs)
        for job in jobs:
            self._cancel(job)
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    # --- loading and prompts

    async def _ensure_loaded(self) -> None:
        if self._llm is None:
            await asyncio.to_thread(self._load)

    def _load(self) -> None:
        with self._load_lock:
            if self._llm is not None:
                return
            try:
                path = resolve_model_path(self.path)
                llm = llama_cpp.Llama(
                    str(path), n_ctx=self._n_ctx_wanted, n_batch=self._n_batch,
                    n_threads=self._cpu.total, n_threads_batch=self._cpu.total, verbose=False,
                )
            except (OSError, ValueError, RuntimeError) as exc:
                raise NotReady(f"chat model {self.name!r} failed to load from "
                               f"{self.path!r}: {exc}") from exc
            metadata = llm.metadata
            source = metadata.get("tokenizer.chat_template")
            if not source:
                log.warning("GGUF has no chat template; using ChatML", model=self.name)
            self._bos_text = _token_text(llm, llm.token_bos())
            self._template = ChatTemplate(source or CHATML, bos_token=self._bos_text,
                                          eos_token=_token_text(llm, llm.token_eos()))
            # A context beyond what the model was trained on only produces garbage.
            self._n_ctx = min(llm.n_ctx(), llama_cpp.llama_model_n_ctx_train(llm.model))
            self._threads = self._cpu.total
            self._llm = llm
            log.info("chat model loaded", model=self.name, path=str(path), n_ctx=self._n_ctx)

    def _prompt_tokens(self, messages: list[ChatMessage]) -> list[int]:
        assert self._llm is not None and self._template is not None
        text = self._template.render(messages)
        # Templates that write the BOS text themselves must not get a second BOS token.
        add_bos = not (self._bos_text and text.startswith(self._bos_text))
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    # --- the worker thread

    def _cancel(self, job: _Job) -> None:
        job.cancel.set()
        with self._state_lock:
            # A job still in the queue gives its place up now, not when the worker gets to it.
            if not job.started and not job.dropped:
                job.dropped = True
                self._stats.waiting -= 1
                self._stats.cancelled += 1
                self._jobs.discard(job)

    def _run(self, job: _Job) -> None:
        with self._state_lock:
            if job.dropped:
                return
            job.started = True
            self._stats.waiting -= 1
            self._stats.running += 1
        outcome = "failed"
        error: Exception | None = None
        try:
            if time.monotonic() > job.deadline:
                raise Timeout(f"the request waited longer than {self._timeout:g} s for "
                              f"chat model {self.name!r}")
            with self._cpu.lease(self._lease) as threads:
                outcome = "completed" if self._generate(job, threads) else "cancelled"
        except Exception as exc:  # handed to the request, which maps it to a response
            if not isinstance(exc, Timeout | BadRequest):
                log.exception("generation failed", model=self.name)
            error = exc
        finally:
            # Counted before the listener hears the end, so stats are settled when it does.
            with self._state_lock:
                self._stats.running -= 1
                setattr(self._stats, outcome, getattr(self._stats, outcome) + 1)
                self._jobs.discard(job)
            if error is not None:
                job.put(error)
            job.put(_END)

    def _generate(self, job: _Job, threads: int) -> bool:
        """Runs one generation; False if it was cancelled."""
        llm = self._llm
        assert llm is not None
        self._set_threads(threads)
        if not self._prefill(llm, job):
            return False
        chain = self._sampler(llm, job)
        try:
            return self._decode(llm, job, chain)
        finally:
            llama_cpp.llama_sampler_free(chain)

    def _prefill(self, llm: llama_cpp.Llama, job: _Job) -> bool:
        prompt = job.prompt
        # Reuse the KV cache for the prefix shared with the previous generation (the
        # conversation so far, in a multi-turn chat); at least one token is evaluated so the
        # logits are fresh.
        n = min(llm.n_tokens, len(prompt) - 1)
        diff = np.nonzero(llm.input_ids[:n] != np.asarray(prompt[:n], dtype=np.intc))[0]
        keep = int(diff[0]) if len(diff) else n
        memory = llama_cpp.llama_get_memory(llm.ctx)
        if keep > 0 and not llama_cpp.llama_memory_seq_rm(memory, 0, keep, -1):
            keep = 0
        if keep == 0:
            llm.reset()
        llm.n_tokens = keep
        for i in range(keep, len(prompt), self._n_batch):
            if job.cancel.is_set():
                return False
            llm.eval(prompt[i : i + self._n_batch])
        return True

    def _sampler(self, llm: llama_cpp.Llama, job: _Job) -> Any:
        p = job.params
        n_vocab = llm.n_vocab()
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())

        def add(sampler: Any) -> None:
            llama_cpp.llama_sampler_chain_add(chain, sampler)

        if p.grammar:
            # First in the chain: every later step only sees tokens the grammar allows.
            grammar = llama_cpp.llama_sampler_init_grammar(
                llama_cpp.llama_model_get_vocab(llm.model), p.grammar.encode("utf-8"),
                b"root")
            if not grammar:
                llama_cpp.llama_sampler_free(chain)
                raise BadRequest("grammar: not a valid GBNF grammar", field="grammar")
            add(grammar)
        if p.logit_bias:
            biases = (llama_cpp.llama_logit_bias * len(p.logit_bias))()
            for i, (token, bias) in enumerate(p.logit_bias.items()):
                biases[i].token, biases[i].bias = token, bias
            add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(biases), biases))
        if p.repetition_penalty != 1.0:
            # Hugging Face semantics: the window is the whole context and the prompt's tokens
            # are fed in first, so every prompt and output token counts; like HF, llama.cpp
            # penalises each distinct token once.
            repeat = llama_cpp.llama_sampler_init_penalties(
                n_vocab, self._n_ctx, p.repetition_penalty, 0.0, 0.0)
            for token in job.prompt:
                llama_cpp.llama_sampler_accept(repeat, token)
            add(repeat)
        if p.frequency_penalty or p.presence_penalty:
            # OpenAI semantics: counts over the generated tokens only.
            add(llama_cpp.llama_sampler_init_penalties(
                n_vocab, self._n_ctx, 1.0, p.frequency_penalty, p.presence_penalty))
        if p.temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            add(llama_cpp.llama_sampler_init_temp(p.temperature))
            add(llama_cpp.llama_sampler_init_top_p(p.top_p, 1))
            seed = llama_cpp.LLAMA_DEFAULT_SEED if p.seed is None else p.seed & 0xFFFFFFFF
            add(llama_cpp.llama_sampler_init_dist(seed))
        return chain

    def _decode(self, llm: llama_cpp.Llama, job: _Job, chain: Any) -> bool:
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        stopper = StopMatcher(job.params.stop)
        produced = 0
        finish: FinishReason = "length"
        stopped = False
        while produced < job.max_new_tokens:
            if job.cancel.is_set():
                return False
            if time.monotonic() > job.deadline:
                raise Timeout(f"generation took longer than {self._timeout:g} s")
            token = llama_cpp.llama_sampler_sample(chain, llm.ctx, -1)
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                finish = "stop"
                break
            produced += 1
            text, stopped = stopper.feed(decoder.decode(self._piece(vocab, token)))
            if text:
                job.put(ChatDelta(text))
            if stopped:
                finish = "stop"
                break
            if produced < job.max_new_tokens:  # the last token's logits are never needed
                llm.eval([token])
                self._set_threads(self._cpu.share(self._lease))
        # Bytes still in the decoder are a character cut off by the token limit: not text, so
        # they are dropped rather than sent as U+FFFD.
        rest = "" if stopped else stopper.flush()
        usage = Usage(prompt_tokens=len(job.prompt), completion_tokens=produced)
        job.put(ChatDelta(rest, finish_reason=finish, usage=usage))
        return True

    def _piece(self, vocab: Any, token: int) -> bytes:
        n = llama_cpp.llama_token_to_piece(vocab, token, self._piece_buf,
                                           len(self._piece_buf), 0, False)
        if n < 0:  # the piece is longer than the buffer: -n is the size it needs
            self._piece_buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(vocab, token, self._piece_buf,
                                               len(self._piece_buf), 0, False)
        return self._piece_buf.raw[:n]

    def _set_threads(self, threads: int) -> None:
        if threads != self._threads and self._llm is not None:
            llama_cpp.llama_set_n_threads(self._llm.ctx, threads, threads)
            self._threads = threads


def _token_text(llm: llama_cpp.Llama, token: int) -> str:
    if token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", "replace")
