from ronghe.db.base import Base, utcnow
from ronghe.db.engine import Database

__all__ = ["Base", "Database", "utcnow"]
