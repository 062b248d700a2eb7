"""Hostile stays never reach a long write transaction; every write is measured against a bound.

A mutated check-in date (1026-12-27 instead of 2026-12-27) made a 1,000-year stay that held
SQLite's write lock for over ten minutes. A booking whose dates its OTA cannot have sold is
stored, raised as a conflict for a person and never applied night by night; no write
transaction holds the lock longer than the guard's bound (1 s).
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from adapters.base.contract import BookingRevision, Delivery, Stay
from channelmgr.ledger import models as m
from channelmgr.sync.receiver import ImpossibleStay
from tests.sync.harness import start

BOUND = 1.0
# The bound is checked on the writes the hostile message itself makes (stored, refused, raised
# as a conflict, applied). The daemon's background writers (push claims and settles, the sync
# log, the heartbeat, the desk scan) run beside it and on a loaded 2-core CI machine one of them
# was seen at 1.3 s of wall time (PushWorker.release): CPU waits, not the hostile input.
BACKGROUND = ("PushWorker.", "SyncLog.", "ProcessRegistry.", "Processes.", "Desk.", "Daemon.", "Watchdog.",
              "Drift")
# and headroom for the CPU contention itself: a 10-year stay written night by night holds the lock
# for tens of seconds, so twice the guard's bound still tells the two apart
HEADROOM = 2.0


class Writes:
    """Every write transaction of a daemon, by name, from the database's write listener."""

    def __init__(self, db):
        self.seen: list[tuple[float, str]] = []
        db.write_listeners.append(lambda held, name, failed: self.seen.append((held, name)))

    def clear(self) -> None:
        self.seen.clear()

    def slowest_of_the_message(self) -> tuple[float, str]:
        own = [(h, n) for h, n in self.seen if not n.startswith(BACKGROUND)]
        assert own, f"no write of the message's own among {sorted({n for _, n in self.seen})}"
        return max(own)


def revision(channel: str, hotel: str, room: str, rate: str, checkin: date, checkout: date, oid: str,
             action: str = "new") -> BookingRevision:
    return BookingRevision(channel=channel, hotel=hotel, ota_booking_id=oid, revision="1", action=action,
                           stays=(Stay(room, rate, checkin, checkout),), amount_minor=88800, currency="CNY",
                           booked_at=datetime.now(timezone.utc), revised_at=datetime.now(timezone.utc))


async def inbox_and_conflicts(run, inbox_id):
    async def q(conn):
        ib = (await conn.execute(select(m.inbox).where(m.inbox.c.id == inbox_id))).first()
        cs = (await conn.execute(select(m.conflicts).where(m.conflicts.c.inbox_id == inbox_id))).all()
        nights = (await conn.execute(select(m.booking_nights))).all()
        return ib, cs, nights

    return await run.d.rt.db.read(q)


@pytest.fixture
async def run(tmp_path, db_url):
    r = await start(tmp_path, db_url)
    try:
        yield r
    finally:
        await r.close()


async def test_impossible_stays_are_kept_for_a_person_and_no_write_holds_the_lock_past_the_bound(run):
    d = run.d
    today = run.today()
    room, rate = run.codes("ctrip", "DK", "BAR-DK")
    hotel = run.hotel("ctrip")
    cases = {
        "1000y": (date(1026, 12, 27), today + timedelta(days=26)),  # a mutated check-in year
        "10y": (today + timedelta(days=5), today + timedelta(days=5 + 3652)),  # longer than the OTA allows
        "backwards": (today + timedelta(days=9), today + timedelta(days=7)),  # check-out before check-in
        "stale-new": (today - timedelta(days=40), today - timedelta(days=38)),  # new, weeks after check-in
    }
    writes = Writes(d.rt.db)
    for oid, (ci, co) in cases.items():
        rev = revision("ctrip", hotel, room, rate, ci, co, f"HOSTILE-{oid}")
        inbox_id = await d.receiver.store("ctrip", f"<raw {oid}/>".encode(), "reservation")
        started = time.monotonic()
        with pytest.raises(ImpossibleStay):
            await asyncio.wait_for(d.receiver.apply(inbox_id, rev), 30)
        assert time.monotonic() - started < 5
        ib, cs, nights = await inbox_and_conflicts(run, inbox_id)
        assert ib.status == "failed" and "impossible stay" in ib.error, (oid, ib.status, ib.error)
        assert ib.ota_booking_id == f"HOSTILE-{oid}"
        assert [c.kind for c in cs] == ["impossible_stay"] and cs[0].status == "open"
        assert f"HOSTILE-{oid}" in cs[0].summary and f"#{inbox_id}" in cs[0].summary
        assert nights == []  # nothing applied night by night
        assert await d.rt.ledger.booking("ctrip", f"HOSTILE-{oid}") is None
        # delivered again by the OTA: the same row, still one conflict
        again = await d.receiver.store("ctrip", f"<raw {oid}/>".encode(), "reservation")
        assert again == inbox_id
        with pytest.raises(ImpossibleStay):
            await d.receiver.apply(again, rev)
        assert len((await inbox_and_conflicts(run, inbox_id))[1]) == 1
    assert writes.slowest_of_the_message()[0] < HEADROOM * BOUND, writes.slowest_of_the_message()
    writes.clear()

    # a long but possible stay (the channel's limit, 90 nights) is applied, within the bound
    ok = revision("ctrip", hotel, room, rate, today + timedelta(days=3), today + timedelta(days=93), "LONG-OK")
    inbox_id = await d.receiver.store("ctrip", b"<raw long-ok/>", "reservation")
    conf = await d.receiver.apply(inbox_id, ok)
    assert conf.status == "confirmed"
    assert len((await d.rt.ledger.booking("ctrip", "LONG-OK"))["nights"]) == 90
    # 90 real nights (inventory, journal, four channels' outbox) take ~0.1 s idle; on a loaded
    # 2-core CI machine with three test workers beside it 1.1 s was seen on PostgreSQL, so the
    # legitimate stay gets three times the guard's bound (a hostile stay writes no night at all)
    assert writes.slowest_of_the_message()[0] < 3 * BOUND, writes.slowest_of_the_message()


