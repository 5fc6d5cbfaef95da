"""Weighted and long prompts in AUTOMATIC1111's syntax, for the CLIP families.

The grammar (A1111's "attention" syntax, parsed here; the embedding work is ``compel``'s):

- ``(words)`` multiplies the weight of ``words`` by 1.1, ``[words]`` divides it by 1.1;
  they nest (``((words))`` is 1.21) and an unclosed one runs to the end of the prompt;
- ``(words:1.3)`` multiplies it by 1.3 (any decimal number);
- ``\\(``, ``\\)``, ``\\[``, ``\\]`` and ``\\\\`` are the characters themselves; a closing
  bracket with nothing open, and a ``:`` that is not a weight, are plain text;
- ``BREAK`` (upper case, a word of its own) ends the current 77-token window: what follows
  starts a new one;
- a prompt longer than one window (75 tokens between BOS and EOS) is cut into windows,
  each encoded on its own and concatenated, as A1111 does; windows end at the last
  punctuation that fits (compel's PHRASES split, close to A1111's comma backtracking).

How it maps onto compel: the parser turns the prompt into fragments with weights, per
BREAK segment; compel's ``EmbeddingsProvider.get_embeddings_for_weighted_prompt_fragments``
takes exactly that (its own ``word++`` syntax is never parsed, so a ``+`` or ``.`` in a
prompt stays text).  compel weights a token by moving its embedding away from the empty
prompt's (``empty + (z - empty) * w``) and, below 1, by blending towards the prompt with
the fragment masked out; A1111 instead scales the embedding and restores its mean.  Both
strengthen and weaken the same words; the numbers are not pixel-for-pixel A1111's.  Weight
1 leaves a token's embedding exactly as the encoder made it.

SDXL runs both encoders (penultimate hidden states, concatenated) and takes the pooled
embedding from the second encoder over the prompt's first window, as its pipeline does.

A prompt with no weights, no BREAK and no more than one window goes to the pipeline as text
(its own encoding, unchanged): such requests give the same pixels as before this module.
``(word:1.0)`` is ``word`` by the same rule.  Families that read prompts with T5 or Qwen
(FLUX, SD 3, Qwen-Image, Z-Image, FLUX.2) take the prompt as text, as long as their
encoders allow; an explicit ``(words:1.3)`` or ``BREAK`` there is refused at submit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ronghe.errors import BadRequest

# Families whose pipelines encode prompts with CLIP (the demo's is an SD 1.x one).
WEIGHTED_FAMILIES = frozenset({"demo", "sd15", "sd2", "sdxl"})
UP, DOWN = 1.1, 1 / 1.1
# A fragment's weight, all brackets applied: beyond this images turn to noise.
MAX_WEIGHT = 10.0
# Characters that make a prompt more than plain text.
SYNTAX = re.compile(r"[()\[\]\\]|\bBREAK\b")
_TOKEN = re.compile(r"""
    \\(?P<escaped>[()\[\]\\])                          # \( \) \[ \] \\
  | (?P<open>[(\[])
  | :\s*(?P<weight>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*\)  # :1.3)
  | (?P<close>[)\]])
  | (?P<text>[^\\()\[\]:]+|[:\\])
""", re.VERBOSE)
_BREAK = re.compile(r"\s*\bBREAK\b\s*")


@dataclass(frozen=True)
class Fragment:
    text: str
    weight: float = 1.0


# One window or more of fragments; a prompt is a list of these, split at BREAK.
Segment = list[Fragment]


def parse(prompt: str) -> list[Segment]:
    """The prompt as BREAK-separated segments of weighted fragments (neighbours of the
    same weight merged; at least one segment)."""
    pieces: list[list[Any]] = []  # [text, weight] or [None, 0] for BREAK
    opened: list[tuple[str, int]] = []  # (bracket, index of the first piece inside)

    def scale(start: int, factor: float) -> None:
        for piece in pieces[start:]:
            if piece[0] is not None:
                piece[1] *= factor

    def close(bracket: str, factor: float) -> bool:
        # The innermost open bracket of this kind; others inside it stay open (as A1111).
        for i in range(len(opened) - 1, -1, -1):
            if opened[i][0] == bracket:
                scale(opened.pop(i)[1], factor)
                return True
        return False

    for match in _TOKEN.finditer(prompt):
        kind, value = match.lastgroup, match.group(match.lastgroup or 0)
        if kind == "escaped":
            pieces.append([value, 1.0])
        elif kind == "open":
            opened.append((value, len(pieces)))
        elif kind == "weight":
            if not close("(", float(value)):
                pieces.append([match.group(0), 1.0])
        elif kind == "close":
            if not close("(" if value == ")" else "[", UP if value == ")" else DOWN):
                pieces.append([value, 1.0])
        else:
            for i, part in enumerate(_BREAK.split(value)):
                if i:
                    pieces.append([None, 0.0])
                pieces.append([part, 1.0])
    for bracket, start in opened:  # unclosed: to the end of the prompt
        scale(start, UP if bracket == "(" else DOWN)
    segments: list[Segment] = [[]]
    for text, weight in pieces:
        if text is None:
            segments.append([])
        elif text:
            current = segments[-1]
            if current and current[-1].weight == weight:
                current[-1] = Fragment(current[-1].text + text, weight)
            else:
                current.append(Fragment(text, weight))
    return segments


def unweighted(segments: list[Segment]) -> str | None:
    """The text of a prompt with no weight other than 1 and no BREAK, else None."""
    if len(segments) != 1 or any(f.weight != 1.0 for f in segments[0]):
        return None
    return "".join(f.text for f in segments[0])


def check(prompt: str, field: str, family: str) -> None:
    """A 400 naming ``field`` for weights out of range, or weighting on a family whose
    text encoder takes none."""
    if not SYNTAX.search(prompt):
        return
    segments = parse(prompt)
    weights = [f.weight for segment in segments for f in segment]
    if family not in WEIGHTED_FAMILIES:
        explicit = re.search(r":\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)\s*\)|\bBREAK\b", prompt)
        if explicit and unweighted(segments) is None:
            raise BadRequest(
                f"{field}: weights like (word:1.3) and BREAK apply to the CLIP families "
                f"(demo, sd15, sd2, sdxl); {family} models read the prompt as plain text: "
                f"remove {explicit.group(0).strip()!r}", field=field)
        return
    bad = next((w for w in weights if not 0.0 <= w <= MAX_WEIGHT), None)
    if bad is not None:
        raise BadRequest(f"{field}: a weight must be 0-{MAX_WEIGHT:g} with brackets applied "
                         f"(got {bad:g})", field=field)


# --- encoding


def _fits(pipe: Any, text: str) -> bool:
    """Whether the pipeline's own encoding keeps all of ``text`` (one window)."""
    tokenizer = pipe.tokenizer if pipe.tokenizer is not None else pipe.tokenizer_2
    ids = tokenizer(text, truncation=False, verbose=False).input_ids
    return len(ids) <= tokenizer.model_max_length


