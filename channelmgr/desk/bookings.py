"""Direct bookings (website, phone, walk-in, agency, corporate) into the same ledger path as an
OTA booking, one list of every booking, and the access audit of revealed guest data.

A direct booking is an :class:`IncomingBooking` with ``channel`` = its source, applied by
:meth:`Ledger.apply_booking` (inventory, journal and outbox in one transaction, fanned out to
every OTA the hotel is listed on). Unlike an OTA booking it may be refused: the check runs in
that transaction with the inventory rows locked, and with no free room (past the room type's
overbooking allowance) it raises :class:`Refused` unless an operator overrides, which is
journaled with who and why.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import func, or_, select

from adapters.base.contract import Guest
from channelmgr import dates
from channelmgr.ledger import models as m
from channelmgr.ledger.ledger import Ledger, new_correlation_id
from channelmgr.ledger.types import IncomingBooking, LedgerError, LocalStay
from channelmgr.security import mask_name, mask_value
from channelmgr.web.queries import NotFound, mask_phone

MAX_TEXT = 500


class Refused(LedgerError):
    """A direct booking the hotel cannot take (no free room); nothing was written (409)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(dt):
    return None if dt is None else (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc))


def _iso(v):
    if v is None:
        return None
    return _aware(v).isoformat() if isinstance(v, datetime) else v.isoformat()


@dataclass(frozen=True)
class DirectBooking:
    property: str
    room_type: str
    rate_plan: str
    arrival: date
    departure: date
    guest_name: str
    phone: str
    rooms: int = 1
    email: str | None = None
    request: str | None = None
    source: str = "phone"
    amount_minor: int | None = None  # None: the ledger's rate for those nights
    override: bool = False


@dataclass(frozen=True)
class Change:
    """A modification of a direct booking: None leaves a field as it is."""

    room_type: str | None = None
    rate_plan: str | None = None
    arrival: date | None = None
    departure: date | None = None
    rooms: int | None = None
    guest_name: str | None = None
    phone: str | None = None
    email: str | None = None
    request: str | None = None  # "" withdraws the request
    amount_minor: int | None = None
    override: bool = False