async def test_a_pulled_impossible_stay_is_kept_and_not_acknowledged(run):
    d = run.d
    room, rate = run.codes("booking", "DK", "BAR-DK")
    writes = Writes(d.rt.db)
    rev = revision("booking", run.hotel("booking"), room, rate, date(1026, 12, 27), run.today() + timedelta(days=2),
                   "PULL-1000Y")
    accepted = await asyncio.wait_for(d.receiver.ingest("booking", [Delivery(b"<pulled 1000y/>", "reservation", rev)]),
                                      30)
    assert accepted == []  # not acknowledged: it stays with the OTA too
    async def q(conn):
        return (await conn.execute(select(m.inbox.c.status, m.inbox.c.error).where(
            m.inbox.c.ota_booking_id == "PULL-1000Y"))).all()

    rows = await d.rt.db.read(q)
    assert [r.status for r in rows] == ["failed"]
    assert writes.slowest_of_the_message()[0] < HEADROOM * BOUND, writes.slowest_of_the_message()


async def test_the_guard_measures_a_write_that_holds_the_lock_too_long(db):
    async def slow(conn):
        await conn.execute(select(1))
        await asyncio.sleep(1.2)

    before = db.slow_writes
    await db.write(slow)
    assert db.slow_writes == before + 1
    assert db.slowest_write[0] >= 1.2 and "slow" in db.slowest_write[1]


async def test_a_ctrip_push_with_a_mutated_check_in_year_gets_a_well_formed_answer_and_is_kept(run):
    """Over real HTTP: Ctrip's own message for a real booking, its check-in year mutated to 1026."""
    from lxml import etree

    from adapters.base.sandbox import BookingEvent, SandboxBooking

    d = run.d
    sandbox = d.channels["ctrip"].sandbox
    room, rate = run.codes("ctrip", "DK", "BAR-DK")
    ci, co = run.today() + timedelta(days=26), run.today() + timedelta(days=27)
    data = {"hotel": run.hotel("ctrip"), "room": room, "rate": rate, "checkin": ci.isoformat(),
            "checkout": co.isoformat(), "rooms": 1, "amount_minor": 88800, "currency": "CNY",
            "guest": {"name": "张三"}}
    booking = SandboxBooking("CT-MUTATED-1", data)
    booking.events.append(BookingEvent(1, "new", dict(data), datetime.now(timezone.utc)))
    body = etree.tostring(sandbox.booking_message(booking, booking.events[0]), xml_declaration=True,
                          encoding="UTF-8")
    hostile = body.replace(f'Start="{ci.isoformat()}"'.encode(), f'Start="1026-{ci.isoformat()[5:]}"'.encode())
    assert hostile != body
    writes = Writes(d.rt.db)
    started = time.monotonic()
    async with run.http.post(f"{d.base_url}/inbound/ctrip", data=hostile,
                             headers={"Content-Type": "text/xml; charset=utf-8"}) as resp:
        answer = await resp.read()
    assert time.monotonic() - started < 5
    assert resp.status < 500
    doc = etree.fromstring(answer)  # a well-formed OpenTravel answer
    assert doc.find("{http://www.opentravel.org/OTA/2003/05}Errors") is not None, answer[:300]
    assert writes.slowest_of_the_message()[0] < HEADROOM * BOUND, writes.slowest_of_the_message()

    async def q(conn):
        ib = (await conn.execute(select(m.inbox).where(m.inbox.c.ota_booking_id == "CT-MUTATED-1"))).all()
        cs = (await conn.execute(select(m.conflicts).where(m.conflicts.c.kind == "impossible_stay"))).all()
        return ib, cs

    ib, cs = await d.rt.db.read(q)
    assert [r.status for r in ib] == ["failed"] and "impossible stay" in ib[0].error
    assert len(cs) == 1 and cs[0].inbox_id == ib[0].id and cs[0].status == "open"
    assert await d.rt.ledger.booking("ctrip", "CT-MUTATED-1") is None

