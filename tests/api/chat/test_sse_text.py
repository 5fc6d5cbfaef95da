"""Text chunks built from a template are the bytes encoding the whole chunk gives."""

from __future__ import annotations

from typing import Any

import pytest

from ronghe.api.chat.protocol import chunk_body as vendor_chunk
from ronghe.api.chat.streaming import sse, text_events
from ronghe.api.openai.protocol import chunk_body as openai_chunk

TEXTS = ["", "Hello", " world", 'a "quoted" \\ back\\slash', "line\nbreak\ttab\r",
         "\x00\x01\x1f control", "龙的故事", "emoji 🐉 and é", "</script>", "\u2028\u2029",
         "\ue000ronghe-text\ue000", "{\"content\":1}"]


def openai(model: str) -> Any:
    return lambda text: openai_chunk("chatcmpl-1", model, 1700000000, {"content": text}, index=2)


@pytest.mark.parametrize("build", [openai("smollm2"), lambda t: vendor_chunk("rid", t)],
                         ids=["openai", "vendor"])
def test_same_bytes_as_the_whole_chunk(build: Any) -> None:
    event = text_events(build)
    for text in TEXTS:
        assert event(text) == sse(build(text))


def test_a_name_holding_the_mark_falls_back_to_whole_chunks() -> None:
    build = openai("odd\ue000ronghe-text\ue000name")
    event = text_events(build)
    for text in TEXTS:
        assert event(text) == sse(build(text))
