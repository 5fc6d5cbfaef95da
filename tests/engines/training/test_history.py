"""The bounded loss curve train_progress reports (engines/training/history.py)."""

from __future__ import annotations

import random

import pytest

from ronghe.engines.training.history import MAX_POINTS, LossHistory


def test_short_runs_keep_every_step() -> None:
    losses = [0.5, 0.25, 0.125]
    assert LossHistory(losses).points() == [[1, 0.5], [2, 0.25], [3, 0.125]]
    assert LossHistory().points() == []


@pytest.mark.parametrize("steps", [MAX_POINTS, MAX_POINTS + 1, 1000, 4321, 100_000])
def test_long_runs_stay_bounded_evenly_spaced_and_averaged(steps: int) -> None:
    rng = random.Random(steps)
    losses = [rng.uniform(0.01, 1.0) for _ in range(steps)]
    points = LossHistory(losses).points()
    assert MAX_POINTS // 2 <= len(points) <= MAX_POINTS
    xs = [x for x, _ in points]
    assert xs == sorted(set(xs)) and xs[-1] == steps
    # Every point is the mean of the steps since the previous point: nothing is dropped.
    start = 0
    for x, y in points:
        chunk = losses[start:x]
        assert y == pytest.approx(sum(chunk) / len(chunk), abs=1e-6)
        start = x
    spans = [b - a for a, b in zip([0, *xs], xs, strict=False)]
    # Evenly spaced: every point but the newest (still filling) spans the same steps.
    assert len(set(spans[:-1])) <= 1 and spans[-1] <= spans[0]


def test_adding_step_by_step_equals_building_from_all_losses() -> None:
    # What a resumed run does (rebuild from the checkpoint's losses) draws the same curve.
    rng = random.Random(3)
    losses = [rng.random() for _ in range(777)]
    live = LossHistory()
    for loss in losses:
        live.add(loss)
    assert live.points() == LossHistory(losses).points()
    resumed = LossHistory(losses[:300])
    for loss in losses[300:]:
        resumed.add(loss)
    assert resumed.points() == live.points()
