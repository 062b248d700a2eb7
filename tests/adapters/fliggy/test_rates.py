"""Prices and quota: increment vs update, Fliggy's window and ranges, per-item refusals."""

from __future__ import annotations

import json

import pytest

from adapters.base import AriUpdate, FatalError, Price, RateLimitedError, RetriableError
from adapters.base.http import Reply
from adapters.fliggy import codec
from adapters.fliggy.codec import M_RATES_INCREMENT, M_RATES_UPDATE, WINDOW_TEXT

from .conftest import HOTEL


def upd(env, offset, end=None, key="k", room="SK", rate="BAR_SK", **kw):
    kw.setdefault("prices", (Price(1, 39900), Price(2, 45600)))
    kw.setdefault("currency", "CNY")
    return AriUpdate(HOTEL, room, rate, env.day(offset), env.day(end if end is not None else offset), key=key, **kw)


def entry(env, offset, **cell):
    return {"out_rid": "SK", "rateplan_code": "BAR_SK",
            "data": {"use_room_inventory": False,
                     "inventory_price": [{"date": env.day(offset).isoformat(), "status": 1, **cell}]}}


async def test_a_delta_push_uses_increment_and_a_full_sync_uses_update(env):
    await env.adapter.push_ari([upd(env, 5, rooms_to_sell=3, stop_sell=False)])
    await env.adapter.push_ari([upd(env, 6, rooms_to_sell=2)], full=True)
    assert [c["method"] for c in env.calls()] == [M_RATES_INCREMENT, M_RATES_UPDATE]
    (inc,) = env.rate_maps(M_RATES_INCREMENT)
    assert inc == [{"out_rid": "SK", "rateplan_code": "BAR_SK", "data": {"use_room_inventory": False,
                    "inventory_price": [{"date": env.day(5).isoformat(), "quota": 3, "price": 45600, "status": 1}]}}]
    cell = env.sandbox.cell(HOTEL, "SK", "BAR_SK", env.day(6))
    assert (cell["rooms_to_sell"], cell["price_minor"], cell["currency"]) == (2, 45600, "CNY")


async def test_a_range_becomes_one_entry_with_a_price_per_night(env):
    out = await env.adapter.push_ari([upd(env, 10, 14, rooms_to_sell=1, stop_sell=True)])
    assert out.results[0].status == "applied"
    (m,) = env.rate_maps(M_RATES_INCREMENT)
    assert [p["date"] for p in m[0]["data"]["inventory_price"]] == [env.day(i).isoformat() for i in range(10, 15)]
    assert all(p["status"] == 0 and p["quota"] == 1 for p in m[0]["data"]["inventory_price"])
    assert env.sandbox.cell(HOTEL, "SK", "BAR_SK", env.day(12))["stop_sell"] is True


async def test_cells_outside_the_window_are_skipped_with_the_reason(env):
    out = await env.adapter.push_ari([
        upd(env, -3, -2, key="past"), upd(env, 181, 185, key="far"),
        upd(env, 178, 183, key="edge"), upd(env, -1, key="yesterday")])
    r = {x.key: x for x in out.results}
    assert (r["past"].status, r["past"].text) == ("skipped", WINDOW_TEXT)
    assert (r["far"].status, r["far"].text) == ("skipped", WINDOW_TEXT)
    assert r["edge"].status == "applied" and WINDOW_TEXT in r["edge"].text
    assert r["yesterday"].status == "applied"
    (m,) = env.rate_maps(M_RATES_INCREMENT)
    sent = sorted(p["date"] for e in m for p in e["data"]["inventory_price"])
    assert sent == sorted([env.day(i).isoformat() for i in (178, 179, 180)] + [env.day(-1).isoformat()])
    assert env.sandbox.cell(HOTEL, "SK", "BAR_SK", env.day(180))["price_minor"] == 45600


async def test_nothing_in_the_window_sends_nothing(env):
    out = await env.adapter.push_ari([upd(env, 200, key="far")])
    assert out.results[0].status == "skipped" and env.calls() == []


async def test_quota_is_clamped_and_price_is_the_highest_occupancys(env):
    await env.adapter.push_ari([upd(env, 4, rooms_to_sell=1500, prices=(Price(3, 70000), Price(2, 50000)))])
    cell = env.sandbox.cell(HOTEL, "SK", "BAR_SK", env.day(4))
    assert (cell["rooms_to_sell"], cell["price_minor"]) == (codec.QUOTA_MAX, 70000)


async def test_local_refusals_never_reach_fliggy(env):
    out = await env.adapter.push_ari([upd(env, 4, key="usd", currency="USD"),
                                      upd(env, 4, key="big", prices=(Price(2, 100_000_000),)),
                                      upd(env, 4, key="room", rate=None, rooms_to_sell=2, prices=())])
    assert [(x.status, x.code) for x in out.results] == [
        ("rejected", "CHANNELMGR_CURRENCY"), ("rejected", "CHANNELMGR_PRICE_RANGE"), ("skipped", None)]
    assert env.calls() == []


