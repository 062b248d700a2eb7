"""The drift watchdog must not re-open a room an OTA has just sold.

Booking.com sells the last room; the daemon has not pulled the booking yet (pulls every
120 s, the watchdog every 15 s: here both are driven by hand). The watchdog reads back 0
where the ledger still says 1. Overwriting the OTA with 1 would let a second guest book a
room that is gone. Instead the watchdog pulls Booking.com first and compares again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from channelmgr.ledger.types import AriChange
from channelmgr.sync.drift import check_drift
from tests.sync.harness import start

pytestmark = pytest.mark.slow


@pytest.fixture
async def running(tmp_path, db_url):
    r = await start(tmp_path, db_url)
    # pulls are driven by hand in this test (every 120 s in the field)
    r.d.scheduler.pause_job("pull:booking")
    yield r
    await r.close()


async def _book(r, night, name):
    room, rate = r.codes("booking", "DK", "BAR-DK")
    payload = {"hotel": r.hotel("booking"), "room": room, "rate": rate, "checkin": night.isoformat(),
               "checkout": (night + timedelta(days=1)).isoformat(), "rooms": 1, "amount_minor": 88800,
               "currency": "CNY", "guest": {"name": name}}
    async with r.http.post(f"{r.sandbox_url('booking')}/_sandbox/bookings", json=payload) as resp:
        return resp.status, await resp.json()


async def test_the_watchdog_does_not_reopen_the_last_room_booking_com_just_sold(running):
    r = running
    night = r.today() + timedelta(days=12)
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", night, night, rate_plan="BAR-DK", rooms=1,
                                     price_minor=88800, stop_sell=False), actor="test")
    r.d.wake_all()
    await r.converge([night])
    await r.settled(("booking",), timeout=120)  # the first full sync must not re-send the night later
    assert await r.rooms("booking", "DK", night) == 1

    # guest one takes the last room at Booking.com; the booking waits in the feed, unpulled
    status, first = await _book(r, night, "First Guest")
    assert status == 200, first
    assert await r.rooms("booking", "DK", night) == 0
    assert (await r.ledger.show("SHA-BUND", night, night))["rooms"][0]["sold"] == 0  # not pulled yet

    # the watchdog runs (read-back 0, the ledger's view 1)
    await check_drift(r.d, "booking")
    r.d.wake_all()
    # whatever it queued is pushed: let the push worker settle everything it has
    async def settled():
        return not [o for o in await r.ledger.outbox_pending("booking")]

    await r.wait_for(settled, timeout=20, what="booking's outbox to drain")

    # the room stays closed at Booking.com, and a second guest trying the same last room is refused
    assert await r.rooms("booking", "DK", night) == 0
    status, second = await _book(r, night, "Second Guest")
    assert status != 200, f"the last room was sold twice: {second}"
    assert await r.rooms("booking", "DK", night) == 0
    # because the watchdog pulled the first booking before comparing again
    b = await r.ledger.booking("booking", first["ota_booking_id"])
    assert b is not None and b["status"] == "confirmed"
    assert (await r.ledger.show("SHA-BUND", night, night))["rooms"][0]["sold"] == 1
    # and the other OTAs closed it too
    await r.converge([night])


async def test_a_drop_the_ledger_cannot_explain_is_raised_back_only_after_it_has_lasted(running, monkeypatch):
    """An extranet user closes rooms by hand (no booking in any feed): the watchdog holds the
    repair back while the drop is fresh (a sale may still be on its way), then repairs it."""
    from channelmgr.sync import drift

    monkeypatch.setattr(drift, "FRESH_SALE_SECONDS", 1.5, raising=False)  # a minute in the field
    r = running
    night = r.today() + timedelta(days=14)
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", night, night, rate_plan="BAR-DK", rooms=3,
                                     price_minor=88800, stop_sell=False), actor="test")
    r.d.wake_all()
    await r.converge([night])
    await r.settled(("booking",), timeout=120)  # the first full sync must not re-send the night later
    sandbox = r.d.channels["booking"].sandbox
    room, _ = r.codes("booking", "DK")
    sandbox.cells[(r.hotel("booking"), room, None, night)]["rooms_to_sell"] = 1  # by hand, at the OTA

    assert await check_drift(r.d, "booking") >= 1
    r.d.wake_all()
    await asyncio.sleep(1.0)
    assert await r.rooms("booking", "DK", night) == 1  # not raised in the same minute

    await asyncio.sleep(0.7)
    assert await check_drift(r.d, "booking") >= 1
    r.d.wake_all()
    await r.wait_for(lambda: _rooms_is(r, night, 3), timeout=20, what="the lasting drop to be repaired")


async def _rooms_is(r, night, n):
    return await r.rooms("booking", "DK", night) == n
