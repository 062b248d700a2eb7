"""Special requests on a clock: read from every booking's special-request text (OTA and
direct), one row per kind and piece of text, due ``desk.request_answer_hours`` (2 by default,
per property configurable) after the booking's arrival in the ledger.

A modification that changes the text withdraws the requests it no longer names and opens the
new ones on the modification's clock; a cancellation withdraws what is still open.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select, update

from channelmgr.desk.classify import classify
from channelmgr.ledger import models as m
from channelmgr.ledger.ledger import Ledger
from channelmgr.ledger.types import LedgerError
from channelmgr.web.queries import Conflict, NotFound

OPEN = ("open",)
LIVE = ("open", "answered")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(dt):
    return None if dt is None else (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc))


def _iso(dt):
    return None if dt is None else _aware(dt).isoformat()


class RequestDesk:
    def __init__(self, ledger: Ledger, settings):
        self.ledger = ledger
        self.db = ledger.db
        self.cipher = ledger.cipher
        self.settings = settings

    def _digest(self, kind: str, text: str) -> str:
        return self.cipher.digest(f"request\0{kind}\0{text}")

    async def sync(self, conn, booking_id: int) -> dict[str, int]:
        """Bring a booking's request rows in line with its text (inside the caller's transaction)."""
        b = (await conn.execute(select(m.bookings.c.id, m.bookings.c.status, m.bookings.c.special_requests_ct,
                                       m.bookings.c.property_id, m.bookings.c.received_at,
                                       m.properties.c.code.label("property"))
                                .outerjoin(m.properties, m.properties.c.id == m.bookings.c.property_id)
                                .where(m.bookings.c.id == booking_id))).first()
        if b is None:
            return {"opened": 0, "withdrawn": 0}
        now = utcnow()
        wanted: dict[str, tuple[str, str]] = {}
        if b.status != "cancelled":
            text = self.cipher.decrypt(b.special_requests_ct)
            for kind, piece in classify(text):
                wanted[self._digest(kind, piece)] = (kind, piece)
        rows = (await conn.execute(select(m.desk_requests).where(m.desk_requests.c.booking_id == booking_id))).all()
        have = {r.text_sha256: r for r in rows}
        withdrawn = 0
        for r in rows:
            if r.text_sha256 not in wanted and r.status in LIVE:
                await conn.execute(update(m.desk_requests).where(m.desk_requests.c.id == r.id).values(
                    status="withdrawn", updated_at=now))
                withdrawn += 1
        opened = 0
        # the clock starts when the revision naming the request arrived in the ledger
        last = (await conn.execute(select(func.max(m.booking_revisions.c.received_at)).where(
            m.booking_revisions.c.booking_id == booking_id, m.booking_revisions.c.outcome == "applied"))).scalar()
        started = _aware(last) or _aware(b.received_at) or now
        hours = self.settings.answer_hours(b.property)
        for digest, (kind, piece) in wanted.items():
            r = have.get(digest)
            if r is None:
                await conn.execute(m.desk_requests.insert().values(
                    booking_id=booking_id, property_id=b.property_id, kind=kind, text_ct=self.cipher.encrypt(piece),
                    text_sha256=digest, status="open", received_at=started, due_at=started + timedelta(hours=hours),
                    updated_at=now))
                opened += 1
            elif r.status == "withdrawn":  # named again by a later modification: open again, new clock
                await conn.execute(update(m.desk_requests).where(m.desk_requests.c.id == r.id).values(
                    status="open", received_at=started, due_at=started + timedelta(hours=hours), updated_at=now))
                opened += 1
        return {"opened": opened, "withdrawn": withdrawn}

    async def list(self, *, overdue: bool = False, status: str | None = "open", booking_id: int | None = None,
                   property: str | None = None, reveal: bool = True, limit: int = 200,
                   now: datetime | None = None) -> list[dict[str, Any]]:
        now = now or utcnow()

        async def q(conn):
            r = m.desk_requests
            stmt = (select(r, m.bookings.c.confirmation, m.bookings.c.channel, m.bookings.c.ota_booking_id,
                           m.bookings.c.checkin, m.properties.c.code.label("property"))
                    .join(m.bookings, m.bookings.c.id == r.c.booking_id)
                    .outerjoin(m.properties, m.properties.c.id == r.c.property_id)
                    .order_by(r.c.due_at, r.c.id).limit(limit))
            if overdue:
                stmt = stmt.where(r.c.status == "open", r.c.due_at < now)
            elif status:
                stmt = stmt.where(r.c.status == status)
            if booking_id is not None:
                stmt = stmt.where(r.c.booking_id == booking_id)
            if property:
                stmt = stmt.where(m.properties.c.code == property)
            return (await conn.execute(stmt)).all()

        out = []
        for r in await self.db.read(q):
            due = _aware(r.due_at)
            left = (due - now).total_seconds()
            out.append({"id": r.id, "booking_id": r.booking_id, "confirmation": r.confirmation, "channel": r.channel,
                        "ota_booking_id": r.ota_booking_id, "property": r.property,
                        "arrival": r.checkin.isoformat() if r.checkin else None, "kind": r.kind,
                        "text": self.cipher.decrypt(r.text_ct) if reveal else "***", "status": r.status,
                        "received_at": _iso(r.received_at), "due_at": due.isoformat(),
                        "seconds_left": int(left), "overdue": r.status == "open" and left < 0,
                        "answered_at": _iso(r.answered_at), "answered_by": r.answered_by, "note": r.note,
                        "done_at": _iso(r.done_at), "done_by": r.done_by})
        return out

    async def answer(self, request_id: int, note: str, *, actor: str) -> dict[str, Any]:
        note = (note or "").strip()
        if not note:
            raise LedgerError("say in --note what the guest was told or what was arranged")
        if len(note) > 2000:
            raise LedgerError("the note is longer than 2000 characters")
        return await self._set(request_id, actor, "answered", note=note)

    async def done(self, request_id: int, *, actor: str) -> dict[str, Any]:
        return await self._set(request_id, actor, "done")

    async def _set(self, request_id: int, actor: str, to: str, note: str | None = None) -> dict[str, Any]:
        async def tx(conn):
            r = (await conn.execute(select(m.desk_requests).where(m.desk_requests.c.id == request_id))).first()
            if r is None:
                raise NotFound(f"there is no request #{request_id}")
            allowed = ("open",) if to == "answered" else ("open", "answered")
            if r.status not in allowed:
                raise Conflict(f"request #{request_id} is {r.status}; it cannot be marked {to}")
            now = utcnow()
            values: dict[str, Any] = {"status": to, "updated_at": now}
            if to == "answered":
                values.update(answered_at=now, answered_by=actor[:64], note=note)
            else:
                values.update(done_at=now, done_by=actor[:64])
            await conn.execute(update(m.desk_requests).where(m.desk_requests.c.id == request_id).values(**values))
            await Ledger.add_journal(conn, [Ledger._jrow(now, actor[:64], r.property_id, "request",
                                                         {"request": request_id, "booking_id": r.booking_id},
                                                         to, {"status": r.status}, {"status": to}, note,
                                                         f"req-{request_id}-{to}"[:64])])

        await self.db.write(tx)
        return (await self._one(request_id))[0]

    async def _one(self, request_id: int) -> list[dict[str, Any]]:
        all_rows = await self.list(status=None, limit=100_000, booking_id=await self._booking_of(request_id))
        return [r for r in all_rows if r["id"] == request_id]

    async def _booking_of(self, request_id: int) -> int:
        async def q(conn):
            return (await conn.execute(select(m.desk_requests.c.booking_id).where(
                m.desk_requests.c.id == request_id))).scalar()

        return await self.db.read(q)

    async def overdue_count(self, now: datetime | None = None) -> int:
        now = now or utcnow()

        async def q(conn):
            return (await conn.execute(select(func.count()).select_from(m.desk_requests).where(
                m.desk_requests.c.status == "open", m.desk_requests.c.due_at < now))).scalar()

        return int(await self.db.read(q) or 0)
