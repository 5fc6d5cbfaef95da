"""A word-level ``CLIPTokenizer`` built offline.

CLIP's tokenizer is byte-level BPE. With a vocabulary of whole words but no merges
it would split every word into characters, so we learn merges on the vocabulary
itself: replaying BPE merges on a word it was learnt from rebuilds that word, which
makes every vocabulary word exactly one token. Single characters stay in the
vocabulary so unknown words still tokenize (into letters) instead of to ``<unk>``.
"""

from __future__ import annotations

import itertools
import string
from collections import Counter

from transformers import CLIPTokenizer

from tools.demo_models.diffusion.shapes import vocabulary

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
END = "</w>"
MAX_LENGTH = 32


def _symbols(word: str) -> tuple[str, ...]:
    return (*word[:-1], word[-1] + END)


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """Greedy BPE until every word is a single symbol."""
    corpus = {word: _symbols(word) for word in words}
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols in corpus.values():
            pairs.update(itertools.pairwise(symbols))
        if not pairs:
            return merges
        # Ties broken by the pair itself so the merge list is deterministic.
        best = max(pairs.items(), key=lambda item: (item[1], item[0]))[0]
        merges.append(best)
        for word, symbols in corpus.items():
            merged: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            corpus[word] = tuple(merged)


def build_tokenizer(words: list[str] | None = None) -> CLIPTokenizer:
    words = words or vocabulary()
    merges = learn_merges(words)
    tokens = [BOS, EOS]
    for char in string.ascii_lowercase + string.digits + ",.!?-'":
        tokens += [char, char + END]
    # Intermediate merge products must be in the vocabulary too, or a word that
    # stops half-way through its merges would map to <unk>.
    tokens += ["".join(pair) for pair in merges]
    tokens += [word + END for word in words]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    tokenizer = CLIPTokenizer(
        vocab=vocab, merges=list(merges), model_max_length=MAX_LENGTH
    )
    for word in words:
        ids = tokenizer(word, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise RuntimeError(f"word {word!r} is not a single token: {ids}")
    return tokenizer
