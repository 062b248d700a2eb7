"""Booking intake in one transaction (issue 13): the raw message stored and the revision
applied together; a repeat is the same inbox row; a revision that cannot be applied stays in
the inbox, failed with its reason and a conflict, exactly as with the two-step path."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from adapters.base.contract import BookingRevision, Guest, Stay
from channelmgr.ledger import models as m
from channelmgr.sync.receiver import Receiver, Unapplicable

CHECKIN = date.today() + timedelta(days=10)


def revision(oid: str = "ONE1", rev: str = "1", amount: int = 88800) -> BookingRevision:
    return BookingRevision(channel="ctrip", hotel="H1", ota_booking_id=oid, revision=rev, action="new",
                           stays=(Stay("OTA-DK", "OTA-BAR", CHECKIN, CHECKIN + timedelta(days=1)),),
                           amount_minor=amount, currency="CNY", guest=Guest(name="张伟"))


async def inbox_rows(db):
    async def q(conn):
        return (await conn.execute(select(m.inbox).order_by(m.inbox.c.id))).all()
    return await db.read(q)


async def test_stored_and_applied_in_one_transaction_and_a_repeat_is_the_same_row(ledger, db):
    receiver = Receiver(ledger, lambda: None)
    writes0 = db.writes
    inbox_id, conf = await receiver.store_and_apply("ctrip", b"<raw>one</raw>", "reservation", revision())
    assert db.writes - writes0 == 1  # one write transaction for the inbox row and the booking
    assert conf.confirmation.startswith("CM") and not conf.duplicate
    rows = await inbox_rows(db)
    assert [(r.id, r.status, r.ota_booking_id, r.revision) for r in rows] == [(inbox_id, "applied", "ONE1", "1")]
    assert b"<raw>one</raw>" not in (rows[0].body_ct.encode() if isinstance(rows[0].body_ct, str) else rows[0].body_ct)
    held = await ledger.booking("ctrip", "ONE1")
    assert held["confirmation"] == conf.confirmation

    # the same bytes again: the same inbox row, still applied; a duplicate answer
    again_id, again = await receiver.store_and_apply("ctrip", b"<raw>one</raw>", "reservation", revision())
    assert again_id == inbox_id and again.duplicate and again.confirmation == conf.confirmation
    # other bytes, the same revision: a new row, marked duplicate
    other_id, other = await receiver.store_and_apply("ctrip", b"<raw>one, resent</raw>", "reservation", revision())
    assert other_id != inbox_id and other.duplicate
    rows = await inbox_rows(db)
    assert [(r.id, r.status) for r in rows] == [(inbox_id, "applied"), (other_id, "duplicate")]


async def test_a_revision_that_cannot_be_applied_stays_in_the_inbox_with_its_reason(ledger, db):
    receiver = Receiver(ledger, lambda: None)
    with pytest.raises(Unapplicable):  # an amount no column holds: its content, not our database
        await receiver.store_and_apply("ctrip", b"<raw>huge</raw>", "reservation", revision("HUGE", amount=10**30))
    rows = await inbox_rows(db)
    assert len(rows) == 1 and rows[0].status == "failed" and "applying failed" in rows[0].error
    assert rows[0].ota_booking_id == "HUGE"
    assert await ledger.booking("ctrip", "HUGE") is None

    async def q(conn):
        return (await conn.execute(select(m.conflicts.c.kind, m.conflicts.c.inbox_id))).all()
    assert [tuple(r) for r in await db.read(q)] == [("malformed_message", rows[0].id)]
    # delivered again intact: applied, the failed row's conflict closes by itself
    _, conf = await receiver.store_and_apply("ctrip", b"<raw>fixed</raw>", "reservation", revision("HUGE"))
    assert not conf.duplicate

    async def q2(conn):
        return (await conn.execute(select(m.conflicts.c.kind, m.conflicts.c.status).where(
            m.conflicts.c.kind == "malformed_message"))).all()
    assert [tuple(r) for r in await db.read(q2)] == [("malformed_message", "resolved")]
