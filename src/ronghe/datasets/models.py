"""Datasets and their images.  An image row points at a stored file the dataset's owner owns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ronghe.db.base import Base, UTCDateTime, utcnow


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DatasetImage(Base):
    __tablename__ = "dataset_images"
    __table_args__ = (
        UniqueConstraint("dataset_id", "file_id", name="uq_dataset_images_dataset_file"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"),
                                            index=True)
    # Deleting the file removes it from every dataset rather than leaving a dangling image.
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), index=True)
    # Order of addition; the first image is the dataset's cover (demo_picture).
    position: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FileCaption(Base):
    """What a training image shows, in words: the user's own caption and the captioner's.

    Per file rather than per dataset image: a caption describes the picture, whichever
    datasets hold it, and the automatic one is computed once however often it is used.
    """

    __tablename__ = "file_captions"

    file_id: Mapped[str] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"),
                                         primary_key=True)
    # From a .txt uploaded beside the image or a ``captions`` field; wins when set.
    user_caption: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The captioner's description, and which captioner wrote it (a new one captions again).
    auto_caption: Mapped[str | None] = mapped_column(Text, nullable=True)
    auto_by: Mapped[str | None] = mapped_column(String(512), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
