"""Token auth: a one-hour JWT, at most 30 an hour, never in the sync log."""

from __future__ import annotations

import pytest

from adapters.base import AriUpdate, AuthError, Confirmation, Price, RateLimitedError
from adapters.booking.sandbox import TOKEN_PATH

from .conftest import HOTEL, RATE, ROOM

TOKEN = {"auth": "token"}


def item(env, key="p") -> AriUpdate:
    d = env.day(3)
    return AriUpdate(HOTEL, ROOM, RATE, d, d, prices=(Price(2, 50000),), currency="CNY", key=key)


def token_requests(env) -> list[dict]:
    return [r for r in env.sandbox.requests if r["path"] == TOKEN_PATH]


async def test_token_auth_carries_every_call_with_one_token_and_never_logs_it(env):
    adapter = env.make(TOKEN)
    assert (await adapter.push_ari([item(env)])).results[0].status == "applied"
    env.sandbox.inject({"hotel": HOTEL, "room": ROOM, "rate": RATE, "checkin": env.day(3).isoformat(),
                        "checkout": env.day(4).isoformat(), "amount_minor": 100})
    (d,) = await adapter.pull_bookings()
    await adapter.acknowledge([(d, Confirmation("CM1", "confirmed"))])
    await adapter.read_back(HOTEL, env.day(3), env.day(3))
    assert len(token_requests(env)) == 1
    calls = [r for r in env.protocol_requests() if r["path"] != TOKEN_PATH]
    assert len(calls) == 5 and all(r["headers"]["Authorization"].startswith("Bearer ") for r in calls)
    jwt = calls[0]["headers"]["Authorization"][7:]
    assert jwt in env.sandbox.tokens and jwt.count(".") == 2
    secrets = [jwt, env.creds["key"], env.creds["secret"]]
    token_ex = [x for x in env.exchanges if x.operation == "token"]
    assert token_ex and token_ex[0].result == "ok" and '"jwt": "***"' in token_ex[0].response
    for ex in env.exchanges:
        for text in (ex.request or "", ex.response or "", ex.error or ""):
            assert not any(s in text for s in secrets), ex.operation


async def test_a_wrong_client_secret_is_an_auth_error(env):
    adapter = env.make(TOKEN, creds={**env.creds, "secret": "not-the-secret"})
    with pytest.raises(AuthError) as e:
        await adapter.push_ari([item(env)])
    assert e.value.status == 401 and "Authorization Required" in str(e.value)
    assert [r["path"] for r in env.protocol_requests()] == [TOKEN_PATH]


async def test_a_token_refused_by_booking_is_replaced_once(env):
    adapter = env.make(TOKEN)
    await adapter.push_ari([item(env, "a")])
    start = env.sandbox.clock()
    env.sandbox.clock = lambda: start + 3601  # an hour later Booking.com no longer takes that token
    assert (await adapter.push_ari([item(env, "b")])).results[0].status == "applied"
    assert len(token_requests(env)) == 2
    statuses = [x.status for x in env.exchanges if x.operation == "rate_amount_notif"]
    assert statuses == [200, 401, 200]


async def test_at_most_30_tokens_an_hour(env):
    adapter = env.make(TOKEN)
    for _ in range(30):
        adapter.auth.invalidate()
        await adapter.auth.headers(adapter._fetch_token)
    assert len(token_requests(env)) == 30 == adapter.auth.issued_last_hour
    # the adapter itself does not ask for a 31st within the hour
    adapter.auth.invalidate()
    with pytest.raises(RateLimitedError) as own:
        await adapter.push_ari([item(env)])
    assert own.value.retry_after > 3000 and len(token_requests(env)) == 30
    # another process with the same client id asks anyway: Booking.com answers 429 with Retry-After
    other = env.make(TOKEN)
    with pytest.raises(RateLimitedError) as e:
        await other.push_ari([item(env)])
    assert e.value.status == 429 and e.value.retry_after > 3000 and e.value.code == "TOO_MANY_TOKENS"
    start = env.sandbox.clock()
    env.sandbox.clock = lambda: start + 3600
    assert (await other.push_ari([item(env)])).results[0].status == "applied"


async def test_basic_auth_lacking_credentials_is_an_auth_error_before_sending(env):
    adapter = env.make(creds={})
    with pytest.raises(AuthError, match="username, password"):
        await adapter.push_ari([item(env)])
    assert env.protocol_requests() == []
