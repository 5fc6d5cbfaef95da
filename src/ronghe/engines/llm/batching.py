"""Continuous batching: every generation of a model shares one llama.cpp context.

The context has one sequence per slot (``chat_parallel`` of them).  One worker thread runs
decode steps; each step is one ``llama_decode`` of one batch holding

- the next token of every sequence that is generating, and
- prompt chunks of sequences still reading their prompt (chunked prefill: at most
  ``PREFILL_CHUNK`` prompt tokens per step while others generate, so a long prompt delays
  their next token by one chunk's worth, not by the whole prompt).

After the step each generating sequence samples from its own logits with its own sampler
chain, stop strings and UTF-8 decoder.  A sequence that ends, is cancelled or times out frees
its slot in the same step, and a waiting request takes it before the next.

A new request takes the slot whose cache already holds the longest part of its prompt, or
a copy of a busy slot's cache (``slots``), and evaluates only the rest.  Cells are per
sequence (llama.cpp's non-unified KV cache), so a slot's cache never crowds another.

Logits of a sequence do not depend on what else is in the batch or how its prompt was split
(measured bit-exact with this llama.cpp build, flash attention off: ``llama_model``), so a
seeded request gives the same text alone or beside others, from a cached prefix or not.
"""

from __future__ import annotations

import asyncio
import codecs
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import structlog

from ronghe.engines.cpu import CpuBudget
from ronghe.engines.llm.base import ChatDelta, FinishReason, GenerationParams, TokenLogprob, Usage
from ronghe.engines.llm.llama_model import LoadedModel
from ronghe.engines.llm.logprobs import TokenTrail, token_logprobs
from ronghe.engines.llm.sampling import Sampler
from ronghe.engines.llm.slots import Slot, place
from ronghe.engines.llm.text import StopMatcher
from ronghe.errors import Busy, RongheError, Timeout

log = structlog.get_logger(__name__)

# Prompt tokens per step while other sequences generate: one 128-token chunk costs about as
# much as a few generated tokens on a CPU, so a newcomer's prompt barely stalls the others.
PREFILL_CHUNK = 128


class End:
    """Queue marker: the stream is over."""


END = End()
Item = ChatDelta | BaseException | End


@dataclass
class EngineStats:
    running: int = 0
    waiting: int = 0
    completed: int = 0
    cancelled: int = 0
    rejected: int = 0
    failed: int = 0
    # Prompt tokens found in a slot's KV cache instead of evaluated again.
    reused_tokens: int = 0
    # Newcomers whose slot got a copy of a busy slot's cells (their share is in reused_tokens).
    copied_prefixes: int = 0


@dataclass(eq=False)  # identity-hashed
class Job:
    params: GenerationParams
    prompt: list[int]
    max_new_tokens: int
    sampler: Sampler  # freed by whoever ends the job
    loop: asyncio.AbstractEventLoop
    deadline: float
    queue: asyncio.Queue[Item] = field(default_factory=asyncio.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)
    # Guarded by the runner's lock.
    started: bool = False
    dropped: bool = False  # cancelled while still waiting

    def put(self, item: Item) -> None:
        deliver(self.loop, [(self, item)])


def deliver(loop: asyncio.AbstractEventLoop, items: list[tuple[Job, Item]]) -> None:
    """Hands items to their listeners with one wake-up of their event loop."""

    def put_all() -> None:
        for job, item in items:
            job.queue.put_nowait(item)

    try:
        loop.call_soon_threadsafe(put_all)
    except RuntimeError:  # the event loop is gone, so are the listeners
        for job, _ in items:
            job.cancel.set()


@dataclass(eq=False)
class _Running:
    job: Job
    slot: Slot
    pending: list[int]  # prompt tokens not evaluated yet
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    stopper: StopMatcher = field(default_factory=lambda: StopMatcher([]))
    next_token: int | None = None  # sampled, to be evaluated in the next step
    produced: int = 0
    out: int = -1  # this step's batch index of its logits, -1 when it has none
    trail: TokenTrail | None = None  # only when the request asked for logprobs


