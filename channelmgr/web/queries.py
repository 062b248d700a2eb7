"""The operator's reads and the one write (a conflict resolved), shared by the API and the CLI.

Every list is bounded (a limit) and served by an index: bookings newest first by id (keyset
``before_id`` or offset), conflicts by status, the sync log by id.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import func, select, update

from channelmgr.ledger import models as m
from channelmgr.ledger.db import Database
from channelmgr.ledger.ledger import Ledger, new_correlation_id
from channelmgr.ledger.types import LedgerError
from channelmgr.security import mask_name, mask_value


class NotFound(LedgerError):
    """What was asked for does not exist (404 on the API)."""


class Conflict(LedgerError):
    """The request contradicts the current state (409 on the API)."""


def _aware(dt):
    return None if dt is None else (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc))


def _iso(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return _aware(v).isoformat()
    return v.isoformat()


# ---- conflicts ------------------------------------------------------------------------
def _conflict(r) -> dict[str, Any]:
    return {"id": r.id, "at": _iso(r.at), "kind": r.kind, "property": r.property, "channel": r.channel,
            "booking_id": r.booking_id, "inbox_id": r.inbox_id, "summary": r.summary, "detail": r.detail,
            "status": r.status, "resolved_at": _iso(r.resolved_at), "resolved_by": r.resolved_by,
            "resolution": r.resolution}


def _conflict_select():
    return (select(m.conflicts, m.properties.c.code.label("property"))
            .outerjoin(m.properties, m.properties.c.id == m.conflicts.c.property_id))


async def conflicts(db: Database, *, status: str | None = "open", kind: str | None = None,
                    booking_id: int | None = None, before_id: int | None = None, limit: int = 50) -> list[dict]:
    async def q(conn):
        stmt = _conflict_select().order_by(m.conflicts.c.id.desc()).limit(limit)
        if status:
            stmt = stmt.where(m.conflicts.c.status == status)
        if kind:
            stmt = stmt.where(m.conflicts.c.kind == kind)
        if booking_id is not None:
            stmt = stmt.where(m.conflicts.c.booking_id == booking_id)
        if before_id is not None:
            stmt = stmt.where(m.conflicts.c.id < before_id)
        return [_conflict(r) for r in (await conn.execute(stmt)).all()]

    return await db.read(q)


async def conflict(db: Database, conflict_id: int) -> dict[str, Any]:
    async def q(conn):
        return (await conn.execute(_conflict_select().where(m.conflicts.c.id == conflict_id))).first()

    r = await db.read(q)
    if r is None:
        raise NotFound(f"there is no conflict #{conflict_id}")
    return _conflict(r)


async def resolve_conflict(db: Database, conflict_id: int, note: str, *, actor: str,
                           resolved_by: str) -> dict[str, Any]:
    """Mark an open conflict resolved with a note: who and when on the conflict, and a
    journal row, in one transaction."""
    note = (note or "").strip()
    if not note:
        raise LedgerError("say in a note what was done about it")

    async def tx(conn):
        r = (await conn.execute(select(m.conflicts).where(m.conflicts.c.id == conflict_id))).first()
        if r is None:
            raise NotFound(f"there is no conflict #{conflict_id}")
        if r.status != "open":
            raise Conflict(f"conflict #{conflict_id} is already {r.status} (by {r.resolved_by or '?'})")
        at = datetime.now(timezone.utc)
        await conn.execute(update(m.conflicts).where(m.conflicts.c.id == conflict_id).values(
            status="resolved", resolved_at=at, resolved_by=resolved_by[:64], resolution=note))
        await Ledger.add_journal(conn, [{
            "at": at, "actor": actor[:64], "property_id": r.property_id, "entity": "conflict",
            "entity_key": {"conflict": conflict_id, "kind": r.kind}, "action": "resolve",
            "before": {"status": r.status}, "after": {"status": "resolved", "resolution": note},
            "reason": note, "correlation_id": new_correlation_id()}])

    await db.write(tx)
    return await conflict(db, conflict_id)


# ---- bookings -------------------------------------------------------------------------
def _guest(cipher, r, reveal: bool) -> dict[str, str | None]:
    name = cipher.decrypt(r.guest_name_ct)
    phone = cipher.decrypt(r.guest_phone_ct)
    if not reveal:
        name = mask_name(name) if name else name
        phone = mask_phone(phone) if phone else phone
    return {"name": name, "phone": phone}


def mask_phone(phone: str) -> str:
    """13800000000 -> 138****0000; others keep only their last four digits."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) == 11 and digits.startswith("1"):
        return f"{digits[:3]}****{digits[-4:]}"
    return mask_value("phone", phone) if len(digits) >= 7 else "***"


