"""Issue 13: the channels that push one property at the same moment share one ledger read
(channelmgr.sync.snapshots), and no push ever gets a read that started before it asked: a
change committed before the ask is always in what it gets."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from channelmgr.ledger.types import AriChange
from channelmgr.sync.snapshots import SharedSnapshots

START = date(2027, 5, 1)


async def test_pushes_of_one_property_at_one_moment_share_a_read(ledger, hotel):
    await ledger.set_ari(AriChange("SHA-TEST", "DK", START, START + timedelta(days=9), rate_plan="BAR",
                                   price_minor=50000), actor="test")
    shared = SharedSnapshots(ledger, gather_seconds=0.01)
    # four channels' pushes, asking a moment apart for nearby nights
    got = await asyncio.gather(*(shared.get("SHA-TEST", START + timedelta(days=i), START + timedelta(days=i + 2))
                                 for i in range(4)))
    assert shared.reads == 1 and shared.asks == 4
    assert all(s is got[0] for s in got)
    # the read covers every night any of them asked for
    assert {n for (rt, n) in got[0].free if rt == "DK"} == {START + timedelta(days=i) for i in range(6)}
    assert got[0].rates[("BAR", START + timedelta(days=5))].prices[2] == 50000
    # nights far apart are read on their own
    far = await asyncio.gather(shared.get("SHA-TEST", START, START),
                               shared.get("SHA-TEST", START + timedelta(days=300), START + timedelta(days=300)))
    assert far[0] is not far[1] and shared.reads == 3


async def test_an_ask_after_a_read_started_gets_a_read_that_sees_what_was_committed(ledger, hotel, monkeypatch):
    await ledger.set_ari(AriChange("SHA-TEST", "DK", START, START, rooms=9), actor="test")
    shared = SharedSnapshots(ledger, gather_seconds=0)
    started = asyncio.Event()
    release = asyncio.Event()
    real = ledger.snapshot

    async def slow_snapshot(*a, **kw):  # the first read has started and is still in flight
        snap = await real(*a, **kw)
        started.set()
        await release.wait()
        return snap

    monkeypatch.setattr(ledger, "snapshot", slow_snapshot)
    first = asyncio.create_task(shared.get("SHA-TEST", START, START))
    await started.wait()
    monkeypatch.setattr(ledger, "snapshot", real)
    # a booking's change commits; its push claims and asks while the older read is in flight
    await ledger.set_ari(AriChange("SHA-TEST", "DK", START, START, rooms=4), actor="test")
    second = await shared.get("SHA-TEST", START, START)
    release.set()
    old = await first
    assert old.free[("DK", START)] == 9
    assert second.free[("DK", START)] == 4  # not the read that started before it asked
    assert shared.reads == 2


async def test_a_failed_read_fails_every_push_that_joined_it(ledger, hotel):
    shared = SharedSnapshots(ledger, gather_seconds=0.01)
    res = await asyncio.gather(shared.get("NO-SUCH", START, START), shared.get("NO-SUCH", START, START),
                               return_exceptions=True)
    assert shared.reads == 1
    assert all(isinstance(r, Exception) and "NO-SUCH" in str(r) for r in res)
    # and the next ask reads again
    assert (await shared.get("SHA-TEST", START, START)).free[("DK", START)] == 10
