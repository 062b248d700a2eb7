"""Right at every hour: the daemon at chosen instants, and refused ranges that still deliver.

Before 06:00 in Shanghai the hotel's business date is yesterday (invariant 5), so the
daemon keeps "tonight" on sale under yesterday's date. Each OTA accepts its own window; the
engine clips every range to it. When an OTA refuses part of a range anyway, the engine
splits the range and sends the good nights again: only the nights the OTA refuses end as
dead letters, each with the OTA's own reason.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from channelmgr import dates
from channelmgr.ledger import models as m
from channelmgr.ledger.types import AriChange
from tests.sync.harness import CHANNELS, start

pytestmark = pytest.mark.slow
SHANGHAI = ZoneInfo("Asia/Shanghai")
HORIZON = 30


async def _dead(r, channel: str | None = None) -> list:
    async def q(conn):
        stmt = select(m.outbox.c.channel, m.outbox.c.night, m.outbox.c.last_error).where(m.outbox.c.status == "dead")
        if channel:
            stmt = stmt.where(m.outbox.c.channel == channel)
        return (await conn.execute(stmt)).all()

    return await r.ledger.db.read(q)


async def _settled(r, channel: str, timeout: float = 40.0) -> None:
    await r.settled((channel,), timeout)


LATE = [
    ("shanghai-02:30", datetime(2026, 12, 3, 2, 30, tzinfo=SHANGHAI)),
    ("new-year-00:30", datetime(2027, 1, 1, 0, 30, tzinfo=SHANGHAI)),
]


@pytest.mark.parametrize("label,instant", LATE, ids=[x[0] for x in LATE])
async def test_started_late_at_night_no_dead_letter_and_every_ota_holds_its_window(tmp_path, db_url, label, instant):
    with time_machine.travel(instant.astimezone(timezone.utc), tick=True):
        r = await start(tmp_path, db_url, horizon_days=HORIZON)
        try:
            today = r.today()
            assert today == instant.date() - timedelta(days=1)  # the business date is yesterday
            await r.ledger.set_ari(AriChange("SHA-BUND", "DK", today, today + timedelta(days=HORIZON - 1),
                                             rate_plan="BAR-DK", rooms=6, price_minor=91800, stop_sell=False),
                                   actor="test")
            r.d.wake_all()
            # every night of the horizon, tonight (yesterday's date) included, on all four
            await r.converge([today + timedelta(days=i) for i in range(HORIZON)], timeout=90)
            for ch in CHANNELS:
                await _settled(r, ch)
            assert await _dead(r) == []
            # tonight is on sale at Meituan under yesterday's date
            assert await r.rooms("meituan", "DK", today) is not None
        finally:
            await r.close()


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_range_the_ota_refuses_in_part_still_delivers_its_other_nights(tmp_path, channel):
    r = await start(tmp_path)
    try:
        chrt = r.d.channels[channel]
        caps = chrt.adapter.capabilities
        real = caps.window
        # the engine believes the OTA takes three more days in the past than it does, so it
        # sends ranges that the sandbox (enforcing the real window) refuses in part
        chrt.adapter.capabilities = dataclasses.replace(
            caps, window=dataclasses.replace(real, past_days=real.past_days + 3, late_night_until=None))
        now = datetime.now(timezone.utc)
        real_lo, _ = real.bounds(now, "Asia/Shanghai")
        wide_lo, _ = chrt.adapter.capabilities.window.bounds(now, "Asia/Shanghai")
        today = r.today()
        first, last = min(wide_lo, today), today + timedelta(days=12)
        await _settled(r, channel, timeout=90)  # the first full sync
        await r.ledger.set_ari(AriChange("SHA-BUND", "DK", first, last, rate_plan="BAR-DK", rooms=4,
                                         price_minor=77700, stop_sell=False), actor="test")
        r.d.wake_all()
        await _settled(r, channel)
        good = [d for d in dates.days(max(real_lo, today), last)]
        assert not await r.mismatches(channel, good), await r.mismatches(channel, good)
        dead = await _dead(r, channel)
        refused = {d for d in dates.days(first, last) if d < real_lo}
        assert {row.night for row in dead} <= refused, "a good night was dead-lettered"
        if channel != "fliggy":  # Fliggy's adapter clips to its window itself (nothing refused)
            assert {row.night for row in dead} == {d for d in refused if d >= wide_lo}
            code = {"booking": "NOT_A_VALID_DATE", "ctrip": "outside the sale horizon", "meituan": "2004"}[channel]
            assert all(code in (row.last_error or "") for row in dead), dead
    finally:
        await r.close()


async def test_a_night_outside_the_window_is_skipped_with_the_reason_and_never_sent(tmp_path):
    r = await start(tmp_path)
    try:
        await _settled(r, "meituan", timeout=90)
        today = r.today()
        far = today + timedelta(days=200)  # Meituan takes 180 days ahead
        calls_before = r.d.workers["meituan"].pushed_items
        await r.ledger.set_ari(AriChange("SHA-BUND", "DK", far, far, rate_plan="BAR-DK", rooms=2,
                                         price_minor=50000), actor="test")
        r.d.wake_all()
        await _settled(r, "meituan")

        async def rows(conn):
            return (await conn.execute(select(m.outbox.c.status, m.outbox.c.last_error).where(
                m.outbox.c.channel == "meituan", m.outbox.c.night == far))).all()

        got = await r.ledger.db.read(rows)
        assert got and all(s == "skipped" and "outside meituan's window" in e for s, e in got), got
        assert r.d.workers["meituan"].pushed_items == calls_before
        assert await _dead(r, "meituan") == []
        # Booking.com takes two years: the same night went out there
        assert await r.rooms("booking", "DK", far) == 2 or await _wait_rooms(r, "booking", far, 2)
    finally:
        await r.close()


async def _wait_rooms(r, channel: str, night: date, want: int) -> bool:
    await r.wait_for(lambda: _is(r, channel, night, want), timeout=20, what=f"{channel} {night} = {want}")
    return True


async def _is(r, channel, night, want):
    return await r.rooms(channel, "DK", night) == want


AMSTERDAM = ZoneInfo("Europe/Amsterdam")
AMS_MAPPING = """\
property:
  code: AMS-CANAL
  name: Canal House Amsterdam
  timezone: Europe/Amsterdam
  currency: EUR
