"""The whole loop over real HTTP: a daemon, its ledger and the four OTA sandboxes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from channelmgr.ledger import models as m
from channelmgr.ledger.types import AriChange
from tests.sync.harness import CHANNELS

pytestmark = pytest.mark.slow




async def _seed(r, nights, rooms=5):
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", nights[0], nights[-1], rate_plan="BAR-DK", rooms=rooms,
                                     price_minor=88800, stop_sell=False), actor="test")
    r.d.wake_all()
    await r.converge(nights)


@pytest.mark.parametrize("source", CHANNELS)
async def test_a_booking_on_one_ota_closes_the_room_on_the_other_three(running, source):
    r = running
    nights = [r.today() + timedelta(days=10 + i) for i in range(3)]
    await _seed(r, nights)
    before = {ch: [await r.rooms(ch, "DK", n) for n in nights] for ch in CHANNELS}
    assert before["booking"] == [5, 5, 5] and before["meituan"] == [4, 4, 4]  # meituan holds one back

    room, rate = r.codes(source, "DK", "BAR-DK")
    oid = (await r.book(source, hotel=r.hotel(source), room=room, rate=rate, checkin=nights[0].isoformat(),
                        checkout=nights[2].isoformat(), rooms=1, amount_minor=177600, currency="CNY",
                        guest={"name": "王芳", "phone": "+86 139 1234 5678", "email": "wang.fang@example.cn"},
                        special_requests="无烟房"))["ota_booking_id"]

    async def others_lowered():
        for ch in CHANNELS:
            got = [await r.rooms(ch, "DK", n) for n in nights]
            if got != [before[ch][0] - 1, before[ch][1] - 1, before[ch][2]]:
                return False
        return True

    await r.wait_for(others_lowered, timeout=30, what="the booking to reach every OTA")
    b = await r.ledger.booking(source, oid, reveal=True)
    assert b["status"] == "confirmed" and b["guest"]["name"] == "王芳" and b["special_requests"] == "无烟房"

    await r.book(source, action="cancel", ota_booking_id=oid)

    async def restored():
        for ch in CHANNELS:
            if [await r.rooms(ch, "DK", n) for n in nights] != before[ch]:
                return False
        return True

    await r.wait_for(restored, timeout=30, what="the cancellation to reach every OTA")
    assert (await r.ledger.booking(source, oid))["status"] == "cancelled"
    await r.converge(nights)
    # the ledger's journal tells the story: the booking, its cancellation, the rooms sold and given back
    journal = await r.ledger.journal("SHA-BUND", limit=200)
    booking_rows = [j for j in journal if j["entity"] == "booking" and j["key"].get("ota_booking_id") == oid]
    assert {j["action"] for j in booking_rows} == {"new", "cancel"}
    sold = [j for j in journal if j["entity"] == "inventory" and j["action"] == "sold"]
    assert len(sold) == 4  # two nights taken, two given back


async def test_every_ota_converges_through_thirty_percent_errors_and_latency(running):
    r = running
    nights = [r.today() + timedelta(days=20 + i) for i in range(4)]
    await _seed(r, nights)
    for ch in CHANNELS:
        # a third of calls fail at random, and the first call surely does: the retry it
        # causes must show in the sync log whatever the dice (fewer, larger pushes now)
        await r.faults(ch, error_rate=0.3, latency_ms=20, fail_next=1)
    # a burst of work while a third of all calls fail
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", nights[1], nights[2], rate_plan="BAR-DK", rooms=7,
                                     price_minor=99900, min_los=2), actor="test")
    await r.ledger.set_ari(AriChange("SHA-BUND", "SK", nights[0], nights[3], rate_plan="BAR-SK", rooms=9,
                                     price_minor=69900, stop_sell=False), actor="test")
    ids = []
    for ch in ("ctrip", "booking"):
        room, rate = r.codes(ch, "DK", "BAR-DK")
        ids.append((ch, (await r.book(ch, hotel=r.hotel(ch), room=room, rate=rate, checkin=nights[1].isoformat(),
                                      checkout=nights[3].isoformat(), rooms=1, amount_minor=199800,
                                      currency="CNY", guest={"name": "Sophie Martin"}))["ota_booking_id"]))
    await r.book("ctrip", action="cancel", ota_booking_id=ids[0][1])
    r.d.wake_all()

    async def bookings_in():
        b1 = await r.ledger.booking("ctrip", ids[0][1])
        b2 = await r.ledger.booking("booking", ids[1][1])
        return b1 is not None and b1["status"] == "cancelled" and b2 is not None
    await r.wait_for(bookings_in, timeout=60, what="the bookings to arrive through the faults")
    await r.converge(nights, timeout=90)
    shown = {(x["room_type"], x["date"]): x for x in (await r.ledger.show("SHA-BUND", nights[0], nights[3]))["rooms"]}
    assert shown[("DK", nights[1].isoformat())]["sold"] == 1 and shown[("DK", nights[1].isoformat())]["free"] == 6
    await r.d.synclog.flush()

    async def q(conn):
        retried = (await conn.execute(select(func.count()).select_from(m.sync_log).where(
            m.sync_log.c.result.in_(("retry", "failed", "rate_limited"))))).scalar()
        second = (await conn.execute(select(func.count()).select_from(m.sync_log).where(
            m.sync_log.c.attempt > 1))).scalar()
        lost = (await conn.execute(select(func.count()).select_from(m.outbox).where(
            m.outbox.c.status == "dead"))).scalar()
        return retried, second, lost

    retried, second_attempts, dead = await r.ledger.db.read(q)
    assert retried > 0 and second_attempts > 0, "retries are visible in the sync log"
    assert dead == 0


async def test_ari_change_reaches_every_ota_with_channel_rules(running):
    r = running
    nights = [r.today() + timedelta(days=30)]
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", nights[0], nights[0], rate_plan="BAR-DK", rooms=30,
                                     price_minor=100000, stop_sell=False), actor="test")
    r.d.wake_all()
    await r.converge(nights)
    assert await r.rooms("booking", "DK", nights[0]) == 30
    assert await r.rooms("ctrip", "DK", nights[0]) == 20  # ctrip is capped at 20
    assert await r.rooms("meituan", "DK", nights[0]) == 29  # meituan: one held back
    held = await r.state("booking")
    room, rate = r.codes("booking", "DK", "BAR-DK")
    assert held[(r.hotel("booking"), room, rate, nights[0].isoformat())]["price_minor"] == 103000  # +3%
    from channelmgr.ops import status

    st = {c["channel"]: c for c in (await status(r.d.rt.db, list(CHANNELS)))["channels"]}
    assert all(st[ch]["last_success_at"] and st[ch]["breaker"] == "closed" for ch in CHANNELS)