def _providers(pipe: Any, family: str) -> list[Any]:
    from compel import (
        DownweightMode,
        EmbeddingsProvider,
        ReturnedEmbeddingsType,
        SplitLongTextMode,
    )

    # SDXL conditions on both encoders' penultimate layers (un-normalised); SD 1.x/2.x on
    # the last layer, as their pipelines do without clip_skip.
    kind = (ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
            if family == "sdxl" else ReturnedEmbeddingsType.LAST_HIDDEN_STATES_NORMALIZED)
    pairs = [(pipe.tokenizer, pipe.text_encoder),
             (getattr(pipe, "tokenizer_2", None), getattr(pipe, "text_encoder_2", None))]
    # PHRASES without copying the first window's EOS into the others: each window is
    # encoded on its own, as A1111 does.
    return [EmbeddingsProvider(tokenizer=tok, text_encoder=enc, truncate=False,
                               downweight_mode=DownweightMode.MASK,
                               returned_embeddings_type=kind,
                               split_long_text_mode=SplitLongTextMode.PHRASES)
            for tok, enc in pairs if tok is not None and enc is not None]


def _encode(providers: list[Any], segments: list[Segment], device: Any) -> Any:
    import torch

    parts = []
    for segment in segments:
        fragments = segment or [Fragment("")]
        texts, weights = [f.text for f in fragments], [f.weight for f in fragments]
        parts.append(torch.cat([
            p.get_embeddings_for_weighted_prompt_fragments([texts], [weights], device=device)
            for p in providers], dim=-1))
    return torch.cat(parts, dim=1)


def _pooled(pipe: Any, segments: list[Segment], device: Any) -> Any:
    """SDXL's pooled embedding: the second encoder's projection of the first window."""
    import torch

    text = "".join(f.text for f in segments[0])
    tokenizer, encoder = pipe.tokenizer_2, pipe.text_encoder_2
    ids = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    with torch.inference_mode():
        return encoder(ids.to(device), output_hidden_states=False)[0]


def pipeline_arguments(pipe: Any, family: str, prompt: str,
                       negative: str) -> dict[str, Any]:
    """The prompt arguments for one pipeline call: text when both prompts are plain and fit
    one window (the pipeline encodes them as it always has; no ``negative_prompt`` when it
    is empty), else compel's embeddings of both (padded to the same number of windows)."""

    def text(prompt: str, negative: str) -> dict[str, Any]:
        return {"prompt": prompt, **({"negative_prompt": negative} if negative else {})}

    if family not in WEIGHTED_FAMILIES or getattr(pipe, "text_encoder", None) is None:
        return text(prompt, negative)
    parsed = [parse(prompt), parse(negative)]
    texts = [unweighted(p) for p in parsed]
    if all(t is not None and _fits(pipe, t) for t in texts):
        # Escapes undone; a prompt without any syntax is passed exactly as it came.
        return text(prompt if not SYNTAX.search(prompt) else texts[0] or "",
                    negative if not SYNTAX.search(negative) else texts[1] or "")
    import torch

    device = pipe.text_encoder.device
    providers = _providers(pipe, family)
    with torch.inference_mode():
        embeds = [_encode(providers, p, device) for p in parsed]
        # The shorter one takes empty windows (A1111 pads the same way).
        empty = _encode(providers, [[Fragment("")]], device)
        longest = max(e.shape[1] for e in embeds)
        embeds = [torch.cat([e] + [empty] * ((longest - e.shape[1]) // empty.shape[1]), dim=1)
                  for e in embeds]
    # SDXL's own pipeline conditions an empty negative prompt on zeros.
    zeros = (family == "sdxl" and not negative.strip()
             and bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False)))
    args = {"prompt_embeds": embeds[0],
            "negative_prompt_embeds": torch.zeros_like(embeds[1]) if zeros else embeds[1]}
    if family == "sdxl" and getattr(pipe, "text_encoder_2", None) is not None:
        args["pooled_prompt_embeds"] = _pooled(pipe, parsed[0], device)
        pooled = _pooled(pipe, parsed[1], device)
        args["negative_pooled_prompt_embeds"] = torch.zeros_like(pooled) if zeros else pooled
    return args
