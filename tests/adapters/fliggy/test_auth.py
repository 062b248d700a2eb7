"""TOP signatures, timestamps, sessions: the signer against vectors, the sandbox's own checks."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import pytest

from adapters.base import AriUpdate, AuthError, FatalError, Price
from adapters.fliggy import auth
from adapters.fliggy.codec import M_RATES_INCREMENT

from .conftest import HOTEL

PARAMS = {
    "method": "taobao.xhotel.rates.increment", "app_key": "12345678", "session": "test-session",
    "timestamp": "2026-03-01 12:00:00", "v": "2.0", "format": "json", "simplify": "true",
    "rate_inventory_price_map": '[{"out_rid":"SK"}]',
}
SECRET = "helloworld"
# computed once by hand with hashlib from the written algorithm (not with the adapter)
LITERAL = {
    "md5": "9C887E4BBDD03627EC605CD149D9B300",
    "hmac": "40CC2736C0C091950DF47785EEFB1568",
}


def expected(params: dict[str, str], secret: str, method: str) -> str:
    """The note's algorithm, written out independently of the adapter."""
    s = "".join(k + params[k] for k in sorted(params) if k != "sign").encode()
    key = secret.encode()
    if method == "md5":
        return hashlib.md5(key + s + key).hexdigest().upper()
    digest = hashlib.md5 if method == "hmac" else hashlib.sha256
    return hmac.new(key, s, digest).hexdigest().upper()


@pytest.mark.parametrize("method", ["md5", "hmac", "hmac-sha256"])
def test_the_signer_follows_the_written_algorithm(method):
    params = {**PARAMS, "sign_method": method}
    assert auth.sign(params, SECRET, method) == expected(params, SECRET, method)
    with_sign = {**params, "sign": "IGNORED"}
    assert auth.sign(with_sign, SECRET, method) == expected(params, SECRET, method)
    if method in LITERAL:
        assert auth.sign(params, SECRET, method) == LITERAL[method]


def test_chinese_values_are_signed_as_utf8_and_sorted_by_bytes():
    params = {"b": "张伟", "a": "x", "B": "y", "sign_method": "hmac-sha256"}
    assert auth.sign_string(params) == "Byaxb张伟sign_methodhmac-sha256"
    assert auth.sign(params, "秘密", "hmac-sha256") == hmac.new(
        "秘密".encode(), "Byaxb张伟sign_methodhmac-sha256".encode(), hashlib.sha256).hexdigest().upper()


def test_timestamp_is_gmt8_and_system_params_are_complete():
    now = datetime(2026, 1, 31, 20, 30, 5, tzinfo=timezone.utc)
    assert auth.timestamp(now) == "2026-02-01 04:30:05"
    p = auth.signed_params("taobao.xhotel.order.search", {"page_no": "1"},
                           {"key": "k1", "secret": "s3cret", "session": "sess"}, sign_method="md5", now=now)
    assert {k: p[k] for k in ("method", "app_key", "session", "v", "sign_method", "format", "timestamp")} == {
        "method": "taobao.xhotel.order.search", "app_key": "k1", "session": "sess", "v": "2.0",
        "sign_method": "md5", "format": "json", "timestamp": "2026-02-01 04:30:05"}
    assert p["sign"] == expected(p, "s3cret", "md5")


def test_missing_credentials_are_an_auth_error():
    with pytest.raises(AuthError):
        auth.signed_params("m", {}, {"key": "k", "secret": ""})


def item(env, key="p", offset=3):
    d = env.day(offset)
    return AriUpdate(HOTEL, "SK", "BAR_SK", d, d, rooms_to_sell=4, prices=(Price(2, 45600),), currency="CNY", key=key)


@pytest.mark.parametrize("method", ["md5", "hmac", "hmac-sha256"])
async def test_the_sandbox_accepts_every_sign_method(env, method):
    adapter = env.make({"sign_method": method})
    assert (await adapter.push_ari([item(env)])).results[0].status == "applied"
    (call,) = env.calls(M_RATES_INCREMENT)
    assert call["sign_method"] == method and call["sign"] == expected(call, env.creds["secret"], method)


async def test_a_wrong_signature_is_code_25_and_an_auth_error(env):
    bad = env.make(creds={**env.creds, "secret": "not-the-secret"})
    with pytest.raises(AuthError) as e:
        await bad.push_ari([item(env)])
    assert e.value.code == "25" and "Invalid signature" in e.value.text
    assert env.sandbox.cell(HOTEL, "SK", "BAR_SK", env.day(3)) is None


async def test_a_stale_timestamp_is_code_31_and_fatal(env):
    late = env.make()
    late.clock = lambda: datetime.now(timezone.utc) - timedelta(minutes=11)
    with pytest.raises(FatalError) as e:
        await late.push_ari([item(env)])
    assert e.value.code == "31" and not e.value.retriable and "timestamp" in e.value.text.lower()
    late.clock = lambda: datetime.now(timezone.utc) - timedelta(minutes=9)  # within TOP's 10 minutes
    assert (await late.push_ari([item(env)])).results[0].status == "applied"


async def test_a_bad_session_is_code_27_and_an_auth_error(env):
    bad = env.make(creds={**env.creds, "session": "6100-someone-else"})
    with pytest.raises(AuthError) as e:
        await bad.push_ari([item(env)])
    assert e.value.code == "27"


async def test_a_bad_app_key_is_an_auth_error_and_secrets_stay_out_of_the_log(env):
    bad = env.make(creds={**env.creds, "key": "99999999"})
    with pytest.raises(AuthError) as e:
        await bad.push_ari([item(env)])
    assert e.value.code == "29"
    await env.adapter.push_ari([item(env)])
    for ex in env.exchanges:
        for text in (ex.request or "", ex.response or "", ex.error or ""):
            assert env.creds["secret"] not in text and env.creds["session"] not in text
