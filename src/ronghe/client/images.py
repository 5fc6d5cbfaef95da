"""Generated images: the URL, seed and size at once, the bytes when first asked for."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ronghe.client.models import TaskImage, TaskResult

if TYPE_CHECKING:
    from ronghe.client._async import AsyncClient
    from ronghe.client._sync import Client


def extension(data: bytes | None) -> str:
    """The file extension of image bytes by their signature (.jpg when not known yet)."""
    if data is not None and data.startswith(b"\x89PNG"):
        return ".png"
    if data is not None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".jpg"


class _Image:
    def __init__(self, task: TaskResult, image: TaskImage) -> None:
        self.task = task
        self.image = image
        self._data: bytes | None = None

    @property
    def url(self) -> str:
        """The full-size image's signed, expiring URL (``middle``/``small`` are on
        ``image``)."""
        return self.image.large

    @property
    def seed(self) -> int | None:
        return self.image.seed if self.image.seed is not None else self.task.seed

    @property
    def width(self) -> int | None:
        return self.image.width

    @property
    def height(self) -> int | None:
        return self.image.height

    @property
    def index(self) -> int:
        return self.image.save_index

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def filename(self) -> str:
        """``<task>_<index>.jpg`` (``.png``, ``.webp`` for those formats, known once the
        image is downloaded): what ``save`` calls the file in a directory."""
        return f"{self.task_id}_{self.index}{extension(self._data)}"

    def _write(self, path: str | os.PathLike[str], data: bytes) -> Path:
        target = Path(path)
        if target.is_dir():
            target = target / self.filename
        target.write_bytes(data)  # the server's bytes, unchanged: its metadata stays in
        return target

    @staticmethod
    def _parameters(data: bytes) -> dict[str, Any]:
        from ronghe.engines.diffusion.output import read_metadata

        return read_metadata(data)

    @staticmethod
    def _infotext(data: bytes) -> str:
        from ronghe.engines.diffusion.output import read_parameters

        return read_parameters(data)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(task_id={self.task_id!r}, index={self.index}, "
                f"seed={self.seed}, size={self.width}x{self.height})")


class GeneratedImage(_Image):
    def __init__(self, client: Client, task: TaskResult, image: TaskImage) -> None:
        super().__init__(task, image)
        self._client = client

    @property
    def data(self) -> bytes:
        """The image (JPEG, PNG or WebP, as the task's output_format), downloaded on first
        use."""
        if self._data is None:
            self._data = self._client.download(self.url)
        return self._data

    def save(self, path: str | os.PathLike[str] = ".") -> Path:
        """Writes the image to ``path`` (a file, or a directory: ``<task>_<index>.jpg``,
        ``.png`` or ``.webp`` in it)."""
        return self._write(path, self.data)

    @property
    def parameters(self) -> dict[str, Any]:
        """The generation parameters the server wrote into the image (prompt, seed, steps…)."""
        return self._parameters(self.data)

    @property
    def infotext(self) -> str:
        """AUTOMATIC1111's parameters text the image carries (what its PNG Info shows)."""
        return self._infotext(self.data)


class AsyncGeneratedImage(_Image):
    def __init__(self, client: AsyncClient, task: TaskResult, image: TaskImage) -> None:
        super().__init__(task, image)
        self._client = client

    async def read(self) -> bytes:
        """The image, downloaded on first use."""
        if self._data is None:
            self._data = await self._client.download(self.url)
        return self._data

    @property
    def data(self) -> bytes:
        """The image once ``await image.read()`` (or ``save``) has fetched it."""
        if self._data is None:
            raise RuntimeError("the image is not downloaded yet: await image.read() first")
        return self._data

    async def save(self, path: str | os.PathLike[str] = ".") -> Path:
        return self._write(path, await self.read())

    @property
    def parameters(self) -> dict[str, Any]:
        return self._parameters(self.data)

    @property
    def infotext(self) -> str:
        return self._infotext(self.data)
