"""The llama.cpp engine on the real bundled SmolLM2 model."""

from __future__ import annotations

import asyncio
import time
import unicodedata
from collections.abc import Iterator

import llama_cpp
import numpy as np
import pytest

from ronghe.engines.cpu import CpuBudget
from ronghe.engines.llm.base import ChatDelta, ChatMessage, GenerationParams, collect
from ronghe.engines.llm.bundled import resolve_model_path
from ronghe.engines.llm.llama_cpp import LlamaCppEngine
from ronghe.errors import BadRequest, Busy, NotReady, Timeout
from tests.chat_support import eog_tokens

HELLO = [ChatMessage("user", "Say this is a test!")]
STORY = [ChatMessage("user", "Write a long story about a dragon.")]


def never_stop() -> dict[int, float]:
    return {t: -100.0 for t in eog_tokens()}


def make_engine(**kwargs: object) -> LlamaCppEngine:
    options: dict[str, object] = {"n_ctx": 2048, "cpu": CpuBudget(1)}
    options.update(kwargs)
    return LlamaCppEngine("smollm2", "bundled:smollm2", **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppEngine]:
    e = make_engine(queue_size=2)
    yield e
    asyncio.run(e.aclose())


async def settle(engine: LlamaCppEngine) -> None:
    """Leaves a known prompt in the KV cache.

    Written when logits of a prompt split over two batches differed in the last digits from
    one batch; with the batched engine they are bit-exact (test_batching checks warm against
    cold), so this is belt and braces: tests that compare two generations still start from
    the same cache state.
    """
    await collect(await engine.start(GenerationParams([ChatMessage("user", "Hi")],
                                                      temperature=0, max_new_tokens=1)))


async def deltas(engine: LlamaCppEngine, params: GenerationParams) -> list[ChatDelta]:
    return [d async for d in await engine.start(params)]


async def test_reply_and_real_token_counts(engine: LlamaCppEngine) -> None:
    params = GenerationParams(HELLO, temperature=0, max_new_tokens=24)
    out = await deltas(engine, params)
    final = out[-1]
    assert final.finish_reason in ("stop", "length") and final.usage is not None
    assert all(d.finish_reason is None for d in out[:-1])
    text = "".join(d.text for d in out)
    assert text.strip()
    assert final.usage.prompt_tokens == await engine.count_tokens(HELLO)
    # The template adds the model's default system prompt around the 5-word message.
    assert final.usage.prompt_tokens > 20
    assert 0 < final.usage.completion_tokens <= 24


async def test_token_limit_ends_with_length(engine: LlamaCppEngine) -> None:
    result = await collect(await engine.start(
        GenerationParams(STORY, max_new_tokens=7, logit_bias=never_stop())))
    assert result.finish_reason == "length"
    assert result.usage is not None and result.usage.completion_tokens == 7


async def test_limit_is_capped_by_the_context() -> None:
    small = make_engine(n_ctx=256)
    try:
        prompt = [ChatMessage("user", "word " * 150)]
        n_prompt = await small.count_tokens(prompt)
        assert 150 < n_prompt < 250
        result = await collect(await small.start(
            GenerationParams(prompt, max_new_tokens=None, logit_bias=never_stop())))
        assert result.finish_reason == "length" and result.usage is not None
        assert result.usage.prompt_tokens + result.usage.completion_tokens == 256
        with pytest.raises(BadRequest, match="context of 256 tokens") as info:
            await small.start(GenerationParams([ChatMessage("user", "word " * 300)]))
        assert info.value.field == "messages"
    finally:
        await small.aclose()


# A prompt far beyond any context, which takes the tokenizer a good fraction of a second.
HUGE = [ChatMessage("user", "word " * 400_000)]


async def test_a_full_queue_is_refused_before_the_prompt_is_read() -> None:
    single = make_engine(queue_size=0, parallel=1)
    try:
        held = await single.start(GenerationParams(STORY, max_new_tokens=4000,
                                                   logit_bias=never_stop()))
        # Read, the prompt would be the context's 400; the queue's 503 comes first.
        with pytest.raises(Busy, match="busy"):
            await single.start(GenerationParams(HUGE))
        await held.aclose()
    finally:
        await single.aclose()


