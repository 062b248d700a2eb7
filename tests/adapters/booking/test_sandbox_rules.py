"""What Booking.com enforces, as the sandbox answers it and as the adapter classifies it."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from lxml import etree

from adapters.base import (
    AriUpdate,
    AuthError,
    FatalError,
    Price,
    RateLimitedError,
    RetriableError,
)
from adapters.base.sandbox import Faults
from adapters.booking import codec
from adapters.booking.codec import Built

from .conftest import HOTEL, JPY_HOTEL, JPY_RATE, JPY_ROOM, RATE, ROOM, ROOM2

OTA = "{http://www.opentravel.org/OTA/2003/05}"
AVAIL = "/hotels/ota/OTA_HotelAvailNotif"


async def send_raw(adapter, body: bytes, locators: dict[str, int], path: str = AVAIL):
    """Send a hand-made message through the adapter's own transport and classification."""
    built = Built(body, locators)
    return await adapter._send("POST", path, operation="test", body=body,
                               interpret=lambda r: adapter._interpret_notif(r, built))


def rate_item(env, day, key="p", **kw) -> AriUpdate:
    values = {"prices": (Price(2, 50000),), "currency": "CNY"}
    values.update(kw)
    return AriUpdate(HOTEL, ROOM, RATE, day, day, key=key, **values)


async def test_wrong_credentials_get_401_in_bookings_format_and_an_auth_error(env):
    bad = env.make(creds={k: v + "-wrong" for k, v in env.creds.items()})
    with pytest.raises(AuthError) as e:
        await bad.push_ari([rate_item(env, env.day(3))])
    assert e.value.status == 401 and not e.value.retriable
    assert e.value.request_id == env.sandbox.ruids[-1]
    status, _, body = await env.raw("POST", AVAIL, b"<x/>", {"Accept-Version": "1.1"})
    assert status == 401
    assert body.startswith(b"<?xml") and b'<Errors><Error ShortText="Authorization Required"/></Errors>' in body
    assert codec.ruid(body)


async def test_accept_version_is_required_and_always_sent(env):
    await env.adapter.push_ari([rate_item(env, env.day(3))])
    await env.adapter.pull_bookings()
    await env.adapter.read_back(HOTEL, env.day(3), env.day(3))
    sent = env.protocol_requests()
    assert len(sent) == 4 and all(r["headers"].get("Accept-Version") == "1.1" for r in sent)
    body = codec.avail_notif(HOTEL, [AriUpdate(HOTEL, ROOM, None, env.day(3), env.day(3), rooms_to_sell=1)]).body
    auth = (await env.adapter.auth.headers(env.adapter._fetch_token))
    status, _, answer = await env.raw("POST", AVAIL, body, auth)
    assert status == 400 and codec.read_answer(answer).errors[0].code == "VERSION_REQUIRED"


async def test_two_hotels_in_one_batch_are_refused_before_sending_and_by_the_ota(env):
    d = env.day(3)
    with pytest.raises(FatalError, match="one hotel per message"):
        await env.adapter.push_ari([rate_item(env, d), AriUpdate(JPY_HOTEL, JPY_ROOM, None, d, d, rooms_to_sell=1)])
    assert env.protocol_requests() == []  # nothing left the adapter
    # a message that names two hotels anyway is refused whole by Booking.com (400, Errors)
    built = codec.avail_notif(HOTEL, [AriUpdate(HOTEL, ROOM, None, d, d, rooms_to_sell=1)])
    root = etree.fromstring(built.body)
    second = copy.deepcopy(root.find(f"{OTA}AvailStatusMessages"))
    second.set("HotelCode", JPY_HOTEL)
    root.append(second)
    with pytest.raises(FatalError) as e:
        await send_raw(env.adapter, etree.tostring(root), built.locators)
    assert (e.value.code, e.value.status) == ("MULTIPLE_HOTELS", 400) and e.value.request_id
    assert env.sandbox.cell(HOTEL, ROOM, None, d) is None


