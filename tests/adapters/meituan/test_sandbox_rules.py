"""What the sandbox enforces and how the adapter classifies each answer."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from adapters.base import AriUpdate, AuthError, FatalError, Price, RateLimitedError, RetriableError
from adapters.base.sandbox import Faults

from .conftest import HOTEL, RATE, RATE2, RATE3, ROOM, ROOM2


def rate_items(env, n: int, start: int = 1) -> list[AriUpdate]:
    return [AriUpdate(HOTEL, ROOM, RATE, env.day(start + i), env.day(start + i), prices=(Price(2, 40000 + i),),
                      currency="CNY", key=f"k{i}") for i in range(n)]


async def test_forty_items_pass_and_forty_one_are_refused_as_a_fatal_batch_error(env):
    outcome = await env.adapter.push_ari(rate_items(env, 40))
    assert [r.status for r in outcome.results] == ["applied"] * 40
    with pytest.raises(FatalError) as e:
        await env.adapter.push_ari(rate_items(env, 41, start=50))
    assert e.value.code == "1102" and not isinstance(e.value, AuthError) and not e.value.retriable
    assert env.sandbox.cell(HOTEL, ROOM, RATE, env.day(50)) is None  # nothing of it applied
    assert env.adapter.capabilities.max_items_per_message == 40


async def test_the_wire_item_carries_fen_ranges_and_restrictions(env):
    s, e = env.day(5), env.day(7)
    await env.adapter.push_ari([
        AriUpdate(HOTEL, ROOM, None, s, e, rooms_to_sell=3, key="r"),
        AriUpdate(HOTEL, ROOM, RATE, s, e, prices=(Price(1, 39900), Price(2, 45600)), currency="CNY",
                  min_los=2, max_los=5, stop_sell=True, key="p")])
    (req,) = env.protocol_requests()
    body = json.loads(req["body"])["body"]
    assert body["hotelId"] == HOTEL
    assert body["items"] == [
        {"seq": 0, "roomId": ROOM, "startDate": s.isoformat(), "endDate": e.isoformat(), "inventory": 3},
        {"seq": 1, "roomId": ROOM, "ratePlanId": RATE, "startDate": s.isoformat(), "endDate": e.isoformat(),
         "price": 45600, "occupancy": 2, "currency": "CNY", "minLos": 2, "maxLos": 5, "closed": True}]
    cell = env.sandbox.cell(HOTEL, ROOM, RATE, env.day(6))
    assert (cell["price_minor"], cell["min_los"], cell["max_los"], cell["stop_sell"]) == (45600, 2, 5, True)
    assert env.sandbox.cell(HOTEL, ROOM, None, e)["rooms_to_sell"] == 3


async def test_bad_items_are_rejected_with_meituans_code_and_the_rest_applied(env):
    d = env.day(2)
    far = env.sandbox.today(HOTEL) + timedelta(days=181)
    outcome = await env.adapter.push_ari([
        AriUpdate(HOTEL, ROOM, RATE, d, d, prices=(Price(2, 50000),), currency="CNY", key="ok"),
        AriUpdate(HOTEL, ROOM, RATE3, d, d, prices=(Price(2, 50000),), currency="CNY", key="wrong-room"),
        AriUpdate(HOTEL, "999", None, d, d, rooms_to_sell=1, key="unknown-room"),
        AriUpdate(HOTEL, ROOM, RATE2, far, far, prices=(Price(2, 50000),), currency="CNY", key="too-far"),
        AriUpdate(HOTEL, ROOM2, RATE3, d, d, prices=(Price(2, 0),), currency="CNY", key="zero"),
        AriUpdate(HOTEL, ROOM2, RATE3, d, d, min_los=5, max_los=2, key="los"),
        AriUpdate(HOTEL, ROOM2, RATE3, d, d, prices=(Price(2, 100),), currency="USD", key="usd"),
    ])
    got = {r.key: (r.status, r.code) for r in outcome.results}
    assert got == {"ok": ("applied", None), "wrong-room": ("rejected", "2003"), "unknown-room": ("rejected", "2002"),
                   "too-far": ("rejected", "2004"), "zero": ("rejected", "2005"), "los": ("rejected", "2005"),
                   "usd": ("rejected", "CHANNELMGR_CURRENCY")}
    assert env.sandbox.cell(HOTEL, ROOM, RATE, d)["price_minor"] == 50000
    assert env.sandbox.cell(HOTEL, ROOM2, RATE3, d) is None
    assert env.exchanges[-1].result == "partial"


@pytest.mark.parametrize("hhmm,yesterday", [((12, 0), "rejected"), ((6, 0), "rejected"), ((2, 30), "applied"),
                                             ((5, 59), "applied")])
async def test_yesterday_is_refused_after_6_and_sold_as_tonight_before(env, hhmm, yesterday):
    import time_machine

    from adapters.meituan.sandbox import BEIJING

    now = datetime.now(BEIJING)
    at = datetime(now.year, now.month, now.day, *hhmm, tzinfo=BEIJING)
    with time_machine.travel(at, tick=True):
        today = datetime.now(BEIJING).date()
        y, dby = today - timedelta(days=1), today - timedelta(days=2)
        outcome = await env.adapter.push_ari([AriUpdate(HOTEL, ROOM, None, y, y, rooms_to_sell=1, key="y"),
                                              AriUpdate(HOTEL, ROOM, None, dby, dby, rooms_to_sell=1, key="dby")])
    got = {r.key: (r.status, r.code) for r in outcome.results}
    assert got["y"] == ((yesterday, None) if yesterday == "applied" else (yesterday, "2004"))
    assert got["dby"] == ("rejected", "2004")  # the day before yesterday: never


async def test_an_unknown_hotel_is_fatal(env):
    d = env.day(1)
    with pytest.raises(FatalError) as e:
        await env.adapter.push_ari([AriUpdate("1", ROOM, None, d, d, rooms_to_sell=1, key="h")])
    assert e.value.code == "2001"


async def test_two_hotels_in_one_batch_never_leave(env):
    d = env.day(1)
    with pytest.raises(FatalError) as e:
        await env.adapter.push_ari([AriUpdate(HOTEL, ROOM, None, d, d, rooms_to_sell=1, key="a"),
                                    AriUpdate("2", ROOM, None, d, d, rooms_to_sell=1, key="b")])
    assert e.value.code == "CHANNELMGR_BATCH_LIMIT"
    assert env.protocol_requests() == []


async def test_an_item_with_nothing_to_say_is_skipped_without_a_call(env):
    d = env.day(1)
    outcome = await env.adapter.push_ari([AriUpdate(HOTEL, ROOM, RATE, d, d, key="empty")])
    assert outcome.results[0].status == "skipped"
    assert env.protocol_requests() == []


async def test_busy_and_throttled_answers_are_retriable(env):
    upd = rate_items(env, 1)
    env.sandbox.faults = Faults(error_rate=1.0, status=429)  # no Retry-After header at all
    with pytest.raises(RateLimitedError) as e:
        await env.adapter.push_ari(upd)
    assert e.value.retry_after and e.value.retry_after > 0
    env.sandbox.faults = Faults(error_rate=1.0, status=502)
    with pytest.raises(RetriableError) as e2:
        await env.adapter.push_ari(upd)
    assert e2.value.code == "5001" and not isinstance(e2.value, RateLimitedError)
    env.sandbox.faults = Faults()
    assert (await env.adapter.push_ari(upd)).results[0].status == "applied"


async def test_read_back_spans_more_than_31_days_in_pieces(env):
    s = env.day(1)
    e = s + timedelta(days=39)
    await env.adapter.push_ari([AriUpdate(HOTEL, ROOM, None, s, e, rooms_to_sell=4, key="r"),
                                AriUpdate(HOTEL, ROOM, RATE, s, e, prices=(Price(2, 51000),), currency="CNY",
                                          stop_sell=False, key="p")])
    env.sandbox.requests.clear()
    held = await env.adapter.read_back(HOTEL, s, e)
    assert len(env.protocol_requests()) == 2
    rooms = {u.start: u.rooms_to_sell for u in held if u.rate is None}
    assert len(rooms) == 40 and set(rooms.values()) == {4}
    prices = {u.start: u.prices for u in held if u.rate == RATE}
    assert prices[e] == (Price(2, 51000),)


async def test_credentials_never_reach_the_sync_log(env):
    await env.adapter.push_ari(rate_items(env, 2))
    bad = env.make(creds={**env.creds, "secret": "wrong-secret-value"})
    with pytest.raises(AuthError):
        await bad.push_ari(rate_items(env, 1))
    for ex in env.exchanges:
        for text in (ex.request or "", ex.response or "", ex.error or ""):
            for s in env.creds.values():
                assert s not in text
