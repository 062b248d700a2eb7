"""Sync-log rows survive a locked database: buffered and written once the lock is gone."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from sqlalchemy import func, select

from channelmgr.ledger import migrate
from channelmgr.ledger import models as m
from channelmgr.ledger.db import Database
from channelmgr.sync.synclog import SyncLog


async def test_rows_recorded_while_sqlite_is_locked_are_written_after_the_lock_is_released(tmp_path):
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    setup = Database(url)
    await migrate.upgrade(setup)
    await setup.dispose()
    # a short busy timeout, as a loaded daemon sees it: every write attempt fails fast
    db = Database(url, busy_timeout_ms=100)
    log = SyncLog(db, "run-test")
    log.start()
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
        for i in range(90):
            log.record(channel="ctrip", operation="push_ari", items=1, request_id=f"r{i}")
            if i % 10 == 0:
                await asyncio.sleep(0.05)
        await asyncio.sleep(8)  # longer than every in-line retry of one write transaction
        holder.execute("COMMIT")
        released = time.monotonic()
        await log.flush(timeout=20)
        written = time.monotonic() - released

        async def count(conn):
            return (await conn.execute(select(func.count()).select_from(m.sync_log))).scalar()

        assert await db.read(count) == 90, "sync-log rows were lost while the database was locked"
        assert written < 15
        ids = await db.read(lambda conn: _ids(conn))
        assert sorted(ids) == sorted(f"r{i}" for i in range(90))
    finally:
        holder.close()
        await log.stop()
        await db.dispose()


async def _ids(conn):
    return (await conn.execute(select(m.sync_log.c.request_id))).scalars().all()
