"""Engine and sessions.  SQLite (WAL) by default, PostgreSQL through ``database_url``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from ronghe import text

T = TypeVar("T")


def _json_loads(value: str) -> Any:
    """JSON columns as Python values, with any string that cannot be encoded scrubbed.

    Requests are checked at the door (``ronghe.api.middleware``), but a row written before
    that check (or by another path) must not make every read of it fail: answers are UTF-8.
    JSON can hold such a string only as a ``\\u`` escape, so other values skip the walk."""
    data = json.loads(value)
    return text.scrub_json(data) if text.json_may_be_invalid(value) else data


def make_engine(url: str, **kwargs: Any) -> Engine:
    kwargs.setdefault("json_deserializer", _json_loads)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=kwargs.pop("pool_size", 16),
            max_overflow=kwargs.pop("max_overflow", 16),
            **kwargs,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=kwargs.pop("pool_size", 10),
        max_overflow=kwargs.pop("max_overflow", 20),
        **kwargs,
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets pollers read while the worker writes progress; NORMAL sync is safe under WAL.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Database:
    """Owns the engine and hands out sessions; one per app or worker process."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A Core connection for hot read paths (polling, auth): no ORM session, no commit.

        With prebuilt statements (``bindparam``) a read costs ~40 us instead of the ~150 us
        of an ORM session plus statement construction, which is most of a poll's work."""
        with self.engine.connect() as connection:
            yield connection

    @property
    def in_process(self) -> bool:
        """SQLite: a read is a few tens of microseconds in this process and, under WAL, never
        waits for a writer."""
        return self.engine.dialect.name == "sqlite"

    async def run_read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a short read-only ``fn`` from async code.

        On SQLite it runs inline: the threadpool hop (a queue put and a thread wake-up)
        costs more than the read and was the largest part of a poll.  On a networked
        database it goes to the threadpool so a slow round trip never stalls the loop."""
        if self.in_process:
            return fn(*args)
        return await anyio.to_thread.run_sync(fn, *args)

    def dispose(self) -> None:
        self.engine.dispose()
