"""MWS signing: a vector computed from the written algorithm, and the sandbox's gate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from adapters.base import AriUpdate, AuthError, Price
from adapters.meituan.auth import MwsSigner, ParamsSigner, params_signature

from .conftest import HOTEL, RATE, ROOM

CREDS = {"username": "P10086", "key": "mtkey-demo", "secret": "s3cr3t-app-secret"}
WHEN = 1767225600.0  # Thu, 01 Jan 2026 00:00:00 GMT


def test_the_mws_signature_matches_the_written_algorithm():
    signed = MwsSigner(CREDS, clock=lambda: WHEN).sign("POST", "/hotel/ari/push", b"{}")
    assert signed.headers["Date"] == "Thu, 01 Jan 2026 00:00:00 GMT"
    assert signed.headers["PartnerId"] == "P10086"
    to_sign = b"POST /hotel/ari/push\nThu, 01 Jan 2026 00:00:00 GMT"
    expected = base64.b64encode(hmac.new(b"s3cr3t-app-secret", to_sign, hashlib.sha1).digest()).decode()
    assert signed.headers["Authorization"] == f"MWS mtkey-demo:{expected}"
    assert signed.params == {}


def test_verify_accepts_our_own_and_refuses_the_rest():
    s = MwsSigner(CREDS, clock=lambda: WHEN)
    h = s.sign("POST", "/inbound/meituan/order/pay", b"").headers
    assert s.verify("POST", ["/inbound/meituan/order/pay"], h, b"") is None
    assert s.verify("POST", ["/order/pay"], h, b"") == "the signature does not match"
    assert "PartnerId" in s.verify("POST", ["/inbound/meituan/order/pay"], {**h, "PartnerId": "P1"}, b"")
    assert "appKey" in s.verify("POST", ["/inbound/meituan/order/pay"],
                                {**h, "Authorization": h["Authorization"].replace("mtkey-demo", "other")}, b"")
    later = MwsSigner(CREDS, clock=lambda: WHEN + 301)
    assert "Date" in later.verify("POST", ["/inbound/meituan/order/pay"], h, b"")
    assert "Date" in s.verify("POST", ["/x"], {**h, "Date": "yesterday"}, b"")


def test_missing_credentials_are_an_auth_error():
    with pytest.raises(AuthError):
        MwsSigner({"username": "p"}).sign("POST", "/x", b"")


def test_the_parameter_signer_signs_sorted_parameters():
    signed = ParamsSigner(CREDS, clock=lambda: WHEN).sign("POST", "/x", b"")
    p = signed.params
    assert p["timestamp"] == "1767225600" and len(p["nonce"]) == 16 and p["partnerId"] == "P10086"
    text = "&".join(f"{k}={p[k]}" for k in sorted(p) if k != "sign").encode()
    assert p["sign"] == base64.b64encode(hmac.new(CREDS["secret"].encode(), text, hashlib.sha1).digest()).decode()
    assert params_signature(CREDS["secret"], p) == p["sign"]


def _upd(env):
    d = env.day(3)
    return [AriUpdate(HOTEL, ROOM, RATE, d, d, prices=(Price(2, 30000),), currency="CNY", key="x")]


async def test_the_adapter_signs_what_the_sandbox_checks(env):
    outcome = await env.adapter.push_ari(_upd(env))
    assert outcome.results[0].status == "applied"
    (req,) = env.protocol_requests()
    date_header = req["headers"]["Date"]
    assert req["headers"]["Authorization"] == "MWS {}:{}".format(
        env.creds["key"], base64.b64encode(hmac.new(env.creds["secret"].encode(),
                                                    f"POST /hotel/ari/push\n{date_header}".encode(),
                                                    hashlib.sha1).digest()).decode())
    assert json.loads(req["body"])["partnerId"] == env.creds["username"]


@pytest.mark.parametrize("field, code", [("secret", "1001"), ("key", "1001"), ("username", "1003")])
async def test_wrong_credentials_are_fatal_auth_errors_with_meituans_code(env, field, code):
    bad = env.make(creds={**env.creds, field: env.creds[field] + "x"})
    with pytest.raises(AuthError) as e:
        await bad.push_ari(_upd(env))
    assert e.value.code == code and not e.value.retriable
    assert env.sandbox.cell(HOTEL, ROOM, RATE, env.day(3)) is None


async def test_a_stale_date_is_refused(env):
    late = env.make()
    late.signer.clock = lambda: time.time() - 600
    with pytest.raises(AuthError) as e:
        await late.push_ari(_upd(env))
    assert e.value.code == "1002"


async def test_the_sandbox_refuses_a_raw_request_with_a_wrong_signature(env):
    body = json.dumps({"partnerId": env.creds["username"], "body": {"hotelId": HOTEL, "items": []}}).encode()
    status, doc = await env.post(env.base + "/hotel/ari/push", body,
                                 env.headers("/hotel/ari/push", secret="not-the-secret"))
    assert (status, doc["code"]) == (401, 1001)
    status, doc = await env.post(env.base + "/hotel/ari/push", body,
                                 env.headers("/hotel/ari/push", at=time.time() + 900))
    assert (status, doc["code"]) == (401, 1002)
    # signed for another path
    status, doc = await env.post(env.base + "/hotel/ari/push", body, env.headers("/hotel/ari/query"))
    assert (status, doc["code"]) == (401, 1001)