class BatchRunner:
    def __init__(self, model: LoadedModel, *, name: str, cpu: CpuBudget, queue_size: int,
                 timeout_seconds: float) -> None:
        self._model = model
        self._name = name
        self._cpu = cpu
        self._lease = f"llama:{name}"
        self._queue_size = queue_size
        self._timeout = timeout_seconds
        self._slots = [Slot(i) for i in range(model.parallel)]
        self._running: list[_Running] = []
        self._waiting: deque[Job] = deque()
        # Requests that hold a place while their prompt is templated and tokenized (off the
        # event loop); they count against the queue like the waiting ones.
        self._preparing = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stats = EngineStats()
        self._closed = False
        # What this step produced, delivered once per step: each wake-up of the event loop
        # is a syscall and a GIL hand-over, and four streams would otherwise cost four.
        self._outbox: list[tuple[Job, Item]] = []
        self._batch = llama_cpp.llama_batch_init(model.n_batch, 0, 1)
        self._thread = threading.Thread(target=self._loop, name=f"llama-{name}", daemon=True)
        self._thread.start()

    # --- called from the event loop

    def stats(self) -> EngineStats:
        with self._lock:
            return EngineStats(**vars(self._stats))

    def reserve(self) -> None:
        """Takes a place in the queue for a request about to read its prompt, or raises Busy:
        a full queue is refused before any time is spent on the prompt.  The place is then
        given to ``submit`` or back with ``release``."""
        with self._lock:
            if self._closed or (self._stats.running + self._stats.waiting + self._preparing
                                >= len(self._slots) + self._queue_size):
                self._stats.rejected += 1
                raise Busy(f"chat model {self._name!r} is busy ({len(self._slots)} generating, "
                           f"{self._queue_size} requests already waiting); retry later")
            self._preparing += 1

    def release(self) -> None:
        """Gives back a place ``reserve`` took, for a request that will not be submitted."""
        with self._lock:
            self._preparing -= 1

    def submit(self, job: Job) -> None:
        """Queues ``job`` in the place ``reserve`` took for it."""
        with self._lock:
            self._preparing -= 1
            if self._closed:
                self._stats.rejected += 1
                raise Busy(f"chat model {self._name!r} is shutting down; retry later")
            self._stats.waiting += 1
            self._waiting.append(job)
            self._wake.notify()

    def cancel(self, job: Job) -> None:
        job.cancel.set()
        with self._lock:
            # A job still waiting gives its place up now, not when a slot frees.
            if job.started or job.dropped:
                return
            job.dropped = True
            self._waiting.remove(job)
            self._stats.waiting -= 1
            self._stats.cancelled += 1
        job.sampler.free()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join()
        llama_cpp.llama_batch_free(self._batch)

    # --- the worker thread

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not (self._closed or self._waiting or self._running):
                    self._wake.wait()
                if self._closed:
                    break
            # One lease while any sequence runs: llama.cpp and torch split the cores.
            with self._cpu.lease(self._lease) as threads:
                self._model.set_threads(threads)
                while self._step():
                    self._flush()
                    self._model.set_threads(self._cpu.share(self._lease))
                self._flush()
        for run in list(self._running):
            self._end(run, "cancelled")
        self._flush()
        with self._lock:
            waiting, self._waiting = list(self._waiting), deque()
            self._stats.cancelled += len(waiting)
            self._stats.waiting -= len(waiting)
        for job in waiting:
            job.sampler.free()
            job.put(END)

    def _emit(self, job: Job, item: Item) -> None:
        self._outbox.append((job, item))

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, Item]]] = {}
        for job, item in outbox:
            by_loop.setdefault(job.loop, []).append((job, item))
        for loop, items in by_loop.items():
            deliver(loop, items)

    def _step(self) -> bool:
        """One decode step; False when there is nothing left to do."""
        if self._closed:
            return False
        now = time.monotonic()
        for run in list(self._running):
            if run.job.cancel.is_set():
                self._end(run, "cancelled")
            elif now > run.job.deadline:
                self._end(run, "failed", Timeout(f"generation took longer than "
                                                 f"{self._timeout:g} s"))
        self._admit(now)
        if not self._running:
            with self._lock:
                return bool(self._waiting)
        try:
            self._decode_step()
        except Exception as exc:  # a failed decode fails what was in it, not the thread
            log.exception("decode step failed", model=self._name)
            error = exc if isinstance(exc, RongheError) else RuntimeError(
                f"chat model {self._name!r} failed to decode: {exc}")
            for run in list(self._running):
                run.slot.cached = []
                self._model.forget(run.slot.seq, 0)
                self._end(run, "failed", error)
        return True

    def _admit(self, now: float) -> None:
        while True:
            if all(s.busy for s in self._slots):
                return
            with self._lock:
                if not self._waiting:
                    return
                job = self._waiting.popleft()
                job.started = True
                self._stats.waiting -= 1
                self._stats.running += 1
            if now > job.deadline:
                self._finish_job(job, "failed", Timeout(
                    f"the request waited longer than {self._timeout:g} s for chat model "
                    f"{self._name!r}"))
                continue
            where = place(self._slots, job.prompt)
            slot, shared = where.slot, where.shared
            if where.copy_from is not None:
                self._model.copy(where.copy_from.seq, slot.seq)
                slot.cached = list(where.copy_from.cached[:shared])
            # At least one prompt token is evaluated, so there are fresh logits to sample.
            keep = self._model.forget(slot.seq, min(shared, len(job.prompt) - 1))
            slot.cached = slot.cached[:keep]
            slot.busy = True
            with self._lock:
                self._stats.reused_tokens += keep
                self._stats.copied_prefixes += where.copy_from is not None
            run = _Running(job, slot, job.prompt[keep:], stopper=StopMatcher(job.params.stop),
                           trail=TokenTrail() if job.params.logprobs else None)
            self._running.append(run)

    def _decode_step(self) -> None:
        batch = self._batch
        batch.n_tokens = 0
        added: list[tuple[_Running, list[int]]] = []

        def add(run: _Running, tokens: list[int], wants_logits: bool) -> None:
            start = len(run.slot.cached)
            for i, token in enumerate(tokens):
                j = batch.n_tokens
                batch.token[j] = token
                batch.pos[j] = start + i
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = run.slot.seq
                batch.logits[j] = False
                batch.n_tokens = j + 1
            if wants_logits:
                batch.logits[batch.n_tokens - 1] = True
            run.out = batch.n_tokens - 1 if wants_logits else -1
            added.append((run, tokens))

        # In sequence order, as raw llama.cpp batches them: listed in admission order (slots
        # are taken in any order) a 4-sequence step cost ~25 % more inside llama_decode, up to
        # ~50 % as runs went on; measured, not traced in llama.cpp (docs/benchmarks.md).
        generating = sorted((r for r in self._running if r.next_token is not None),
                            key=lambda r: r.slot.seq)
        for run in generating:
            assert run.next_token is not None
            add(run, [run.next_token], True)
        room = self._model.n_batch - batch.n_tokens
        if generating:
            room = min(room, PREFILL_CHUNK)
        # Shortest prompt first: with several newcomers the ones nearly done get their first
        # token this step instead of waiting behind a long prompt's chunks.
        for run in sorted((r for r in self._running if r.pending), key=lambda r: len(r.pending)):
            if room > 0:
                chunk = run.pending[:room]
                room -= len(chunk)
                add(run, chunk, len(chunk) == len(run.pending))
        result = llama_cpp.llama_decode(self._model.ctx, batch)
        if result != 0:
            raise RuntimeError(f"llama_decode returned {result}")
        for run, tokens in added:
            run.slot.cached.extend(tokens)
            if run.pending:
                del run.pending[: len(tokens)]
            run.next_token = None
        for run, _ in added:
            if run.out >= 0:
                token = run.job.sampler.sample(self._model.ctx, run.out)
                self._accept(run, token)

    def _accept(self, run: _Running, token: int) -> None:
        job = run.job
        if self._model.is_eog(token):
            self._final(run, "stop", stopped=False)
            return
        run.produced += 1
        piece = run.decoder.decode(self._model.text_piece(token))
        if run.trail is not None:
            run.trail.add(self._logprob(run, token), len(piece))
        text, stopped = run.stopper.feed(piece)
        if text:
            self._emit(job, ChatDelta(text, logprobs=run.trail.release(len(text))
                                      if run.trail is not None else ()))
        if stopped:
            self._final(run, "stop", stopped=True)
        elif run.produced >= job.max_new_tokens:
            self._final(run, "length", stopped=False)
        else:
            run.next_token = token

    def _logprob(self, run: _Running, token: int) -> TokenLogprob:
        chosen, top = token_logprobs(self._model.logits(run.out), token,
                                     run.job.params.top_logprobs)
        shown = self._model.shown_piece
        return TokenLogprob(shown(token), chosen, tuple((shown(t), lp) for t, lp in top))

    def _final(self, run: _Running, finish: FinishReason, stopped: bool) -> None:
        # Bytes still in the decoder are a character cut off by the token limit: not text, so
        # they are dropped rather than sent as U+FFFD (their tokens' logprobs still go).
        rest = "" if stopped else run.stopper.flush()
        logprobs = () if stopped or run.trail is None else run.trail.rest()
        usage = Usage(prompt_tokens=len(run.job.prompt), completion_tokens=run.produced)
        self._emit(run.job, ChatDelta(rest, finish_reason=finish, usage=usage,
                                      logprobs=logprobs))
        self._end(run, "completed")

    def _end(self, run: _Running, outcome: str, error: BaseException | None = None) -> None:
        self._running.remove(run)
        run.slot.busy = False
        run.slot.idle_since = time.monotonic()
        self._finish_job(run.job, outcome, error)

    def _finish_job(self, job: Job, outcome: str, error: BaseException | None) -> None:
        job.sampler.free()
        # Counted before the listener hears the end, so stats are settled when it does.
        with self._lock:
            self._stats.running -= 1
            setattr(self._stats, outcome, getattr(self._stats, outcome) + 1)
        if error is not None:
            self._emit(job, error)
        self._emit(job, END)