class DirectDesk:
    def __init__(self, ledger: Ledger, settings, mappings: Callable[[], Any]):
        self.ledger = ledger
        self.db = ledger.db
        self.cipher = ledger.cipher
        self.settings = settings  # DeskConfig
        self.mappings = mappings

    # ---- validation ------------------------------------------------------------------
    def _check_source(self, source: str) -> None:
        if source not in self.settings.sources:
            raise LedgerError(f"'{source}' is not a direct booking source; the sources are "
                              f"{', '.join(self.settings.sources)} (desk.sources in config.yaml)")

    def _check_stay(self, arrival: date, departure: date, rooms: int, tz: str) -> None:
        if departure <= arrival:
            raise LedgerError(f"the departure ({departure}) must be after the arrival ({arrival})")
        nights = (departure - arrival).days
        if nights > self.settings.max_stay_nights:
            raise LedgerError(f"a stay of {nights} nights is longer than the desk takes "
                              f"({self.settings.max_stay_nights}, desk.max_stay_nights)")
        today = dates.business_date(utcnow(), tz)
        if arrival < today:
            raise LedgerError(f"the arrival {arrival} is before the hotel's date {today} "
                              "(before 06:00 the hotel's date is still yesterday)")
        if arrival > today + timedelta(days=2 * 366):
            raise LedgerError(f"the arrival {arrival} is more than two years ahead")
        if not 1 <= rooms <= 100:
            raise LedgerError(f"a direct booking takes 1 to 100 rooms, not {rooms}")

    @staticmethod
    def _text(name: str, v: str | None, required: bool = False) -> str | None:
        if v is None or not v.strip():
            if required:
                raise LedgerError(f"give the guest's {name}")
            return None if v is None else ""
        v = v.strip()
        if len(v) > MAX_TEXT:
            raise LedgerError(f"the {name} is longer than {MAX_TEXT} characters")
        if any(ord(ch) < 32 and ch not in "\t\n" for ch in v):
            raise LedgerError(f"the {name} has control characters")
        return v

    async def _property(self, code: str):
        async def q(conn):
            return await Ledger.catalog(conn, code)

        return await self.db.read(q)

    async def _prices(self, cat, rate_plan: str, arrival: date, departure: date) -> dict[date, int | None]:
        """The ledger's price of the plan per night (a derived plan's through the mapping)."""
        nights = list(dates.nights(arrival, departure))
        rp = cat.rate_plan(rate_plan)
        pm = self.mappings().get(cat.property.code) if self.mappings() else None
        snap = await self.ledger.snapshot(cat.property.code, nights[0], nights[-1])
        plan = pm.rate_plans.get(rate_plan) if pm else None
        out: dict[date, int | None] = {}
        for n in nights:
            if plan is not None and plan.derived_from:
                from channelmgr.mapping.derive import plan_price

                out[n] = plan_price(pm, snap, rate_plan, n, rp.occupancy)
            else:
                rn = snap.rates.get((rate_plan, n))
                prices = rn.prices if rn else {}
                out[n] = prices.get(rp.occupancy) if prices.get(rp.occupancy) is not None else (
                    max(prices.values()) if prices else None)
        return out

    def _check(self, cat, *, override: bool, actor: str, reason: str | None, rooms_needed: int):
        """The refusal rule, run inside the ledger's transaction with the rows locked."""
        pm = self.mappings().get(cat.property.code) if self.mappings() else None
        rt_by_id = {r.id: r for r in cat.room_types.values()}

        async def check(conn, takes):
            short = []
            for rtid, night, free_after, _taken in takes:
                rt = rt_by_id.get(rtid)
                spec = pm.room_types.get(rt.code) if (pm and rt) else None
                allowed = spec.overbooking.allowed if spec else 0
                if free_after + allowed < 0:
                    short.append(f"{rt.code if rt else rtid} on {night} ({free_after + _taken} free"
                                 + (f", {allowed} allowed past physical" if allowed else "") + ")")
            if short and not override:
                raise Refused("no free room for this booking: " + "; ".join(short[:10])
                              + ("; ..." if len(short) > 10 else "")
                              + ". An operator may take it anyway with --override (API: \"override\": true)")
            if short:
                await Ledger.add_journal(conn, [Ledger._jrow(
                    utcnow(), actor, cat.property.id, "booking", {"property": cat.property.code},
                    "override", None, {"nights_without_room": short}, reason or "taken past the free rooms by an "
                    "operator's override", new_correlation_id())])
        return check

    # ---- add, modify, cancel -----------------------------------------------------------
    async def add(self, d: DirectBooking, *, actor: str, ota_booking_id: str | None = None) -> dict[str, Any]:
        self._check_source(d.source)
        name = self._text("name", d.guest_name, required=True)
        phone = self._text("phone", d.phone, required=True)
        email = self._text("e-mail", d.email)
        request = self._text("request", d.request)
        if d.amount_minor is not None and d.amount_minor <= 0:
            raise LedgerError("the amount must be more than 0")
        cat = await self._property(d.property)
        self._check_stay(d.arrival, d.departure, d.rooms, cat.property.timezone)
        rp = cat.rate_plan(d.rate_plan)
        rt = cat.room_type(d.room_type)
        if rp.room_type_id != rt.id:
            raise LedgerError(f"rate plan {d.rate_plan} sells another room type, not {d.room_type}")
        prices = await self._prices(cat, d.rate_plan, d.arrival, d.departure)
        amount = d.amount_minor
        if amount is None:
            missing = [n.isoformat() for n, p in prices.items() if p is None]
            if missing:
                raise LedgerError(f"the ledger has no price of {d.rate_plan} on {', '.join(missing[:5])}: "
                                  "set it (`channelmgr ari set`) or give --amount")
            amount = sum(prices.values()) * d.rooms
        oid = ota_booking_id or f"D{uuid.uuid4().hex[:11].upper()}"
        now = utcnow()
        b = IncomingBooking(
            channel=d.source, hotel_code=cat.property.code, property=cat.property.code, ota_booking_id=oid,
            revision="1", action="new",
            stays=(LocalStay(room_code=d.room_type, rate_code=d.rate_plan, room_type=d.room_type,
                             rate_plan=d.rate_plan, nights=tuple(prices.items()), rooms=d.rooms),),
            amount_minor=amount, currency=cat.property.currency,
            guest=Guest(name=name, phone=phone, email=email or None), special_requests=request or None,
            booked_at=now, revised_at=now, fingerprint=None)
        res = await self.ledger.apply_booking(
            b, actor=actor, check=self._check(cat, override=d.override, actor=actor, reason=None,
                                              rooms_needed=d.rooms))
        return {"id": res.booking_id, "confirmation": res.confirmation, "ota_booking_id": oid,
                "status": res.status, "duplicate": res.duplicate, "overbooked": res.overbooked,
                "amount_minor": amount, "currency": cat.property.currency, "outbox_rows": res.outbox_rows}

    async def _key(self, booking_id: int):
        async def q(conn):
            return (await conn.execute(select(m.bookings.c.channel, m.bookings.c.ota_booking_id,
                                              m.bookings.c.status, m.bookings.c.property_id,
                                              m.properties.c.code.label("property"))
                                       .outerjoin(m.properties, m.properties.c.id == m.bookings.c.property_id)
                                       .where(m.bookings.c.id == booking_id))).first()

        key = await self.db.read(q)
        if key is None:
            raise NotFound(f"there is no booking #{booking_id}")
        return key

    async def _next_revision(self, booking_id: int) -> str:
        async def q(conn):
            return (await conn.execute(select(func.count()).select_from(m.booking_revisions).where(
                m.booking_revisions.c.booking_id == booking_id))).scalar()

        return str((await self.db.read(q)) + 1)

    def _direct_only(self, key) -> None:
        if key.channel not in self.settings.sources:
            raise LedgerError(f"booking {key.ota_booking_id} came from {key.channel}: an OTA booking is "
                              "changed on the OTA, which sends the change here")

    async def modify(self, booking_id: int, c: Change, *, actor: str) -> dict[str, Any]:
        key = await self._key(booking_id)
        self._direct_only(key)
        if key.status == "cancelled":
            raise LedgerError(f"booking {key.ota_booking_id} is cancelled; make a new one")
        cur = await self.ledger.booking(key.channel, key.ota_booking_id, reveal=True)
        cat = await self._property(key.property)
        nights = cur["nights"]
        room_type = c.room_type or _local_code(cat, nights, "room")
        rate_plan = c.rate_plan or _local_code(cat, nights, "rate")
        arrival = c.arrival or date.fromisoformat(cur["checkin"])
        departure = c.departure or date.fromisoformat(cur["checkout"])
        rooms = c.rooms or (nights[0]["rooms"] if nights else cur["rooms"])
        self._check_stay(arrival, departure, rooms, cat.property.timezone) if (
            c.arrival or c.departure or c.rooms) else None
        rp, rt = cat.rate_plan(rate_plan), cat.room_type(room_type)
        if rp.room_type_id != rt.id:
            raise LedgerError(f"rate plan {rate_plan} sells another room type, not {room_type}")
        prices = await self._prices(cat, rate_plan, arrival, departure)
        if c.amount_minor is not None and c.amount_minor <= 0:
            raise LedgerError("the amount must be more than 0")
        stay_changed = any(v is not None for v in (c.room_type, c.rate_plan, c.arrival, c.departure, c.rooms))
        amount = c.amount_minor
        if amount is None:
            if stay_changed:
                missing = [n.isoformat() for n, p in prices.items() if p is None]
                if missing:
                    raise LedgerError(f"the ledger has no price of {rate_plan} on {', '.join(missing[:5])}: "
                                      "give --amount")
                amount = sum(prices.values()) * rooms
            else:
                amount = cur["amount_minor"]
        guest = cur["guest"]
        request = self._text("request", c.request) if c.request is not None else cur["special_requests"]
        now = utcnow()
        b = IncomingBooking(
            channel=key.channel, hotel_code=cat.property.code, property=cat.property.code,
            ota_booking_id=key.ota_booking_id, revision=await self._next_revision(booking_id), action="modify",
            stays=(LocalStay(room_code=room_type, rate_code=rate_plan, room_type=room_type, rate_plan=rate_plan,
                             nights=tuple(prices.items()), rooms=rooms),),
            amount_minor=amount, currency=cat.property.currency,
            guest=Guest(name=self._text("name", c.guest_name) or guest["name"],
                        phone=self._text("phone", c.phone) or guest["phone"],
                        email=self._text("e-mail", c.email) or guest["email"]),
            special_requests=request or None, revised_at=now)
        res = await self.ledger.apply_booking(
            b, actor=actor, check=self._check(cat, override=c.override, actor=actor, reason=None, rooms_needed=rooms))
        return {"id": res.booking_id, "confirmation": res.confirmation, "ota_booking_id": key.ota_booking_id,
                "status": res.status, "duplicate": res.duplicate, "overbooked": res.overbooked,
                "amount_minor": amount, "currency": cat.property.currency, "outbox_rows": res.outbox_rows}

    async def cancel(self, booking_id: int, reason: str, *, actor: str) -> dict[str, Any]:
        reason = self._text("reason", reason, required=True)
        key = await self._key(booking_id)
        self._direct_only(key)
        if key.status == "cancelled":
            raise LedgerError(f"booking {key.ota_booking_id} is already cancelled")
        b = IncomingBooking(channel=key.channel, hotel_code=key.property, property=key.property,
                            ota_booking_id=key.ota_booking_id, revision=await self._next_revision(booking_id),
                            action="cancel", revised_at=utcnow())
        res = await self.ledger.apply_booking(b, actor=actor)

        async def tx(conn):  # why, for the journal
            await Ledger.add_journal(conn, [Ledger._jrow(utcnow(), actor, key.property_id, "booking",
                                                         {"channel": key.channel,
                                                          "ota_booking_id": key.ota_booking_id},
                                                         "cancel_reason", None, None, reason, new_correlation_id())])

        await self.db.write(tx)
        return {"id": res.booking_id, "confirmation": res.confirmation, "ota_booking_id": key.ota_booking_id,
                "status": res.status, "duplicate": res.duplicate, "overbooked": res.overbooked,
                "amount_minor": None, "currency": None, "outbox_rows": res.outbox_rows}

    # ---- one list ---------------------------------------------------------------------
    async def find(self, ref: str) -> int:
        """A booking by our confirmation number, an OTA's (or a direct booking's) id, or #id."""
        ref = (ref or "").strip()[:128]
        if not ref:
            raise LedgerError("give a booking: our confirmation number (CM...) or the OTA's booking id")

        async def q(conn):
            b = m.bookings
            rows = (await conn.execute(select(b.c.id, b.c.channel).where(
                or_(b.c.confirmation == ref, b.c.ota_booking_id == ref)).limit(5))).all()
            if not rows and ref.lstrip("#").isdigit():
                rows = (await conn.execute(select(b.c.id, b.c.channel).where(b.c.id == int(ref.lstrip("#"))))).all()
            return rows

        rows = await self.db.read(q)
        if not rows:
            raise NotFound(f"there is no booking {ref!r} (give our confirmation number or the OTA's booking id)")
        if len(rows) > 1:
            raise LedgerError(f"{ref!r} is the id of bookings on several channels "
                              f"({', '.join(r.channel for r in rows)}); give our confirmation number")
        return rows[0].id

    async def list(self, *, property: str | None = None, source: str | None = None, status: str | None = None,
                   arrival_from: date | None = None, arrival_to: date | None = None, search: str | None = None,
                   reveal: bool = False, limit: int = 50, before_id: int | None = None) -> list[dict[str, Any]]:
        """Every booking of every source, newest first (web.queries.bookings, extended with
        an arrival range and a search over ids and the guest's name and phone)."""
        from channelmgr.web import queries

        if search and len(search) > 128:
            raise LedgerError("the search text is longer than 128 characters")
        text = (search or "").strip()
        if not text:
            return await queries.bookings(self.db, self.cipher, reveal=reveal, status=status, channel=source,
                                          property=property, arrival_from=arrival_from, arrival_to=arrival_to,
                                          before_id=before_id, limit=limit)
        # ids first (indexed); then guest names and phones, which are encrypted: decrypted in
        # bounded pages (at most 5,000 bookings read)
        rows = await queries.bookings(self.db, self.cipher, reveal=True, status=status, channel=source,
                                      property=property, arrival_from=arrival_from, arrival_to=arrival_to,
                                      ota_id=text, limit=limit)
        rows += await queries.bookings(self.db, self.cipher, reveal=True, status=status, channel=source,
                                       property=property, arrival_from=arrival_from, arrival_to=arrival_to,
                                       confirmation=text, limit=limit)
        seen = {r["id"] for r in rows}
        low = text.lower()
        digits = "".join(ch for ch in text if ch.isdigit())
        cursor = before_id
        for _ in range(25):
            if len(rows) >= limit:
                break
            page = await queries.bookings(self.db, self.cipher, reveal=True, status=status, channel=source,
                                          property=property, arrival_from=arrival_from, arrival_to=arrival_to,
                                          before_id=cursor, limit=200)
            if not page:
                break
            cursor = page[-1]["id"]
            for r in page:
                g = r["guest"]
                hit = (g["name"] and low in g["name"].lower()) or (
                    len(digits) >= 4 and g["phone"] and digits in "".join(ch for ch in g["phone"] if ch.isdigit()))
                if hit and r["id"] not in seen:
                    rows.append(r)
                    seen.add(r["id"])
        rows = sorted(rows, key=lambda r: -r["id"])[:limit]
        if not reveal:
            for r in rows:
                g = r["guest"]
                g["name"] = mask_name(g["name"]) if g["name"] else g["name"]
                g["phone"] = mask_phone(g["phone"]) if g["phone"] else g["phone"]
        return rows

    async def show(self, booking_id: int, *, reveal: bool = False, actor: str | None = None, why: str | None = None,
                   via: str = "cli") -> dict[str, Any]:
        """A booking in full: revisions, nights, money, channels told, requests, conflicts.
        ``reveal`` needs who and why: an access-audit row is written first."""
        from channelmgr.web import queries

        if reveal:
            why = (why or "").strip()
            if not actor or not why:
                raise LedgerError("revealing guest data needs who you are and why (--why \"...\"): it is audited")
            await self.audit_access(booking_id, actor=actor, why=why, via=via)
        out = await queries.booking(self.ledger, booking_id, reveal=reveal)
        out["source"] = out["channel"]
        out["direct"] = out["channel"] in self.settings.sources
        out["channels_told"] = await self.channels_told(booking_id)
        from channelmgr.desk.requests import RequestDesk

        out["requests"] = await RequestDesk(self.ledger, self.settings).list(booking_id=booking_id, status=None,
                                                                             reveal=reveal)
        return out

    async def channels_told(self, booking_id: int) -> list[dict[str, Any]]:
        """Per OTA, the pushes of the rooms this booking changed: sent, waiting or failed, and
        when (the outbox rows of its transactions' correlation ids)."""
        async def q(conn):
            key = (await conn.execute(select(m.bookings.c.channel, m.bookings.c.ota_booking_id,
                                             m.bookings.c.property_id).where(m.bookings.c.id == booking_id))).first()
            if key is None:
                return []
            j = m.journal
            reasons = [f"booking {key.channel}:{key.ota_booking_id} {a}" for a in ("new", "modify", "cancel", "upgrade")]
            cids = (await conn.execute(select(j.c.correlation_id).where(
                j.c.property_id == key.property_id, j.c.entity == "inventory", j.c.reason.in_(reasons))
                .distinct().limit(500))).scalars().all()
            if not cids:
                return []
            o = m.outbox
            return (await conn.execute(select(o.c.channel, o.c.status, func.count().label("n"),
                                              func.max(o.c.created_at).label("at"))
                                       .where(o.c.correlation_id.in_(list(cids)))
                                       .group_by(o.c.channel, o.c.status))).all()

        out: dict[str, dict[str, Any]] = {}
        for r in await self.db.read(q):
            c = out.setdefault(r.channel, {"channel": r.channel, "pushes": 0, "sent": 0, "waiting": 0,
                                           "failed": 0, "last_at": None})
            c["pushes"] += r.n
            c["sent" if r.status == "done" else "waiting" if r.status in ("pending", "claimed") else "failed"] += r.n
            at = _iso(r.at)
            c["last_at"] = max(x for x in (c["last_at"], at) if x) if (c["last_at"] or at) else None
        return sorted(out.values(), key=lambda c: c["channel"])

    async def audit_access(self, booking_id: int, *, actor: str, why: str, via: str) -> None:
        await self._key(booking_id)

        async def tx(conn):
            await conn.execute(m.desk_access_audit.insert().values(
                at=utcnow(), actor=actor[:64], booking_id=booking_id, why=why[:1000], via=via[:16]))

        await self.db.write(tx)

    async def audit(self, *, limit: int = 50, booking_id: int | None = None) -> list[dict[str, Any]]:
        async def q(conn):
            a = m.desk_access_audit
            stmt = (select(a, m.bookings.c.confirmation, m.bookings.c.channel, m.bookings.c.ota_booking_id)
                    .join(m.bookings, m.bookings.c.id == a.c.booking_id).order_by(a.c.id.desc()).limit(limit))
            if booking_id is not None:
                stmt = stmt.where(a.c.booking_id == booking_id)
            return (await conn.execute(stmt)).all()

        return [{"id": r.id, "at": _iso(r.at), "actor": r.actor, "booking_id": r.booking_id,
                 "confirmation": r.confirmation, "channel": r.channel, "ota_booking_id": r.ota_booking_id,
                 "why": r.why, "via": r.via} for r in await self.db.read(q)]


def _local_code(cat, nights: list[dict[str, Any]], which: str) -> str:
    """The local room type / rate plan of a direct booking's nights (they carry local codes)."""
    if not nights:
        raise LedgerError("this booking has no nights to change; give --room-type and --rate-plan")
    code = nights[0]["room_code" if which == "room" else "rate_code"]
    if code is None:
        raise LedgerError("give --rate-plan")
    return code


def body_digest(body: Any) -> str:
    import json

    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def masked_guest(g: dict[str, Any]) -> dict[str, Any]:
    return {k: (mask_name(v) if k == "name" else mask_phone(v) if k == "phone" else mask_value(k, v)) if v else v
            for k, v in g.items()}
