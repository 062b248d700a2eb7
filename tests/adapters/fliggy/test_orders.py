"""Orders: searched, fetched, confirmed with order.update only once committed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from adapters.base import Confirmation, FatalError
from adapters.base.sandbox import Faults
from adapters.fliggy.codec import M_ORDER_DETAIL, M_ORDER_SEARCH, M_ORDER_UPDATE

from .conftest import HOTEL

NAME = "欧阳娜娜"
REQUESTS = "高楼层，无烟房；晚到 23:30 / late arrival\n需要婴儿床"
CST = timezone(timedelta(hours=8))


def book(env, **kw):
    data = {"hotel": HOTEL, "room": "DK", "rate": "BAR_DK", "checkin": env.day(3).isoformat(),
            "checkout": env.day(5).isoformat(), "guest": {"name": NAME, "phone": "+86 138 0013 8000",
                                                          "email": "ouyang@example.cn"},
            "amount_minor": 91201, "currency": "CNY", "special_requests": REQUESTS}
    data.update(kw)
    return env.sandbox.inject(data).ota_booking_id


def conf(d) -> Confirmation:
    return Confirmation(f"CM-{d.revision.ota_booking_id}", "cancelled" if d.revision.action == "cancel" else "confirmed")


async def test_an_order_arrives_whole_with_chinese_text_byte_for_byte(env):
    oid = book(env)
    (d,) = await env.adapter.pull_bookings()
    rev = d.revision
    assert (d.kind, rev.channel, rev.action, rev.hotel, rev.ota_booking_id) == \
        ("reservation", "fliggy", "new", HOTEL, oid)
    (stay,) = rev.stays
    assert (stay.room, stay.rate, stay.checkin, stay.checkout, stay.rooms, stay.guests) == \
        ("DK", "BAR_DK", env.day(3), env.day(5), 1, 2)
    assert [n.amount_minor for n in stay.nightly] == [45600, 45601]
    assert (rev.amount_minor, rev.currency) == (91201, "CNY")
    assert rev.guest.name.encode() == NAME.encode() and rev.special_requests.encode() == REQUESTS.encode()
    assert (rev.guest.phone, rev.guest.email) == ("+86 138 0013 8000", "ouyang@example.cn")
    assert NAME.encode() in d.raw and json.loads(d.raw)["hotel_orders"][0]["message"] == REQUESTS
    assert rev.booked_at.utcoffset() == timedelta(hours=8) and rev.revised_at.utcoffset() == timedelta(hours=8)
    assert env.sandbox.booking_state(oid)["state"] == "delivered"


async def test_order_update_is_called_only_by_acknowledge(env):
    oid = book(env)
    (d,) = await env.adapter.pull_bookings()
    (again,) = await env.adapter.pull_bookings()  # not confirmed: served again, same revision
    assert again.revision.revision == d.revision.revision
    assert env.calls(M_ORDER_UPDATE) == []
    await env.adapter.acknowledge([(again, conf(again))])
    (upd,) = env.calls(M_ORDER_UPDATE)
    assert (upd["tid"], upd["opt_type"], upd["confirm_code"]) == (oid, "2", f"CM-{oid}")
    assert env.sandbox.booking_state(oid)["state"] == "acknowledged"
    assert env.sandbox.confirm_codes[oid] == f"CM-{oid}"
    assert await env.adapter.pull_bookings() == []
    assert await env.make().pull_bookings() == []  # a fresh adapter: Fliggy says nothing waits


async def test_modify_and_cancel_have_their_own_revisions_and_the_cancel_is_acknowledged(env):
    oid = book(env)
    (new,) = await env.adapter.pull_bookings()
    await env.adapter.acknowledge([(new, conf(new))])
    env.sandbox.inject({"action": "modify", "ota_booking_id": oid, "checkout": env.day(6).isoformat(),
                        "amount_minor": 136800})
    (mod,) = await env.adapter.pull_bookings()
    assert (mod.kind, mod.revision.action, mod.revision.stays[0].checkout) == ("modification", "modify", env.day(6))
    await env.adapter.acknowledge([(mod, conf(mod))])
    env.sandbox.inject({"action": "cancel", "ota_booking_id": oid})
    (cancel,) = await env.adapter.pull_bookings()
    assert (cancel.kind, cancel.revision.action) == ("cancellation", "cancel")
    assert len({new.revision.revision, mod.revision.revision, cancel.revision.revision}) == 3
    await env.adapter.acknowledge([(cancel, conf(cancel))])
    assert [c["opt_type"] for c in env.calls(M_ORDER_UPDATE)] == ["2", "2", "1"]
    assert all(r["state"] == "acknowledged" for r in env.sandbox.booking_state(oid)["revisions"])
    assert await env.adapter.pull_bookings() == []


async def test_more_than_20_orders_are_read_page_by_page(env):
    oids = {book(env, checkin=env.day(10 + i % 5).isoformat(), checkout=env.day(11 + i % 5).isoformat(),
                 room="SK", rate="BAR_SK", force=True) for i in range(25)}
    deliveries = await env.adapter.pull_bookings()
    assert {d.revision.ota_booking_id for d in deliveries} == oids
    assert [c["page_no"] for c in env.calls(M_ORDER_SEARCH)] == ["1", "2"]
    assert all(len(c["tids"].split(",")) <= 20 for c in env.calls(M_ORDER_DETAIL))


async def test_search_windows_are_at_most_30_days_and_within_90(env):
    a = env.make({"lookback_days": 90})
    book(env)
    assert len(await a.pull_bookings()) == 1
    searches = env.calls(M_ORDER_SEARCH)
    assert len(searches) == 3
    now = datetime.now(CST)
    for c in searches:
        start = datetime.strptime(c["created_start"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=CST)
        end = datetime.strptime(c["created_end"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=CST)
        assert timedelta(0) < end - start <= timedelta(days=30)
        assert start >= now - timedelta(days=90, minutes=1)


async def test_the_sandbox_refuses_a_window_over_30_days(env):
    now = datetime.now(CST)
    with pytest.raises(FatalError) as e:
        await env.adapter.call(M_ORDER_SEARCH, {
            "created_start": (now - timedelta(days=31)).strftime("%Y-%m-%d %H:%M:%S"),
            "created_end": now.strftime("%Y-%m-%d %H:%M:%S")})
    assert e.value.code == "isv.invalid-parameter:created_window"
    with pytest.raises(FatalError):
        await env.adapter.call(M_ORDER_DETAIL, {"tids": ",".join(str(i) for i in range(21))})


async def test_a_corrupted_detail_is_reported_with_its_raw_bytes_and_never_confirmed(env):
    oid = book(env)
    env.sandbox.faults = Faults(malformed_rate=1.0)
    (bad,) = await env.adapter.pull_bookings()
    assert bad.error and bad.revision is None and bad.raw and bad.ack_ref is None
    await env.adapter.acknowledge([(bad, Confirmation("x", "confirmed"))])
    assert env.calls(M_ORDER_UPDATE) == [] and env.sandbox.booking_state(oid)["state"] == "delivered"
    env.sandbox.faults = Faults()
    (good,) = await env.adapter.pull_bookings()
    assert good.revision.guest.name == NAME


async def test_the_classic_unsimplified_answer_is_read_too(env):
    a = env.make({"simplify": False})
    oid = book(env)
    (d,) = await a.pull_bookings()
    assert d.revision.ota_booking_id == oid and d.revision.special_requests == REQUESTS
    assert "xhotel_order_detail_search_response" in json.loads(d.raw)


async def test_the_sync_log_counts_the_orders_a_search_brought(env):
    """Issue 9: ``order.search`` logged items=0 for searches that found orders."""
    from aiohttp import ClientSession

    async with ClientSession() as s:
        for i in range(23):
            async with s.post(f"{env.base}/_sandbox/bookings", json={
                    "hotel": HOTEL, "room": "SK", "rate": "BAR_SK", "checkin": env.day(10 + i % 5).isoformat(),
                    "checkout": env.day(11 + i % 5).isoformat(), "amount_minor": 50000, "force": True}) as r:
                assert r.status == 200, await r.text()
    deliveries = await env.adapter.pull_bookings()
    assert len(deliveries) == 23
    searches = [e for e in env.exchanges if e.operation == "order.search"]
    assert sum(e.items for e in searches) == 23 and max(e.items for e in searches) == 20
    assert all(e.result == "ok" for e in searches)
    details = [e for e in env.exchanges if e.operation == "order.detail.search"]
    assert sum(e.items for e in details) == 23
