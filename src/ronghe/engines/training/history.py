"""The loss curve of a training run, bounded: at most ``MAX_POINTS`` points however long it runs.

Each point is ``[step, loss]``: the mean loss of a run of consecutive steps, at the last step
of that run.  Up to ``MAX_POINTS`` steps every step is its own point; past that, neighbouring
points merge pairwise (each then stands for twice as many steps), so a long run keeps
between ``MAX_POINTS / 2`` and ``MAX_POINTS`` evenly spaced points.  Adding a step costs O(1)
amortised, because the trainer reports after every step (a rebuild from all losses each step
would cost O(steps²) over a 100 000-step run), and the result depends only on the losses, so
a run resumed from a checkpoint (which keeps every loss) draws the same curve.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_POINTS = 200


class LossHistory:
    def __init__(self, losses: Iterable[float] = (), max_points: int = MAX_POINTS) -> None:
        if max_points < 2:
            raise ValueError("max_points must be at least 2")
        self.max_points = max_points
        self.width = 1  # steps per full bucket
        # [last step, sum of losses, steps] per bucket, oldest first
        self.buckets: list[list[float]] = []
        self.steps = 0
        for loss in losses:
            self.add(loss)

    def add(self, loss: float) -> None:
        self.steps += 1
        last = self.buckets[-1] if self.buckets else None
        if last is not None and last[2] < self.width:
            last[0], last[1], last[2] = self.steps, last[1] + loss, last[2] + 1
            return
        self.buckets.append([self.steps, loss, 1])
        if len(self.buckets) > self.max_points:
            merged = []
            for i in range(0, len(self.buckets), 2):
                pair = self.buckets[i:i + 2]
                merged.append([pair[-1][0], sum(b[1] for b in pair), sum(b[2] for b in pair)])
            self.buckets = merged
            self.width *= 2

    def points(self) -> list[list[float]]:
        """``[[step, mean loss], …]``, oldest first (JSON-ready; losses to 6 digits)."""
        return [[int(step), round(total / count, 6)] for step, total, count in self.buckets]