async def test_two_months_in_one_batch_are_refused_before_sending_and_by_the_ota(env):
    last, first = env.day(0) - timedelta(days=1), env.day(0)  # the last of a month and the 1st of the next
    with pytest.raises(FatalError, match="one calendar month"):
        await env.adapter.push_ari([rate_item(env, last, "a"), rate_item(env, first, "b")])
    with pytest.raises(FatalError, match="one calendar month"):
        await env.adapter.push_ari([AriUpdate(HOTEL, ROOM, None, last, first, rooms_to_sell=2)])
    assert env.protocol_requests() == []
    built = codec.avail_notif(HOTEL, [AriUpdate(HOTEL, ROOM, None, last, first, rooms_to_sell=2)])
    with pytest.raises(FatalError) as e:
        await send_raw(env.adapter, built.body, built.locators)
    assert e.value.code == "MULTIPLE_MONTHS" and e.value.status == 400
    assert env.sandbox.cell(HOTEL, ROOM, None, first) is None


async def test_yesterday_is_accepted_but_two_days_ago_is_not_a_valid_date(env):
    today = env.sandbox.today()
    yesterday, two_ago = today - timedelta(days=1), today - timedelta(days=2)
    outcome = await env.adapter.push_ari([AriUpdate(HOTEL, ROOM, None, yesterday, yesterday, rooms_to_sell=1, key="y")])
    assert outcome.results[0].status == "applied"
    if two_ago.month == yesterday.month:
        outcome = await env.adapter.push_ari([
            AriUpdate(HOTEL, ROOM, None, two_ago, two_ago, rooms_to_sell=1, key="old"),
            AriUpdate(HOTEL, ROOM, None, yesterday, yesterday, rooms_to_sell=3, key="ok")])
        assert {r.key: (r.status, r.code) for r in outcome.results} == {
            "old": ("rejected", "NOT_A_VALID_DATE"), "ok": ("applied", None)}
    outcome = await env.adapter.push_ari([AriUpdate(HOTEL, ROOM, None, two_ago, two_ago, rooms_to_sell=1, key="o")])
    (r,) = outcome.results
    assert (r.status, r.code, r.retriable) == ("rejected", "NOT_A_VALID_DATE", False)
    assert env.sandbox.cell(HOTEL, ROOM, None, two_ago) is None


async def test_an_unknown_room_or_rate_is_room_id_invalid(env):
    d = env.day(4)
    outcome = await env.adapter.push_ari([
        AriUpdate(HOTEL, "99999", None, d, d, rooms_to_sell=1, key="room"),
        AriUpdate(HOTEL, ROOM, "999", d, d, prices=(Price(2, 100),), currency="CNY", key="rate"),
        AriUpdate(HOTEL, ROOM2, RATE, d, d, stop_sell=True, key="rate-of-other-room")])
    assert [(r.key, r.status, r.code) for r in outcome.results] == [
        ("room", "rejected", "ROOM_ID_INVALID"), ("rate", "rejected", "ROOM_ID_INVALID"),
        ("rate-of-other-room", "rejected", "ROOM_ID_INVALID")]
    assert len(outcome.request_ids) == 2  # one RUID per message sent


async def test_an_unknown_hotel_is_403_and_fatal(env):
    d = env.day(4)
    with pytest.raises(FatalError) as e:
        await env.adapter.push_ari([AriUpdate("777", ROOM, None, d, d, rooms_to_sell=1)])
    assert e.value.status == 403 and e.value.code == "NO_ACCESS_TO_HOTEL" and not isinstance(e.value, AuthError)


async def test_a_currency_other_than_the_hotels_is_refused_with_bookings_code(env):
    d = env.day(5)
    outcome = await env.adapter.push_ari([rate_item(env, d, "usd", currency="USD"), rate_item(env, d + timedelta(1))])
    assert [(r.key, r.status, r.code) for r in outcome.results] == [
        ("usd", "rejected", "CURRENCY_CODE_DONT_MATCH_HOTEL_CURRENCY"), ("p", "applied", None)]
    assert env.sandbox.cell(HOTEL, ROOM, RATE, d) is None
    assert env.sandbox.cell(HOTEL, ROOM, RATE, d + timedelta(1))["price_minor"] == 50000


async def test_partial_success_applies_the_good_item_and_rejects_the_bad_with_its_code(env):
    d = env.day(6)
    outcome = await env.adapter.push_ari([
        AriUpdate(HOTEL, ROOM, None, d, d, rooms_to_sell=4, key="good"),
        AriUpdate(HOTEL, "nope", None, d, d, rooms_to_sell=4, key="bad")])
    assert {r.key: (r.status, r.code) for r in outcome.results} == {
        "good": ("applied", None), "bad": ("rejected", "ROOM_ID_INVALID")}
    assert env.sandbox.cell(HOTEL, ROOM, None, d)["rooms_to_sell"] == 4
    ex = [x for x in env.exchanges if x.operation == "avail_notif"][-1]
    assert ex.status == 200 and ex.result == "partial" and "ROOM_ID_INVALID" in ex.error
    assert ex.request_id == env.sandbox.ruids[-1]


