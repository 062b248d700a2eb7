"""The adapter against the Ctrip sandbox: envelope on/off, the OTA's refusals, classification."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiohttp import web
from lxml import etree

from adapters.base import AriUpdate, AuthError, FatalError, Price, RateLimitedError, RetriableError
from adapters.base.sandbox import Faults
from adapters.base.xml import OTA_NS, SOAP_NS
from adapters.ctrip import CtripAdapter, codec
from tests.adapters.ctrip.conftest import HOTEL, RATE, ROOM, ROOM2


def _updates(env, offset: int = 10, days: int = 2) -> list[AriUpdate]:
    s, e = env.day(offset), env.day(offset + days)
    return [AriUpdate(HOTEL, ROOM, None, s, e, rooms_to_sell=4, key="rooms"),
            AriUpdate(HOTEL, ROOM, RATE, s, e, prices=(Price(2, 52000),), currency="CNY", min_los=1,
                      stop_sell=False, key="rate")]


@pytest.mark.parametrize("soap", [False, True])
async def test_soap_envelope_on_and_off_both_reach_the_sandbox(env, soap):
    adapter = env.make({"soap": soap})
    adapter.settings.endpoint = env.base
    outcome = await adapter.push_ari(_updates(env))
    assert {r.key: r.status for r in outcome.results} == {"rooms": "applied", "rate": "applied"}
    reqs = env.protocol_requests()
    assert [r["path"] for r in reqs] == [codec.AVAIL_PATH, codec.RATES_PATH]
    for r in reqs:
        root = etree.fromstring(r["body"].encode())
        assert (etree.QName(root).namespace == SOAP_NS) is soap
        assert (r["headers"].get("SOAPAction") == f'"{codec.SOAP_ACTION}"') is soap
    assert env.sandbox.cell(HOTEL, ROOM, None, env.day(11))["rooms_to_sell"] == 4
    assert env.sandbox.cell(HOTEL, ROOM, RATE, env.day(12))["price_minor"] == 52000


async def test_more_than_365_days_is_refused_by_the_sandbox_and_classified(env):
    start = env.day(0)
    long = [AriUpdate(HOTEL, ROOM, RATE, start, start + timedelta(days=365), stop_sell=False, key="long")]
    # the adapter refuses such a batch before sending ...
    with pytest.raises(FatalError) as e:
        await env.adapter.push_ari(long)
    assert e.value.code == "CHANNELMGR_BATCH_LIMIT"
    assert not env.protocol_requests()
    # ... and the OTA refuses it too when it arrives: the adapter classifies the OTA's error
    built = codec.avail_notif(HOTEL, long, env.creds["username"], env.creds["password"])
    with pytest.raises(FatalError) as e:
        await env.adapter.send(built, codec.AVAIL_PATH, "avail_notif", HOTEL)
    assert e.value.code == "450" and "365" in e.value.text and not e.value.retriable
    assert env.sandbox.cell(HOTEL, ROOM, RATE, start) is None


async def test_exactly_365_days_is_accepted(env):
    start = env.day(0)
    outcome = await env.adapter.push_ari([AriUpdate(HOTEL, ROOM, RATE, start, start + timedelta(days=364),
                                                    stop_sell=True, key="year")])
    assert outcome.results[0].status == "applied"
    assert env.sandbox.cell(HOTEL, ROOM, RATE, start + timedelta(days=364))["stop_sell"] is True


async def test_an_unknown_rate_is_rejected_with_the_otas_code_and_the_rest_not_applied(env):
    d = env.day(5)
    outcome = await env.adapter.push_ari([
        AriUpdate(HOTEL, ROOM, RATE, d, d, prices=(Price(2, 1000),), currency="CNY", key="good"),
        AriUpdate(HOTEL, ROOM2, "99999", d, d, prices=(Price(2, 1000),), currency="CNY", key="bad")])
    by_key = {r.key: r for r in outcome.results}
    assert by_key["bad"].status == "rejected" and by_key["bad"].code == "450" and "99999" in by_key["bad"].text
    assert not by_key["bad"].retriable
    assert by_key["good"].status == "rejected" and by_key["good"].retriable  # whole message refused
    assert env.sandbox.cell(HOTEL, ROOM, RATE, d) is None


async def test_an_unknown_hotel_is_fatal_with_the_otas_code(env):
    d = env.day(5)
    with pytest.raises(FatalError) as e:
        await env.adapter.push_ari([AriUpdate("999999", ROOM, None, d, d, rooms_to_sell=1, key="x")])
    assert e.value.code == "450" and "999999" in e.value.text


async def test_dates_beyond_the_horizon_are_refused(env):
    d = env.day(400)
    outcome = await env.adapter.push_ari([AriUpdate(HOTEL, ROOM, None, d, d, rooms_to_sell=1, key="far")])
    assert outcome.results[0].status == "rejected" and outcome.results[0].code == "450"


async def test_wrong_requestor_is_auth_error_497(env):
    bad = env.make(creds={"username": env.creds["username"], "password": "not-the-password"})
    bad.settings.endpoint = env.base
    with pytest.raises(AuthError) as e:
        await bad.push_ari(_updates(env))
    assert e.value.code == "497" and not e.value.retriable
    for ex in env.exchanges:
        assert "not-the-password" not in (ex.request or "") + (ex.response or "")


async def test_missing_credentials_are_auth_errors_before_sending(env):
    bare = env.make(creds={})
    with pytest.raises(AuthError):
        await bare.push_ari(_updates(env))


def _ota_error(code: str, status: int = 200):
    body = (f'<OTA_HotelAvailNotifRS xmlns="{OTA_NS}"><Errors><Error Type="1" Code="{code}" '
            f'ShortText="system error"/></Errors></OTA_HotelAvailNotifRS>')

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type="text/xml")

    return handler


@pytest.mark.parametrize("code, status", [("448", 200), ("498", 200), ("448", 500)])
async def test_system_error_and_processing_are_retriable(env, code, status, monkeypatch):
    app = web.Application()
    app.add_routes([web.post(codec.AVAIL_PATH, _ota_error(code, status))])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        a = env.make()
        a.settings.endpoint = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        with pytest.raises(RetriableError) as e:
            await a.push_ari(_updates(env)[:1])
        assert not isinstance(e.value, RateLimitedError)
        if status == 200:
            assert e.value.code == code
    finally:
        await runner.cleanup()


async def test_sandbox_faults_classify_like_http(env):
    env.sandbox.faults = Faults(error_rate=1.0, status=503)
    with pytest.raises(RetriableError):
        await env.adapter.push_ari(_updates(env))
    env.sandbox.faults = Faults(error_rate=1.0, status=429, retry_after=7)
    with pytest.raises(RateLimitedError) as e:
        await env.adapter.push_ari(_updates(env))
    assert e.value.retry_after == 7


def test_capabilities_match_the_note():
    caps = CtripAdapter.capabilities
    assert caps.max_days_per_message == 365 and caps.booking_delivery == "push" and not caps.readback
    assert caps.supports_ranges and caps.occupancy_pricing and caps.inventory_level == "room"
    creds = CtripAdapter.sandbox_credentials()
    assert set(creds) == {"username", "password"} and creds != CtripAdapter.sandbox_credentials()
