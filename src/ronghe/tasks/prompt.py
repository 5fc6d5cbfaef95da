"""``add_prompt``: the chat engine enriches a short prompt before generation.

The chat model is asked for extra visual details only, and the richer prompt is the user's
prompt followed by them: small chat models asked to *rewrite* a prompt often drop or change
its subject (the bundled 135M model turned "a yellow square on a black background" into a
story about Tic-Tac-Toe), and image models weigh the start of a prompt most (the demo
model reads only 32 tokens), so keeping the original first keeps what the user asked for.

The rewrite runs in the image task (so a slow chat model never holds up ``task_submit``),
on the app's event loop when there is one: chat engines keep loop-bound state (HTTP clients,
queues), so they are always driven from the loop that owns them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ronghe.engines.llm.base import ChatMessage, GenerationParams, collect
from ronghe.errors import NotReady, RongheError, UpstreamError

if TYPE_CHECKING:
    from ronghe.engines.llm.registry import ChatEngines

MAX_NEW_TOKENS = 60
TIMEOUT_SECONDS = 120.0
MAX_PROMPT_CHARS = 1000
MAX_DETAIL_WORDS = 30
SYSTEM_PROMPT = (
    "You help write prompts for a text-to-image model. Given the user's prompt, answer with "
    "5 to 10 short visual details to add to it (style, lighting, composition, texture), as "
    "one comma-separated line of English words, at most 30 words. Do not repeat the prompt, "
    "do not change its subject, no sentences, no quotes, no explanations."
)


def check_available(engines: ChatEngines | None) -> None:
    """Raise when add_prompt cannot work, so the submit fails instead of the task."""
    if engines is None:
        raise NotReady("add_prompt: no chat engine is running on this server; "
                       "send add_prompt false", field="add_prompt")
    try:
        engines.get(None)
    except RongheError as exc:
        raise NotReady(f"add_prompt: the chat engine is unavailable: {exc.msg}",
                       field="add_prompt") from None
    ready, detail = engines.readiness()
    if not ready:
        raise NotReady(f"add_prompt: the chat engine is unavailable: {detail}",
                       field="add_prompt")


def clean(text: str) -> str:
    """First line, without a "Details:" label, wrapping quotes or a trailing period."""
    text = text.strip().split("\n")[0].strip()
    for label in ("details:", "prompt:", "additional details:"):
        if text.lower().startswith(label):
            text = text[len(label):].strip()
    words = text.strip("\"'“”‘’ .").split()
    # Small models ramble past the word limit they were given; keep what was asked for.
    return " ".join(words[:MAX_DETAIL_WORDS]).rstrip(",;.")[:MAX_PROMPT_CHARS]


def enrich(prompt: str, details: str) -> str:
    """The user's prompt first, then the details (unless the model echoed the prompt)."""
    if details.lower().startswith(prompt.lower()):
        details = details[len(prompt):].lstrip(" ,.;")
    if not details:
        return prompt
    return f"{prompt.rstrip(' ,.')}, {details}" if prompt.strip() else details


async def rewrite_async(engines: ChatEngines, prompt: str, seed: int | None = None) -> str:
    engine = engines.get(None)
    # Sampled from the task's seed: the same task asks for the same details.
    params = GenerationParams(
        messages=[ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", prompt)],
        temperature=0.7, top_p=0.9, max_new_tokens=MAX_NEW_TOKENS, seed=seed,
    )
    result = await collect(await engine.start(params))
    return enrich(prompt, clean(result.text))


def rewrite(engines: ChatEngines, prompt: str, loop: asyncio.AbstractEventLoop | None,
            seed: int | None = None) -> str:
    """Called from a worker thread.  Returns the richer prompt, or the prompt itself when
    the chat model suggested nothing (an empty answer, or the prompt echoed back): a
    suggestion is a bonus, never a reason to fail the generation."""
    coro = asyncio.wait_for(rewrite_async(engines, prompt, seed), TIMEOUT_SECONDS)
    try:
        if loop is not None and loop.is_running():
            text = asyncio.run_coroutine_threadsafe(coro, loop).result()
        else:
            text = asyncio.run(coro)
    except RongheError as exc:
        raise UpstreamError(f"add_prompt: the chat model failed: {exc.msg}") from exc
    except TimeoutError as exc:
        raise UpstreamError(f"add_prompt: the chat model took longer than "
                            f"{TIMEOUT_SECONDS:g} s") from exc
    return text