async def test_duplicate_dates_in_one_message_warn_and_the_repeat_does_not_apply(env):
    d = env.day(7)
    outcome = await env.adapter.push_ari([
        AriUpdate(HOTEL, ROOM, None, d, d + timedelta(days=1), rooms_to_sell=2, key="first"),
        AriUpdate(HOTEL, ROOM, None, d + timedelta(days=1), d + timedelta(days=1), rooms_to_sell=9, key="again")])
    assert {r.key: (r.status, r.code) for r in outcome.results} == {
        "first": ("applied", None), "again": ("rejected", "WARN_DUPLICATE_DATES")}
    assert env.sandbox.cell(HOTEL, ROOM, None, d + timedelta(days=1))["rooms_to_sell"] == 2


async def test_throttling_is_429_with_retry_after_in_bookings_format(env):
    env.sandbox.faults = Faults(error_rate=1.0, status=429, retry_after=7)
    with pytest.raises(RateLimitedError) as e:
        await env.adapter.push_ari([rate_item(env, env.day(3))])
    assert e.value.retry_after == 7 and e.value.request_id == env.sandbox.ruids[-1]
    status, headers, body = await env.raw("GET", "/hotels/ota/OTA_HotelResNotif")
    assert status == 429 and headers["Retry-After"] == "7" and codec.read_answer(body).errors


@pytest.mark.parametrize("status", [500, 502, 503, 409])
async def test_server_errors_and_409_are_retriable(env, status):
    env.sandbox.faults = Faults(error_rate=1.0, status=status)
    with pytest.raises(RetriableError) as e:
        await env.adapter.push_ari([rate_item(env, env.day(3))])
    assert not isinstance(e.value, RateLimitedError) and e.value.status == status


async def test_a_400_naming_no_item_is_fatal_for_the_whole_batch(env):
    with pytest.raises(FatalError) as e:
        await send_raw(env.adapter, b"<OTA_HotelAvailNotifRQ/>", {"1": 0})
    assert e.value.status == 400 and e.value.code == "INVALID_REQUEST"


async def test_xxe_sent_to_the_sandbox_is_refused_and_nothing_is_read(env):
    xxe = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<OTA_HotelAvailNotifRQ xmlns="http://www.opentravel.org/OTA/2003/05" Version="1">'
           b'<AvailStatusMessages HotelCode="&x;"/></OTA_HotelAvailNotifRQ>')
    with pytest.raises(FatalError) as e:
        await send_raw(env.adapter, xxe, {})
    assert e.value.code == "XML_PARSE_ERROR" and "DOCTYPE" in str(e.value) and "root:" not in str(e.value)


async def test_rooms_restrictions_and_prices_land_in_the_cells_as_sent(env):
    d = env.day(8)
    outcome = await env.adapter.push_ari([
        AriUpdate(HOTEL, ROOM, None, d, d + timedelta(days=1), rooms_to_sell=3, key="r"),
        AriUpdate(HOTEL, ROOM, RATE, d, d + timedelta(days=1), prices=(Price(1, 30000), Price(2, 35000)),
                  currency="CNY", min_los=2, max_los=5, cta=True, ctd=False, stop_sell=True, key="p")])
    assert [r.status for r in outcome.results] == ["applied", "applied"]
    cell = env.sandbox.cell(HOTEL, ROOM, RATE, d + timedelta(days=1))
    assert (cell["price_minor"], cell["prices"], cell["currency"]) == (35000, {1: 30000, 2: 35000}, "CNY")
    assert (cell["min_los"], cell["max_los"], cell["cta"], cell["ctd"], cell["stop_sell"]) == (2, 5, True, False, True)
    assert env.sandbox.cell(HOTEL, ROOM, None, d)["rooms_to_sell"] == 3
    held = await env.adapter.read_back(HOTEL, d, d + timedelta(days=1))
    rate_held = [u for u in held if u.rate == RATE and u.start == d]
    assert rate_held == [AriUpdate(HOTEL, ROOM, RATE, d, d, prices=(Price(1, 30000), Price(2, 35000)),
                                   currency="CNY", min_los=2, max_los=5, cta=True, ctd=False, stop_sell=True,
                                   key=rate_held[0].key)]


