"""Reservations pulled from the sandbox feed and acknowledged only once committed."""

from __future__ import annotations

import pytest
from aiohttp import web

from adapters.base import ChannelSettings, Confirmation, RetriableError
from adapters.base.sandbox import Faults
from adapters.booking import BookingAdapter

from .conftest import HOTEL, JPY_HOTEL, JPY_RATE, JPY_ROOM, RATE, ROOM

NAME = "欧阳娜娜"
REQUESTS = "高楼层，无烟房；晚到 23:30 / late arrival\n需要婴儿床"


def book(env, **kw):
    data = {"hotel": HOTEL, "room": ROOM, "rate": RATE, "checkin": env.day(3).isoformat(),
            "checkout": env.day(5).isoformat(), "guest": {"name": NAME, "phone": "+86 138 0013 8000",
                                                          "email": "ouyang@example.cn"},
            "amount_minor": 91200, "currency": "CNY", "special_requests": REQUESTS}
    data.update(kw)
    return env.sandbox.inject(data).ota_booking_id


def conf(d) -> Confirmation:
    return Confirmation(f"CM-{d.revision.ota_booking_id}", "cancelled" if d.revision.action == "cancel" else "confirmed")


async def test_a_booking_arrives_whole_and_is_acknowledged_only_when_told(env):
    oid = book(env)
    (d,) = await env.adapter.pull_bookings()
    rev = d.revision
    assert (d.kind, rev.action, rev.hotel, rev.ota_booking_id) == ("reservation", "new", HOTEL, oid)
    (stay,) = rev.stays
    assert (stay.room, stay.rate, stay.checkin, stay.checkout, stay.rooms, stay.guests) == \
        (ROOM, RATE, env.day(3), env.day(5), 1, 2)
    assert [n.amount_minor for n in stay.nightly] == [45600, 45600]
    assert (rev.amount_minor, rev.currency) == (91200, "CNY")
    assert rev.guest.name.encode() == NAME.encode() and rev.special_requests.encode() == REQUESTS.encode()
    assert (rev.guest.phone, rev.guest.email) == ("+86 138 0013 8000", "ouyang@example.cn")
    assert NAME.encode("utf-8") in d.raw and REQUESTS.encode("utf-8") in d.raw
    assert rev.revised_at.tzinfo is not None and rev.booked_at.tzinfo is not None
    assert env.sandbox.booking_state(oid)["state"] == "delivered"

    # not acknowledged: Booking.com serves it again, same revision id
    (again,) = await env.adapter.pull_bookings()
    assert again.revision.revision == rev.revision
    await env.adapter.acknowledge([(again, conf(again))])
    assert env.sandbox.booking_state(oid)["state"] == "acknowledged"
    assert await env.adapter.pull_bookings() == []


async def test_only_committed_bookings_are_acknowledged(env):
    first, second = book(env), book(env, room=ROOM, checkin=env.day(6).isoformat(), checkout=env.day(7).isoformat())
    deliveries = await env.adapter.pull_bookings()
    assert {d.revision.ota_booking_id for d in deliveries} == {first, second}
    committed = [d for d in deliveries if d.revision.ota_booking_id == first]
    await env.adapter.acknowledge([(d, conf(d)) for d in committed])
    assert env.sandbox.booking_state(first)["state"] == "acknowledged"
    assert env.sandbox.booking_state(second)["state"] == "delivered"
    (left,) = await env.adapter.pull_bookings()
    assert left.revision.ota_booking_id == second
    ack = [r for r in env.protocol_requests() if r["method"] == "POST"][-1]
    assert first in ack["body"] and second not in ack["body"] and "BasicPropertyInfo" in ack["body"]


async def test_modify_and_cancel_come_from_the_modify_feed_with_their_own_revisions(env):
    oid = book(env)
    (new,) = await env.adapter.pull_bookings()
    await env.adapter.acknowledge([(new, conf(new))])
    env.sandbox.inject({"action": "modify", "ota_booking_id": oid, "checkout": env.day(6).isoformat(),
                        "amount_minor": 136801})
    env.sandbox.inject({"action": "cancel", "ota_booking_id": oid})
    mod, cancel = await env.adapter.pull_bookings()
    assert (mod.kind, mod.revision.action, cancel.kind, cancel.revision.action) == \
        ("modification", "modify", "cancellation", "cancel")
    assert mod.revision.stays[0].checkout == env.day(6) and mod.revision.amount_minor == 136801
    assert sum(n.amount_minor for n in mod.revision.stays[0].nightly) == 136801
    assert len({new.revision.revision, mod.revision.revision, cancel.revision.revision}) == 3
    assert new.revision.revised_at <= mod.revision.revised_at <= cancel.revision.revised_at
    await env.adapter.acknowledge([(mod, conf(mod)), (cancel, conf(cancel))])
    assert all(r["state"] == "acknowledged" for r in env.sandbox.booking_state(oid)["revisions"])
    ack = [r for r in env.protocol_requests() if r["method"] == "POST"][-1]
    assert ack["path"] == "/hotels/ota/OTA_HotelResModifyNotif" and "OTA_HotelResModifyNotifRS" in ack["body"]


