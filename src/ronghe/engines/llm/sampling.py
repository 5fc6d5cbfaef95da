"""A llama.cpp sampler chain per generation, in the order Hugging Face ``generate`` uses.

logit bias -> repetition penalty (over prompt *and* output) -> frequency/presence penalties
(OpenAI's, over the output) -> grammar (structured output, tool calls) -> temperature ->
top-p -> a seeded draw.  llama-cpp-python's own chain runs top-p before temperature and
penalises only the last 64 generated tokens, so the chain is built here.  Every sequence has
its own chain, so its seed, penalties and grammar state never mix with another's.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import llama_cpp

from ronghe.engines.llm.base import GenerationParams
from ronghe.errors import BadRequest


@dataclass(frozen=True)
class Grammar:
    """GBNF text and its root rule; ``lazy_trigger`` (a regex) applies it only from there on."""

    gbnf: str
    root: str = "root"
    lazy_trigger: str | None = None
    field: str = "response_format"


def build_chain(vocab: Any, n_vocab: int, n_ctx: int, params: GenerationParams,
                prompt: list[int], grammar: Grammar | None) -> Any:
    """A new sampler chain; the caller frees it with ``llama_sampler_free``."""
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
        if grammar is not None:
            add(_grammar_sampler(vocab, grammar))
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

