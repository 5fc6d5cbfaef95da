"""Slot choice: the longest cached prefix, a copy from a busy slot when it saves enough."""

from __future__ import annotations

from ronghe.engines.llm.slots import COPY_MIN_TOKENS, Slot, place

PREAMBLE = list(range(100, 130))  # the template's system preamble, 30 tokens


def test_the_free_slot_with_the_longest_shared_prefix_wins() -> None:
    slots = [Slot(0, [1, 2, 3], idle_since=1.0), Slot(1, [*PREAMBLE, 7, 8], idle_since=2.0),
             Slot(2, [], idle_since=0.0)]
    where = place(slots, [*PREAMBLE, 7, 9])
    assert (where.slot.seq, where.shared, where.copy_from) == (1, 31, None)


def test_among_equals_the_slot_idle_longest_is_taken() -> None:
    slots = [Slot(0, [5], idle_since=3.0), Slot(1, [6], idle_since=1.0),
             Slot(2, [7], idle_since=2.0)]
    assert place(slots, [1, 2]).slot.seq == 1


def test_a_busy_slot_holding_more_is_copied_into_the_slot_idle_longest() -> None:
    holder = Slot(0, [*PREAMBLE, 1, 2], busy=True)
    recent, oldest = Slot(1, [9, 9, 9], idle_since=5.0), Slot(2, [8], idle_since=1.0)
    where = place([holder, recent, oldest], [*PREAMBLE, 3])
    assert (where.slot, where.shared, where.copy_from) == (oldest, 30, holder)


def test_no_copy_when_it_saves_fewer_than_the_threshold() -> None:
    short = list(range(COPY_MIN_TOKENS - 1))
    holder = Slot(0, [*short, 50], busy=True)
    where = place([holder, Slot(1)], [*short, 60])
    assert (where.slot.seq, where.shared, where.copy_from) == (1, 0, None)
    longer = list(range(COPY_MIN_TOKENS))
    holder.cached = [*longer, 50]
    assert place([holder, Slot(1)], [*longer, 60]).copy_from is holder
