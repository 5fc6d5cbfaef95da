"""Datasets: create, list a page, add and remove images, and read them for training.

Images are referenced by the signed URLs ``upload_imgs`` returned; only the file id is taken
from a URL and only the caller's own image files are accepted (see FileService.resolve_url).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ronghe.datasets.models import Dataset, DatasetImage, FileCaption
from ronghe.db import Database, utcnow
from ronghe.db.base import MAX_ID
from ronghe.db.models import StoredFile
from ronghe.errors import BadRequest, NotFound
from ronghe.storage.files import FileInfo, FileService

MAX_IMAGES = 1000
MAX_NAME = 128
MAX_DESCRIPTION = 2000
MAX_CAPTION = 1000


@dataclass(frozen=True)
class Caption:
    """An image's captions: the user's own wins over the captioner's (cached) one."""

    user: str | None = None
    auto: str | None = None
    auto_by: str | None = None

    @property
    def text(self) -> str | None:
        return self.user or self.auto


@dataclass(frozen=True)
class DatasetInfo:
    id: int
    user_id: int
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    images: tuple[FileInfo, ...]
    # Per image: the description training uses after the trigger word (None: not yet
    # captioned; the first training captions it).
    captions: tuple[str | None, ...] = ()


class DatasetService:
    def __init__(self, db: Database, files: FileService) -> None:
        self.db = db
        self.files = files

    # --- writes

    def create(self, user_id: int, name: str, description: str,
               urls: Sequence[str], captions: Sequence[str] | None = None) -> DatasetInfo:
        images = self._resolve(user_id, urls, "images")
        given = self._given_captions(user_id, urls, captions)
        if not images:
            raise BadRequest("images: a dataset needs at least one image URL from upload_imgs",
                             field="images")
        with self.db.session() as s:
            row = Dataset(user_id=user_id, name=name, description=description)
            s.add(row)
            s.flush()
            for position, info in enumerate(images):
                s.add(DatasetImage(dataset_id=row.id, file_id=info.id, position=position))
            dataset_id = row.id
            self._store_user_captions(s, given)
        return self.get(dataset_id, user_id)

    def add_images(self, user_id: int, dataset_id: int, urls: Sequence[str],
                   captions: Sequence[str] | None = None) -> DatasetInfo:
        """Appends images; ones already in the dataset are left where they are (a caption
        sent with one still replaces its caption)."""
        images = self._resolve(user_id, urls, "images")
        given = self._given_captions(user_id, urls, captions)
        with self.db.session() as s:
            row = self._own(s, dataset_id, user_id)
            present = set(s.scalars(select(DatasetImage.file_id)
                                    .where(DatasetImage.dataset_id == row.id)))
            new = [i for i in images if i.id not in present]
            if len(present) + len(new) > MAX_IMAGES:
                raise BadRequest(f"images: a dataset holds at most {MAX_IMAGES} images; "
                                 f"it has {len(present)} and {len(new)} would be added",
                                 field="images")
            start = (s.scalar(select(func.max(DatasetImage.position))
                              .where(DatasetImage.dataset_id == row.id)) or 0) + 1
            for offset, info in enumerate(new):
                s.add(DatasetImage(dataset_id=row.id, file_id=info.id, position=start + offset))
            self._store_user_captions(s, given)
            row.updated_at = utcnow()
        return self.get(dataset_id, user_id)

    def delete_images(self, user_id: int, dataset_id: int, urls: Sequence[str]) -> DatasetInfo:
        """Removes images from the dataset (the files themselves stay)."""
        if not urls:
            raise BadRequest("images: list the image URLs to remove", field="images")
        with self.db.session() as s:
            row = self._own(s, dataset_id, user_id)
            present = set(s.scalars(select(DatasetImage.file_id)
                                    .where(DatasetImage.dataset_id == row.id)))
            doomed: list[str] = []
            for index, url in enumerate(urls):
                field = f"images[{index}]"
                info = self.files.resolve_url(url, user_id, field)
                if info.id not in present:
                    raise BadRequest(f"{field}: invalid image: not in dataset {dataset_id}",
                                     field=field)
                doomed.append(info.id)
            s.execute(delete(DatasetImage).where(DatasetImage.dataset_id == row.id,
                                                 DatasetImage.file_id.in_(doomed)))
            row.updated_at = utcnow()
        return self.get(dataset_id, user_id)

    # --- captions

    def set_user_captions(self, captions: dict[str, str]) -> None:
        """file id -> the user's own caption (files the caller has checked are theirs)."""
        with self.db.session() as s:
            self._store_user_captions(s, captions)

    def captions(self, file_ids: Sequence[str]) -> dict[str, Caption]:
        with self.db.session() as s:
            return self._captions(s, file_ids)

    def cache_auto_caption(self, file_id: str, caption: str, by: str) -> None:
        with self.db.session() as s:
            row = s.get(FileCaption, file_id)
            if row is None:
                s.add(FileCaption(file_id=file_id, auto_caption=caption, auto_by=by))
            else:
                row.auto_caption, row.auto_by = caption, by

    def _store_user_captions(self, s: Session, captions: dict[str, str]) -> None:
        for file_id, text in captions.items():
            row = s.get(FileCaption, file_id)
            if row is None:
                s.add(FileCaption(file_id=file_id, user_caption=text))
            else:
                row.user_caption = text

    def _captions(self, s: Session, file_ids: Sequence[str]) -> dict[str, Caption]:
        if not file_ids:
            return {}
        rows = s.scalars(select(FileCaption).where(FileCaption.file_id.in_(list(file_ids))))
        return {r.file_id: Caption(r.user_caption, r.auto_caption, r.auto_by) for r in rows}

    def _given_captions(self, user_id: int, urls: Sequence[str],
                        captions: Sequence[str] | None) -> dict[str, str]:
        """``captions`` parallel to ``urls``; an empty one leaves that image's caption be."""
        if captions is None:
            return {}
        if len(captions) != len(urls):
            raise BadRequest(f"captions: one per image, in the order of images ({len(urls)} "
                             f"images, {len(captions)} captions); '' for none", field="captions")
        given: dict[str, str] = {}
        for index, (url, text) in enumerate(zip(urls, captions, strict=True)):
            text = " ".join(text.split())
            if len(text) > MAX_CAPTION:
                raise BadRequest(f"captions[{index}]: at most {MAX_CAPTION} characters "
                                 f"(got {len(text)})", field=f"captions[{index}]")
            if text:
                given[self.files.resolve_url(url, user_id, f"images[{index}]").id] = text
        return given

    # --- reads

    def get(self, dataset_id: int, user_id: int, field: str = "dataset") -> DatasetInfo:
        with self.db.session() as s:
            row = self._own(s, dataset_id, user_id, field)
            return self._info(s, row)

    def page(self, user_id: int, page: int, per_page: int) -> tuple[list[DatasetInfo], int]:
        with self.db.session() as s:
            where = Dataset.user_id == user_id
            total = s.scalar(select(func.count()).select_from(Dataset).where(where)) or 0
            rows = s.scalars(select(Dataset).where(where).order_by(Dataset.id)
                             .offset((page - 1) * per_page).limit(per_page))
            return [self._info(s, r) for r in rows], total

    # --- helpers

    def _own(self, s: Session, dataset_id: int, user_id: int,
             field: str = "dataset") -> Dataset:
        row = s.get(Dataset, dataset_id) if 0 < dataset_id <= MAX_ID else None
        # Another user's dataset reads exactly like a missing one: ids leak nothing.
        if row is None or row.user_id != user_id:
            raise NotFound(f"{field}: no dataset {dataset_id} of yours", field=field)
        return row

    def _info(self, s: Session, row: Dataset) -> DatasetInfo:
        files = s.scalars(select(StoredFile).join(DatasetImage,
                                                  DatasetImage.file_id == StoredFile.id)
                          .where(DatasetImage.dataset_id == row.id)
                          .order_by(DatasetImage.position))
        images = tuple(FileInfo.of(f) for f in files)
        known = self._captions(s, [i.id for i in images])
        return DatasetInfo(row.id, row.user_id, row.name, row.description, row.created_at,
                           row.updated_at, images,
                           tuple(known[i.id].text if i.id in known else None for i in images))

    def _resolve(self, user_id: int, urls: Sequence[str], field: str) -> list[FileInfo]:
        if len(urls) > MAX_IMAGES:
            raise BadRequest(f"{field}: at most {MAX_IMAGES} images (got {len(urls)})",
                             field=field)
        seen: dict[str, FileInfo] = {}
        for index, url in enumerate(urls):
            name = f"{field}[{index}]"
            info = self.files.resolve_url(url, user_id, name)
            if not info.content_type.startswith("image/"):
                raise BadRequest(f"{name}: not an image file", field=name)
            seen.setdefault(info.id, info)  # the same image twice counts once
        return list(seen.values())
