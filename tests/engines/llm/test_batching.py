"""Parallel slots on the real bundled model: batching, fairness, isolation, prefix reuse."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from ronghe.engines.cpu import CpuBudget
from ronghe.engines.llm.base import ChatMessage, ChatStream, GenerationParams, collect
from ronghe.engines.llm.batching import PREFILL_CHUNK
from ronghe.engines.llm.llama_cpp import LlamaCppEngine
from ronghe.errors import BadRequest, Busy
from tests.chat_support import eog_tokens

STORY = [ChatMessage("user", "Write a long story about a dragon.")]


def never_stop() -> dict[int, float]:
    return {t: -100.0 for t in eog_tokens()}


def topic(word: str) -> list[ChatMessage]:
    return [ChatMessage("user", f"Tell me about {word}.")]


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppEngine]:
    e = LlamaCppEngine("smollm2", "bundled:smollm2", n_ctx=2048, cpu=CpuBudget(1),
                       parallel=4, queue_size=2)
    yield e
    asyncio.run(e.aclose())


async def timeline(stream: ChatStream, name: str, events: list[tuple[str, str]]) -> str:
    parts = []
    async for delta in stream:
        if delta.text and not parts:
            events.append(("first", name))
        parts.append(delta.text)
        if delta.finish_reason is not None:
            events.append(("end", name))
    return "".join(parts)


async def test_four_streams_all_start_before_any_ends(engine: LlamaCppEngine) -> None:
    events: list[tuple[str, str]] = []
    params = [GenerationParams(topic(w), max_new_tokens=16, logit_bias=never_stop())
              for w in ("cats", "the sea", "Paris", "music")]
    streams = [await engine.start(p) for p in params]
    assert engine.stats().running + engine.stats().waiting == 4
    await asyncio.gather(*[timeline(s, str(i), events) for i, s in enumerate(streams)])
    kinds = [kind for kind, _ in events]
    assert kinds.index("end") == 4 and kinds[:4] == ["first"] * 4, events


async def test_seeded_text_is_the_same_alone_or_beside_others(engine: LlamaCppEngine) -> None:
    seeded = GenerationParams(STORY, temperature=1.0, top_p=0.9, max_new_tokens=24, seed=7)
    greedy = GenerationParams(topic("the moon"), temperature=0, max_new_tokens=24)
    alone = [(await collect(await engine.start(p))).text for p in (seeded, greedy)]
    noise = [GenerationParams(topic(w), max_new_tokens=40, seed=i)
             for i, w in enumerate(("cats", "rivers"))]
    # Started at different moments, so the pair shares batches with others mid-prefill and
    # mid-generation, in other slots than when they ran alone.
    first = await engine.start(noise[0])
    await first.__anext__()
    together = await asyncio.gather(
        collect(first), *[collect(await engine.start(p)) for p in (seeded, noise[1], greedy)])
    assert [together[1].text, together[3].text] == alone
    other_seed = await collect(await engine.start(GenerationParams(
        STORY, temperature=1.0, top_p=0.9, max_new_tokens=24, seed=8)))
    assert other_seed.text != alone[0]  # the seed really drives sampling


async def test_beyond_slots_and_queue_is_busy_and_cancel_frees_a_slot(
        engine: LlamaCppEngine) -> None:
    long = GenerationParams(STORY, max_new_tokens=1000, logit_bias=never_stop())
    running = [await engine.start(long) for _ in range(4)]
    for stream in running:
        await stream.__anext__()
    queued = [await engine.start(long) for _ in range(2)]
    assert (engine.stats().running, engine.stats().waiting) == (4, 2)
    with pytest.raises(Busy, match="4 generating, 2 requests already waiting"):
        await engine.start(long)
    await running[0].aclose()  # its slot goes to the first waiting request at once
    deadline = time.monotonic() + 5
    while engine.stats().waiting != 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert (engine.stats().running, engine.stats().waiting) == (4, 1)
    assert (await queued[0].__anext__()).text
    for stream in running[1:] + queued:
        await stream.aclose()
    while engine.stats().running:
        await asyncio.sleep(0.01)


async def test_next_turn_reuses_the_cached_conversation(engine: LlamaCppEngine) -> None:
    turn1 = [ChatMessage("system", "You are a helpful assistant. " * 40),
             ChatMessage("user", "Name three colours.")]
    reply = await collect(await engine.start(GenerationParams(turn1, temperature=0,
                                                              max_new_tokens=16)))
    turn2 = [*turn1, ChatMessage("assistant", reply.text),
             ChatMessage("user", "And three animals?")]
    before = engine.stats().reused_tokens
    warm = await collect(await engine.start(GenerationParams(turn2, temperature=0,
                                                             max_new_tokens=16)))
    reused = engine.stats().reused_tokens - before
    assert len(await engine.prompt_tokens(turn1)) <= reused < len(
        await engine.prompt_tokens(turn2))
    cold_engine = LlamaCppEngine("smollm2", "bundled:smollm2", n_ctx=2048, cpu=CpuBudget(1),
                                 parallel=1)
    try:
        cold = await collect(await cold_engine.start(GenerationParams(turn2, temperature=0,
                                                                      max_new_tokens=16)))
        assert cold_engine.stats().reused_tokens == 0
    finally:
        await cold_engine.aclose()
    assert warm.text == cold.text  # reuse changes the cost, not the answer


async def test_a_newcomer_copies_the_prefix_a_busy_slot_holds(engine: LlamaCppEngine) -> None:
    # A system prompt no other test uses, so no free slot holds it: only the busy one does.
    system = ChatMessage("system", "You answer in one short sentence, politely. " * 12)
    first = [system, ChatMessage("user", "Tell me about owls.")]
    holder = await engine.start(GenerationParams(first, max_new_tokens=400,
                                                 logit_bias=never_stop()))
    await holder.__anext__()  # its prompt's cells exist now
    newcomer = [system, ChatMessage("user", "Tell me about rivers.")]
    before = engine.stats()
    warm = await collect(await engine.start(GenerationParams(newcomer, temperature=0,
                                                             max_new_tokens=16)))
    after = engine.stats()
    await holder.aclose()
    a, b = await engine.prompt_tokens(first), await engine.prompt_tokens(newcomer)
    shared = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert shared > 100
    assert after.copied_prefixes == before.copied_prefixes + 1
    assert after.reused_tokens - before.reused_tokens == shared
    cold_engine = LlamaCppEngine("smollm2", "bundled:smollm2", n_ctx=2048, cpu=CpuBudget(1),
                                 parallel=1)
    try:
        cold = await collect(await cold_engine.start(GenerationParams(
            newcomer, temperature=0, max_new_tokens=16)))
    finally:
        await cold_engine.aclose()
    assert warm.text == cold.text  # the copied cells are the cells evaluation would make


async def test_a_long_prompt_does_not_stall_the_others(engine: LlamaCppEngine) -> None:
    events: list[tuple[str, str]] = []
    runner = await engine.start(GenerationParams(STORY, max_new_tokens=400,
                                                 logit_bias=never_stop()))
    await runner.__anext__()
    got: list[float] = []

    async def count() -> None:
        async for _delta in runner:
            got.append(time.monotonic())

    counter = asyncio.create_task(count())
    long_prompt = [ChatMessage("user", "word " * 900 + "\nSummarise.")]
    started = time.monotonic()
    long = await engine.start(GenerationParams(long_prompt, max_new_tokens=2,
                                               logit_bias=never_stop()))
    # A short prompt arriving behind it is read first, so its first token is not held up
    # by the long prompt's chunks.
    short = await engine.start(GenerationParams(topic("owls"), max_new_tokens=2,
                                                logit_bias=never_stop()))
    await asyncio.gather(timeline(long, "long", events), timeline(short, "short", events))
    first_token_after = time.monotonic()
    await runner.aclose()
    counter.cancel()
    # The ~900-token prompt was read in chunks of PREFILL_CHUNK between the other's tokens.
    assert sum(started <= t <= first_token_after for t in got) >= 900 // PREFILL_CHUNK - 2
    assert events.index(("first", "short")) < events.index(("first", "long"))


async def test_a_conversation_longer_than_a_slot_is_a_400(engine: LlamaCppEngine) -> None:
    with pytest.raises(BadRequest, match=r"context of 2048 tokens per request \(n_ctx: each "
                                         r"of its 4 parallel slots") as info:
        await engine.start(GenerationParams([ChatMessage("user", "word " * 2100)]))
    assert info.value.field == "messages"
    assert engine.context_length() == 2048