async def test_an_unknown_rate_plan_is_rejected_alone_and_the_rest_applied(env):
    out = await env.adapter.push_ari([upd(env, 3, key="ok"), upd(env, 3, key="bad", room="DK", rate="NOPE"),
                                      upd(env, 3, key="ok2", room="DK", rate="EB_DK")])
    r = {x.key: x for x in out.results}
    assert r["bad"].status == "rejected" and r["bad"].code == "isv.rateplan-not-exist"
    assert r["ok"].status == r["ok2"].status == "applied"
    assert env.sandbox.cell(HOTEL, "DK", "EB_DK", env.day(3))["price_minor"] == 45600
    assert len(env.calls(M_RATES_INCREMENT)) == 2  # refused whole, then sent again without it


async def test_more_than_30_items_go_in_calls_of_30(env):
    items = [upd(env, i % 20, key=f"k{i}", room="DK", rate="BAR_DK" if i % 2 else "EB_DK") for i in range(31)]
    out = await env.adapter.push_ari(items)
    assert all(x.status == "applied" for x in out.results)
    assert [len(m) for m in env.rate_maps(M_RATES_INCREMENT)] == [30, 1]


@pytest.mark.parametrize("bad, sub_code", [
    ({"quota": 1000}, "isv.invalid-parameter:quota"),
    ({"quota": -1}, "isv.invalid-parameter:quota"),
    ({"price": 0}, "isv.invalid-parameter:price"),
    ({"price": 100_000_000}, "isv.invalid-parameter:price"),
])
async def test_the_sandbox_refuses_values_out_of_range(env, bad, sub_code):
    with pytest.raises(FatalError) as e:
        await env.adapter.call(M_RATES_INCREMENT, {"rate_inventory_price_map": json.dumps([entry(env, 3, **bad)])})
    assert e.value.code == sub_code and "rate_inventory_price_map[0]" in e.value.text
    assert not e.value.retriable and env.sandbox.cell(HOTEL, "SK", "BAR_SK", env.day(3)) is None


async def test_the_sandbox_accepts_the_quota_sentinels(env):
    await env.adapter.call(M_RATES_INCREMENT, {"rate_inventory_price_map": json.dumps(
        [entry(env, 3, quota=60000), entry(env, 4, quota=61000)])})
    assert env.sandbox.cell(HOTEL, "SK", "BAR_SK", env.day(3))["stop_sell"] is True
    assert env.sandbox.cell(HOTEL, "SK", "BAR_SK", env.day(4))["stop_sell"] is False


@pytest.mark.parametrize("offset", [-2, 181])
async def test_the_sandbox_refuses_dates_outside_its_window(env, offset):
    with pytest.raises(FatalError) as e:
        await env.adapter.call(M_RATES_INCREMENT, {"rate_inventory_price_map": json.dumps([entry(env, offset, quota=1)])})
    assert e.value.code == "isv.invalid-parameter:date"


async def test_the_sandbox_refuses_more_than_30_entries(env):
    with pytest.raises(FatalError) as e:
        await env.adapter.call(M_RATES_INCREMENT, {"rate_inventory_price_map": json.dumps(
            [entry(env, i % 10, quota=1) for i in range(31)])})
    assert e.value.code == "isv.invalid-parameter:rate_inventory_price_map" and "30" in e.value.text
    assert env.sandbox.cells == {}


def reply(payload: dict, status: int = 200, headers: dict | None = None) -> Reply:
    return Reply(status, headers or {}, json.dumps(payload).encode(), 1.0)


def top(code, msg="x", sub_code=None, sub_msg=None):
    err = {"code": code, "msg": msg, "request_id": "r1"}
    if sub_code:
        err["sub_code"] = sub_code
    if sub_msg:
        err["sub_msg"] = sub_msg
    return {"error_response": err}


def test_error_responses_are_classified(env):
    a = env.adapter
    with pytest.raises(RateLimitedError) as e:
        a._interpret(reply(top(8, "Call frequency exceeded")))
    assert e.value.retry_after == a.opts.rate_limit_default_seconds > 0
    with pytest.raises(RateLimitedError) as e:
        a._interpret(reply(top(7, "App Call Limited", "accesscontrol.limited-by-app-access-count",
                               "This ban will last for 42 more seconds")))
    assert e.value.retry_after == 42
    with pytest.raises(RetriableError) as e:
        a._interpret(reply(top(15, "Remote service error", "isp.remote-service-timeout")))
    assert not isinstance(e.value, RateLimitedError) and e.value.request_id == "r1"
    with pytest.raises(FatalError) as e:
        a._interpret(reply(top(15, "Remote service error", "isv.invalid-parameter", "bad")))
    assert e.value.code == "isv.invalid-parameter"
    with pytest.raises(RateLimitedError) as e:
        a._interpret(reply(top(7, "App Call Limited"), status=429))
    assert e.value.retry_after and e.value.retry_after > 0
    with pytest.raises(RetriableError):
        a._interpret(Reply(502, {}, b"<html>bad gateway</html>", 1.0))
    with pytest.raises(RetriableError):
        a._interpret(Reply(200, {}, b"{not json", 1.0))