async def test_a_request_cancelled_while_its_prompt_is_read_gives_its_place_back() -> None:
    single = make_engine(queue_size=0, parallel=1)
    try:
        await single.count_tokens(HELLO)  # loaded, so the cancel lands in the tokenizing
        reading = asyncio.create_task(single.start(GenerationParams(HUGE)))
        await asyncio.sleep(0.05)
        reading.cancel()
        with pytest.raises((asyncio.CancelledError, BadRequest)):
            await reading
        # The one place there is takes the next request.
        result = await collect(await single.start(
            GenerationParams(HELLO, temperature=0, max_new_tokens=2)))
        assert result.usage is not None and result.usage.completion_tokens <= 2
        assert single.stats().rejected == 0
    finally:
        await single.aclose()


async def test_closing_waits_for_a_prompt_being_read() -> None:
    closing = make_engine()
    await closing.count_tokens(HELLO)
    reading = asyncio.create_task(closing.start(GenerationParams(HUGE)))
    await asyncio.sleep(0.05)
    # The model is freed only once the tokenizer is done with it (else: a crash).
    await closing.aclose()
    with pytest.raises((BadRequest, Busy, NotReady)):
        await reading
    with pytest.raises(NotReady, match="shutting down"):
        await closing.start(GenerationParams(HELLO))


async def test_seed_and_greedy_are_reproducible(engine: LlamaCppEngine) -> None:
    def seeded(seed: int) -> GenerationParams:
        return GenerationParams(STORY, temperature=1.0, top_p=1.0, max_new_tokens=16, seed=seed)

    async def run(seed: int) -> str:
        await settle(engine)
        return (await collect(await engine.start(seeded(seed)))).text

    a, b = await run(7), await run(7)
    others = {await run(s) for s in (8, 9, 10)}
    assert a == b
    assert others != {a}  # the seed really drives sampling


async def test_chinese_characters_are_never_split(engine: LlamaCppEngine) -> None:
    messages = [ChatMessage("system", "你是一个中文助手。只用中文回答。"),
                ChatMessage("user", "北京是哪个国家的首都？")]
    out = await deltas(engine, GenerationParams(messages, temperature=0, max_new_tokens=30))
    texts = [d.text for d in out if d.text]
    joined = "".join(texts)
    cjk = [c for c in joined if unicodedata.name(c, "").startswith("CJK")]
    assert len(cjk) >= 5, joined
    assert "\ufffd" not in joined
    usage = out[-1].usage
    assert usage is not None
    # Fewer deltas than tokens: some characters took two tokens and were sent whole.
    assert len(texts) < usage.completion_tokens


async def test_stop_strings_cut_the_text(engine: LlamaCppEngine) -> None:
    greedy = GenerationParams(STORY, temperature=0, max_new_tokens=30)
    await settle(engine)
    full = (await collect(await engine.start(greedy))).text
    words = full.split()
    assert len(words) > 6, full
    stop = " " + words[4]
    await settle(engine)
    cut = await collect(await engine.start(GenerationParams(
        STORY, temperature=0, max_new_tokens=30, stop=["@@never@@", stop])))
    assert cut.finish_reason == "stop"
    assert cut.text == full[: full.index(stop)]


async def test_repetition_penalty_has_hugging_face_semantics(engine: LlamaCppEngine) -> None:
    """The first token already feels the penalty, because the prompt's tokens count.

    llama-cpp-python's default penalises only the last 64 *generated* tokens, so its first
    token would be the unpenalised argmax.  The expected token is computed here the way
    Hugging Face's RepetitionPenaltyLogitsProcessor does, on logits from a separate context.
    """
    messages = [ChatMessage("user", "Hello\nSay Hello")]
    prompt = await engine.prompt_tokens(messages)
    llm = llama_cpp.Llama(str(resolve_model_path("bundled:smollm2")), n_ctx=512, n_threads=1,
                          n_threads_batch=1, verbose=False)
    try:
        llm.eval(prompt)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1),
                                       shape=(llm.n_vocab(),)).copy()
        seen = np.unique(prompt)
        penalised = logits.copy()
        penalised[seen] = np.where(logits[seen] < 0, logits[seen] * 1.3, logits[seen] / 1.3)
        raw, hf = int(logits.argmax()), int(penalised.argmax())
        # Clear winners, so batch-size rounding differences cannot flip them.
        for scores in (logits, penalised):
            best, second = np.sort(scores)[-2:][::-1]
            assert best - second > 0.2
        raw_text, hf_text = (llm.detokenize([t]).decode() for t in (raw, hf))
    finally:
        llm.close()
    assert raw in prompt and hf != raw  # otherwise this prompt could not tell them apart

    def first(penalty: float) -> GenerationParams:
        return GenerationParams(messages, temperature=0, max_new_tokens=1,
                                repetition_penalty=penalty)

    assert (await collect(await engine.start(first(1.0)))).text == raw_text
    assert (await collect(await engine.start(first(1.3)))).text == hf_text


