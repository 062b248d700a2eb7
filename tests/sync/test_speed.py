"""What makes pushes fast (issue 13), held as behaviour, not timings:

- a burst of changes to one property waits the few hundred milliseconds that let it go out
  as the fewest messages the OTA's batching rule allows (at most 1.5x the minimum), while a
  lone edit goes at once;
- a closure (a booking's fall in rooms to sell) overtakes a year of price pushes of the
  same property that is in flight, and every OTA ends holding the right count.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from channelmgr import dates
from channelmgr.ledger import models as m
from channelmgr.ledger.types import AriChange
from channelmgr.mapping.derive import derive
from channelmgr.sync.batching import batches, to_items
from tests.sync.harness import CHANNELS

pytestmark = pytest.mark.slow

PLANS = (("SK", "BAR-SK", 69800), ("ST", "BAR-ST", 75800), ("DK", "BAR-DK", 99900), ("ES", "BAR-ES", 188800))


async def _keys_since(r, channel: str, after_id: int) -> list[tuple]:
    """The local keys of the cells queued for a channel after an outbox id."""
    o, rt, rp = m.outbox, m.room_types, m.rate_plans

    async def q(conn):
        return (await conn.execute(select(o.c.kind, rt.c.code, rp.c.code, o.c.night)
                                   .select_from(o.join(rt, rt.c.id == o.c.room_type_id)
                                                .outerjoin(rp, rp.c.id == o.c.rate_plan_id))
                                   .where(o.c.channel == channel, o.c.id > after_id))).all()

    return sorted({tuple(k) for k in await r.ledger.db.read(q)}, key=lambda k: (k[0], k[1], k[2] or "", k[3]))


async def _minimum_messages(r, channel: str, keys: list[tuple]) -> int:
    """The fewest messages this OTA's batching rule allows for these cells, as they are now."""
    pm = r.d.mappings.get("SHA-BUND")
    caps = r.d.channels[channel].adapter.capabilities
    now = datetime.now(timezone.utc)
    today = dates.business_date(now, pm.timezone)
    lo, hi = caps.window.bounds(now, pm.timezone)
    keys = [k for k in keys if lo <= k[3] <= hi]
    if not keys:
        return 0
    snap = await r.ledger.snapshot("SHA-BUND", min(k[3] for k in keys), max(k[3] for k in keys))
    cells = [c for c in derive(pm, channel, snap, keys, today=today, supported=caps.restrictions,
                               inventory_level=caps.inventory_level)
             if c.rooms_to_sell is not None or c.prices or c.stop_sell is not None]
    return len(batches(to_items([(c, set()) for c in cells], caps), caps))


async def _last_outbox_id(r) -> int:
    async def q(conn):
        return (await conn.execute(select(m.outbox.c.id).order_by(m.outbox.c.id.desc()).limit(1))).scalar() or 0

    return await r.ledger.db.read(q)


async def test_a_bulk_change_goes_out_in_few_messages_and_a_lone_edit_at_once(running):
    r = running
    await r.settled()
    # the window sized for a loaded, shared machine, where one 120-night change of a room
    # type took 1-2 s (and more) to commit; the daemon's default (0.4 s) suits an idle one
    for w in r.d.workers.values():
        w.s = dataclasses.replace(w.s, coalesce_seconds=8, coalesce_max_seconds=60)
    start = r.today() + timedelta(days=2)
    end = start + timedelta(days=119)
    mark = await _last_outbox_id(r)
    calls0 = {ch: r.d.workers[ch].pushed_calls for ch in CHANNELS}
    # a bulk change as a PMS sends it: one room type after the other, each committed and the
    # workers woken at once (as the API does), a little apart
    for i, (room, plan, price) in enumerate(PLANS):
        t = time.monotonic()
        await r.ledger.set_ari(AriChange("SHA-BUND", room, start, end, rate_plan=plan, price_minor=price + 1000),
                               actor="test")
        r.d.wake_all()
        print(f"set {plan} took {time.monotonic() - t:.2f} s")
        await asyncio.sleep(0.05)
    await r.settled(timeout=120)
    report = []
    for ch in CHANNELS:
        sent = r.d.workers[ch].pushed_calls - calls0[ch]
        least = await _minimum_messages(r, ch, await _keys_since(r, ch, mark))
        report.append(f"{ch}: {sent} messages, minimum {least}")
        assert least > 0
        assert sent <= 1.5 * least, report
    print("; ".join(report))
    await r.converge([start, start + timedelta(days=40), end])

    # a lone edit is not held back for company: it goes at once
    night = start + timedelta(days=5)
    calls1 = {ch: r.d.workers[ch].pushed_calls for ch in CHANNELS}
    t0 = time.monotonic()
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", night, night, rate_plan="BAR-DK", price_minor=123400),
                           actor="test")
    r.d.wake_all()
    deadline = t0 + 20
    while any(r.d.workers[ch].pushed_calls == calls1[ch] for ch in CHANNELS) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    took = time.monotonic() - t0
    await r.converge([night], timeout=10)
    print(f"a lone edit was sent to the four OTAs in {took:.2f} s")
    assert took < 4, took  # a burst waits for 8 s of quiet here; a lone edit never waits
    for ch in CHANNELS:
        assert r.d.workers[ch].pushed_calls - calls1[ch] == 1, ch


