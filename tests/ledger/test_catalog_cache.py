"""Issue 13: the catalog cache (a property's ids by code, for intake and pushes) holds only
the properties read within its TTL: the watchdog reads every property in turn, and keeping
them all was 40 MB at 10,000 properties."""

from __future__ import annotations

import dataclasses

from channelmgr.ledger import ledger as ledger_module


async def test_entries_past_their_ttl_are_dropped_as_new_ones_come(ledger, hotel, monkeypatch):
    await ledger.sync_catalog([dataclasses.replace(hotel, code="SHA-TWO", name="Two")])
    clock = [1000.0]
    monkeypatch.setattr(ledger_module.time, "monotonic", lambda: clock[0])

    async def read(code):
        async def q(conn):
            return await ledger.cached_catalog(conn, code)

        return await ledger.db.read(q)

    first = await read("SHA-TEST")
    assert await read("SHA-TEST") is first  # fresh: from the cache
    clock[0] += ledger_module.CATALOG_TTL_SECONDS + 1
    await read("SHA-TWO")
    assert set(ledger._catalogs) == {"SHA-TWO"}  # the stale one went when a new one came
    again = await read("SHA-TEST")
    assert again is not first and again.property.id == first.property.id
    assert set(ledger._catalogs) == {"SHA-TWO", "SHA-TEST"}