async def test_concurrent_requests_do_not_corrupt_each_other(engine: LlamaCppEngine) -> None:
    a = GenerationParams(STORY, temperature=0, max_new_tokens=20)
    b = GenerationParams(HELLO, temperature=0, max_new_tokens=20)
    await settle(engine)
    alone_a = (await collect(await engine.start(a))).text
    alone_b = (await collect(await engine.start(b))).text
    together = await asyncio.gather(*[collect(await engine.start(p)) for p in (a, b, a)])
    assert [r.text for r in together] == [alone_a, alone_b, alone_a]


async def test_full_queue_is_refused_at_once() -> None:
    engine = make_engine(queue_size=1, parallel=1)
    try:
        long = GenerationParams(STORY, max_new_tokens=2000, logit_bias=never_stop())
        first = await engine.start(long)
        # Its first token means the worker thread has admitted it to the one slot, so the
        # next request is the waiting one (admission is asynchronous).
        await anext(aiter(first))
        second = await engine.start(long)
        started = time.monotonic()
        with pytest.raises(Busy, match="busy"):
            await engine.start(long)
        assert time.monotonic() - started < 0.5
        stats = engine.stats()
        assert (stats.running + stats.waiting, stats.rejected) == (2, 1)
        await second.aclose()  # a waiting request gives its place up at once
        assert engine.stats().waiting == 0
        third = await engine.start(long)
        await first.aclose()
        await third.aclose()
    finally:
        await engine.aclose()


async def test_closing_a_stream_stops_generation_promptly(engine: LlamaCppEngine) -> None:
    before = engine.stats()
    stream = await engine.start(GenerationParams(STORY, max_new_tokens=2000,
                                                 logit_bias=never_stop()))
    for _ in range(3):
        await stream.__anext__()
    closed_at = time.monotonic()
    await stream.aclose()
    while engine.stats().running:
        await asyncio.sleep(0.005)
    assert time.monotonic() - closed_at < 0.5
    after = engine.stats()
    assert after.cancelled == before.cancelled + 1
    assert after.completed == before.completed


async def test_cancelled_caller_stops_generation(engine: LlamaCppEngine) -> None:
    """A non-streaming caller cancelled mid-way (its client left) frees the model too."""
    before = engine.stats().cancelled
    params = GenerationParams(STORY, max_new_tokens=2000, logit_bias=never_stop())
    task = asyncio.create_task(collect(await engine.start(params)))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)
    assert engine.stats().cancelled == before + 1 and engine.stats().running == 0


async def test_timeout_ends_a_long_generation() -> None:
    engine = make_engine(timeout_seconds=0.4)
    try:
        stream = await engine.start(GenerationParams(STORY, max_new_tokens=2000,
                                                     logit_bias=never_stop()))
        with pytest.raises(Timeout, match=r"longer than 0\.4 s"):
            await collect(stream)
        assert engine.stats().failed == 1
    finally:
        await engine.aclose()


async def test_bad_logit_bias_token_is_refused(engine: LlamaCppEngine) -> None:
    with pytest.raises(BadRequest, match="logit_bias"):
        await engine.start(GenerationParams(HELLO, logit_bias={10**7: 1.0}))


async def test_a_slow_consumer_gets_the_backlog_merged(engine: LlamaCppEngine) -> None:
    params = GenerationParams(STORY, temperature=0, max_new_tokens=40, logit_bias=never_stop())
    await settle(engine)
    eager = await deltas(engine, params)
    await settle(engine)
    stream = await engine.start(params)
    await asyncio.sleep(1.0)  # meanwhile tokens pile up
    slow = await asyncio.wait_for(_drain(stream), 10)
    assert len(slow) <= len(eager) - 5
    assert "".join(d.text for d in slow) == "".join(d.text for d in eager)
    assert slow[-1].usage == eager[-1].usage and slow[-1].finish_reason == "length"


async def _drain(stream: object) -> list[ChatDelta]:
    return [d async for d in stream]  # type: ignore[attr-defined]
