"""Issue 13: on SQLite, short statements run on the event loop's thread (no hand-over to
aiosqlite's thread), while whatever may wait or take long still goes to that thread, so the
loop is never held: a lock held by another process, a long SELECT, the fsync of a commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

from sqlalchemy import text

from channelmgr.ledger.db import Database

LONG = ("SELECT max(x) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
        "SELECT x FROM c)")


async def _db(tmp_path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'inline.db'}")

    async def mk(conn):
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)"))
        await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 10), (2, 20)"))

    await db.write(mk)
    return db


def _raw(conn):
    return conn.sync_connection.connection.dbapi_connection._connection  # the InlineConnection


async def _ticking(coro, every: float = 0.01) -> tuple[object, int]:
    """Run ``coro`` while a ticker counts how often the loop let it run."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(every)
            ticks += 1

    t = asyncio.create_task(ticker())
    try:
        return await coro, ticks
    finally:
        stop.set()
        await t


async def test_short_statements_run_on_the_loop_and_long_ones_on_the_thread(tmp_path):
    db = await _db(tmp_path)
    try:
        seen = {}

        async def q(conn):
            c = _raw(conn)
            before = (c.inline_calls, c.thread_calls)
            v = (await conn.execute(text("SELECT v FROM t WHERE id = :i"), {"i": 2})).scalar()
            seen["short"] = (c.inline_calls - before[0], c.thread_calls - before[1])
            started = time.monotonic()
            big = (await conn.execute(text(LONG))).scalar()
            seen["long"] = (time.monotonic() - started, c.thread_calls - before[1])
            return v, big

        (v, big), ticks = await _ticking(db.read(q))
        assert v == 20 and big == 3_000_000
        assert seen["short"][0] >= 1 and seen["short"][1] == 0  # no hand-over for a look-up
        took, threaded = seen["long"]
        assert threaded >= 1  # stopped after its slice and run again on the thread
        # the loop ran on while it did: the ticker got its turns (on the loop it would get none)
        assert ticks >= max(1, int(took / 0.01) // 4), (took, ticks)
    finally:
        await db.dispose()


async def test_a_write_waits_for_another_process_lock_without_holding_the_loop(tmp_path):
    db = await _db(tmp_path)
    other = sqlite3.connect(str(tmp_path / "inline.db"), isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process (the CLI, say) holds the write lock
        threading.Timer(0.6, lambda: other.execute("COMMIT")).start()

        async def w(conn):
            await conn.execute(text("UPDATE t SET v = v + 1 WHERE id = 1"))
            return (await conn.execute(text("SELECT v FROM t WHERE id = 1"))).scalar()

        started = time.monotonic()
        v, ticks = await _ticking(db.write(w))
        assert v == 11
        assert time.monotonic() - started >= 0.5  # it did wait for the lock
        assert ticks >= 20  # and the loop went on meanwhile (0.6 s / 10 ms, allowing for load)
        # committed for everyone: another connection reads it
        assert other.execute("SELECT v FROM t WHERE id = 1").fetchone()[0] == 11
    finally:
        other.close()
        await db.dispose()


async def test_a_long_select_stopped_in_a_write_keeps_the_writes_before_it(tmp_path):
    db = await _db(tmp_path)
    try:
        async def w(conn):
            await conn.execute(text("INSERT INTO t (id, v) VALUES (3, 30)"))
            big = (await conn.execute(text(LONG))).scalar()
            await conn.execute(text("UPDATE t SET v = 31 WHERE id = 3"))
            return big

        assert await db.write(w) == 3_000_000

        async def r(conn):
            return (await conn.execute(text("SELECT v FROM t WHERE id = 3"))).scalar()

        assert await db.read(r) == 31
    finally:
        await db.dispose()


async def test_a_failed_write_is_rolled_back_whole(tmp_path):
    db = await _db(tmp_path)
    try:
        async def w(conn):
            await conn.execute(text("UPDATE t SET v = 99 WHERE id = 1"))
            await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 0)"))  # a duplicate key

        try:
            await db.write(w)
        except Exception as e:
            assert "UNIQUE" in str(e)
        else:
            raise AssertionError("the duplicate was accepted")

        async def r(conn):
            return (await conn.execute(text("SELECT v FROM t WHERE id = 1"))).scalar()

        assert await db.read(r) == 10
    finally:
        await db.dispose()


async def test_after_a_cancelled_call_the_next_ones_queue_behind_it_on_the_thread(tmp_path):
    from channelmgr.ledger.sqlite_inline import InlineConnection

    db = await _db(tmp_path)
    await db.dispose()
    conn = await InlineConnection(lambda: sqlite3.connect(str(tmp_path / "inline.db"), check_same_thread=False))
    try:
        # a long statement that then holds the thread for a second more, whatever the machine's speed
        conn._conn.create_function("pause", 1, lambda s: time.sleep(s) or 0)
        long_cur = await conn.cursor()
        t = asyncio.create_task(long_cur.execute(LONG.replace("SELECT max(x)", "SELECT max(x) + pause(1.0)", 1)))
        for _ in range(100):  # until it has outlasted its slice and gone to the thread
            await asyncio.sleep(0.01)
            if conn.thread_calls:
                break
        assert conn.thread_calls == 1
        t.cancel()  # its caller goes away; the thread is still at it
        inline_before, threaded_before = conn.inline_calls, conn.thread_calls
        started = time.monotonic()
        cur = await conn.cursor()  # the next call: queued behind it on the thread, not run beside it
        assert conn.inline_calls == inline_before and conn.thread_calls == threaded_before + 1
        assert time.monotonic() - started >= 0.5  # it waited for the long call's pause(1.0)
        # the thread is done: look-ups run on the loop again
        await cur.execute("SELECT v FROM t WHERE id = 2")
        assert await cur.fetchall() == [(20,)] and conn.inline_calls > inline_before
    finally:
        await conn.close()
