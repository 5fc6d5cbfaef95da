"""Imports every module that defines tables, so Base.metadata is complete for Alembic."""

from ronghe.db import models  # noqa: F401
