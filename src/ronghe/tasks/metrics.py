"""Image task metrics: counted at submit (the API) and when a task ends (the worker)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ImageMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.submitted = Counter("ronghe_image_tasks_submitted_total", "Image tasks accepted",
                                 ["model", "task_type"], registry=registry)
        self.finished = Counter("ronghe_image_tasks_finished_total",
                                "Image tasks that ended in this process",
                                ["model", "outcome"], registry=registry)
        self.seconds = Histogram(
            "ronghe_image_generation_seconds", "Time to generate one task's images",
            ["model"], registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
        )
