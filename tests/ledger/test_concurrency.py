"""The last room is never sold twice by accident, and a killed writer leaves no half change."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta

from sqlalchemy import func, select

from channelmgr.ledger import models as m
from channelmgr.ledger.db import Database
from channelmgr.ledger.ledger import Ledger
from channelmgr.ledger.types import AriChange, IncomingBooking, LocalStay

N = date(2027, 3, 31)


async def test_fifty_concurrent_bookings_at_the_last_five_rooms(ledger, hotel, db_url, cipher):
    await ledger.set_ari(AriChange("SHA-TEST", "DK", N, N + timedelta(days=1), rooms=5), actor="t")
    # several independent connections pools, as several OTAs' handlers would have
    ledgers = [Ledger(Database(db_url, pool_size=10), cipher) for _ in range(5)]

    def b(i: int) -> IncomingBooking:
        channel = ("booking", "ctrip", "fliggy", "meituan")[i % 4]
        return IncomingBooking(channel=channel, hotel_code="H1", property="SHA-TEST", ota_booking_id=f"C{i}",
                               revision="1", action="new", amount_minor=80000, currency="CNY",
                               stays=(LocalStay("R", "P", "DK", "BAR", ((N, 40000), (N + timedelta(days=1), 40000)), 1),))

    try:
        results = await asyncio.gather(*(ledgers[i % 5].apply_booking(b(i)) for i in range(50)))
    finally:
        for lg in ledgers:
            await lg.db.dispose()
    normal = [r for r in results if not r.overbooked]
    flagged = [r for r in results if r.overbooked]
    assert len(normal) == 5, f"{len(normal)} bookings got a room"
    assert len(flagged) == 45
    assert len({r.booking_id for r in results}) == 50  # every one recorded, none lost

    shown = {(r["room_type"], r["date"]): r for r in (await ledger.show("SHA-TEST", N, N + timedelta(days=1)))["rooms"]}
    for night in (N, N + timedelta(days=1)):
        row = shown[("DK", night.isoformat())]
        assert row["sold"] == 50 and row["physical"] == 5 and row["free"] == -45

    async def q(conn):
        conflicts = (await conn.execute(select(func.count()).select_from(m.conflicts).where(
            m.conflicts.c.kind == "overbooking"))).scalar()
        flagged_rows = (await conn.execute(select(func.count()).select_from(m.bookings).where(
            m.bookings.c.overbooked.is_(True)))).scalar()
        return conflicts, flagged_rows

    assert await ledger.db.read(q) == (45, 45)


KILLER = textwrap.dedent('''
    import asyncio, base64, sys, os
    from datetime import date
    from channelmgr.ledger.db import Database
    from channelmgr.ledger.ledger import Ledger
    from channelmgr.ledger.types import AriChange
    from channelmgr.security import Cipher

    url, marker = sys.argv[1], sys.argv[2]
    real_add_journal = Ledger.add_journal

    async def slow_add_journal(conn, rows):
        await real_add_journal(conn, rows)
        open(marker, "w").write("inside")   # state and journal written, not committed
        await asyncio.sleep(60)

    Ledger.add_journal = staticmethod(slow_add_journal)

    async def main():
        lg = Ledger(Database(url), Cipher(b"k" * 32))
        await lg.set_ari(AriChange("SHA-TEST", "DK", date(2027, 5, 1), date(2027, 6, 30), rate_plan="BAR",
                                   rooms=1, price_minor=123400, stop_sell=True), actor="killer")

    asyncio.run(main())
''')


async def test_killing_the_process_mid_write_leaves_no_half_change(ledger, hotel, db_url, tmp_path):
    marker = tmp_path / "marker"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", KILLER, db_url, str(marker)], env=env)
    try:
        deadline = time.time() + 60
        while not marker.exists():
            assert proc.poll() is None, "the writer died before reaching the middle of its transaction"
            assert time.time() < deadline, "the writer never reached the middle of its transaction"
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()

    async def q(conn):
        inv = (await conn.execute(select(func.count()).select_from(m.inventory).where(
            m.inventory.c.physical.is_not(None)))).scalar()
        rates = (await conn.execute(select(func.count()).select_from(m.rates))).scalar()
        journal = (await conn.execute(select(func.count()).select_from(m.journal).where(
            m.journal.c.actor == "killer"))).scalar()
        outbox = (await conn.execute(select(func.count()).select_from(m.outbox).where(
            m.outbox.c.kind != "full"))).scalar()
        return inv, rates, journal, outbox

    # allow PostgreSQL a moment to notice the dead backend and roll it back
    for _ in range(50):
        counts = await ledger.db.read(q)
        if counts == (0, 0, 0, 0):
            break
        await asyncio.sleep(0.1)
    assert counts == (0, 0, 0, 0)
    # and the ledger still takes writes (no lock left behind)
    s = await ledger.set_ari(AriChange("SHA-TEST", "DK", date(2027, 5, 1), date(2027, 5, 1), rooms=3), actor="after")
    assert s.cells_changed == 1
