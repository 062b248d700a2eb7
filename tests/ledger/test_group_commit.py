"""Group commit (issue 13): concurrent bookings share write transactions, each answered only
after the transaction that holds it has committed; one that fails is rolled back alone."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from sqlalchemy import func, select

from channelmgr.ledger import models as m
from channelmgr.ledger.db import Database
from channelmgr.ledger.ledger import Ledger
from channelmgr.ledger.types import AriChange, IncomingBooking, LedgerError, LocalStay

N = date(2027, 3, 31)


def booking(i: int, channel: str = "ctrip") -> IncomingBooking:
    return IncomingBooking(channel=channel, hotel_code="H1", property="SHA-TEST", ota_booking_id=f"G{i}",
                           revision="1", action="new", amount_minor=40000, currency="CNY",
                           stays=(LocalStay("R", "P", "DK", "BAR", ((N, 40000),), 1),))


def grouped(db_url: str, cipher) -> Ledger:
    """On PostgreSQL group commit is off by default (concurrent transactions were faster): asked for here."""
    return Ledger(Database(db_url, group_lanes=2), cipher)


async def test_concurrent_bookings_share_transactions_and_each_is_durable_when_answered(hotel, db_url, cipher):
    ledger = grouped(db_url, cipher)
    await ledger.set_ari(AriChange("SHA-TEST", "DK", N, N, rooms=3), actor="t")
    writes: list[str] = []
    ledger.db.write_listeners.append(lambda held, name, failed: writes.append(name))
    commits0, grouped0 = ledger.db.group_commits, ledger.db.grouped
    other = Database(db_url)  # another connection pool: sees only what is committed

    async def visible(ota_id: str) -> bool:
        async def q(conn):
            return (await conn.execute(select(func.count()).select_from(m.bookings).where(
                m.bookings.c.ota_booking_id == ota_id, m.bookings.c.status == "confirmed"))).scalar()

        return await other.read(q) == 1

    async def one(i: int):
        r = await ledger.apply_booking(booking(i))
        # answered: so it is committed (another connection sees it at once)
        assert await visible(f"G{i}"), f"booking G{i} was answered before it was committed"
        return r

    k = 40
    try:
        results = await asyncio.gather(*(one(i) for i in range(k)))
    finally:
        await other.dispose()
    try:
        await _check_shared(ledger, results, writes, commits0, grouped0, k)
    finally:
        await ledger.db.dispose()


async def _check_shared(ledger, results, writes, commits0, grouped0, k):
    assert len(writes) < k, f"{k} concurrent bookings took {len(writes)} write transactions"
    assert ledger.db.group_commits - commits0 < k and ledger.db.grouped - grouped0 == k
    # the last room is never sold twice: 3 got a room, every other one is recorded and flagged
    assert sum(not r.overbooked for r in results) == 3
    assert sum(r.overbooked for r in results) == k - 3
    assert len({r.confirmation for r in results}) == k
    shown = (await ledger.show("SHA-TEST", N, N))["rooms"]
    assert [(r["sold"], r["free"]) for r in shown if r["room_type"] == "DK"] == [(k, 3 - k)]
    # fan-out: one pending row per other channel for the cell (reused, not one per booking)
    pending = await ledger.outbox_pending()
    assert pending and len({(r["channel"], r["cell"]) for r in pending}) == len(pending)


async def test_one_failing_in_a_shared_transaction_is_rolled_back_alone(hotel, db_url, cipher):
    ledger = grouped(db_url, cipher)
    try:
        await _one_failing(ledger)
    finally:
        await ledger.db.dispose()


async def _one_failing(ledger):
    await ledger.set_ari(AriChange("SHA-TEST", "DK", N, N + timedelta(days=1), rooms=5), actor="t")

    async def refuse(conn, takes):
        raise LedgerError("refused by the desk's check")

    async def one(i: int):
        if i == 7:  # a direct booking refused inside its savepoint, amid OTA bookings
            return await ledger.apply_booking(booking(i, channel="direct"), actor="desk:t", check=refuse)
        return await ledger.apply_booking(booking(i))

    commits0 = ledger.db.group_commits
    results = await asyncio.gather(*(one(i) for i in range(12)), return_exceptions=True)
    assert ledger.db.group_commits - commits0 < 12
    failed = [r for r in results if isinstance(r, Exception)]
    assert len(failed) == 1 and isinstance(failed[0], LedgerError)
    assert isinstance(results[7], LedgerError)
    assert await ledger.booking("direct", "G7") is None  # nothing of it was kept
    for i in (0, 6, 8, 11):
        assert (await ledger.booking("ctrip", f"G{i}"))["status"] == "confirmed"
    shown = (await ledger.show("SHA-TEST", N, N))["rooms"]
    assert [r["sold"] for r in shown if r["room_type"] == "DK"] == [11]


async def test_inbox_rows_are_stored_in_shared_transactions(hotel, db_url, cipher):
    ledger = grouped(db_url, cipher)
    try:
        await _inbox_rows(ledger)
    finally:
        await ledger.db.dispose()


async def _inbox_rows(ledger):
    commits0 = ledger.db.group_commits
    ids = await asyncio.gather(*(ledger.store_inbox("ctrip", f"<m>{i}</m>".encode(), "booking") for i in range(30)))
    assert len({i for i, _ in ids}) == 30
    assert ledger.db.group_commits - commits0 < 30
    again = await ledger.store_inbox("ctrip", b"<m>3</m>", "booking")  # the same bytes: the same row
    assert again[0] == ids[3][0]
