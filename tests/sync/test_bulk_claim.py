"""A bulk over many properties is held until its writer is quiet, then each property goes
whole in one claim (issue 13); a closure is never held. The worker's clock is the test's."""

from __future__ import annotations

import dataclasses
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from channelmgr.ledger import models as m
from channelmgr.ledger.types import AriChange
from channelmgr.sync import push
from channelmgr.sync.push import ChannelRuntime, PushSettings, PushWorker
from tests.conftest import HOTEL

TWO = dataclasses.replace(HOTEL, code="SHA-TWO", name="Second Hotel")
D = date.today() + timedelta(days=10)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    perf_counter = staticmethod(time.perf_counter)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(push, "time", c)
    return c


async def _pending(db, channel: str) -> int:
    async def q(conn):
        return (await conn.execute(select(func.count()).select_from(m.outbox).where(
            m.outbox.c.channel == channel, m.outbox.c.status == "pending"))).scalar()

    return await db.read(q)


async def _listed(ledger, db) -> None:
    """Both hotels in the ledger, their first full pushes taken as delivered."""
    await ledger.sync_catalog([HOTEL, TWO])

    async def tx(conn):
        await conn.execute(update(m.outbox).where(m.outbox.c.status == "pending").values(status="done"))

    await db.write(tx)


def _worker(ledger) -> PushWorker:
    s = PushSettings(coalesce_seconds=0.4, coalesce_bulk_seconds=1.5, coalesce_max_seconds=20)
    return PushWorker(ChannelRuntime("booking", adapter=None), ledger, lambda: None, synclog=None, settings=s,
                      worker_id="test-worker")


async def _bulk_of_two(ledger, db) -> PushWorker:
    """Both hotels' prices over 60 nights, one after the other; the worker's first look holds them."""
    await _listed(ledger, db)
    w = _worker(ledger)
    end = D + timedelta(days=59)
    await ledger.set_ari(AriChange("SHA-TEST", "DK", D, end, rate_plan="BAR", price_minor=90000), actor="t")
    await ledger.set_ari(AriChange("SHA-TWO", "DK", D, end, rate_plan="BAR", price_minor=91000), actor="t")
    assert await w.claim() == []
    return w


async def test_a_bulk_over_properties_is_held_while_written_then_each_goes_whole(ledger, db, clock):
    await _listed(ledger, db)
    w = _worker(ledger)
    end = D + timedelta(days=59)
    # a PMS's bulk: the first hotel's prices, the second's, then the first's twin rooms
    await ledger.set_ari(AriChange("SHA-TEST", "DK", D, end, rate_plan="BAR", price_minor=90000), actor="t")
    assert await w.claim() == []  # a burst: it waits for company
    clock.t += 1.0
    await ledger.set_ari(AriChange("SHA-TWO", "DK", D, end, rate_plan="BAR", price_minor=91000), actor="t")
    assert await w.claim() == []  # two properties' bursts: a bulk, still being written
    clock.t += 1.0  # the first hotel has been quiet 2 s: on its own it would have gone
    await ledger.set_ari(AriChange("SHA-TEST", "ST", D, end, rate_plan="BAR-ST", price_minor=60000), actor="t")
    assert await w.claim() == []  # the outbox grew: still held
    clock.t += 1.0
    assert await w.claim() == []  # quiet 1 s: under the bulk's 1.5 s
    clock.t += 1.0
    before = await _pending(db, "booking")
    got = await w.claim()
    assert len(got) == before > 0  # every pending row, in one claim
    assert {r.property_id for r in got} and len({r.property_id for r in got}) == 2
    assert await _pending(db, "booking") == 0


async def test_a_closure_is_not_held_by_a_bulk_being_written(ledger, db, clock):
    w = await _bulk_of_two(ledger, db)
    clock.t += 0.5
    assert await w.claim() == []  # held: the outbox is still growing (a bulk)
    # a booking-like fall in rooms on the second hotel while the bulk is held
    await ledger.set_ari(AriChange("SHA-TWO", "DK", D, D, rooms=2), actor="t")
    clock.t += 0.1
    got = await w.claim()
    assert any(r.priority == 0 for r in got), got  # the closure goes at once
    assert {r.property_id for r in got} == {r.property_id for r in got if r.priority == 0}
    # the first hotel's burst still waits for the bulk to end
    assert await _pending(db, "booking") > 0


async def test_a_bulk_that_never_stops_is_sent_after_coalesce_max_seconds(ledger, db, clock):
    w = await _bulk_of_two(ledger, db)
    price = 92000
    got = []
    for _ in range(30):  # a write every second, for 30 s
        clock.t += 1.0
        price += 100
        await ledger.set_ari(AriChange("SHA-TWO", "ST", D, D + timedelta(days=20), rate_plan="BAR-ST",
                                       price_minor=price), actor="t")
        got = await w.claim()
        if got:
            break
    assert got, "held for ever"
    assert clock.t - 1000.0 <= 20 + 1.0  # at most coalesce_max_seconds after it was first seen
