"""Database helpers: the hot-path reads polling relies on."""

from __future__ import annotations

import threading

from sqlalchemy import text

from ronghe.db import Database


async def test_run_read_is_inline_on_sqlite_and_threaded_elsewhere(db_url: str) -> None:
    db = Database(db_url)
    try:
        loop_thread = threading.get_ident()
        ran_on = await db.run_read(threading.get_ident)
        # SQLite reads are cheaper than a thread hop; a networked database must never
        # stall the event loop on a round trip.
        assert (ran_on == loop_thread) is db_url.startswith("sqlite")
        assert db.in_process is db_url.startswith("sqlite")

        def one() -> int:
            with db.reading() as c:
                return int(c.execute(text("SELECT 1")).scalar_one())

        assert await db.run_read(one) == 1
    finally:
        db.dispose()