room_types:
  - code: DBL
    name: Double room
    physical_rooms: 12
rate_plans:
  - code: BAR
    name: Best available rate
    room_type: DBL
    occupancy: 2
channels:
  booking:
    hotel_id: "7730001"
    rooms:
      DBL: "773000101"
    rates:
      BAR: "77300011"
    occupancies: [2]
"""

DST = [
    ("to-summer-01:30-CET", datetime(2027, 3, 28, 1, 30, tzinfo=AMSTERDAM)),
    ("to-summer-03:30-CEST", datetime(2027, 3, 28, 3, 30, tzinfo=AMSTERDAM)),
    ("from-summer-02:30-CEST", datetime(2026, 10, 25, 2, 30, tzinfo=AMSTERDAM, fold=0)),
    ("from-summer-02:30-CET", datetime(2026, 10, 25, 2, 30, tzinfo=AMSTERDAM, fold=1)),
]


@pytest.mark.parametrize("label,instant", DST, ids=[x[0] for x in DST])
async def test_a_booking_com_property_in_amsterdam_on_the_nights_summer_time_changes(tmp_path, label, instant):
    (tmp_path / "mappings").mkdir(exist_ok=True)
    (tmp_path / "mappings" / "ams-canal.yaml").write_text(AMS_MAPPING, encoding="utf-8")
    with time_machine.travel(instant.astimezone(timezone.utc), tick=True):
        r = await start(tmp_path, horizon_days=HORIZON)
        try:
            today = dates.business_date(datetime.now(timezone.utc), "Europe/Amsterdam")
            assert today == instant.date() - timedelta(days=1)  # before 06:00: still the previous night
            lo, hi = r.d.channels["booking"].adapter.capabilities.window.bounds(datetime.now(timezone.utc),
                                                                               "Europe/Amsterdam")
            assert lo <= today <= hi
            nights = [today + timedelta(days=i) for i in range(14)]
            await r.ledger.set_ari(AriChange("AMS-CANAL", "DBL", nights[0], nights[-1], rate_plan="BAR", rooms=7,
                                             price_minor=18900, stop_sell=False), actor="test")
            r.d.wake_all()
            await _settled(r, "booking", timeout=90)

            async def held():
                st = await r.state("booking")
                return all(st.get(("7730001", "773000101", None, n.isoformat()), {}).get("rooms_to_sell") == 7
                           and st.get(("7730001", "773000101", "77300011", n.isoformat()), {}).get("price_minor")
                           for n in nights)

            await r.wait_for(held, timeout=30, what="every night at Booking.com")
            assert await _dead(r, "booking") == []
            # the DST night itself is one night, sold once, like any other
            shown = (await r.ledger.show("AMS-CANAL", nights[0], nights[-1]))["rooms"]
            assert sorted({x["date"] for x in shown}) == [n.isoformat() for n in nights]
        finally:
            await r.close()


async def test_demo_guests_book_tonight_in_the_small_hours_and_it_lands_on_yesterdays_night(tmp_path):
    from channelmgr.demo import SyntheticGuests

    with time_machine.travel(datetime(2026, 12, 3, 2, 30, tzinfo=SHANGHAI).astimezone(timezone.utc), tick=True):
        r = await start(tmp_path, horizon_days=HORIZON)
        try:
            today = r.today()
            assert today == date(2026, 12, 2)
            guests = SyntheticGuests(r.d, seed=7)
            await guests.seed_ledger()
            sandboxes = {n: c.sandbox for n, c in r.d.channels.items()}
            for _ in range(40):
                await guests._book(sandboxes)
            tonight = [(ch, oid) for ch, oid in guests.made
                       if sandboxes[ch].bookings[oid].data["checkin"] in ("2026-12-02", "2026-12-03")
                       and sandboxes[ch].bookings[oid].data["checkout"] == "2026-12-03"
                       or sandboxes[ch].bookings[oid].data.get("tonight")]
            assert {ch for ch, _ in tonight} & {"meituan", "fliggy"} and {ch for ch, _ in tonight} & {"ctrip", "booking"}

            async def arrived():
                return all([await r.ledger.booking(ch, oid) is not None for ch, oid in tonight])

            await r.wait_for(arrived, timeout=60, what="the late-night bookings in the ledger")
            for ch, oid in tonight:
                b = await r.ledger.booking(ch, oid)
                assert [n["night"] for n in b["nights"]] == ["2026-12-02"], (ch, b["nights"])
            for ch in CHANNELS:
                await _settled(r, ch, timeout=90)
            assert await _dead(r) == []
        finally:
            await r.close()
