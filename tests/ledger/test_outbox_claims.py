"""Claimed pushes of a dead worker go back to the queue without breaking one-pending-per-cell."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from sqlalchemy import select, update

from channelmgr.ledger import models as m
from channelmgr.ledger.types import AriChange
from channelmgr.sync.push import release_claims

D = date(2027, 2, 27)


async def test_a_stale_claim_is_merged_into_a_newer_pending_push_of_its_cell(ledger, hotel, db):
    await ledger.set_ari(AriChange("SHA-TEST", "DK", D, D, rooms=4), actor="t")
    o = m.outbox
    past = datetime.now(timezone.utc) - timedelta(seconds=60)

    async def claim_all(conn):  # a worker claims every row, then dies with them
        await conn.execute(update(o).where(o.c.status == "pending").values(
            status="claimed", claimed_by="dead-worker", lease_until=past))

    await db.write(claim_all)
    # meanwhile the same cell changes again: a new pending row beside the claimed one
    await ledger.set_ari(AriChange("SHA-TEST", "DK", D, D, rooms=3), actor="t")

    async def rows(conn):
        return (await conn.execute(select(o.c.channel, o.c.cell, o.c.status).where(o.c.kind == "rooms"))).all()

    before = await db.read(rows)
    assert sorted(r.status for r in before if r.channel == "ctrip") == ["claimed", "pending"]

    async def release(conn):
        return await release_claims(conn, o.c.status == "claimed", o.c.lease_until < datetime.now(timezone.utc))

    released = await db.write(release)
    assert released >= 2
    after = await db.read(rows)
    for channel in ("booking", "ctrip"):
        mine = [r for r in after if r.channel == channel]
        assert sorted(r.status for r in mine) == ["done", "pending"], mine  # nothing lost, one pending per cell
    # a claim with no newer row simply goes back to pending
    async def claim_again(conn):
        await conn.execute(update(o).where(o.c.status == "pending").values(
            status="claimed", claimed_by="dead-worker", lease_until=past))

    await db.write(claim_again)
    await db.write(release)
    after = await db.read(rows)
    assert sorted(r.status for r in after if r.channel == "ctrip") == ["done", "pending"]
