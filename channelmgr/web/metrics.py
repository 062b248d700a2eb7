"""Prometheus metrics at /metrics (prometheus_client), one registry per daemon.

Counted as they happen, in this process: every OTA call (from the sync log's record, with
its latency), the pushes and their items by result, and every ledger write transaction's
time. Read from the database at scrape time (a few bounded, indexed queries, the ones
`channelmgr status` runs): per channel last success, pushes waiting, the oldest one's age,
dead letters; bookings received by action; inbox failures; conflicts open by kind. The
breaker state is the live one.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select

from channelmgr.ledger import models as m

if TYPE_CHECKING:  # pragma: no cover
    from channelmgr.daemon import Daemon

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BREAKER_STATES = ("closed", "half_open", "open", "disabled")
# calls that are not pushes of rooms, rates or restrictions (token, pulls, acks, read-backs)
_NOT_PUSH = re.compile(r"token|read|ack|order|query|pull|search|confirm", re.I)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def is_push(row: dict[str, Any]) -> bool:
    return row.get("direction") == "out" and not _NOT_PUSH.search(row.get("operation") or "")


class Metrics:
    def __init__(self, daemon: "Daemon"):
        self.d = daemon
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.calls = Counter("channelmgr_ota_calls", "Calls to and from each OTA, by result",
                             ["channel", "direction", "result"], registry=r)
        self.latency = Histogram("channelmgr_ota_call_duration_seconds", "How long each OTA call took",
                                 ["channel", "direction"], buckets=_LATENCY_BUCKETS, registry=r)
        self.pushes = Counter("channelmgr_pushes", "Push messages sent to each OTA, by result",
                              ["channel", "result"], registry=r)
        self.push_items = Counter("channelmgr_push_items", "Items (rooms, rates, restrictions) in pushes, by result",
                                  ["channel", "result"], registry=r)
        self.tx = Histogram("channelmgr_ledger_transaction_duration_seconds",
                            "How long each ledger write transaction held the write lock",
                            ["outcome"], buckets=_LATENCY_BUCKETS, registry=r)
        self.snapshot: dict[str, Any] | None = None
        self.snapshot_at = 0.0
        r.register(_FromLedger(self))

    # ---- hooks ------------------------------------------------------------------------
    def on_sync_row(self, row: dict[str, Any]) -> None:
        ch, direction, result = row.get("channel") or "?", row.get("direction") or "out", row.get("result") or "?"
        self.calls.labels(ch, direction, result).inc()
        self.latency.labels(ch, direction).observe(max(0.0, float(row.get("duration_ms") or 0.0)) / 1000.0)
        if is_push(row):
            self.pushes.labels(ch, result).inc()
            if row.get("items"):
                self.push_items.labels(ch, result).inc(int(row["items"]))

    def on_write(self, seconds: float, name: str, failed: bool) -> None:
        self.tx.labels("rolled_back" if failed else "committed").observe(seconds)

    # ---- scrape -----------------------------------------------------------------------
    async def refresh(self) -> None:
        from channelmgr.ops import status

        d = self.d
        disabled = [n for n, c in d.config.channels.items() if not c.enabled]
        st = await status(d.rt.db, list(d.channels), disabled)

        async def q(conn):
            br = m.booking_revisions
            return (await conn.execute(select(br.c.channel, br.c.action, func.count())
                                       .group_by(br.c.channel, br.c.action))).all()

        bookings = await d.rt.db.read(q)
        from channelmgr.desk.requests import RequestDesk  # issue 12: requests past their time

        overdue = await RequestDesk(d.rt.ledger, d.config.desk).overdue_count()
        self.snapshot = {"status": st, "bookings": bookings, "requests_overdue": overdue}
        self.snapshot_at = time.time()

    async def render(self) -> bytes:
        await self.refresh()
        return generate_latest(self.registry)


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    dt = datetime.fromisoformat(iso)
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


class _FromLedger:
    """Gauges and counters read from the database at scrape time (Metrics.refresh)."""

    def __init__(self, metrics: Metrics):
        self.m = metrics

    def describe(self):
        return []

    def collect(self):
        snap = self.m.snapshot
        if snap is None:
            return
        st, now = snap["status"], time.time()
        last = GaugeMetricFamily("channelmgr_channel_last_success_timestamp_seconds",
                                 "When each channel last answered a call successfully (Unix time)", labels=["channel"])
        waiting = GaugeMetricFamily("channelmgr_pushes_waiting", "Outbox rows waiting to be pushed", labels=["channel"])
        oldest = GaugeMetricFamily("channelmgr_oldest_waiting_push_age_seconds",
                                   "Age of the oldest outbox row waiting (0: none)", labels=["channel"])
        dead = GaugeMetricFamily("channelmgr_dead_letters", "Pushes given up (dead-lettered)", labels=["channel"])
        breaker = GaugeMetricFamily("channelmgr_breaker_state", "The circuit breaker's state (1 for the current one)",
                                    labels=["channel", "state"])
        live = {n: c.breaker.state for n, c in self.m.d.channels.items()}
        for c in st["channels"]:
            ch = c["channel"]
            t = _ts(c["last_success_at"])
            if t is not None:
                last.add_metric([ch], t)
            waiting.add_metric([ch], c["outbox_depth"])
            o = _ts(c["oldest_pending_at"])
            oldest.add_metric([ch], max(0.0, now - o) if o is not None else 0.0)
            dead.add_metric([ch], c["dead_letters"])
            state = live.get(ch, c["breaker"])
            for s in BREAKER_STATES:
                breaker.add_metric([ch, s], 1.0 if s == state else 0.0)
        yield from (last, waiting, oldest, dead, breaker)
        received = CounterMetricFamily("channelmgr_bookings_received", "Booking revisions received, by action",
                                       labels=["channel", "action"])
        for ch, action, n in snap["bookings"]:
            received.add_metric([ch, action], n)
        yield received
        inbox = GaugeMetricFamily("channelmgr_inbox_messages", "Inbox messages that failed, or were stored and "
                                  "never processed", labels=["status"])
        inbox.add_metric(["failed"], st["inbox_failed"])
        inbox.add_metric(["stuck"], st.get("inbox_stuck", 0))
        yield inbox
        conflicts = GaugeMetricFamily("channelmgr_conflicts_open", "Open conflicts by kind", labels=["kind"])
        for kind, n in sorted(st["conflicts_open"].items()):
            conflicts.add_metric([kind], n)
        yield conflicts
        overdue = GaugeMetricFamily("channelmgr_requests_overdue", "Guests' special requests open past their "
                                    "time to answer (desk.request_answer_hours)")
        overdue.add_metric([], snap.get("requests_overdue", 0))
        yield overdue


def render_sync(metrics: Metrics) -> bytes:
    return generate_latest(metrics.registry)
