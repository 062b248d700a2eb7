"""`curl /metrics` on the demo (issue 11): the real `channelmgr run` as a subprocess, its
/metrics read over loopback HTTP with no login (web.metrics_access: loopback, the shipped
default), every family of the issue present, and live: a booking made on a sandbox moves
the bookings counter and the OTA calls, an overbooking shows as an open conflict."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from channelmgr import dates
from tests.browser.demo import CHANNELS, Client, Demo

pytestmark = pytest.mark.slow

# the families, as prometheus_client names them (counters and histograms by their samples)
FAMILIES = {
    "channelmgr_channel_last_success_timestamp_seconds": "gauge",
    "channelmgr_pushes_waiting": "gauge",
    "channelmgr_oldest_waiting_push_age_seconds": "gauge",
    "channelmgr_pushes": "counter",
    "channelmgr_push_items": "counter",
    "channelmgr_ota_calls": "counter",
    "channelmgr_ota_call_duration_seconds": "histogram",
    "channelmgr_breaker_state": "gauge",
    "channelmgr_dead_letters": "gauge",
    "channelmgr_bookings_received": "counter",
    "channelmgr_inbox_messages": "gauge",
    "channelmgr_conflicts_open": "gauge",
    "channelmgr_ledger_transaction_duration_seconds": "histogram",
}


def scrape(base: str) -> tuple[dict[str, str], dict[tuple[str, tuple], float]]:
    a = Client(base).get("/metrics")  # no login, no token: loopback
    assert a.status == 200, a
    assert a.headers["Content-Type"].startswith("text/plain")
    types, samples = {}, {}
    for fam in text_string_to_metric_families(a.text):
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def demo(tmp_path):
    d = Demo(tmp_path).start()
    yield d
    assert d.stop() == 0, d.tail()


def test_curl_metrics_on_the_demo_shows_every_family_with_live_values(demo):
    demo.wait_settled()
    types, before = scrape(demo.base)
    assert {n: types.get(n) for n in FAMILIES} == FAMILIES
    now = time.time()
    for ch in CHANNELS:
        assert now - 600 < value(before, "channelmgr_channel_last_success_timestamp_seconds", channel=ch) <= now + 1
        assert ("channelmgr_pushes_waiting", (("channel", ch),)) in before
        assert ("channelmgr_oldest_waiting_push_age_seconds", (("channel", ch),)) in before
        assert value(before, "channelmgr_pushes_total", channel=ch, result="ok") > 0
        assert value(before, "channelmgr_push_items_total", channel=ch, result="ok") > 0
        assert value(before, "channelmgr_ota_calls_total", channel=ch, direction="out", result="ok") > 0
        assert value(before, "channelmgr_ota_call_duration_seconds_count", channel=ch, direction="out") > 0
        assert value(before, "channelmgr_ota_call_duration_seconds_bucket", channel=ch, direction="out",
                     le="+Inf") == value(before, "channelmgr_ota_call_duration_seconds_count", channel=ch,
                                         direction="out")
        assert value(before, "channelmgr_breaker_state", channel=ch, state="closed") == 1.0
        assert value(before, "channelmgr_breaker_state", channel=ch, state="open") == 0.0
        assert value(before, "channelmgr_dead_letters", channel=ch) == 0
    assert value(before, "channelmgr_ledger_transaction_duration_seconds_count", outcome="committed") > 0
    assert ("channelmgr_inbox_messages", (("status", "failed"),)) in before
    assert value(before, "channelmgr_inbox_messages", status="failed") == 0

    # a night the demo's guests do not reach (they book at most 52 nights ahead), one DK room left
    today = dates.business_date(datetime.now(timezone.utc), "Asia/Shanghai")
    night = today + timedelta(days=80)
    admin = demo.admin()
    a = admin.request("PUT", "/api/v1/ari", {"property": "SHA-BUND", "room_type": "DK", "from": str(night),
                                             "to": str(night), "rooms": 1})
    assert a.status == 200, a
    ctrip_new = value(before, "channelmgr_bookings_received_total", channel="ctrip", action="new")
    calls_in = value(before, "channelmgr_ota_calls_total", channel="ctrip", direction="in", result="ok")
    overbooked = value(before, "channelmgr_conflicts_open", kind="overbooking")
    # two guests on Ctrip for that one room (the second sold by the OTA anyway: a race it lost)
    ids = [demo.book("ctrip", "DK", "BAR-DK", night, night + timedelta(days=1), {"name": "刘洋"}, force=True)
           for _ in range(2)]

    deadline = time.monotonic() + 60
    while True:
        found = [admin.get(f"/api/v1/bookings?ota_id={oid}&channel=ctrip").json()["bookings"] for oid in ids]
        if all(found):
            break
        assert time.monotonic() < deadline, f"the bookings did not arrive: {found}\n{demo.tail()}"
        time.sleep(0.3)
    _, after = scrape(demo.base)
    # live: the counters moved by what we did (the demo's own guests may add more)
    assert value(after, "channelmgr_bookings_received_total", channel="ctrip", action="new") >= ctrip_new + 2
    assert value(after, "channelmgr_ota_calls_total", channel="ctrip", direction="in", result="ok") >= calls_in + 2
    assert value(after, "channelmgr_conflicts_open", kind="overbooking") >= overbooked + 1
    assert (value(after, "channelmgr_ledger_transaction_duration_seconds_count", outcome="committed")
            > value(before, "channelmgr_ledger_transaction_duration_seconds_count", outcome="committed"))
    # the night's room closed on the other OTAs: pushes went out and were counted
    assert (sum(value(after, "channelmgr_push_items_total", channel=ch, result="ok") for ch in CHANNELS)
            > sum(value(before, "channelmgr_push_items_total", channel=ch, result="ok") for ch in CHANNELS))


def test_metrics_of_the_demo_answer_loopback_without_login_and_nothing_else_does(demo):
    c = Client(demo.base)
    assert c.get("/metrics").status == 200
    assert c.get("/health").status == 200
    a = c.get("/api/v1/status")
    assert a.status == 401 and a.json()["error"]
