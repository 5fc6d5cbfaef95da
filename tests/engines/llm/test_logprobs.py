"""Log-probabilities: the arithmetic, and which tokens each delta of a real stream carries."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from ronghe.engines.cpu import CpuBudget
from ronghe.engines.llm.base import ChatMessage, GenerationParams, Tool, collect
from ronghe.engines.llm.llama_cpp import LlamaCppEngine
from ronghe.engines.llm.logprobs import token_logprobs

STORY = [ChatMessage("user", "Write a long story about a dragon.")]


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppEngine]:
    e = LlamaCppEngine("smollm2", "bundled:smollm2", n_ctx=2048, cpu=CpuBudget(1),
                       parallel=2, queue_size=2)
    yield e
    asyncio.run(e.aclose())


def test_log_softmax_and_top_order() -> None:
    logits = np.array([2.0, 5.0, 5.0, -1.0, 3.0, 1000.0, -np.inf], dtype=np.float32)
    chosen, top = token_logprobs(logits, 1, 4)
    exact = logits.astype(np.float64) - np.logaddexp.reduce(logits.astype(np.float64))
    assert chosen == pytest.approx(exact[1])
    # Likeliest first; the tie between ids 1 and 2 in id order; a huge logit stays finite.
    assert [t for t, _ in top] == [5, 1, 2, 4]
    assert [lp for _, lp in top] == pytest.approx([0.0, *exact[[1, 2, 4]]])
    assert top[0][1] <= 0
    assert token_logprobs(logits, 6, 0) == (-9999.0, [])  # JSON has no -Infinity
    assert len(token_logprobs(logits, 0, 50)[1]) == len(logits)  # no more than the vocabulary


async def test_a_stop_string_drops_the_tokens_inside_it(engine: LlamaCppEngine) -> None:
    full = await collect(await engine.start(GenerationParams(
        STORY, temperature=0, max_new_tokens=30, logprobs=True)))
    assert full.usage is not None and len(full.logprobs) == full.usage.completion_tokens
    assert b"".join(e.token for e in full.logprobs).decode() == full.text
    stop = " " + full.text.split()[5]
    cut = await collect(await engine.start(GenerationParams(
        STORY, temperature=0, max_new_tokens=30, logprobs=True, stop=[stop])))
    assert cut.finish_reason == "stop" and cut.text == full.text[: full.text.index(stop)]
    spelled = b"".join(e.token for e in cut.logprobs)
    # The tokens that make up the text, and none that lies wholly inside the stop string.
    assert spelled.startswith(cut.text.encode())
    assert len(spelled) - len(cut.logprobs[-1].token) < len(cut.text.encode())
    assert [e.logprob for e in cut.logprobs] == pytest.approx(
        [e.logprob for e in full.logprobs[:len(cut.logprobs)]], abs=1e-4)


async def test_tool_calls_keep_their_tokens_logprobs(engine: LlamaCppEngine) -> None:
    weather = Tool("get_weather", "Weather in a city", {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"]})
    result = await collect(await engine.start(GenerationParams(
        [ChatMessage("user", "Weather in Paris?")], temperature=0, max_new_tokens=60,
        tools=[weather], tool_choice="get_weather", logprobs=True, top_logprobs=2)))
    assert result.finish_reason == "tool_calls" and result.tool_calls
    assert result.usage is not None and len(result.logprobs) == result.usage.completion_tokens
    assert all(e.logprob <= 0 and len(e.top) == 2 for e in result.logprobs)
    assert b"get_weather" in b"".join(e.token for e in result.logprobs)
