"""What each handler is given: its task, progress/cancel, and the few calls it needs.

Handlers do not get the ``Services`` container.  A small context per kind names everything
a job may touch, so what the image job depends on can be read off its context (and a test
or another worker can build one); a new dependency is a visible change here, not one more
attribute fished out of the container (after InvokeAI's ``InvocationContext``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ronghe.catalog.service import LoraCatalog
from ronghe.datasets.service import DatasetService
from ronghe.downloads.install import Places
from ronghe.downloads.pull import HubAccess
from ronghe.engines.diffusion.engine import ImageEngineProtocol
from ronghe.engines.diffusion.registry import ModelRegistry
from ronghe.engines.training.captions import Captioner
from ronghe.jobs.runner import JobContext
from ronghe.jobs.store import TaskView
from ronghe.storage.files import FileService
from ronghe.tasks.metrics import ImageMetrics


@dataclass(frozen=True)
class TaskContext:
    """The parts every handler has: the task and its progress/cancel channel."""

    job: JobContext

    @property
    def task(self) -> TaskView:
        return self.job.task

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    def progress(self, fraction: float, detail: dict[str, Any] | None = None,
                 force: bool = False) -> None:
        """Record progress (0-1); raises when the task should stop."""
        self.job.progress(fraction, detail, force)

    def check(self) -> None:
        """Raise when the task was cancelled, the worker stops, or the claim was lost."""
        self.job.check()

    def remember(self, key: str, value: Any) -> None:
        """Store a decision durably before acting on it (a re-run repeats it); it goes to
        the task's memo, apart from the submitted input."""
        self.job.remember(key, value)

    def recall(self, key: str) -> Any:
        """A decision an earlier attempt remembered, or None."""
        return self.job.recall(key)


@dataclass(frozen=True)
class ImageTaskContext(TaskContext):
    files: FileService
    loras: LoraCatalog
    engine: ImageEngineProtocol
    # add_prompt's rewrite (prompt -> richer prompt), or None when no chat engine runs here.
    enrich: Callable[[str], str] | None
    metrics: ImageMetrics | None
    # Seconds between live previews; 0: none (image_previews off).
    preview_seconds: float = 0.0
    # <models>/upscalers: the hires fix's upscaler models (None: the built-in ones only).
    upscalers: Path | None = None


@dataclass(frozen=True)
class TrainTaskContext(TaskContext):
    files: FileService
    loras: LoraCatalog
    models: ModelRegistry
    # <data_dir>/training: checkpoints of unfinished runs, one folder per task.
    work_root: Path
    captioner: Captioner | None
    # Where captions live: users' own, and the captioner's cached per image.
    datasets: DatasetService
    # Which of these task ids will never run again (TaskStore.ended): their checkpoints go.
    ended: Callable[[Sequence[str]], set[str]]
    # The torch device LoRAs train on, and settings' image_dtype (precision.pick_precision).
    device: str = "cpu"
    dtype: str = "auto"

    def yield_to_waiting(self) -> None:
        """Between training steps: let short waiting tasks (images) run first."""
        self.job.yield_to_waiting()


@dataclass(frozen=True)
class UpscaleTaskContext(TaskContext):
    files: FileService
    # <models>/upscalers, where the task's upscaler model is found by name.
    upscalers: Path
    # The torch device the upscaler model runs on.
    device: str = "cpu"


@dataclass(frozen=True)
class CaptionTaskContext(TaskContext):
    files: FileService
    # None where no captioner is configured (captioner_model ""): the task fails saying so.
    captioner: Captioner | None


@dataclass(frozen=True)
class DownloadTaskContext(TaskContext):
    # The staging folder and the models, LoRA and upscaler folders of this server.
    places: Places
    # The Hub token and endpoint (settings' hf_token / hf_endpoint, else HF_TOKEN ...).
    access: HubAccess
    # Scans the models folders again once a model is in place (catalog.folder.scan_all).
    rescan: Callable[[], Any]
