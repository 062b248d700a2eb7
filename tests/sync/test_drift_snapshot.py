"""Issue 13: the read-back channels share a property's ledger snapshot (taken for Booking.com,
used for Meituan a moment later), but never one the ledger has moved past: any change in the
ledger in between and the next read-back compares against the ledger as it is now."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

from channelmgr.ledger.types import AriChange
from channelmgr.sync.drift import _snapshot

START = date(2027, 5, 1)
END = START + timedelta(days=30)


async def test_a_shared_snapshot_is_never_older_than_the_ledger(db, ledger, hotel):
    daemon = SimpleNamespace(rt=SimpleNamespace(db=db, ledger=ledger))
    await ledger.set_ari(AriChange("SHA-TEST", "DK", START, END, rate_plan="BAR", price_minor=50000), actor="test")
    first = await _snapshot(daemon, "SHA-TEST", START, END)
    assert await _snapshot(daemon, "SHA-TEST", START, END) is first  # nothing changed: taken once
    await ledger.set_ari(AriChange("SHA-TEST", "DK", START, START, rate_plan="BAR", price_minor=45000), actor="test")
    after = await _snapshot(daemon, "SHA-TEST", START, END)
    assert after is not first
    assert after.rates[("BAR", START)].prices[2] == 45000 and first.rates[("BAR", START)].prices[2] == 50000
    assert after.free[("DK", START)] == 10
    await ledger.set_ari(AriChange("SHA-TEST", "DK", START, START, rooms=7), actor="test")
    assert (await _snapshot(daemon, "SHA-TEST", START, END)).free[("DK", START)] == 7
