"""Transactions that collide are retried, not lost."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update

from channelmgr.ledger import models as m
from channelmgr.ledger.db import async_url, redact_url


async def test_a_deadlock_is_retried_until_both_writes_land(db, hotel):
    """Two transactions lock the same two rows in opposite order. On PostgreSQL one of them
    is chosen as the deadlock victim (40P01) and run again; on SQLite BEGIN IMMEDIATE lets
    only one writer in at a time, so they cannot deadlock at all. Either way both land."""

    async def rt_ids(conn):
        return (await conn.execute(select(m.room_types.c.id).order_by(m.room_types.c.code))).scalars().all()

    a, b = await db.read(rt_ids)
    first_lock = asyncio.Event()
    attempts = {"x": 0, "y": 0}

    def writer(name, one, two, name_value):
        async def tx(conn):
            attempts[name] += 1
            await conn.execute(update(m.room_types).where(m.room_types.c.id == one).values(name=name_value))
            if attempts[name] == 1:
                first_lock.set()
                await asyncio.sleep(0.3)  # hold the first lock while the other takes its own
            await conn.execute(update(m.room_types).where(m.room_types.c.id == two).values(name=name_value))
            return attempts[name]

        return tx

    async def x():
        return await db.write(writer("x", a, b, "by-x"))

    async def y():
        await first_lock.wait()
        return await db.write(writer("y", b, a, "by-y"))

    results = await asyncio.gather(x(), y())
    assert all(r >= 1 for r in results)
    names = await db.read(lambda conn: _names(conn))
    assert len(set(names)) == 1 and names[0] in ("by-x", "by-y")  # one transaction's writes, whole
    if db.dialect == "postgresql":
        assert attempts["x"] + attempts["y"] == 3, attempts  # exactly one victim, run once more


async def _names(conn):
    return (await conn.execute(select(m.room_types.c.name))).scalars().all()


def test_urls_and_their_passwords():
    assert async_url("sqlite:///var/x.db") == "sqlite+aiosqlite:///var/x.db"
    assert async_url("postgresql://u:p@h:5432/d") == "postgresql+asyncpg://u:p@h:5432/d"
    assert redact_url("postgresql://u:secret@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert "secret" not in redact_url("postgresql+asyncpg://admin:secret@db.example/ledger")


async def test_a_write_that_may_be_redone_skips_its_own_fsync_and_a_booking_never_does(db):
    """SQLite: ``durable=False`` (push claims and settles, the sync log) commits with
    synchronous=NORMAL; every other write, before and after it on the same pooled
    connection, with FULL, whose fsync of the WAL makes the earlier commits durable too."""
    from sqlalchemy import text

    async def level(conn):
        return (await conn.execute(text("PRAGMA synchronous"))).scalar()

    if db.dialect != "sqlite":  # every commit durable; the flag is accepted and changes nothing
        async def setting(conn):
            return (await conn.execute(text("SHOW synchronous_commit"))).scalar()

        assert await db.write(setting, durable=False) == await db.write(setting) == "on"
        return
    full, normal = 2, 1
    assert await db.write(level) == full
    assert await db.write(level, durable=False) == normal
    assert await db.write(level) == full
    assert await db.write_grouped(level) == full
    assert await db.read(level) in (full, normal)  # a read commits nothing