async def test_a_jpy_booking_keeps_its_whole_yen(env):
    env.sandbox.inject({"hotel": JPY_HOTEL, "room": JPY_ROOM, "rate": JPY_RATE, "checkin": env.day(3).isoformat(),
                        "checkout": env.day(6).isoformat(), "amount_minor": 30001, "currency": "JPY"})
    (d,) = await env.adapter.pull_bookings()
    assert (d.revision.amount_minor, d.revision.currency) == (30001, "JPY")
    assert [n.amount_minor for n in d.revision.stays[0].nightly] == [10000, 10000, 10001]


async def test_a_corrupted_message_is_reported_with_its_raw_bytes_and_served_again(env):
    oid = book(env)
    env.sandbox.faults = Faults(malformed_rate=1.0)
    (bad,) = await env.adapter.pull_bookings()
    assert bad.error and bad.revision is None and bad.raw and bad.ack_ref is None
    await env.adapter.acknowledge([(bad, Confirmation("x", "confirmed"))])  # nothing to acknowledge
    assert env.sandbox.booking_state(oid)["state"] == "delivered"
    env.sandbox.faults = Faults()
    (good,) = await env.adapter.pull_bookings()
    assert good.revision.ota_booking_id == oid and good.revision.guest.name == NAME


async def test_a_5xx_on_acknowledge_is_retried_then_reported(env):
    book(env)
    (d,) = await env.adapter.pull_bookings()
    env.sandbox.faults = Faults(error_rate=1.0, status=503)
    with pytest.raises(RetriableError):
        await env.adapter.acknowledge([(d, conf(d))])
    posts = [r for r in env.protocol_requests() if r["method"] == "POST"]
    assert len(posts) == env.adapter.opts.ack_attempts == 3


async def test_the_pull_filters_by_hotel_ids_when_configured(env):
    book(env)
    only_jpy = env.make({"hotel_ids": [JPY_HOTEL]})
    assert await only_jpy.pull_bookings() == []
    assert env.protocol_requests()[-1]["query"] == f"hotel_ids={JPY_HOTEL}"
    assert len(await env.adapter.pull_bookings()) == 1


async def test_an_xxe_reservation_feed_is_refused_and_nothing_is_read():
    """A hostile server (not the sandbox) answers the pull with an external entity."""
    payload = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               b'<OTA_HotelResNotifRQ xmlns="http://www.opentravel.org/OTA/2003/05" Version="1">&x;'
               b'</OTA_HotelResNotifRQ>')

    async def feed(request):
        return web.Response(body=payload, content_type="text/xml")

    app = web.Application()
    app.router.add_get("/hotels/ota/OTA_HotelResNotif", feed)
    app.router.add_get("/hotels/ota/OTA_HotelResModifyNotif", feed)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    adapter = BookingAdapter(ChannelSettings("booking", f"http://127.0.0.1:{port}",
                                             {"username": "user", "password": "pass"}))
    try:
        deliveries = await adapter.pull_bookings()
    finally:
        await adapter.close()
        await runner.cleanup()
    assert len(deliveries) == 2 and all(d.revision is None for d in deliveries)
    assert all("DOCTYPE or ENTITY" in d.error for d in deliveries)
    assert all(d.raw == payload for d in deliveries)  # kept as received, never expanded


async def test_the_sync_log_counts_the_reservations_a_pull_brought(env):
    """Issue 9: ``pull_reservations`` logged items=0 for pulls that brought bookings."""
    from aiohttp import ClientSession

    async with ClientSession() as s:
        for offset in (3, 6):
            async with s.post(f"{env.base}/_sandbox/bookings", json={
                    "hotel": HOTEL, "room": ROOM, "rate": RATE, "checkin": env.day(offset).isoformat(),
                    "checkout": env.day(offset + 1).isoformat(), "amount_minor": 45600, "currency": "CNY"}) as r:
                assert r.status == 200, await r.text()
                oid = (await r.json())["ota_booking_id"]
    deliveries = await env.adapter.pull_bookings()
    assert len(deliveries) == 2
    pulls = {e.operation: e for e in env.exchanges if e.operation.startswith("pull_")}
    assert (pulls["pull_reservations"].items, pulls["pull_modifications"].items) == (2, 0)
    assert pulls["pull_reservations"].result == "ok"

    await env.adapter.acknowledge([(d, conf(d)) for d in deliveries])
    env.exchanges.clear()
    async with ClientSession() as s, s.post(f"{env.base}/_sandbox/bookings", json={
            "action": "cancel", "ota_booking_id": oid}) as r:
        assert r.status == 200, await r.text()
    (cancel,) = await env.adapter.pull_bookings()
    pulls = {e.operation: e for e in env.exchanges if e.operation.startswith("pull_")}
    assert (pulls["pull_reservations"].items, pulls["pull_modifications"].items) == (0, 1)
