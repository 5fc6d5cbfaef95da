"""Chat templates in the sandbox, and stop strings across stream pieces."""

from __future__ import annotations

import pytest

from ronghe.engines.llm.base import ChatMessage
from ronghe.engines.llm.text import CHATML, ChatTemplate, StopMatcher
from ronghe.errors import BadRequest

MESSAGES = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]


def test_chatml_renders_with_generation_prompt() -> None:
    text = ChatTemplate(CHATML).render(MESSAGES)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n"
                    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_template_sees_bos_and_hf_helpers() -> None:
    source = ("{{ bos_token }}{% for m in messages %}{% if loop.index > 1 %}{% break %}"
              "{% endif %}[{{ m['role'] }}]{% endfor %}{{ strftime_now('%Y')|length }}")
    assert ChatTemplate(source, bos_token="<s>").render(MESSAGES) == "<s>[system]4"


def test_raise_exception_becomes_a_bad_request() -> None:
    source = ("{% if messages[0]['role'] == 'system' %}"
              "{{ raise_exception('no system role') }}{% endif %}")
    with pytest.raises(BadRequest, match="no system role") as info:
        ChatTemplate(source).render(MESSAGES)
    assert info.value.field == "messages"


@pytest.mark.parametrize("source", [
    "{{ messages.append(1) }}",                      # the immutable sandbox forbids mutation
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",  # and reaching Python internals
])
def test_sandbox_blocks_unsafe_templates(source: str) -> None:
    with pytest.raises(BadRequest, match="chat template"):
        ChatTemplate(source).render(MESSAGES)


def feed_all(matcher: StopMatcher, pieces: list[str]) -> tuple[list[str], bool]:
    out = []
    for piece in pieces:
        text, hit = matcher.feed(piece)
        out.append(text)
        if hit:
            return out, True
    out.append(matcher.flush())
    return out, False


def test_stop_string_split_across_pieces_is_never_sent() -> None:
    out, hit = feed_all(StopMatcher(["END"]), ["Hello E", "N", "D and more"])
    assert hit and "".join(out) == "Hello "
    assert all("E" not in piece for piece in out)


def test_partial_stop_that_does_not_complete_is_released() -> None:
    out, hit = feed_all(StopMatcher(["END"]), ["Hello E", "N", "ough"])
    assert not hit and "".join(out) == "Hello ENough"
    assert out[:2] == ["Hello ", ""]  # withheld while it could still become END


def test_earliest_of_several_stops_wins() -> None:
    out, hit = feed_all(StopMatcher(["world", "lo"]), ["hello world"])
    assert hit and out == ["hel"]


def test_no_stops_passes_text_through() -> None:
    assert StopMatcher([]).feed("anything") == ("anything", False)
