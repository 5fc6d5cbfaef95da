"""Which slot a new request takes, and what of its prompt is already cached there.

A free slot keeps the KV cells of what it last held.  A new request goes to the free slot
whose cells share the longest prefix with its prompt (the conversation so far, a shared
system prompt) and evaluates only the rest; without a match it takes the slot idle longest.
When a *busy* slot shares a longer prefix than any free one (four users arrive at once and
only one slot holds the template's system preamble yet), the newcomer's slot gets a copy of
that slot's cells instead: llama.cpp copies across non-unified streams only as a whole
stream, which costs about what evaluating a few prompt tokens does (``COPY_MIN_TOKENS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# A copy of a slot's cells (its whole stream: n_ctx cells, ~23 KB each for the bundled model)
# pays off once it saves this many prompt tokens: measured here, copying an 8,192-cell stream
# took 15 ms against 6.3 ms per prompt token evaluated (one thread, 4,096 cells: 9.5 ms);
# 8 leaves room for models whose cells weigh more against their compute.
COPY_MIN_TOKENS = 8


@dataclass(eq=False)
class Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # tokens whose cells this sequence holds
    idle_since: float = 0.0
    busy: bool = False


@dataclass(frozen=True)
class Placement:
    slot: Slot
    shared: int  # prompt tokens whose cells the slot holds (after the copy, if any)
    copy_from: Slot | None = None  # copy this slot's cells into ``slot`` first


def best(slots: list[Slot], prompt: list[int]) -> tuple[Slot, int]:
    """The slot sharing the longest cached prefix with ``prompt``; among equals (every
    prompt shares the template's system preamble) the one idle longest, so the most recent
    conversations keep their caches longest."""
    want = np.asarray(prompt, dtype=np.int64)

    def shared(slot: Slot) -> int:
        n = min(len(slot.cached), len(prompt))
        diff = np.nonzero(np.asarray(slot.cached[:n], dtype=np.int64) != want[:n])[0]
        return int(diff[0]) if len(diff) else n

    scored = [(shared(s), -s.idle_since, s) for s in slots]
    top = max(scored, key=lambda x: (x[0], x[1]))
    return top[2], top[0]


def place(slots: list[Slot], prompt: list[int]) -> Placement:
    """Where a request goes (at least one slot must be free)."""
    free = [s for s in slots if not s.busy]
    slot, shared = best(free, prompt)
    busy = [s for s in slots if s.busy]
    if busy:
        donor, donated = best(busy, prompt)
        if donated - shared >= COPY_MIN_TOKENS:
            # The copy replaces the slot's cells, so it goes to the slot idle longest,
            # keeping the most recent conversations' caches.
            return Placement(min(free, key=lambda s: s.idle_since), donated, donor)
    return Placement(slot, shared)
