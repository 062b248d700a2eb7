"""The order query used for recovery, and the order reader on its own."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from adapters.base import ParseError
from adapters.meituan import MeituanAdapter, codec
from adapters.meituan.codec import Options

from .conftest import HOTEL, RATE, ROOM

NAME = "张伟"


def book(env, **kw) -> str:
    data = {"hotel": HOTEL, "room": ROOM, "rate": RATE, "checkin": env.day(3).isoformat(),
            "checkout": env.day(5).isoformat(), "guest": {"name": NAME, "phone": "+86 138 0013 8000"},
            "amount_minor": 91201, "currency": "CNY", "special_requests": "无烟房"}
    data.update(kw)
    return env.sandbox.inject(data).ota_booking_id


async def test_query_order_returns_the_latest_revision(env):
    oid = book(env)
    rev = await env.adapter.query_order(HOTEL, oid)
    assert (rev.ota_booking_id, rev.revision, rev.action, rev.guest.name) == (oid, "v1", "new", NAME)
    assert [n.amount_minor for n in rev.stays[0].nightly] == [45601, 45600]  # the odd fen on the first night
    env.sandbox.inject({"action": "modify", "ota_booking_id": oid, "checkout": env.day(6).isoformat()})
    env.sandbox.inject({"action": "cancel", "ota_booking_id": oid})
    rev = await env.adapter.query_order(HOTEL, oid)
    assert (rev.revision, rev.action, rev.stays[0].checkout) == ("v3", "cancel", env.day(6))
    assert await env.adapter.query_order(HOTEL, "no-such-order") is None


async def test_recover_returns_what_changed_since(env):
    before = datetime.now(UTC) - timedelta(seconds=1)
    first = book(env)
    await asyncio.sleep(0.01)
    deliveries = await env.adapter.recover(HOTEL, before)
    assert [(d.revision.ota_booking_id, d.kind) for d in deliveries] == [(first, "reservation")]
    assert NAME.encode() in deliveries[0].raw
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert await env.adapter.recover(HOTEL, later) == []
    # a push channel never hands bookings to the engine's pull loop
    assert await env.adapter.pull_bookings() == []


def test_the_adapter_declares_what_meituan_is():
    caps = MeituanAdapter.capabilities
    assert (caps.booking_delivery, caps.max_items_per_message, caps.inventory_level, caps.readback) == \
        ("push", 40, "room", True)
    assert caps.currencies == frozenset({"CNY"})
    assert "modelled" in MeituanAdapter.__doc__.lower() and "modelled" in codec.__doc__.lower()


def test_options_override_paths_and_refuse_nonsense():
    o = Options.from_settings({"ari_push_path": "/v2/ari", "readback_max_days": "14", "other": 1})
    assert (o.ari_push_path, o.readback_max_days) == ("/v2/ari", 14)
    with pytest.raises(ValueError):
        Options.from_settings({"signer": "rsa"})


BASE = {"orderId": 42, "hotelId": "158937", "roomId": "7730001", "checkinDate": "2026-03-01",
        "checkoutDate": "2026-03-02", "updateTime": 1767225600, "orderStatus": "PAID"}


def test_an_order_without_a_version_uses_its_update_time_and_reads_seconds():
    rev = codec.order(dict(BASE))
    assert (rev.ota_booking_id, rev.revision, rev.action, rev.stays[0].rate) == ("42", "t1767225600", "new", None)
    assert rev.revised_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert codec.order({**BASE, "midnightOrder": True}, action="cancel").action == "cancel"
    assert codec.order({**BASE, "midnightOrder": True}).tonight is True


@pytest.mark.parametrize("change", [
    {"orderId": None}, {"hotelId": ""}, {"checkinDate": "03/01/2026"}, {"checkoutDate": "2026-03-01"},
    {"roomNum": 0}, {"totalPrice": "12.50"}, {"totalPrice": -1}, {"orderStatus": "WHATEVER"},
    {"updateTime": None}, {"dailyPrices": ["x"]}, {"contactName": 7},
])
def test_what_cannot_be_read_is_a_parse_error(change):
    with pytest.raises(ParseError):
        codec.order({**BASE, **change})


@pytest.mark.parametrize("raw", [b"", b"[]", b'{"body": 1}', b"\xff\xfe", b'{"partnerId": "p", "body": {'])
def test_unreadable_envelopes(raw):
    with pytest.raises(ParseError):
        codec.notice_body(raw)


@pytest.mark.parametrize("raw", [b"<html>", b'{"message": "no code"}', b'{"code": true}', b'{"code": "x1"}'])
def test_unreadable_answers(raw):
    with pytest.raises(ParseError):
        codec.read_answer(raw)
