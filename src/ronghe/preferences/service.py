"""Reading and writing one user's preferences: a value per name, per user, never global."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ronghe.db import Database
from ronghe.db.base import utcnow
from ronghe.preferences.models import UserPreference


class Preferences:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, user_id: int, name: str, default: Any = None) -> Any:
        with self.db.reading() as c:
            value = c.scalar(select(UserPreference.value).where(
                UserPreference.user_id == user_id, UserPreference.name == name))
        return default if value is None else value

    def set(self, user_id: int, name: str, value: Any) -> None:
        """Store ``value`` (JSON) for the user; None forgets the preference."""
        with self.db.session() as s:
            row = s.get(UserPreference, (user_id, name))
            if value is None:
                if row is not None:
                    s.delete(row)
                return
            if row is None:
                s.add(UserPreference(user_id=user_id, name=name, value=value))
            else:
                row.value = value
                row.updated_at = utcnow()