@pytest.mark.parametrize("fmt", ["minor", "decimal"])
async def test_exact_money_round_trips_through_the_ota(env, fmt):
    adapter = env.make({"amount_format": fmt})
    d = env.day(9)
    await adapter.push_ari([AriUpdate(HOTEL, ROOM, RATE, d, d, prices=(Price(1, 1), Price(2, 9999999)),
                                      currency="CNY", key="cny")])
    await adapter.push_ari([AriUpdate(JPY_HOTEL, JPY_ROOM, JPY_RATE, d, d, prices=(Price(2, 12345),),
                                      currency="JPY", key="jpy")])
    assert env.sandbox.cell(HOTEL, ROOM, RATE, d)["prices"] == {1: 1, 2: 9999999}
    assert env.sandbox.cell(JPY_HOTEL, JPY_ROOM, JPY_RATE, d)["price_minor"] == 12345
    (cny,) = [u for u in await adapter.read_back(HOTEL, d, d) if u.rate == RATE]
    (jpy,) = [u for u in await adapter.read_back(JPY_HOTEL, d, d) if u.rate == JPY_RATE]
    assert cny.prices == (Price(1, 1), Price(2, 9999999)) and jpy.prices == (Price(2, 12345),)
    assert jpy.currency == "JPY"


async def test_read_back_covers_31_days_a_call_and_splits_longer_spans(env):
    start = env.day(0)
    await env.adapter.push_ari([AriUpdate(HOTEL, ROOM, None, start, start + timedelta(days=27), rooms_to_sell=2)])
    held = await env.adapter.read_back(HOTEL, start, start + timedelta(days=40))
    assert len([r for r in env.protocol_requests() if r["path"] == "/hotels/xml/roomrateavailability"]) == 2
    assert {u.start for u in held if u.rooms_to_sell == 2} == {start + timedelta(days=i) for i in range(28)}
    status, _, body = await env.raw("POST", "/hotels/xml/roomrateavailability",
                                    codec.readback_request(HOTEL, start, start).replace(
                                        start.isoformat().encode() + b"</date_to>",
                                        (start + timedelta(days=31)).isoformat().encode() + b"</date_to>"),
                                    await env.adapter.auth.headers(env.adapter._fetch_token))
    assert status == 400 and codec.read_answer(body).errors[0].code == "NOT_A_VALID_DATE"


def test_capabilities_declare_bookings_limits():
    from adapters.booking import BookingAdapter

    caps = BookingAdapter.capabilities
    assert (caps.max_hotels_per_message, caps.max_months_per_message) == (1, 1)
    assert (caps.inventory_level, caps.booking_delivery, caps.past_days) == ("room", "pull", 1)
    assert caps.restrictions == {"min_los", "max_los", "cta", "ctd", "stop_sell"} and caps.occupancy_pricing
    assert caps.readback and caps.readback_max_days == 31 and caps.horizon_days >= 365


async def test_the_same_dates_for_different_rooms_and_rates_are_not_duplicates(env):
    d = env.day(10)
    outcome = await env.adapter.push_ari([
        AriUpdate(HOTEL, ROOM, None, d, d, rooms_to_sell=2, key="room1"),
        AriUpdate(HOTEL, ROOM2, None, d, d, rooms_to_sell=7, key="room2"),
        AriUpdate(HOTEL, ROOM, RATE, d, d, stop_sell=True, prices=(Price(2, 100),), currency="CNY", key="rate1"),
        AriUpdate(HOTEL, ROOM2, "502", d, d, stop_sell=False, prices=(Price(2, 200),), currency="CNY", key="rate2"),
        AriUpdate(HOTEL, ROOM2, "502", d, d, key="empty")])
    assert [(r.key, r.status) for r in outcome.results] == [
        ("room1", "applied"), ("room2", "applied"), ("rate1", "applied"), ("rate2", "applied"), ("empty", "skipped")]
    assert [env.sandbox.cell(HOTEL, r, None, d)["rooms_to_sell"] for r in (ROOM, ROOM2)] == [2, 7]
    assert [env.sandbox.cell(HOTEL, r, p, d)["stop_sell"] for r, p in ((ROOM, RATE), (ROOM2, "502"))] == [True, False]
