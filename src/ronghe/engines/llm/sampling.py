"""A llama.cpp sampler chain per generation, in the order Hugging Face ``generate`` uses.

logit bias -> repetition penalty (over prompt *and* output) -> frequency/presence penalties
(OpenAI's, over the output) -> temperature -> top-p -> a seeded draw.  llama-cpp-python's own
chain runs top-p before temperature and penalises only the last 64 generated tokens, so the
chain is built here.  Every sequence has its own chain, so its seed, penalties and grammar
state never mix with another's.

A grammar (structured output, tool calls) is checked after the draw, as llama.cpp's own
``common_sampler`` does: checking one token is cheap, masking the whole 49k-token vocabulary
every step is not (it halved the decoding rate).  Only when the drawn token breaks the
grammar is the vocabulary masked and the draw repeated.  The result is the constrained
distribution exactly: P(t) = p(t) + p(invalid) * p(t) / p(valid) = p(t) / p(valid).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import llama_cpp
import numpy as np

from ronghe.engines.llm.base import GenerationParams
from ronghe.errors import BadRequest


@dataclass(frozen=True)
class Grammar:
    """GBNF text and its root rule; ``lazy_trigger`` (a regex) applies it only from there on."""

    gbnf: str
    root: str = "root"
    lazy_trigger: str | None = None
    field: str = "response_format"


_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


class Sampler:
    """One generation's sampler chain and grammar; ``free`` releases both."""

    def __init__(self, chain: Any, grammar: Any, n_vocab: int) -> None:
        self._chain = chain
        self._grammar = grammar
        self._n_vocab = n_vocab
        if grammar is not None:
            self._cur = np.zeros(n_vocab, dtype=_TOKEN_DATA)
            self._ids = np.arange(n_vocab, dtype=np.int32)
            self._one = np.zeros(1, dtype=_TOKEN_DATA)

    def sample(self, ctx: Any, index: int) -> int:
        if self._grammar is None:
            return int(llama_cpp.llama_sampler_sample(self._chain, ctx, index))
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index),
                                       shape=(self._n_vocab,))
        token = self._draw(logits, constrained=False)
        self._one[0] = (token, 0.0, 0.0)
        llama_cpp.llama_sampler_apply(self._grammar, _array(self._one))
        if not np.isfinite(self._one[0]["logit"]):
            token = self._draw(logits, constrained=True)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        llama_cpp.llama_sampler_accept(self._chain, token)
        return token

    def _draw(self, logits: np.ndarray, constrained: bool) -> int:
        cur = self._cur
        cur["id"] = self._ids
        cur["logit"] = logits
        cur["p"] = 0.0
        arr = _array(cur)
        if constrained:
            llama_cpp.llama_sampler_apply(self._grammar, arr)
        llama_cpp.llama_sampler_apply(self._chain, arr)
        # Read through the struct: a sampler may point ``data`` at its own sorted buffer.
        found = arr.contents
        return int(found.data[max(0, found.selected)].id)

    def free(self) -> None:
        for sampler in (self._chain, self._grammar):
            if sampler is not None:
                llama_cpp.llama_sampler_free(sampler)
        self._chain = self._grammar = None


def _array(data: np.ndarray) -> Any:
    """A llama_token_data_array over a numpy array (valid while ``data`` lives)."""
    return ctypes.pointer(llama_cpp.llama_token_data_array(
        data=data.ctypes.data_as(llama_cpp.llama_token_data_p), size=len(data), selected=-1,
        sorted=False))


def build_sampler(vocab: Any, n_vocab: int, n_ctx: int, params: GenerationParams,
                  prompt: list[int], grammar: Grammar | None) -> Sampler:
    """A new sampler; the caller frees it with ``Sampler.free``."""
    grammar_sampler = _grammar_sampler(vocab, grammar) if grammar is not None else None
    try:
        chain = _chain(n_vocab, n_ctx, params, prompt)
    except BaseException:
        if grammar_sampler is not None:
            llama_cpp.llama_sampler_free(grammar_sampler)
        raise
    return Sampler(chain, grammar_sampler, n_vocab)


def _chain(n_vocab: int, n_ctx: int, params: GenerationParams, prompt: list[int]) -> Any:
    p = params
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())

    def add(sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(chain, sampler)

    try:
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
                n_vocab, n_ctx, p.repetition_penalty, 0.0, 0.0)
            for token in prompt:
                llama_cpp.llama_sampler_accept(repeat, token)
            add(repeat)
        if p.frequency_penalty or p.presence_penalty:
            add(llama_cpp.llama_sampler_init_penalties(
                n_vocab, n_ctx, 1.0, p.frequency_penalty, p.presence_penalty))
        if p.temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            add(llama_cpp.llama_sampler_init_temp(p.temperature))
            add(llama_cpp.llama_sampler_init_top_p(p.top_p, 1))
            seed = llama_cpp.LLAMA_DEFAULT_SEED if p.seed is None else p.seed & 0xFFFFFFFF
            add(llama_cpp.llama_sampler_init_dist(seed))
    except BaseException:
        llama_cpp.llama_sampler_free(chain)
        raise
    return chain


def _grammar_sampler(vocab: Any, grammar: Grammar) -> Any:
    gbnf, root = grammar.gbnf.encode(), grammar.root.encode()
    if grammar.lazy_trigger is None:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf, root)
    else:
        patterns = (ctypes.c_char_p * 1)(grammar.lazy_trigger.encode())
        sampler = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
            vocab, gbnf, root, patterns, 1, None, 0)
    if not sampler:
        # Grammars are built from the request's schema; one llama.cpp cannot parse is a
        # schema the converter mishandled, which the client can only fix by changing it.
        raise BadRequest(f"{grammar.field}: the schema could not be turned into a grammar",
                         field=grammar.field)
    return sampler

