"""Reads the pages need beyond channelmgr.web.queries and channelmgr.ops (bounded, indexed).

No business rules: counts and lookups over the ledger's own tables, arranged for a page.
"""

from __future__ import annotations

import importlib
from datetime import date, datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from channelmgr.ledger import models as m
from channelmgr.ledger.ledger import Ledger, cell_key


def _aware(dt):
    return None if dt is None else (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc))


async def display_zone(db) -> str:
    """The zone the channels page counts 'today' in: the properties' one when they share it."""
    async def q(conn):
        return [r[0] for r in (await conn.execute(
            select(m.properties.c.timezone).group_by(m.properties.c.timezone).limit(2))).all()]

    zones = await db.read(q)
    return zones[0] if len(zones) == 1 else "UTC"


async def bookings_today(db, zone: str) -> dict[str, int]:
    """New bookings received per channel since midnight in ``zone``."""
    tz = ZoneInfo(zone)
    start = datetime.combine(datetime.now(tz).date(), time(0), tz).astimezone(timezone.utc)

    async def q(conn):
        r = m.booking_revisions
        return dict((await conn.execute(select(r.c.channel, func.count()).where(
            r.c.action == "new", r.c.received_at >= start).group_by(r.c.channel))).all())

    return await db.read(q)


async def properties(db, limit: int = 2000) -> list[dict[str, str]]:
    async def q(conn):
        p = m.properties
        return [{"code": r.code, "name": r.name, "timezone": r.timezone} for r in (await conn.execute(
            select(p.c.code, p.c.name, p.c.timezone).where(p.c.active.is_(True)).order_by(p.c.code)
            .limit(limit))).all()]

    return await db.read(q)


async def _outbox_calls(conn, property_code: str, rows) -> list[dict[str, Any]]:
    """Each outbox row with the first sync-log call of its channel for its property at or
    after the row was queued (the call that carried it, when it is done)."""
    s = m.sync_log
    out = []
    for o in rows:
        call = None
        if o.status == "done":
            call = (await conn.execute(select(s).where(
                s.c.channel == o.channel, s.c.at >= o.created_at, s.c.direction == "out",
                s.c.property == property_code).order_by(s.c.at, s.c.id).limit(1))).first()
        out.append({"channel": o.channel, "kind": o.kind, "night": o.night.isoformat() if o.night else None,
                    "status": o.status, "queued_at": _aware(o.created_at).isoformat(), "attempts": o.attempts,
                    "last_error": o.last_error,
                    "call": None if call is None else {
                        "id": call.id, "at": _aware(call.at).isoformat(), "operation": call.operation,
                        "result": call.result, "items": call.items, "duration_ms": call.duration_ms}})
    return out


async def cell_detail(ledger: Ledger, property_code: str, room_type: str, night: date,
                      scan: int = 3000) -> dict[str, Any]:
    """A calendar cell's journal rows (inventory of the room type, rates and restrictions of
    its plans, on that night; among the property's latest ``scan`` rows) and the outbox rows
    and sync-log calls that carried it."""
    async def q(conn):
        cat = await Ledger.catalog(conn, property_code)
        rt = cat.room_types.get(room_type)
        if rt is None:
            return None
        plans = {rp.code for rp in cat.rate_plans.values() if rp.room_type_id == rt.id}
        plan_ids = [rp.id for rp in cat.rate_plans.values() if rp.room_type_id == rt.id]
        j = m.journal
        rows = (await conn.execute(select(j).where(j.c.property_id == cat.property.id).order_by(j.c.id.desc())
                                   .limit(scan))).all()
        n = night.isoformat()
        journal = []
        for r in rows:
            key = r.entity_key or {}
            if not isinstance(key, dict) or key.get("night") != n:
                continue
            if (r.entity == "inventory" and key.get("room_type") == room_type) or \
                    (r.entity in ("rate", "restriction") and key.get("rate_plan") in plans):
                journal.append({"id": r.id, "at": _aware(r.at).isoformat(), "actor": r.actor, "entity": r.entity,
                                "key": key, "action": r.action, "before": r.before, "after": r.after,
                                "reason": r.reason})
            if len(journal) >= 50:
                break
        keys = [cell_key("rooms", rt.id, None, night)] + [cell_key("rate", rt.id, pid, night) for pid in plan_ids]
        o = m.outbox
        chans = list(cat.channels)
        stmt = select(o).where(o.c.cell.in_(keys)).order_by(o.c.id.desc()).limit(40)
        if chans:
            stmt = stmt.where(o.c.channel.in_(chans))
        obs = (await conn.execute(stmt)).all()
        return {"journal": journal, "pushes": await _outbox_calls(conn, property_code, obs),
                "timezone": cat.property.timezone}

    return await ledger.db.read(q)