async def test_a_booking_overtakes_a_year_of_prices_in_flight(running):
    r = running
    await r.settled()
    today = r.today()
    night = today + timedelta(days=12)
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", night, night, rate_plan="BAR-DK", rooms=5,
                                     price_minor=88800, stop_sell=False), actor="test")
    r.d.wake_all()
    await r.converge([night])
    before = {ch: await r.rooms(ch, "DK", night) for ch in CHANNELS}
    # Booking.com answers slowly: a year of prices takes it many seconds
    await r.faults("booking", latency_ms=400)
    for room, plan, price in PLANS:
        await r.ledger.set_ari(AriChange("SHA-BUND", room, today, today + timedelta(days=364), rate_plan=plan,
                                         price_minor=price + 2000), actor="test")
    r.d.wake_all()

    async def booking_prices_in_flight():
        async def q(conn):
            return (await conn.execute(select(m.outbox.c.id).where(
                m.outbox.c.channel == "booking", m.outbox.c.kind == "rate",
                m.outbox.c.status == "claimed").limit(1))).scalar()

        return await r.ledger.db.read(q) is not None

    await r.wait_for(booking_prices_in_flight, timeout=30, what="Booking.com's price push to start")
    room, rate = r.codes("ctrip", "DK", "BAR-DK")
    t0 = time.monotonic()
    await r.book("ctrip", hotel=r.hotel("ctrip"), room=room, rate=rate, checkin=night.isoformat(),
                 checkout=(night + timedelta(days=1)).isoformat(), rooms=1, amount_minor=88800, currency="CNY",
                 guest={"name": "李雷"})
    targets = ("booking", "fliggy", "meituan")

    arrived: dict[str, float] = {}

    async def closed_everywhere():
        for ch in targets:
            if ch not in arrived and await r.rooms(ch, "DK", night) == before[ch] - 1:
                arrived[ch] = time.monotonic() - t0
        if "ledger" not in arrived:
            snap = await r.ledger.snapshot("SHA-BUND", night, night)
            if snap.free.get(("DK", night)) is not None and snap.free[("DK", night)] < 5:
                arrived["ledger"] = time.monotonic() - t0
        return all(ch in arrived for ch in targets)

    try:
        await r.wait_for(closed_everywhere, timeout=90, what="the booking to reach the other three OTAs")
    finally:
        print("arrived", arrived)
    took = time.monotonic() - t0
    still = await booking_prices_in_flight()
    print(f"the booking reached the other three OTAs in {took:.2f} s ({', '.join(f'{k} {v:.2f} s' for k, v in sorted(arrived.items(), key=lambda kv: kv[1]))}); "
          f"Booking.com's prices still in flight: {still}")
    assert still, "the closure did not overtake Booking.com's price push"
    # generous: on a loaded 2-core machine (load 18) the booking itself took 8 s to be committed;
    # the behaviour held here is the overtaking above; bench_fanout.py holds the goal figure
    assert took < 60, took
    await r.faults("booking", latency_ms=0)
    await r.settled(timeout=120)
    # nothing sent after the closure carried the count from before it
    for ch in targets:
        assert await r.rooms(ch, "DK", night) == before[ch] - 1, ch
    await r.converge([night, today + timedelta(days=100)])