async def bookings(db: Database, cipher, *, reveal: bool, ota_id: str | None = None,
                   confirmation: str | None = None, arrival: date | None = None, status: str | None = None,
                   channel: str | None = None, property: str | None = None, before_id: int | None = None,
                   offset: int = 0, limit: int = 50, arrival_from: date | None = None,
                   arrival_to: date | None = None) -> list[dict[str, Any]]:
    async def q(conn):
        b = m.bookings
        stmt = (select(b, m.properties.c.code.label("property"))
                .outerjoin(m.properties, m.properties.c.id == b.c.property_id)
                .order_by(b.c.id.desc()).limit(limit).offset(offset))
        if ota_id:
            stmt = stmt.where(b.c.ota_booking_id == ota_id)
        if confirmation:
            stmt = stmt.where(b.c.confirmation == confirmation)
        if arrival:
            stmt = stmt.where(b.c.checkin == arrival)
        if arrival_from:  # the desk's arrival range (issue 12)
            stmt = stmt.where(b.c.checkin >= arrival_from)
        if arrival_to:
            stmt = stmt.where(b.c.checkin <= arrival_to)
        if status:
            stmt = stmt.where(b.c.status == status)
        if channel:
            stmt = stmt.where(b.c.channel == channel)
        if property:
            stmt = stmt.where(m.properties.c.code == property)
        if before_id is not None:
            stmt = stmt.where(b.c.id < before_id)
        return (await conn.execute(stmt)).all()

    rows = await db.read(q)
    return [{"id": r.id, "channel": r.channel, "ota_booking_id": r.ota_booking_id, "confirmation": r.confirmation,
             "property": r.property, "hotel_code": r.hotel_code, "status": r.status, "checkin": _iso(r.checkin),
             "checkout": _iso(r.checkout), "rooms": r.rooms, "amount_minor": r.amount_minor, "currency": r.currency,
             "booked_at": _iso(r.booked_at), "received_at": _iso(r.received_at), "overbooked": bool(r.overbooked),
             "unmapped": bool(r.unmapped), "guest": _guest(cipher, r, reveal)} for r in rows]


async def booking(ledger: Ledger, booking_id: int, *, reveal: bool) -> dict[str, Any]:
    async def q(conn):
        return (await conn.execute(select(m.bookings.c.channel, m.bookings.c.ota_booking_id,
                                          m.properties.c.code.label("property"))
                                   .outerjoin(m.properties, m.properties.c.id == m.bookings.c.property_id)
                                   .where(m.bookings.c.id == booking_id))).first()

    key = await ledger.db.read(q)
    if key is None:
        raise NotFound(f"there is no booking #{booking_id}")
    out = await ledger.booking(key.channel, key.ota_booking_id, reveal=True)
    if out is None:
        raise NotFound(f"there is no booking #{booking_id}")
    out["property"] = key.property
    if not reveal:
        g = out.get("guest") or {}
        for k, v in list(g.items()):
            if v:
                g[k] = mask_name(v) if k == "name" else mask_phone(v) if k == "phone" else mask_value(k, v)
        # free text can hold anything: a viewer sees that there is some, not what it says
        out["special_requests"] = "***" if out.get("special_requests") else None
    out["conflicts"] = await conflicts(ledger.db, status=None, booking_id=booking_id, limit=100)
    return out


