"""File storage: pick a backend from settings; callers only ever see ``FileService``."""

from __future__ import annotations

from ronghe.settings import Settings
from ronghe.storage.base import Storage
from ronghe.storage.local import LocalStorage


def make_storage(settings: Settings) -> Storage:
    url = settings.storage_url
    if not url:
        return LocalStorage(settings.data_dir / "files")
    if url.startswith("file://"):
        from pathlib import Path

        return LocalStorage(Path(url.removeprefix("file://")))
    if url.startswith("s3://"):
        from ronghe.storage.s3 import S3Storage

        return S3Storage.from_settings(settings)
    raise ValueError(f"storage_url must start with file:// or s3:// (got {url!r})")
