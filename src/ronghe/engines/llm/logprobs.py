"""Log-probabilities of generated tokens (OpenAI's ``logprobs`` / ``top_logprobs``).

They are the model's own distribution at each position: a log-softmax over the whole
vocabulary of the raw logits, before logit bias, penalties, temperature, top-p or a grammar
shape the draw (what OpenAI reports and vLLM's default).  One pass over the 49k logits costs
well under a millisecond, so it is done only for requests that ask, and off the others' path.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from ronghe.engines.llm.base import TokenLogprob

MAX_TOP = 20  # OpenAI's limit
# OpenAI's floor for "practically impossible"; JSON has no -Infinity.
FLOOR = -9999.0

Top = list[tuple[int, float]]


def token_logprobs(logits: np.ndarray, token: int, top: int) -> tuple[float, Top]:
    """The chosen token's log-probability and the ``top`` likeliest tokens', likeliest first
    (equal ones by id, so the order is reproducible)."""
    x = logits.astype(np.float64)  # a copy: the logits belong to llama.cpp
    peak = float(x.max())
    lse = peak + math.log(float(np.exp(x - peak).sum()))

    def logprob(i: int) -> float:
        # Rounding can put the likeliest token a hair above 0; a probability is never above 1.
        return min(0.0, max(FLOOR, float(x[i]) - lse))

    if top <= 0:
        return logprob(token), []
    top = min(top, len(x))
    idx = np.argpartition(-x, top - 1)[:top]
    idx = idx[np.lexsort((idx, -x[idx]))]
    return logprob(token), [(int(i), logprob(int(i))) for i in idx]


class TokenTrail:
    """Which generated tokens the text sent so far covers, so every delta carries the
    log-probabilities of the tokens its text comes from.

    Text reaches a client later than its token is made: the UTF-8 decoder holds the first
    bytes of a character until its last token arrives, and the stop matcher holds text that
    may begin a stop string.  A token is released with the first delta carrying any of its
    text (a token of incomplete bytes with the one completing its character); tokens wholly
    inside a stop string are dropped with it.
    """

    def __init__(self) -> None:
        self._held: deque[tuple[TokenLogprob, int]] = deque()  # entry, offset of its text
        self._fed = 0  # characters of decoded text so far
        self._sent = 0  # characters of it sent

    def add(self, entry: TokenLogprob, chars: int) -> None:
        self._held.append((entry, self._fed))
        self._fed += chars

    def release(self, sent: int) -> tuple[TokenLogprob, ...]:
        """The held tokens whose text has begun to go out, now that ``sent`` more chars did."""
        self._sent += sent
        out = []
        while self._held and self._held[0][1] < self._sent:
            out.append(self._held.popleft()[0])
        return tuple(out)

    def rest(self) -> tuple[TokenLogprob, ...]:
        """Everything still held: the stream ended without a stop string."""
        out = tuple(entry for entry, _ in self._held)
        self._held.clear()
        return out
