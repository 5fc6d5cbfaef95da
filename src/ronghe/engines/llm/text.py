"""Prompt and output text helpers: the GGUF chat template, and stop strings in a stream."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ronghe.engines.llm.base import ChatMessage
from ronghe.errors import BadRequest

# llama.cpp falls back to ChatML when a GGUF carries no template; so do we.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class TemplateRejected(Exception):
    """The template itself called raise_exception (e.g. roles must alternate)."""


def _raise_exception(message: str) -> NoReturn:
    raise TemplateRejected(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class ChatTemplate:
    """A Hugging Face style chat template, rendered in a sandbox.

    The template text comes from a model file, i.e. from whoever published the model, so it
    runs in Jinja's immutable sandbox: it can format strings but not reach Python objects.
    The environment mirrors ``transformers.apply_chat_template`` (trim_blocks, lstrip_blocks,
    loop controls, ``raise_exception``, ``strftime_now``) so published templates render as
    they do there.
    """

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        self.source = source
        self._template = env.from_string(source)
        self._bos = bos_token
        self._eos = eos_token

    def render(self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> str:
        context: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self._bos,
            "eos_token": self._eos,
        }
        try:
            return self._template.render(**context)
        except TemplateRejected as exc:
            raise BadRequest(f"messages: the model's chat template rejected them: {exc}",
                             field="messages") from exc
        except jinja2.TemplateError as exc:
            raise BadRequest(f"messages: the model's chat template failed: {exc}",
                             field="messages") from exc


class StopMatcher:
    """Cuts a text stream at the first stop string, holding back text that may start one.

    Text that could be the beginning of a stop string is withheld until the next piece shows
    whether it is; so a client never receives part of a stop string.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Returns (text safe to emit, whether a stop string was reached)."""
        if not self._stops:
            return text, False
        self._pending += text
        hits = [i for i in (self._pending.find(s) for s in self._stops) if i >= 0]
        if hits:
            out = self._pending[: min(hits)]
            self._pending = ""
            return out, True
        hold = self._longest_partial()
        cut = len(self._pending) - hold
        out, self._pending = self._pending[:cut], self._pending[cut:]
        return out, False

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out

    def _longest_partial(self) -> int:
        best = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(self._pending)), best, -1):
                if self._pending.endswith(stop[:size]):
                    best = size
                    break
        return best
