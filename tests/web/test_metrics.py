"""/metrics with live values from a running daemon (issue 11)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from channelmgr.ledger.types import AriChange
from tests.web.helpers import bearer

pytestmark = pytest.mark.slow


async def scrape(r, headers: dict | None = None) -> dict[tuple[str, tuple], float]:
    async with r.http.get(r.d.base_url + "/metrics", headers=headers or {}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_show_live_values(run):
    r = run
    nights = [r.today() + timedelta(days=6 + i) for i in range(2)]
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", nights[0], nights[-1], rate_plan="BAR-DK", rooms=5,
                                     price_minor=88800, stop_sell=False), actor="test")
    r.d.wake_all()
    await r.converge(nights)
    before = await scrape(r)
    for ch in ("booking", "ctrip", "fliggy", "meituan"):
        assert value(before, "channelmgr_breaker_state", channel=ch, state="closed") == 1.0
        assert value(before, "channelmgr_breaker_state", channel=ch, state="open") == 0.0
        assert time.time() - 600 < value(before, "channelmgr_channel_last_success_timestamp_seconds",
                                         channel=ch) <= time.time() + 1
        assert ("channelmgr_pushes_waiting", (("channel", ch),)) in before
        assert value(before, "channelmgr_push_items_total", channel=ch, result="ok") > 0
        assert value(before, "channelmgr_pushes_total", channel=ch, result="ok") > 0
        assert value(before, "channelmgr_ota_call_duration_seconds_count", channel=ch, direction="out") > 0
        assert value(before, "channelmgr_dead_letters", channel=ch) == 0
    assert value(before, "channelmgr_ledger_transaction_duration_seconds_count", outcome="committed") > 0
    assert value(before, "channelmgr_bookings_received_total", channel="ctrip", action="new") == 0
    assert value(before, "channelmgr_inbox_messages", status="failed") == 0

    room, rate = r.codes("ctrip", "DK", "BAR-DK")
    oid = (await r.book("ctrip", hotel=r.hotel("ctrip"), room=room, rate=rate, checkin=nights[0].isoformat(),
                        checkout=nights[1].isoformat(), amount_minor=88800, currency="CNY",
                        guest={"name": "刘洋"}))["ota_booking_id"]

    async def arrived():
        return await r.ledger.booking("ctrip", oid) is not None

    await r.wait_for(arrived, timeout=30, what="the booking")
    after = await scrape(r)
    assert value(after, "channelmgr_bookings_received_total", channel="ctrip", action="new") == 1
    assert value(after, "channelmgr_ota_calls_total", channel="ctrip", direction="in", result="ok") >= 1

    async def conflict(conn):
        return await r.ledger.raise_conflict(conn, kind="drift", summary="a test drift", channel="meituan")

    await r.d.rt.db.write(conflict)
    assert value(await scrape(r), "channelmgr_conflicts_open", kind="drift") == 1

    # an OTA that fails: the breaker is counted open once it trips (breaker_failures is 50 in tests)
    breaker = r.d.channels["fliggy"].breaker
    breaker.reset_seconds = 3600  # stays open while we look (the push worker would probe it)
    breaker.opened_at = time.monotonic()
    breaker.state = "open"
    samples = await scrape(r)
    assert value(samples, "channelmgr_breaker_state", channel="fliggy", state="open") == 1.0


async def test_metrics_access_loopback_or_token(tmp_path):
    from channelmgr.daemon import Daemon
    from tests.sync.harness import Running, fast_push_settings, make_config

    cfg = make_config(tmp_path, horizon_days=30)
    cfg.web.metrics_access = "token"
    d = Daemon(cfg, push_settings=fast_push_settings(30))
    await d.start()
    r = Running(d)
    try:
        async with r.http.get(d.base_url + "/metrics") as resp:
            assert resp.status == 401
        assert "channelmgr_pushes_waiting" in str(await scrape(r, await bearer(d, "viewer")))
    finally:
        await r.close()
