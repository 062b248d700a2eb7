"""A malformed-message conflict closes itself when the OTA redelivers the booking intact.

Meituan's sandbox sends a corrupted (truncated) notice, then, being told it failed, sends
it again; once intact, the booking is applied and the conflict of the broken copy is
resolved by the system, with the reason naming the inbox row that arrived intact. A
broken message with no readable booking id leaves its conflict open for a person.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from channelmgr.ledger import models as m

pytestmark = pytest.mark.slow




async def _conflicts(r, kind="malformed_message"):
    async def q(conn):
        return (await conn.execute(select(m.conflicts, m.inbox.c.ota_booking_id.label("inbox_booking"))
                                   .outerjoin(m.inbox, m.inbox.c.id == m.conflicts.c.inbox_id)
                                   .where(m.conflicts.c.kind == kind).order_by(m.conflicts.c.id))).all()

    return await r.d.rt.db.read(q)


async def test_a_malformed_meituan_notice_redelivered_intact_closes_its_conflict(running):
    r = running
    # first a broken message with no booking id in it: it stays open whatever comes later
    nobody = await r.d.receiver.store("meituan", b'{"partnerId": "p", "bo', "pay")
    await r.d.receiver.reject(nobody, "meituan /order/pay: not JSON")

    night = r.today() + timedelta(days=15)
    await r.faults("meituan", malformed_rate=1.0)
    room, rate = r.codes("meituan", "DK", "BAR-DK")
    oid = (await r.book("meituan", hotel=r.hotel("meituan"), room=room, rate=rate, checkin=night.isoformat(),
                        checkout=(night + timedelta(days=1)).isoformat(), rooms=1, amount_minor=88800,
                        currency="CNY", guest={"name": "李雷"}))["ota_booking_id"]

    async def broken_arrived():
        return any(c.inbox_booking == oid for c in await _conflicts(r))

    await r.wait_for(broken_arrived, timeout=20, what="the corrupted notice to be raised")
    broken = [c for c in await _conflicts(r) if c.inbox_booking == oid]
    assert broken and all(c.status == "open" for c in broken)
    assert await r.ledger.booking("meituan", oid) is None

    await r.faults("meituan", malformed_rate=0.0)  # the next delivery is intact

    async def applied():
        return await r.ledger.booking("meituan", oid) is not None

    await r.wait_for(applied, timeout=30, what="the intact redelivery to be applied")

    async def intact_inbox(conn):
        return (await conn.execute(select(m.inbox.c.id).where(
            m.inbox.c.channel == "meituan", m.inbox.c.ota_booking_id == oid,
            m.inbox.c.status == "applied"))).scalar()

    intact = await r.d.rt.db.read(intact_inbox)
    closed = [c for c in await _conflicts(r) if c.inbox_booking == oid]
    assert closed and all(c.status == "resolved" for c in closed), [(c.id, c.status) for c in closed]
    assert all(c.resolved_by == "system" and c.resolved_at is not None for c in closed)
    assert all(c.resolution == f"the same booking arrived intact in inbox #{intact}" for c in closed)

    # the one with no readable booking id is still open, and says why
    left = [c for c in await _conflicts(r) if c.inbox_id == nobody]
    assert len(left) == 1 and left[0].status == "open"
    assert "no booking id could be read" in left[0].detail["note"]
