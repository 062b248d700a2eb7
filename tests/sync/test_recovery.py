"""A restarted daemon takes over the claims of its dead predecessor at once.

Claims name their process (``<process id>/<channel>``). A process known to be gone (its
PostgreSQL advisory lock free, its pid gone from this host, its heartbeat stale) has its
claimed outbox rows pushed by the next daemon within seconds, not after the 60-s lease;
a live process's claims are left alone (several daemons share a PostgreSQL ledger).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from channelmgr.ledger import models as m
from channelmgr.ledger.types import AriChange
from channelmgr.runtime import Runtime
from channelmgr.sync.processes import ProcessRegistry
from tests.sync.harness import CHANNELS, make_config, start

pytestmark = pytest.mark.slow

LEASE = timedelta(seconds=60)


def exited_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


async def _claim(rt, night, owner_of) -> int:
    """Mark the pending rows of ``night`` claimed, as a push worker of ``owner_of(channel)`` would."""
    async def tx(conn):
        rows = (await conn.execute(select(m.outbox.c.id, m.outbox.c.channel).where(
            m.outbox.c.status == "pending", m.outbox.c.night == night))).all()
        for r in rows:
            await conn.execute(update(m.outbox).where(m.outbox.c.id == r.id).values(
                status="claimed", claimed_by=f"{owner_of(r.channel)}/{r.channel}",
                lease_until=datetime.now(timezone.utc) + LEASE))
        return len(rows)

    return await rt.db.write(tx)


async def _process_row(rt, pid_: str, *, host: str, pid: int, heartbeat_age: float) -> None:
    now = datetime.now(timezone.utc)

    async def tx(conn):
        await conn.execute(m.processes.insert().values(id=pid_, host=host, pid=pid, started_at=now - timedelta(hours=1),
                                                       heartbeat_at=now - timedelta(seconds=heartbeat_age)))

    await rt.db.write(tx)


async def test_claims_of_dead_processes_are_pushed_by_the_next_daemon_within_seconds(tmp_path, db_url):
    # a first run creates the catalog and pushes everything, then stops cleanly
    r1 = await start(tmp_path, db_url)
    night = r1.today() + timedelta(days=9)

    async def drained():
        return not await r1.ledger.outbox_pending()

    await r1.wait_for(drained, timeout=30, what="the first run's full sync")
    await r1.close()

    # while no daemon runs, a change is queued and claimed by processes that then died
    rt = await Runtime.open(config=make_config(tmp_path, db_url), sync_mappings=False)
    try:
        await rt.ledger.set_ari(AriChange("SHA-BUND", "DK", night, night, rate_plan="BAR-DK", price_minor=77700),
                                actor="test")
        # "killed": on this host, its pid gone; on PostgreSQL its advisory lock is free too.
        # its heartbeat is fresh: the pid or the lock tells, not the age
        await _process_row(rt, "killed0001", host=socket.gethostname(), pid=exited_pid(), heartbeat_age=1)
        # "vanished": another host, heartbeat stale
        await _process_row(rt, "vanished01", host="elsewhere.example", pid=1, heartbeat_age=300)
        n = await _claim(rt, night, lambda ch: "killed0001" if ch in ("booking", "ctrip") else "vanished01")
        assert n >= 4
    finally:
        await rt.close()

    started = time.monotonic()
    r2 = await start(tmp_path, db_url)
    try:
        async def all_pushed():
            if [o for o in await r2.ledger.outbox_pending() if o["night"] == night]:
                return False  # claimed (by the dead, or in flight here) or waiting
            for ch in CHANNELS:
                cells = await r2.state(ch)
                room, rate = r2.codes(ch, "DK", "BAR-DK")
                if cells.get((r2.hotel(ch), room, rate, night.isoformat()), {}).get("price_minor") is None:
                    return False
            return True

        await r2.wait_for(all_pushed, timeout=10, what="the dead processes' claims to be pushed")
        took = time.monotonic() - started
        print(f"dead claims pushed {took:.2f} s after the restart began")
        assert took < 10, took  # the lease (60 s) is the backstop, not the path
    finally:
        await r2.close()


@pytest.mark.postgres
async def test_a_live_process_keeps_its_claims_until_it_is_gone(tmp_path, db_url):
    if not db_url.startswith("postgres"):
        pytest.skip("several daemons share a ledger on PostgreSQL only")
    r = await start(tmp_path, db_url)
    try:
        night = r.today() + timedelta(days=11)
        live = ProcessRegistry(r.d.rt.db, "liveproc01")
        await live.start()
        # a live process elsewhere: another host, so only its advisory lock speaks for it
        async def elsewhere(conn):
            await conn.execute(update(m.processes).where(m.processes.c.id == "liveproc01").values(
                host="elsewhere.example"))

        await r.d.rt.db.write(elsewhere)
        for w in r.d.workers.values():  # pause our own workers while the rows are queued and claimed
            await w._busy.acquire()
        try:
            await r.ledger.set_ari(AriChange("SHA-BUND", "DK", night, night, rate_plan="BAR-DK", price_minor=66600),
                                   actor="test")
            assert await _claim(r.d.rt, night, lambda ch: "liveproc01") >= 4
        finally:
            for w in r.d.workers.values():
                w._busy.release()
        await r.d.watchdog()
        rows = [o for o in await r.ledger.outbox_pending() if o["night"] == night]
        assert rows and all(o["status"] == "claimed" and o["claimed_by"].startswith("liveproc01/") for o in rows)

        await live.stop()  # gone (cleanly): the next round takes its claims over
        await r.d.watchdog()
        r.d.wake_all()

        async def pushed():
            return not [o for o in await r.ledger.outbox_pending() if o["night"] == night]

        await r.wait_for(pushed, timeout=10, what="the stopped process's claims to be pushed")
    finally:
        await r.close()


@pytest.mark.postgres
async def test_a_live_process_whose_lock_connection_was_dropped_takes_its_lock_again(db_url):
    if not db_url.startswith("postgres"):
        pytest.skip("the advisory lock is PostgreSQL's")
    from sqlalchemy import text

    from channelmgr.ledger.db import Database
    from channelmgr.sync.processes import gone, lock_key

    db = Database(db_url)
    reg = ProcessRegistry(db, "relock0001", heartbeat_seconds=3600)
    try:
        await reg.start()

        async def is_gone(conn):
            return await gone(conn, ["relock0001"])

        assert await db.write(is_gone) == []
        # the server drops the lock's session (a restart, an admin): the lock is free for a moment
        pid = (await reg._lock_conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        await reg._lock_conn.commit()

        async def terminate(conn):
            await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})

        await db.write(terminate)
        assert await db.write(is_gone) == ["relock0001"]
        await reg._check_lock()  # the next heartbeat
        assert await db.write(is_gone) == []

        async def held(conn):
            return (await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                       {"k": lock_key("relock0001")})).scalar()

        assert await db.write(held) is False
    finally:
        await reg.stop()
        await db.dispose()