# ---- calendar -------------------------------------------------------------------------
def channel_cells(pm, channel: str, snap, nights: list[date], caps) -> list[dict[str, Any]]:
    """What ``channel`` should hold over ``nights``, derived through the mappings exactly as
    the push worker derives it (channelmgr.mapping.derive), in the OTA's codes."""
    from channelmgr import dates
    from channelmgr.mapping.derive import all_keys, derive

    today = dates.business_date(datetime.now(timezone.utc), pm.timezone)
    cells = derive(pm, channel, snap, all_keys(pm, channel, nights), today=today, supported=caps.restrictions,
                   inventory_level=caps.inventory_level)
    return [{"channel": c.channel, "hotel": c.hotel, "room": c.room, "rate": c.rate, "night": c.night.isoformat(),
             "room_type": c.room_type, "rate_plan": c.rate_plan, "rooms_to_sell": c.rooms_to_sell,
             "prices": {str(k): v for k, v in c.prices}, "currency": c.currency, "min_los": c.min_los,
             "max_los": c.max_los, "cta": c.cta, "ctd": c.ctd, "stop_sell": c.stop_sell,
             "price_refused": c.price_refused} for c in cells]


async def calendar(ledger: Ledger, property: str, start: date, end: date, *, mappings=None,
                   channel: str | None = None, capabilities=None) -> dict[str, Any]:
    """Room types by nights (free / sold / physical) with closed and stop-sold nights, and
    rates per plan and night: Ledger.show, arranged for a grid; with ``channel``, also what
    that channel should hold (derived through the mappings in force)."""
    data = await ledger.show(property, start, end)
    held = None
    if channel is not None:
        from channelmgr import dates

        pm = mappings.get(property) if mappings else None
        if pm is None or pm.channel(channel) is None:
            raise LedgerError(f"{property} is not listed on {channel} in the mappings in force")
        snap = await ledger.snapshot(property, start, end)
        held = channel_cells(pm, channel, snap, list(dates.days(start, end)), capabilities)

    async def q(conn):
        cat = await Ledger.catalog(conn, property)
        return ({rp.code: rt_code for rp in cat.rate_plans.values()
                 for rt_code, rt in cat.room_types.items() if rt.id == rp.room_type_id}, cat.property)

    plan_room, prop = await ledger.db.read(q)
    stop: dict[tuple[str, str], list[bool]] = {}
    for r in data["rates"]:
        stop.setdefault((plan_room.get(r["rate_plan"], "?"), r["date"]), []).append(bool(r["stop_sell"]))
    rooms: dict[str, list[dict[str, Any]]] = {}
    for r in data["rooms"]:
        flags = stop.get((r["room_type"], r["date"]), [])
        stop_sold = bool(flags) and all(flags)
        rooms.setdefault(r["room_type"], []).append({
            "date": r["date"], "physical": r["physical"], "out_of_order": r["out_of_order"], "sold": r["sold"],
            "held": r["held"], "free": r["free"], "stop_sold": stop_sold,
            "closed": stop_sold or r["free"] <= 0})
    return {"property": property, "timezone": prop.timezone, "currency": prop.currency,
            "from": start.isoformat(), "to": end.isoformat(),
            "room_types": [{"room_type": k, "nights": v} for k, v in rooms.items()], "rates": data["rates"],
            "channel": channel, "channel_cells": held}


# ---- mappings --------------------------------------------------------------------------
async def mappings(ledger: Ledger, live_fingerprint: str | None, problems: list[str]) -> dict[str, Any]:
    v = await ledger.mapping_in_force()

    async def q(conn):
        return (await conn.execute(select(func.count()).select_from(m.mapping_versions))).scalar()

    versions = await ledger.db.read(q)
    return {"fingerprint": live_fingerprint or (v["fingerprint"] if v else None),
            "recorded": None if v is None else {"fingerprint": v["fingerprint"], "at": _iso(v["at"]),
                                                "actor": v["actor"], "files": sorted(v["files"])},
            "versions": versions, "problems": list(problems or [])}