async def channels_told(ledger: Ledger, booking_id: int) -> list[dict[str, Any]]:
    """Per channel: the pushes that carried this booking's nights (queued at or after its
    first revision was received) and the call that carried each, newest first."""
    async def q(conn):
        b = (await conn.execute(select(m.bookings.c.property_id, m.bookings.c.received_at).where(
            m.bookings.c.id == booking_id))).first()
        if b is None or b.property_id is None:
            return []
        code = (await conn.execute(select(m.properties.c.code).where(m.properties.c.id == b.property_id))).scalar()
        nights = (await conn.execute(select(m.booking_nights.c.room_type_id, m.booking_nights.c.night).where(
            m.booking_nights.c.booking_id == booking_id, m.booking_nights.c.room_type_id.is_not(None)))).all()
        keys = sorted({cell_key("rooms", n.room_type_id, None, n.night) for n in nights})[:400]
        if not keys:
            return []
        o = m.outbox
        first = (await conn.execute(select(func.min(m.booking_revisions.c.received_at)).where(
            m.booking_revisions.c.booking_id == booking_id))).scalar() or b.received_at
        obs = (await conn.execute(select(o).where(o.c.cell.in_(keys), o.c.property_id == b.property_id,
                                                  o.c.created_at >= first).order_by(o.c.id).limit(200))).all()
        rows = await _outbox_calls(conn, code, obs)
        per: dict[str, dict[str, Any]] = {}
        for r in rows:
            c = per.setdefault(r["channel"], {"channel": r["channel"], "pushes": 0, "done": 0, "first_call": None,
                                              "pending": 0, "dead": 0})
            c["pushes"] += 1
            if r["status"] == "done":
                c["done"] += 1
                if r["call"] and (c["first_call"] is None or r["call"]["at"] < c["first_call"]["at"]):
                    c["first_call"] = r["call"]
            elif r["status"] == "dead":
                c["dead"] += 1
            else:
                c["pending"] += 1
        return sorted(per.values(), key=lambda c: c["channel"])

    return await ledger.db.read(q)


def _guest_fields(channel: str):
    try:
        return getattr(importlib.import_module(f"adapters.{channel}.client"), "GUEST_FIELDS", None)
    except Exception:
        return None


async def raw_messages(ledger: Ledger, booking_id: int, limit: int = 10) -> list[dict[str, Any]]:
    """The raw messages of the booking's revisions, redacted (guest data masked)."""
    from channelmgr.security import mask_body

    async def q(conn):
        r, i = m.booking_revisions, m.inbox
        return (await conn.execute(select(i.c.id, i.c.channel, i.c.kind, i.c.received_at, i.c.body_ct, r.c.revision)
                                   .join(r, r.c.inbox_id == i.c.id).where(r.c.booking_id == booking_id)
                                   .order_by(i.c.id).limit(limit))).all()

    out = []
    for row in await ledger.db.read(q):
        try:
            body = ledger.cipher.decrypt(row.body_ct) or ""
        except Exception:
            body = ""
        if len(body) > 64 * 1024:
            body = body[:64 * 1024] + "\n…"
        out.append({"inbox_id": row.id, "channel": row.channel, "kind": row.kind, "revision": row.revision,
                    "received_at": _aware(row.received_at).isoformat(),
                    "body": mask_body(body, _guest_fields(row.channel))})
    return out


async def sync_row(db, row_id: int) -> dict[str, Any] | None:
    from channelmgr.ops import logs

    rows = await logs(db, after_id=row_id - 1, limit=1)
    return rows[0] if rows and rows[0]["id"] == row_id else None
