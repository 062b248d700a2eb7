"""The ledger: what each hotel can sell, and every booking that took some of it.

Every change here is ONE transaction that writes the new state, an append-only journal row
per cell changed (who, what, before, after, why, correlation id) and an outbox row per
channel that must hear about it (DESIGN.md invariant 1). Nothing else writes these tables.

Overselling cannot happen by accident: inventory rows are locked in a fixed order
((room type, night), so two bookings never deadlock) before free rooms are counted, and on
SQLite every writer holds the write lock from BEGIN IMMEDIATE. An OTA booking is never
refused (invariant 2): when it finds no free room it is still recorded, sold goes past
physical, and it is flagged as an overbooking with a conflict for an operator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Collection, Iterable, Sequence

from sqlalchemy import case, delete, literal_column, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from channelmgr import dates
from channelmgr.ledger import models as m
from channelmgr.ledger.db import Database
from channelmgr.ledger.types import (
    AriChange,
    BookingResult,
    ChangeSummary,
    IncomingBooking,
    LedgerError,
    PropertySpec,
)
from channelmgr.security import Cipher

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ACTION_RANK = {"new": 0, "modify": 1, "cancel": 2}
MAX_RANGE_DAYS = 3 * 366
_CHUNK = 400
# booking intake reads a property's catalog (ids by code) from a cache (issue 13: four
# statements a revision saved). Ledger.sync_catalog, in any Ledger of this process on the
# same database, empties it; an entry is read again after CATALOG_TTL_SECONDS in any case
# (a catalog changed by another process). What changes often is not taken from it: the
# physical rooms come from the room type's row, read with the locked inventory rows.
CATALOG_TTL_SECONDS = 30.0
_catalog_generation: dict[str, int] = {}


def new_correlation_id() -> str:
    return uuid.uuid4().hex[:16]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _utc(dt: datetime | None) -> datetime | None:
    """An aware time in UTC (a naive one is taken as UTC already)."""
    if dt is None:
        return None
    return dt.astimezone(timezone.utc) if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _aware(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes for timezone=True columns: they are UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def cell_key(kind: str, room_type_id: int | None, rate_plan_id: int | None, night: date | None) -> str:
    """The push key of a cell; ``full`` stands for every cell of a property on a channel."""
    if kind == "full":
        return "full"
    return f"{kind}:{room_type_id}:{rate_plan_id or 0}:{night.isoformat()}"


def _insert(conn: AsyncConnection, table):
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


_STATEMENTS: dict[tuple[str, str], Any] = {}


def _stmt(conn: AsyncConnection, name: str, build) -> Any:
    """A statement built once per dialect (issue 13: building SQLAlchemy expressions for every
    booking cost more CPU than running them); its values come as bound parameters."""
    key = (conn.dialect.name, name)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


def _chunks(rows: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(rows), n):
        yield rows[i:i + n]


@dataclass
class Catalog:
    """One property's ids by code, read inside the transaction that uses them."""

    property: Any
    room_types: dict[str, Any]
    rate_plans: dict[str, Any]
    channels: list[str]

    def room_type(self, code: str) -> Any:
        try:
            return self.room_types[code]
        except KeyError:
            known = ", ".join(sorted(self.room_types)) or "none"
            raise LedgerError(f"property {self.property.code} has no room type '{code}' (known: {known})") from None

    def rate_plan(self, code: str) -> Any:
        try:
            return self.rate_plans[code]
        except KeyError:
            known = ", ".join(sorted(self.rate_plans)) or "none"
            raise LedgerError(f"property {self.property.code} has no rate plan '{code}' (known: {known})") from None

    def descendants(self, rate_plan_id: int) -> list[int]:
        """The plan and every plan derived from it, however deep."""
        children: dict[int, list[int]] = {}
        for rp in self.rate_plans.values():
            if rp.parent_id is not None:
                children.setdefault(rp.parent_id, []).append(rp.id)
        out, todo = [], [rate_plan_id]
        while todo:
            cur = todo.pop()
            if cur in out:
                continue
            out.append(cur)
            todo.extend(children.get(cur, []))
        return out


class Ledger:
    def __init__(self, db: Database, cipher: Cipher):
        self.db = db
        self.cipher = cipher
        self._catalogs: dict[str, tuple[float, int, Catalog]] = {}

    def invalidate_catalog(self) -> None:
        """The catalog changed: every Ledger of this process on this database reads it again."""
        _catalog_generation[self.db.url] = _catalog_generation.get(self.db.url, 0) + 1
        self._catalogs.clear()

    async def cached_catalog(self, conn: AsyncConnection, property_code: str) -> Catalog:
        """:meth:`catalog`, from the cache when it is fresh (see CATALOG_TTL_SECONDS)."""
        gen = _catalog_generation.get(self.db.url, 0)
        hit = self._catalogs.get(property_code)
        now = time.monotonic()
        if hit is not None and hit[1] == gen and now - hit[0] < CATALOG_TTL_SECONDS:
            return hit[2]
        cat = await self.catalog(conn, property_code)
        if _catalog_generation.get(self.db.url, 0) == gen:  # not invalidated while it was read
            self._catalogs.pop(property_code, None)
            self._catalogs[property_code] = (now, gen, cat)  # the newest last (insertion order)
            # what is past its TTL would be read again anyway: dropped, oldest first, so the cache
            # holds the properties of the last CATALOG_TTL_SECONDS only (the watchdog reads back
            # every property in turn: 10,000 catalogs kept were 40 MB)
            stale = [code for code, _ in itertools.takewhile(
                lambda kv: now - kv[1][0] >= CATALOG_TTL_SECONDS, itertools.islice(self._catalogs.items(), 64))]
            for code in stale:
                del self._catalogs[code]
        return cat

    # ---- shared pieces ---------------------------------------------------------------
    @staticmethod
    async def catalog(conn: AsyncConnection, property_code: str, *, channels: bool = True) -> Catalog:
        """A property with its active room types and rate plans (and, unless ``channels`` is
        False, the channels it is listed on)."""
        prop = (await conn.execute(select(m.properties).where(m.properties.c.code == property_code))).first()
        if prop is None:
            raise LedgerError(f"there is no property '{property_code}' (declare it in mappings/)")
        rts = (await conn.execute(select(m.room_types).where(
            m.room_types.c.property_id == prop.id, m.room_types.c.active.is_(True)))).all()
        rps = (await conn.execute(select(m.rate_plans).where(
            m.rate_plans.c.property_id == prop.id, m.rate_plans.c.active.is_(True)))).all()
        chans = (await conn.execute(select(m.property_channels.c.channel).where(
            m.property_channels.c.property_id == prop.id).order_by(m.property_channels.c.channel))).scalars().all() \
            if channels else []
        return Catalog(prop, {r.code: r for r in rts}, {r.code: r for r in rps}, list(chans))

    @staticmethod
    async def enqueue(conn: AsyncConnection, property_id: int, channels: Sequence[str],
                      cells: Iterable[tuple[str, int, int | None, date]], correlation_id: str,
                      now: datetime | None = None, *,
                      closing: Collection[tuple[str, int, int | None, date]] = ()) -> int:
        """Outbox rows: one pending row per (channel, cell); a pending one is reused.

        ``closing`` are the cells whose change closes (a fall in rooms to sell, a stop-sell,
        a close to arrival or departure): their rows get priority 0 and are claimed before
        price changes and openings (1) and full pushes (2); a pending row reused by a
        closure takes the closure's priority.
        """
        now = now or utcnow()
        unique = sorted(set(cells), key=lambda c: (c[0], c[1] or 0, c[2] or 0, c[3] or date.min))
        closing = set(closing)
        rows = [
            {"channel": ch, "property_id": property_id, "kind": kind, "room_type_id": rt,
             "rate_plan_id": rp, "night": night,
             "cell": f"full:{property_id}" if kind == "full" else cell_key(kind, rt, rp, night),
             "status": "pending", "attempts": 0, "available_at": now, "created_at": now,
             "correlation_id": correlation_id,
             "priority": 2 if kind == "full" else (0 if (kind, rt, rp, night) in closing else 1)}
            for ch in channels for (kind, rt, rp, night) in unique
        ]
        def build(closing: bool):
            def b():
                ins = _insert(conn, m.outbox)
                if closing:
                    return ins.on_conflict_do_update(
                        index_elements=["channel", "cell"], index_where=text("status = 'pending'"),
                        set_={"priority": case((ins.excluded.priority < m.outbox.c.priority, ins.excluded.priority),
                                               else_=m.outbox.c.priority)})
                return ins.on_conflict_do_nothing(index_elements=["channel", "cell"],
                                                  index_where=text("status = 'pending'"))
            return b

        # one statement, its rows as parameters (executemany): built once, not per call
        stmt = _stmt(conn, "outbox upsert closing" if closing else "outbox insert", build(bool(closing)))
        for chunk in _chunks(rows, 300):
            await conn.execute(stmt, list(chunk))
        return len(rows)

    @staticmethod
    async def add_journal(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        for chunk in _chunks(rows):
            await conn.execute(m.journal.insert(), list(chunk))

    @staticmethod
    async def raise_conflict(conn: AsyncConnection, *, kind: str, summary: str, property_id: int | None = None,
                             channel: str | None = None, booking_id: int | None = None,
                             inbox_id: int | None = None, detail: dict | None = None) -> int:
        res = await conn.execute(m.conflicts.insert().values(
            at=utcnow(), property_id=property_id, channel=channel, kind=kind, booking_id=booking_id,
            inbox_id=inbox_id, summary=summary, detail=detail, status="open"))
        return res.inserted_primary_key[0]

    # ---- the catalog (from mappings/) -----------------------------------------------
    async def sync_catalog(self, specs: Sequence[PropertySpec], *, actor: str = "mappings",
                           reason: str | None = None) -> ChangeSummary:
        """Bring properties, room types, rate plans and listings in line with the mappings."""
        cid = new_correlation_id()

        async def tx(conn: AsyncConnection) -> ChangeSummary:
            now = utcnow()
            journal: list[dict[str, Any]] = []
            journal_rows = outbox_rows = 0
            for spec in specs:
                if len(journal) >= 2000:  # written as it goes: a first start of 10,000 properties
                    # held 100,000 rows, whose freed memory the daemon kept (issue 13)
                    await self.add_journal(conn, journal)
                    journal_rows += len(journal)
                    journal = []
                first_row = len(journal)  # this property's journal rows are journal[first_row:]
                prop = (await conn.execute(select(m.properties).where(m.properties.c.code == spec.code))).first()
                values = {"name": spec.name, "timezone": spec.timezone, "currency": spec.currency, "active": True}
                if prop is None:
                    pid = (await conn.execute(m.properties.insert().values(code=spec.code, **values))).inserted_primary_key[0]
                    journal.append(self._jrow(now, actor, pid, "property", {"property": spec.code}, "create",
                                              None, values, reason, cid))
                else:
                    pid = prop.id
                    before = {k: getattr(prop, k) for k in values}
                    if before != values:
                        await conn.execute(update(m.properties).where(m.properties.c.id == pid).values(**values))
                        journal.append(self._jrow(now, actor, pid, "property", {"property": spec.code}, "update",
                                                  before, values, reason, cid))
                # room types
                existing = {r.code: r for r in (await conn.execute(
                    select(m.room_types).where(m.room_types.c.property_id == pid))).all()}
                physical_changed: list[int] = []
                rt_ids: dict[str, int] = {}
                for rt in spec.room_types:
                    vals = {"name": rt.name, "physical_rooms": rt.physical_rooms, "active": True}
                    cur = existing.get(rt.code)
                    if cur is None:
                        rid = (await conn.execute(m.room_types.insert().values(
                            property_id=pid, code=rt.code, **vals))).inserted_primary_key[0]
                        journal.append(self._jrow(now, actor, pid, "room_type", {"room_type": rt.code}, "create",
                                                  None, vals, reason, cid))
                        physical_changed.append(rid)
                    else:
                        rid = cur.id
                        before = {k: getattr(cur, k) for k in vals}
                        if before != vals:
                            await conn.execute(update(m.room_types).where(m.room_types.c.id == rid).values(**vals))
                            journal.append(self._jrow(now, actor, pid, "room_type", {"room_type": rt.code},
                                                      "update", before, vals, reason, cid))
                            if before["physical_rooms"] != rt.physical_rooms or not cur.active:
                                physical_changed.append(rid)
                    rt_ids[rt.code] = rid
                for code, cur in existing.items():
                    if code not in rt_ids and cur.active:
                        await conn.execute(update(m.room_types).where(m.room_types.c.id == cur.id).values(active=False))
                        journal.append(self._jrow(now, actor, pid, "room_type", {"room_type": code}, "retire",
                                                  {"active": True}, {"active": False}, reason, cid))
                # rate plans (two passes: parents may be declared after their children)
                existing_rp = {r.code: r for r in (await conn.execute(
                    select(m.rate_plans).where(m.rate_plans.c.property_id == pid))).all()}
                rp_ids: dict[str, int] = {}
                for rp in spec.rate_plans:
                    if rp.room_type not in rt_ids:
                        raise LedgerError(f"rate plan {rp.code} names room type {rp.room_type}, which "
                                          f"{spec.code} does not have")
                    vals = {"name": rp.name, "room_type_id": rt_ids[rp.room_type], "occupancy": rp.occupancy,
                            "meal_plan": rp.meal_plan, "active": True}
                    cur = existing_rp.get(rp.code)
                    if cur is None:
                        rp_ids[rp.code] = (await conn.execute(m.rate_plans.insert().values(
                            property_id=pid, code=rp.code, **vals))).inserted_primary_key[0]
                        journal.append(self._jrow(now, actor, pid, "rate_plan", {"rate_plan": rp.code}, "create",
                                                  None, {**vals, "room_type": rp.room_type}, reason, cid))
                    else:
                        rp_ids[rp.code] = cur.id
                        before = {k: getattr(cur, k) for k in vals}
                        if before != vals:
                            await conn.execute(update(m.rate_plans).where(m.rate_plans.c.id == cur.id).values(**vals))
                            journal.append(self._jrow(now, actor, pid, "rate_plan", {"rate_plan": rp.code},
                                                      "update", before, vals, reason, cid))
                for rp in spec.rate_plans:
                    parent_id = rp_ids.get(rp.parent) if rp.parent else None
                    if rp.parent and parent_id is None:
                        raise LedgerError(f"rate plan {rp.code} derives from {rp.parent}, which {spec.code} does not have")
                    cur = existing_rp.get(rp.code)
                    if cur is None or cur.parent_id != parent_id:
                        await conn.execute(update(m.rate_plans).where(m.rate_plans.c.id == rp_ids[rp.code])
                                           .values(parent_id=parent_id))
                for code, cur in existing_rp.items():
                    if code not in rp_ids and cur.active:
                        await conn.execute(update(m.rate_plans).where(m.rate_plans.c.id == cur.id)
                                           .values(active=False, parent_id=None))
                        journal.append(self._jrow(now, actor, pid, "rate_plan", {"rate_plan": code}, "retire",
                                                  {"active": True}, {"active": False}, reason, cid))
                # listings
                old_channels = set((await conn.execute(select(m.property_channels.c.channel).where(
                    m.property_channels.c.property_id == pid))).scalars().all())
                new_channels = set(spec.channels)
                if old_channels != new_channels:
                    await conn.execute(delete(m.property_channels).where(m.property_channels.c.property_id == pid))
                    if new_channels:
                        await conn.execute(m.property_channels.insert(),
                                           [{"property_id": pid, "channel": c} for c in sorted(new_channels)])
                    journal.append(self._jrow(now, actor, pid, "listing", {"property": spec.code}, "update",
                                              sorted(old_channels), sorted(new_channels), reason, cid))
                    gone = sorted(old_channels - new_channels)
                    if gone:  # unlisted or disabled: what waited for it is not sent (a re-listing re-sends all)
                        await conn.execute(update(m.outbox).where(
                            m.outbox.c.property_id == pid, m.outbox.c.channel.in_(gone),
                            m.outbox.c.status == "pending").values(
                            status="skipped", last_error="the channel was disabled or unlisted before this was sent"))
                # a new listing or a changed catalog: every channel re-sends the whole property
                # (one 'full' outbox row a channel, expanded by the push worker)
                # (only this property's rows: scanning the whole list made a first start with
                # 10,000 properties quadratic, minutes of it; issue 13)
                changed_here = any(j["entity"] != "listing" for j in journal[first_row:])
                resend = sorted(new_channels) if (changed_here or physical_changed) else sorted(new_channels - old_channels)
                if resend:  # a channel newly listed (or enabled again) gets everything it must hold
                    outbox_rows += await self.enqueue(conn, pid, resend, [("full", None, None, None)], cid, now)
            await self.add_journal(conn, journal)
            journal_rows += len(journal)
            return ChangeSummary(cid, journal_rows, journal_rows, outbox_rows)

        self.invalidate_catalog()
        try:
            return await self.db.write(tx)
        finally:
            self.invalidate_catalog()  # after the commit too: nothing read before it stays cached

    @staticmethod
    def _jrow(at, actor, property_id, entity, key, action, before, after, reason, cid) -> dict[str, Any]:
        return {"at": at, "actor": actor, "property_id": property_id, "entity": entity, "entity_key": key,
                "action": action, "before": before, "after": after, "reason": reason, "correlation_id": cid}

    async def record_mapping_version(self, fingerprint: str, files: dict[str, str], *, actor: str) -> bool:
        """Remember the mapping version put in force (once per fingerprint in a row)."""

        async def tx(conn: AsyncConnection) -> bool:
            last = (await conn.execute(select(m.mapping_versions.c.fingerprint)
                                       .order_by(m.mapping_versions.c.id.desc()).limit(1))).scalar()
            if last == fingerprint:
                return False
            await conn.execute(m.mapping_versions.insert().values(at=utcnow(), fingerprint=fingerprint,
                                                                  files=files, actor=actor))
            return True

        return await self.db.write(tx)

    async def mapping_in_force(self) -> dict[str, Any] | None:
        """The last mapping version put in force: {fingerprint, files, at, actor}."""

        async def q(conn: AsyncConnection) -> dict[str, Any] | None:
            r = (await conn.execute(select(m.mapping_versions).order_by(m.mapping_versions.c.id.desc())
                                    .limit(1))).first()
            return None if r is None else {"fingerprint": r.fingerprint, "files": r.files,
                                           "at": _aware(r.at), "actor": r.actor}

        return await self.db.read(q)

    async def enqueue_cells(self, property_code: str, channel: str,
                            keys: Iterable[tuple[str, str, str | None, date]], *, actor: str,
                            reason: str, detail: dict[str, Any] | None = None) -> int:
        """Queue pushes of local (kind, room type, rate plan, night) cells to one channel.

        For changes that live outside the ledger's tables (a mapping edit changes what a
        channel is shown without changing the ledger): one journal row says why.
        """
        keys = list(keys)

        async def tx(conn: AsyncConnection) -> int:
            cat = await self.catalog(conn, property_code)
            cells = []
            for kind, rt_code, rp_code, night in keys:
                rt = cat.room_types.get(rt_code)
                rp = cat.rate_plans.get(rp_code) if rp_code else None
                if rt is None or (rp_code and rp is None):
                    continue
                cells.append((kind, rt.id, rp.id if rp else None, night))
            if not cells:
                return 0
            cid = new_correlation_id()
            now = utcnow()
            await self.add_journal(conn, [self._jrow(now, actor, cat.property.id, "push", {"channel": channel},
                                                     "enqueue", None, {"cells": len(cells), **(detail or {})},
                                                     reason, cid)])
            return await self.enqueue(conn, cat.property.id, [channel], cells, cid, now)

        return await self.db.write(tx)

    # ---- rooms, rates and restrictions ------------------------------------------------
    async def set_ari(self, change: AriChange, *, actor: str, reason: str | None = None,
                      correlation_id: str | None = None) -> ChangeSummary:
        c = change
        if c.end < c.start:
            raise LedgerError(f"the range ends ({c.end}) before it starts ({c.start})")
        if (c.end - c.start).days >= MAX_RANGE_DAYS:
            raise LedgerError(f"a range may cover at most {MAX_RANGE_DAYS} nights")
        for name in ("rooms", "out_of_order", "held", "price_minor"):
            v = getattr(c, name)
            if v is not None and v < 0:
                raise LedgerError(f"{name.replace('_', ' ')} cannot be negative ({v})")
        if c.price_minor == 0:
            raise LedgerError("a price of 0 would give rooms away; use --stop-sell to close a rate")
        if c.min_los is not None and c.min_los < 1 or c.max_los is not None and c.max_los < 1:
            raise LedgerError("min_los and max_los are at least 1 night")
        if c.min_los is not None and c.max_los is not None and c.max_los < c.min_los:
            raise LedgerError(f"max_los {c.max_los} is shorter than min_los {c.min_los}")
        rate_fields = {k: getattr(c, k) for k in ("min_los", "max_los", "cta", "ctd", "stop_sell")}
        wants_rooms = any(v is not None for v in (c.rooms, c.out_of_order, c.held))
        wants_rate = c.price_minor is not None or any(v is not None for v in rate_fields.values())
        if wants_rate and not c.rate_plan:
            raise LedgerError("a price or restriction belongs to a rate plan: give --rate-plan")
        if not wants_rooms and not wants_rate:
            raise LedgerError("nothing to change: give --rooms, --price or a restriction")
        cid = correlation_id or new_correlation_id()
        nights = list(dates.days(c.start, c.end))

        async def tx(conn: AsyncConnection) -> ChangeSummary:
            now = utcnow()
            cat = await self.catalog(conn, c.property)
            pid = cat.property.id
            rt = cat.room_type(c.room_type)
            rp = None
            if c.rate_plan:
                rp = cat.rate_plan(c.rate_plan)
                if rp.room_type_id != rt.id:
                    raise LedgerError(f"rate plan {c.rate_plan} sells another room type, not {c.room_type}")
            journal: list[dict[str, Any]] = []
            cells: list[tuple[str, int, int | None, date]] = []
            closing: set[tuple[str, int, int | None, date]] = set()  # pushed first (see enqueue)
            if wants_rooms:
                rows = await self._lock_inventory(conn, pid, [(rt.id, n) for n in nights])
                updates = []
                for n in nights:
                    row = rows[(rt.id, n)]
                    before = {"physical": row.physical if row.physical is not None else rt.physical_rooms,
                              "out_of_order": row.out_of_order, "held": row.held}
                    after = dict(before)
                    if c.rooms is not None:
                        after["physical"] = c.rooms
                    if c.out_of_order is not None:
                        after["out_of_order"] = c.out_of_order
                    if c.held is not None:
                        after["held"] = c.held
                    if after != before or (c.rooms is not None and row.physical is None):
                        updates.append({"k_rt": rt.id, "k_night": n, **{f"v_{k}": v for k, v in after.items()}})
                        if after != before:
                            journal.append(self._jrow(now, actor, pid, "inventory",
                                                      {"room_type": rt.code, "night": n.isoformat()},
                                                      "set", before, after, reason, cid))
                            cells.append(("rooms", rt.id, None, n))
                            if (after["physical"] - after["out_of_order"] - after["held"]
                                    < before["physical"] - before["out_of_order"] - before["held"]):
                                closing.add(("rooms", rt.id, None, n))
                if updates:
                    stmt = update(m.inventory).where(
                        m.inventory.c.room_type_id == _bind("k_rt"), m.inventory.c.night == _bind("k_night")
                    ).values(physical=_bind("v_physical"), out_of_order=_bind("v_out_of_order"), held=_bind("v_held"))
                    for chunk in _chunks(updates):
                        await conn.execute(stmt, list(chunk))
            if rp is not None and c.price_minor is not None and rp.parent_id is not None:
                parent = next((p.code for p in cat.rate_plans.values() if p.id == rp.parent_id), "its parent")
                raise LedgerError(f"rate plan {rp.code} takes its price from {parent} through the mapping's "
                                  f"steps; change the price of {parent} instead")
            if rp is not None and c.price_minor is not None:
                occ = c.occupancy or rp.occupancy
                existing = {r.night: r for r in (await conn.execute(select(m.rates).where(
                    m.rates.c.rate_plan_id == rp.id, m.rates.c.occupancy == occ,
                    m.rates.c.night.between(c.start, c.end)))).all()}
                upserts = []
                for n in nights:
                    cur = existing.get(n)
                    before = None if cur is None else {"price_minor": cur.price_minor, "currency": cur.currency}
                    after = {"price_minor": c.price_minor, "currency": cat.property.currency}
                    if before != after:
                        upserts.append({"rate_plan_id": rp.id, "night": n, "occupancy": occ, "property_id": pid,
                                        **after})
                        journal.append(self._jrow(now, actor, pid, "rate",
                                                  {"rate_plan": rp.code, "night": n.isoformat(), "occupancy": occ},
                                                  "set", before, after, reason, cid))
                        cells.extend(("rate", rt.id, d, n) for d in cat.descendants(rp.id))
                if upserts:
                    ins = _insert(conn, m.rates)
                    stmt = ins.on_conflict_do_update(
                        index_elements=["rate_plan_id", "night", "occupancy"],
                        set_={"price_minor": ins.excluded.price_minor, "currency": ins.excluded.currency})
                    for chunk in _chunks(upserts):
                        await conn.execute(stmt, list(chunk))
            given = {k: v for k, v in rate_fields.items() if v is not None}
            if rp is not None and given:
                existing = {r.night: r for r in (await conn.execute(select(m.restrictions).where(
                    m.restrictions.c.rate_plan_id == rp.id,
                    m.restrictions.c.night.between(c.start, c.end)))).all()}
                upserts = []
                for n in nights:
                    cur = existing.get(n)
                    before = {k: (getattr(cur, k) if cur is not None else None) for k in rate_fields}
                    after = {**before, **given}
                    if before != after:
                        upserts.append({"rate_plan_id": rp.id, "night": n, "property_id": pid, **after})
                        journal.append(self._jrow(now, actor, pid, "restriction",
                                                  {"rate_plan": rp.code, "night": n.isoformat()},
                                                  "set", before if cur is not None else None, after, reason, cid))
                        cells.extend(("rate", rt.id, d, n) for d in cat.descendants(rp.id))
                        if any(after[k] and not before[k] for k in ("stop_sell", "cta", "ctd")):
                            closing.update(("rate", rt.id, d, n) for d in cat.descendants(rp.id))
                if upserts:
                    ins = _insert(conn, m.restrictions)
                    stmt = ins.on_conflict_do_update(
                        index_elements=["rate_plan_id", "night"],
                        set_={k: getattr(ins.excluded, k) for k in rate_fields})
                    for chunk in _chunks(upserts):
                        await conn.execute(stmt, list(chunk))
            # derived plans read other room types' plans only through their own room type
            cells = [(k, self._rt_of(cat, rpid) if rpid else rtid, rpid, n) for (k, rtid, rpid, n) in cells]
            closing = {(k, self._rt_of(cat, rpid) if rpid else rtid, rpid, n) for (k, rtid, rpid, n) in closing}
            await self.add_journal(conn, journal)
            outbox_rows = await self.enqueue(conn, pid, cat.channels, cells, cid, now,
                                             closing=closing) if cells else 0
            return ChangeSummary(cid, len(set(cells)), len(journal), outbox_rows)

        return await self.db.write(tx)

    @staticmethod
    def _rt_of(cat: Catalog, rate_plan_id: int) -> int:
        for rp in cat.rate_plans.values():
            if rp.id == rate_plan_id:
                return rp.room_type_id
        raise LedgerError(f"unknown rate plan id {rate_plan_id}")

    @staticmethod
    async def _lock_inventory(conn: AsyncConnection, property_id: int,
                              keys: Iterable[tuple[int, date]]) -> dict[tuple[int, date], Any]:
        """Make sure the rows exist and lock them in (room type, night) order: one upsert
        that returns them (issue 13: it was an INSERT plus a SELECT ... FOR UPDATE per room
        type). ON CONFLICT DO UPDATE locks each row it meets, in the order of the VALUES
        (sorted), so two bookings never deadlock; SQLite holds its write lock already. Each
        row also carries ``rt_physical``, its room type's physical rooms as they are now."""
        keys = sorted(set(keys))
        if not keys:
            return {}
        inv = m.inventory
        # written out: SQLAlchemy does not correlate a subquery in RETURNING with the target
        rt_physical = literal_column(
            "(SELECT room_types.physical_rooms FROM room_types WHERE room_types.id = inventory.room_type_id)"
        ).label("rt_physical")
        stmt = _stmt(conn, "inventory ensure and lock", lambda: _insert(conn, inv).on_conflict_do_update(
            index_elements=["room_type_id", "night"], set_={"sold": inv.c.sold}).returning(
            *inv.c, rt_physical))
        rows: dict[tuple[int, date], Any] = {}
        for chunk in _chunks(keys):
            params = [{"room_type_id": rt, "night": n, "property_id": property_id, "physical": None,
                       "out_of_order": 0, "sold": 0, "held": 0} for rt, n in chunk]
            for r in (await conn.execute(stmt, params)).all():
                rows[(r.room_type_id, r.night)] = r
        return rows

    # ---- bookings -----------------------------------------------------------------
    async def apply_booking(self, b: IncomingBooking, *, actor: str | None = None,
                            check: Any = None) -> BookingResult:
        """Apply one booking revision: idempotent, ordered by revised_at, never refused.

        A direct booking (channelmgr.desk) takes this same path with ``actor`` (who entered
        it) and ``check``: ``await check(conn, takes)`` inside the transaction, after the
        inventory rows are locked, with ``takes`` = [(room type id, night, free after,
        rooms taken)] for every night it takes rooms on; raising refuses it (rolled back)."""
        # OTAs stamp times in their own zones (Fliggy in GMT+8): the ledger keeps UTC, so that
        # revisions compare right and SQLite (which drops the offset) stores the same instant
        b = dataclasses.replace(b, booked_at=_utc(b.booked_at), revised_at=_utc(b.revised_at))

        async def tx(conn: AsyncConnection) -> BookingResult:
            return await self._apply_booking_tx(conn, b, actor=actor, check=check)

        # group commit: concurrent bookings share one write transaction (each in a savepoint)
        return await self.db.write_grouped(tx, key=b.property or f"{b.channel}:{b.hotel_code}")

    async def store_and_apply(self, channel: str, raw: bytes, kind: str,
                              b: IncomingBooking) -> tuple[int, BookingResult]:
        """Booking intake in one transaction (issue 13): the raw message into the inbox (as
        :meth:`store_inbox`: the same bytes seen before are the same row) and the revision
        applied (as :meth:`apply_booking`), committed together, so nothing is acknowledged
        that is not stored, and a crash before the COMMIT leaves neither (the OTA, not
        acknowledged, delivers it again). If applying raises, nothing of it stays: the
        caller stores the message on its own and marks it failed with the reason (the
        receiver does). Returns (inbox id, result)."""
        b = dataclasses.replace(b, booked_at=_utc(b.booked_at), revised_at=_utc(b.revised_at))
        digest = hashlib.sha256(raw).hexdigest()
        body_ct = self.cipher.encrypt(raw)

        async def tx(conn: AsyncConnection) -> tuple[int, BookingResult]:
            # the row of the same bytes seen before, if any, and whether a failed message of this
            # booking waits to be closed by it (if not, that UPDATE is not run): one statement
            prior, failures = (await conn.execute(_stmt(conn, "inbox by digest", _inbox_prior_and_failed), {
                "i_channel": channel, "i_digest": digest, "i_ota_id": b.ota_booking_id})).one()
            fresh = prior is None
            if fresh:  # written as applied at once: if it is not, this transaction does not commit
                now = utcnow()
                inbox_id = (await conn.execute(m.inbox.insert(), dict(
                    channel=channel, received_at=now, kind=kind, body_ct=body_ct, body_sha256=digest,
                    status="applied", processed_at=now, ota_booking_id=b.ota_booking_id,
                    revision=b.revision))).inserted_primary_key[0]
            else:
                inbox_id = prior
            result = await self._apply_booking_tx(conn, dataclasses.replace(b, inbox_id=inbox_id),
                                                  fresh_inbox=fresh, failures=bool(failures))
            return inbox_id, result

        tx.__qualname__ = "Ledger.store_and_apply.<locals>.tx"
        return await self.db.write_grouped(tx, key=b.property or f"{b.channel}:{b.hotel_code}")

    async def _apply_booking_tx(self, conn: AsyncConnection, b: IncomingBooking, *, actor: str | None = None,
                                check: Any = None, fresh_inbox: bool = False,
                                failures: bool = True) -> BookingResult:
            """apply_booking's transaction. ``fresh_inbox``: the inbox row was inserted in
            this transaction, already marked applied for this revision; ``failures``: False
            when this transaction has read that no failed message of this booking is held."""
            now = utcnow()
            cid = new_correlation_id()
            who = actor or f"channel:{b.channel}"
            cat = None
            if b.property:
                try:
                    cat = await self.cached_catalog(conn, b.property)
                except LedgerError:
                    cat = None
            pid = cat.property.id if cat else None
            # the booking row (locked) and whether this revision is applied already, in one
            # statement (a revision row always belongs to the booking of its channel and id)
            booking = (await conn.execute(_stmt(conn, "booking and revision seen", _booking_and_seen),
                                          {"b_channel": b.channel, "b_ota_id": b.ota_booking_id,
                                           "b_revision": b.revision})).first()
            if booking is not None and booking.seen_revision:
                await self._mark_inbox(conn, b, "duplicate", now, fresh=fresh_inbox, failures=failures)
                return BookingResult(booking.id, booking.confirmation, _public_status(booking.status),
                                     duplicate=True, overbooked=booking.overbooked)
            created = booking is None
            if created:
                bid = (await conn.execute(m.bookings.insert(), dict(
                    property_id=pid, hotel_code=b.hotel_code, channel=b.channel, ota_booking_id=b.ota_booking_id,
                    status="pending", rooms=0, received_at=now, updated_at=now,
                    overbooked=False, unmapped=False))).inserted_primary_key[0]
                confirmation = f"CM{bid:08d}"
                # the confirmation goes in with the rest of the row below (one UPDATE); the row as
                # inserted, without reading it back
                booking = _NewBooking(id=bid, confirmation=confirmation, property_id=pid)
            bid, confirmation = booking.id, booking.confirmation
            if booking.revision is not None:
                # a resend of what is applied already (new envelope fields, or a new revision id
                # over the same content; a cancel of a cancelled booking): already processed,
                # no revision row, no journal row
                last_fp = (await conn.execute(
                    select(m.booking_revisions.c.fingerprint).where(
                        m.booking_revisions.c.booking_id == bid, m.booking_revisions.c.outcome == "applied")
                    .order_by(m.booking_revisions.c.id.desc()).limit(1))).scalar()
                if (b.action == "cancel" and booking.status == "cancelled") or (
                        b.fingerprint is not None and last_fp == b.fingerprint):
                    await self._mark_inbox(conn, b, "duplicate", now, fresh=fresh_inbox, failures=failures)
                    return BookingResult(bid, confirmation, _public_status(booking.status), duplicate=True,
                                         overbooked=booking.overbooked)
            incoming_key = (_aware(b.revised_at) or EPOCH, ACTION_RANK[b.action])
            if booking.revision is not None:
                current_key = (_aware(booking.revised_at) or EPOCH, 2 if booking.status == "cancelled" else 0)
                if incoming_key <= current_key:
                    # an older revision that arrived late: kept, not applied
                    await conn.execute(m.booking_revisions.insert(), dict(
                        booking_id=bid, channel=b.channel, ota_booking_id=b.ota_booking_id, revision=b.revision,
                        action=b.action, revised_at=b.revised_at, received_at=now, inbox_id=b.inbox_id,
                        outcome="superseded", fingerprint=b.fingerprint))
                    await self.add_journal(conn, [self._jrow(
                        now, who, booking.property_id, "booking",
                        {"channel": b.channel, "ota_booking_id": b.ota_booking_id}, "superseded", None,
                        {"revision": b.revision, "action": b.action}, "an older revision arrived after a newer one", cid)])
                    await self._mark_inbox(conn, b, "applied", now, fresh=fresh_inbox, failures=failures)
                    return BookingResult(bid, confirmation, _public_status(booking.status), superseded=True,
                                         overbooked=booking.overbooked)

            # what the ledger holds for this booking now, and what it should hold
            old = [] if created else (await conn.execute(
                select(m.booking_nights).where(m.booking_nights.c.booking_id == bid))).all()
            delta: dict[tuple[int, date], int] = {}
            for n in old:
                if n.counted:
                    delta[(n.room_type_id, n.night)] = delta.get((n.room_type_id, n.night), 0) - n.rooms
            new_nights: list[dict[str, Any]] = []
            unmapped = list(b.unmapped)
            if b.action != "cancel":
                for stay in b.stays:
                    rt = cat.room_types.get(stay.room_type) if (cat and stay.room_type) else None
                    rp = cat.rate_plans.get(stay.rate_plan) if (cat and stay.rate_plan) else None
                    if rt is None and not unmapped:
                        unmapped.append(f"room {stay.room_code} of hotel {b.hotel_code} is not mapped")
                    for night, price in stay.nights:
                        new_nights.append({"booking_id": bid, "room_type_id": rt.id if rt else None,
                                           "rate_plan_id": rp.id if rp else None, "room_code": stay.room_code,
                                           "rate_code": stay.rate_code, "night": night, "rooms": stay.rooms,
                                           "price_minor": price, "counted": rt is not None})
                        if rt is not None:
                            delta[(rt.id, night)] = delta.get((rt.id, night), 0) + stay.rooms
            touched = {k: v for k, v in delta.items() if v != 0}
            overbooked_nights: list[tuple[int, date, int]] = []
            takes: list[tuple[int, date, int, int]] = []  # for ``check`` (direct bookings)
            journal: list[dict[str, Any]] = []
            if touched:
                prop_of_rt = pid if pid is not None else booking.property_id
                rows = await self._lock_inventory(conn, prop_of_rt, touched.keys())
                rt_by_id = {r.id: r for r in (cat.room_types.values() if cat else [])}
                upd = []
                for (rtid, night), d in sorted(touched.items()):
                    row = rows[(rtid, night)]
                    rt = rt_by_id.get(rtid)
                    physical = row.physical if row.physical is not None else (row.rt_physical or 0)
                    sold_after = row.sold + d
                    free_after = physical - row.out_of_order - sold_after - row.held
                    if d > 0 and free_after < 0:
                        overbooked_nights.append((rtid, night, free_after + d))
                    if d > 0:
                        takes.append((rtid, night, free_after, d))
                    upd.append({"k_rt": rtid, "k_night": night, "v_sold": max(0, sold_after)})
                    journal.append(self._jrow(now, who, prop_of_rt, "inventory",
                                              {"room_type": rt.code if rt else rtid, "night": night.isoformat()},
                                              "sold", {"sold": row.sold}, {"sold": max(0, sold_after)},
                                              f"booking {b.channel}:{b.ota_booking_id} {b.action}", cid))
                stmt = _stmt(conn, "inventory sold", lambda: update(m.inventory).where(
                    m.inventory.c.room_type_id == _bind("k_rt"), m.inventory.c.night == _bind("k_night")
                ).values(sold=_bind("v_sold")))
                for chunk in _chunks(upd):
                    await conn.execute(stmt, list(chunk))
            if check is not None:
                await check(conn, takes)
            if old:
                await conn.execute(delete(m.booking_nights).where(m.booking_nights.c.booking_id == bid))
            if new_nights:
                await conn.execute(m.booking_nights.insert(), new_nights)

            status = "cancelled" if b.action == "cancel" else "confirmed"
            stays = b.stays if b.action != "cancel" else ()
            before_summary = None if booking.revision is None else {
                "status": booking.status, "checkin": _iso(booking.checkin), "checkout": _iso(booking.checkout),
                "rooms": booking.rooms, "amount_minor": booking.amount_minor, "revision": booking.revision}
            values: dict[str, Any] = {
                "property_id": pid if pid is not None else booking.property_id,
                "status": status, "revision": b.revision, "revised_at": b.revised_at, "updated_at": now,
                "overbooked": bool(booking.overbooked or overbooked_nights) if status != "cancelled" else booking.overbooked,
                "unmapped": bool(unmapped),
            }
            if created:
                values["confirmation"] = confirmation
            if stays:
                values["checkin"] = min(min(n for n, _ in s.nights) for s in stays if s.nights) if any(s.nights for s in stays) else None
                values["checkout"] = max(max(n for n, _ in s.nights) for s in stays if s.nights) + timedelta(days=1) if any(s.nights for s in stays) else None
                values["rooms"] = sum(s.rooms for s in stays)
            if new_nights:
                # the first room line's, kept on cancel (its nights are not): the reports' cancellation
                # rate by room type and rate plan (migration 0006 backfills the same rule)
                values["room_type_id"] = new_nights[0]["room_type_id"]
                values["rate_plan_id"] = new_nights[0]["rate_plan_id"]
            for field_name, val in (("amount_minor", b.amount_minor), ("currency", b.currency),
                                    ("booked_at", b.booked_at)):
                if val is not None:
                    values[field_name] = val
            for col, plain in (("guest_name_ct", b.guest.name), ("guest_phone_ct", b.guest.phone),
                               ("guest_email_ct", b.guest.email), ("guest_id_number_ct", b.guest.id_number),
                               ("special_requests_ct", b.special_requests)):
                if plain:
                    values[col] = self.cipher.encrypt(plain)
                elif col == "special_requests_ct" and b.action == "modify":
                    values[col] = None  # a modification without them withdraws them (the desk follows)
            # one statement whatever the columns: SET follows the parameters given
            await conn.execute(_stmt(conn, "booking update", lambda: update(m.bookings).where(
                m.bookings.c.id == _bind("b_id"))), {"b_id": bid, **values})
            await conn.execute(m.booking_revisions.insert(), dict(
                booking_id=bid, channel=b.channel, ota_booking_id=b.ota_booking_id, revision=b.revision,
                action=b.action, revised_at=b.revised_at, received_at=now, inbox_id=b.inbox_id, outcome="applied",
                fingerprint=b.fingerprint))
            after_summary = {"status": status, "checkin": _iso(values.get("checkin", booking.checkin)),
                             "checkout": _iso(values.get("checkout", booking.checkout)),
                             "rooms": values.get("rooms", booking.rooms),
                             "amount_minor": values.get("amount_minor", booking.amount_minor),
                             "revision": b.revision}
            journal.insert(0, self._jrow(now, who, values["property_id"], "booking",
                                         {"channel": b.channel, "ota_booking_id": b.ota_booking_id},
                                         b.action, before_summary, after_summary, None, cid))
            await self.add_journal(conn, journal)
            if overbooked_nights:
                rt_codes = {r.id: r.code for r in (cat.room_types.values() if cat else [])}
                nights_txt = ", ".join(f"{rt_codes.get(rt, rt)} on {n} ({free} free)" for rt, n, free in overbooked_nights)
                await self.raise_conflict(
                    conn, kind="overbooking", property_id=values["property_id"], channel=b.channel, booking_id=bid,
                    inbox_id=b.inbox_id, summary=f"{b.channel} booking {b.ota_booking_id} ({confirmation}) was "
                                                 f"accepted without a free room: {nights_txt}",
                    detail={"nights": [{"room_type": rt_codes.get(rt, rt), "night": n.isoformat(), "free_before": f}
                                       for rt, n, f in overbooked_nights]})
            if unmapped:
                await self.raise_conflict(
                    conn, kind="unmapped_code", property_id=values["property_id"], channel=b.channel, booking_id=bid,
                    inbox_id=b.inbox_id, summary=f"{b.channel} booking {b.ota_booking_id} ({confirmation}) is stored "
                                                 f"but does not hold rooms: {'; '.join(unmapped)}",
                    detail={"unmapped": unmapped})
            await self._mark_inbox(conn, b, "applied", now, fresh=fresh_inbox, failures=failures)
            outbox_rows = 0
            channels = cat.channels if cat else []
            if touched and channels:
                outbox_rows = await self.enqueue(conn, values["property_id"], channels,
                                                 [("rooms", rt, None, n) for rt, n in touched], cid, now,
                                                 closing=[("rooms", rt, None, n) for (rt, n), d in touched.items()
                                                          if d > 0])
            return BookingResult(bid, confirmation, status, overbooked=bool(overbooked_nights),
                                 outbox_rows=outbox_rows,
                                 nights_changed=tuple((str(rt), n) for rt, n in sorted(touched)))

    @staticmethod
    async def _mark_inbox(conn: AsyncConnection, b: IncomingBooking, status: str, now: datetime,
                          fresh: bool = False, failures: bool = True) -> None:
        """``fresh``: the row was inserted in this transaction as applied (store_and_apply)."""
        if b.inbox_id is not None and not (fresh and status == "applied"):
            if status == "duplicate" and not fresh:  # the same bytes again are the same row: it stays 'applied'
                stmt = _stmt(conn, "inbox mark unless applied", lambda: update(m.inbox).where(
                    m.inbox.c.id == _bind("i_id"), m.inbox.c.status != "applied"))
            else:
                stmt = _stmt(conn, "inbox mark", lambda: update(m.inbox).where(m.inbox.c.id == _bind("i_id")))
            await conn.execute(stmt, {"i_id": b.inbox_id, "status": status, "processed_at": now, "error": None,
                                      "ota_booking_id": b.ota_booking_id, "revision": b.revision})
        if failures:
            await Ledger._close_superseded_failures(conn, b, now)

    @staticmethod
    async def _close_superseded_failures(conn: AsyncConnection, b: IncomingBooking, now: datetime) -> int:
        """The booking arrived intact: open malformed-message conflicts of earlier messages of
        the same booking (channel + OTA id, read from the broken message) are resolved by the
        system, with the reason. One whose message had no readable booking id stays open."""
        def build():
            failed = select(m.inbox.c.id).where(
                m.inbox.c.channel == _bind("f_channel"), m.inbox.c.ota_booking_id == _bind("f_ota_id"),
                m.inbox.c.status == "failed", m.inbox.c.id != _bind("f_inbox_id"))
            return update(m.conflicts).where(
                m.conflicts.c.kind == "malformed_message", m.conflicts.c.status == "open",
                m.conflicts.c.inbox_id.in_(failed))

        where = f"inbox #{b.inbox_id}" if b.inbox_id is not None else "the ledger"
        res = await conn.execute(_stmt(conn, "close superseded failures", build), {
            "f_channel": b.channel, "f_ota_id": b.ota_booking_id,
            "f_inbox_id": b.inbox_id if b.inbox_id is not None else -1,
            "status": "resolved", "resolved_at": now, "resolved_by": "system",
            "resolution": f"the same booking arrived intact in {where}"})
        return res.rowcount or 0

    # ---- the inbox: every OTA message, stored before anything is done with it ---------
    async def store_inbox(self, channel: str, raw: bytes, kind: str) -> tuple[int, str | None]:
        """Keep a raw OTA message (encrypted). The same bytes seen before return the same
        row and its status, so a message pulled again while unacknowledged is not doubled."""
        import hashlib

        digest = hashlib.sha256(raw).hexdigest()

        async def tx(conn: AsyncConnection) -> tuple[int, str | None]:
            prior = (await conn.execute(select(m.inbox.c.id, m.inbox.c.status).where(
                m.inbox.c.channel == channel, m.inbox.c.body_sha256 == digest)
                .order_by(m.inbox.c.id.desc()).limit(1))).first()
            if prior is not None:
                return prior.id, prior.status
            res = await conn.execute(m.inbox.insert().values(
                channel=channel, received_at=utcnow(), kind=kind, body_ct=self.cipher.encrypt(raw),
                body_sha256=digest, status="received"))
            return res.inserted_primary_key[0], None

        return await self.db.write_grouped(tx)

    async def reject_inbox(self, inbox_id: int, reason: str, *, kind: str = "malformed_message",
                           ota_booking_id: str | None = None, summary: str | None = None) -> bool:
        """A message that cannot be read (or, ``kind="impossible_stay"``, cannot be applied):
        kept with the reason, raised once to operators. ``ota_booking_id``, when it could be
        read, is kept on the inbox row: the same booking arriving intact later closes the
        conflict by itself (see :meth:`_close_superseded_failures`)."""

        async def tx(conn: AsyncConnection) -> bool:
            row = (await conn.execute(select(m.inbox.c.status, m.inbox.c.channel)
                                      .where(m.inbox.c.id == inbox_id))).first()
            if row is None:
                return False
            channel = row.channel
            first_time = row.status != "failed"
            values: dict[str, Any] = {"status": "failed", "error": reason[:2000], "processed_at": utcnow()}
            if ota_booking_id:
                values["ota_booking_id"] = ota_booking_id[:128]
            await conn.execute(update(m.inbox).where(m.inbox.c.id == inbox_id).values(**values))
            if first_time:
                detail = {"ota_booking_id": ota_booking_id} if ota_booking_id else {
                    "ota_booking_id": None,
                    "note": "no booking id could be read from the message: this conflict stays open until a "
                            "person closes it"}
                await self.raise_conflict(conn, kind=kind, channel=channel, inbox_id=inbox_id,
                                          summary=summary or f"a message from {channel} could not be read and is "
                                                             f"kept in the inbox (#{inbox_id}): {reason[:300]}"
                                                             + ("" if ota_booking_id else
                                                                " (no booking id readable in it: it will not close "
                                                                "by itself)"),
                                          detail=detail)
            return first_time

        return await self.db.write_grouped(tx)

    # ---- reading -------------------------------------------------------------------
    async def show(self, property_code: str, start: date, end: date) -> dict[str, list[dict[str, Any]]]:
        """Rooms per room type and night; prices and restrictions per rate plan and night."""
        if end < start:
            raise LedgerError(f"the range ends ({end}) before it starts ({start})")

        async def q(conn: AsyncConnection) -> dict[str, list[dict[str, Any]]]:
            cat = await self.catalog(conn, property_code)
            pid = cat.property.id
            inv = {(r.room_type_id, r.night): r for r in (await conn.execute(select(m.inventory).where(
                m.inventory.c.property_id == pid, m.inventory.c.night.between(start, end)))).all()}
            rates: dict[tuple[int, date], list[Any]] = {}
            for r in (await conn.execute(select(m.rates).where(
                    m.rates.c.property_id == pid, m.rates.c.night.between(start, end))
                    .order_by(m.rates.c.occupancy))).all():
                rates.setdefault((r.rate_plan_id, r.night), []).append(r)
            restr = {(r.rate_plan_id, r.night): r for r in (await conn.execute(select(m.restrictions).where(
                m.restrictions.c.property_id == pid, m.restrictions.c.night.between(start, end)))).all()}
            nights = list(dates.days(start, end))
            rooms_out = []
            for rt in sorted(cat.room_types.values(), key=lambda r: r.code):
                for n in nights:
                    r = inv.get((rt.id, n))
                    physical = r.physical if (r is not None and r.physical is not None) else rt.physical_rooms
                    ooo, sold, held = (r.out_of_order, r.sold, r.held) if r is not None else (0, 0, 0)
                    rooms_out.append({"room_type": rt.code, "date": n.isoformat(), "physical": physical,
                                      "out_of_order": ooo, "sold": sold, "held": held,
                                      "free": physical - ooo - sold - held})
            rates_out = []
            for rp in sorted(cat.rate_plans.values(), key=lambda r: r.code):
                for n in nights:
                    rs = restr.get((rp.id, n))
                    base = {"min_los": rs.min_los if rs else None, "max_los": rs.max_los if rs else None,
                            "cta": rs.cta if rs else None, "ctd": rs.ctd if rs else None,
                            "stop_sell": rs.stop_sell if rs else None}
                    prices = rates.get((rp.id, n)) or [None]
                    for p in prices:
                        rates_out.append({"rate_plan": rp.code, "date": n.isoformat(),
                                          "occupancy": p.occupancy if p else rp.occupancy,
                                          "price_minor": p.price_minor if p else None,
                                          "currency": p.currency if p else None, **base})
            return {"rooms": rooms_out, "rates": rates_out}

        return await self.db.read(q)

    async def snapshot(self, property_code: str, start: date, end: date, conn: AsyncConnection | None = None):
        """The ledger for one property and range, by local codes (input of mapping.derive).

        Four statements, each built once (issue 13: a push reads one for every property and
        channel): the room types with their physical rooms as they are now, then the range's
        inventory, rates and restrictions. Ids and codes come from the catalog cache (an id's
        code never changes; a plan added since is read again with the catalog)."""
        from channelmgr.mapping.derive import RateNight, Snapshot

        async def q(conn: AsyncConnection) -> Snapshot:
            cat = await self.cached_catalog(conn, property_code)
            pid = cat.property.id
            rts = (await conn.execute(_stmt(conn, "snapshot room types", lambda: select(
                m.room_types.c.id, m.room_types.c.code, m.room_types.c.physical_rooms).where(
                m.room_types.c.property_id == _bind("pid"), m.room_types.c.active.is_(True))),
                {"pid": pid})).all()
            rp_code = {r.id: r.code for r in cat.rate_plans.values()}
            span = {"pid": pid, "lo": start, "hi": end}
            inv = {(r[0], r[1]): r for r in (await conn.execute(_stmt(conn, "snapshot inventory", lambda: select(
                m.inventory.c.room_type_id, m.inventory.c.night, m.inventory.c.physical, m.inventory.c.out_of_order,
                m.inventory.c.sold, m.inventory.c.held).where(
                m.inventory.c.property_id == _bind("pid"), m.inventory.c.night.between(_bind("lo"), _bind("hi")))),
                span)).all()}
            nights = list(dates.days(start, end))
            free: dict[tuple[str, date], int] = {}
            for rt_id, rt_code, physical in rts:
                for n in nights:
                    r = inv.get((rt_id, n))
                    if r is None:
                        free[(rt_code, n)] = physical
                    else:
                        free[(rt_code, n)] = (r[2] if r[2] is not None else physical) - r[3] - r[4] - r[5]
            rate_rows = (await conn.execute(_stmt(conn, "snapshot rates", lambda: select(
                m.rates.c.rate_plan_id, m.rates.c.night, m.rates.c.occupancy, m.rates.c.price_minor,
                m.rates.c.currency).where(
                m.rates.c.property_id == _bind("pid"), m.rates.c.night.between(_bind("lo"), _bind("hi")))),
                span)).all()
            restr_rows = (await conn.execute(_stmt(conn, "snapshot restrictions", lambda: select(
                m.restrictions.c.rate_plan_id, m.restrictions.c.night, m.restrictions.c.min_los,
                m.restrictions.c.max_los, m.restrictions.c.cta, m.restrictions.c.ctd,
                m.restrictions.c.stop_sell).where(
                m.restrictions.c.property_id == _bind("pid"),
                m.restrictions.c.night.between(_bind("lo"), _bind("hi")))), span)).all()
            if any(r[0] not in rp_code for r in rate_rows) or any(r[0] not in rp_code for r in restr_rows):
                # a plan the cached catalog does not know (added by another process, or one no
                # longer active): the catalog as it is now decides
                cat = await self.catalog(conn, property_code, channels=False)
                rp_code = {r.id: r.code for r in cat.rate_plans.values()}
            prices: dict[tuple[str, date], dict[int, int]] = {}
            currency: dict[tuple[str, date], str] = {}
            for rp_id, night, occ, price, cur in rate_rows:
                code = rp_code.get(rp_id)
                if code is not None:
                    key = (code, night)
                    prices.setdefault(key, {})[occ] = price
                    currency[key] = cur
            restr = {}
            for r in restr_rows:
                code = rp_code.get(r[0])
                if code is not None:
                    restr[(code, r[1])] = r
            rates = {}
            for key in prices.keys() | restr.keys():
                rs = restr.get(key)
                rates[key] = RateNight(prices=prices.get(key, {}), currency=currency.get(key),
                                       min_los=rs[2] if rs else None, max_los=rs[3] if rs else None,
                                       cta=rs[4] if rs else None, ctd=rs[5] if rs else None,
                                       stop_sell=rs[6] if rs else None)
            return Snapshot(property_code, free, rates)

        if conn is not None:
            return await q(conn)
        return await self.db.read(q)

    async def journal(self, property_code: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        async def q(conn: AsyncConnection) -> list[dict[str, Any]]:
            stmt = (select(m.journal, m.properties.c.code.label("property"))
                    .outerjoin(m.properties, m.properties.c.id == m.journal.c.property_id)
                    .order_by(m.journal.c.id.desc()).limit(limit))
            if property_code:
                stmt = stmt.where(m.properties.c.code == property_code)
            out = []
            for r in (await conn.execute(stmt)).all():
                out.append({"id": r.id, "at": _aware(r.at).isoformat(), "actor": r.actor, "property": r.property,
                            "entity": r.entity, "key": r.entity_key, "action": r.action, "before": r.before,
                            "after": r.after, "reason": r.reason, "correlation_id": r.correlation_id})
            return out

        return await self.db.read(q)

    async def outbox_pending(self, channel: str | None = None) -> list[dict[str, Any]]:
        async def q(conn: AsyncConnection) -> list[dict[str, Any]]:
            stmt = select(m.outbox).where(m.outbox.c.status.in_(("pending", "claimed"))).order_by(m.outbox.c.id)
            if channel:
                stmt = stmt.where(m.outbox.c.channel == channel)
            return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]

        return await self.db.read(q)

    async def booking(self, channel: str, ota_booking_id: str, *, reveal: bool = False) -> dict[str, Any] | None:
        """A booking as operators see it; guest data masked unless ``reveal``."""
        from channelmgr.security import mask_value

        async def q(conn: AsyncConnection) -> dict[str, Any] | None:
            r = (await conn.execute(select(m.bookings).where(
                m.bookings.c.channel == channel, m.bookings.c.ota_booking_id == ota_booking_id))).first()
            if r is None:
                return None
            nights = (await conn.execute(select(m.booking_nights).where(
                m.booking_nights.c.booking_id == r.id).order_by(m.booking_nights.c.night))).all()
            revs = (await conn.execute(select(m.booking_revisions).where(
                m.booking_revisions.c.booking_id == r.id).order_by(m.booking_revisions.c.id))).all()
            guest = {"name": self.cipher.decrypt(r.guest_name_ct), "phone": self.cipher.decrypt(r.guest_phone_ct),
                     "email": self.cipher.decrypt(r.guest_email_ct),
                     "id_number": self.cipher.decrypt(r.guest_id_number_ct)}
            requests = self.cipher.decrypt(r.special_requests_ct)
            if not reveal:
                guest = {k: mask_value(k, v) for k, v in guest.items()}
            return {"id": r.id, "channel": r.channel, "ota_booking_id": r.ota_booking_id,
                    "hotel_code": r.hotel_code, "confirmation": r.confirmation, "status": r.status, "revision": r.revision,
                    "checkin": _iso(r.checkin), "checkout": _iso(r.checkout), "rooms": r.rooms,
                    "amount_minor": r.amount_minor, "currency": r.currency, "overbooked": r.overbooked,
                    "unmapped": r.unmapped, "guest": guest, "special_requests": requests,
                    "nights": [{"night": n.night.isoformat(), "room_code": n.room_code, "rate_code": n.rate_code,
                                "rooms": n.rooms, "price_minor": n.price_minor, "counted": n.counted}
                               for n in nights],
                    "revisions": [{"revision": v.revision, "action": v.action, "outcome": v.outcome,
                                   "revised_at": _iso(_aware(v.revised_at))} for v in revs]}

        return await self.db.read(q)


@dataclass(frozen=True)
class _NewBooking:
    """A bookings row just inserted in this transaction (what apply_booking reads of it)."""

    id: int
    confirmation: str
    property_id: int | None
    revision: Any = None
    status: str = "pending"
    overbooked: bool = False
    checkin: Any = None
    checkout: Any = None
    rooms: int = 0
    amount_minor: Any = None
    revised_at: Any = None


def _public_status(status: str) -> str:
    return "cancelled" if status == "cancelled" else "confirmed"


def _iso(d: Any) -> str | None:
    return None if d is None else d.isoformat()


def _bind(name: str):
    from sqlalchemy import bindparam

    return bindparam(name)


def _inbox_prior_and_failed():
    prior = select(m.inbox.c.id).where(
        m.inbox.c.channel == _bind("i_channel"), m.inbox.c.body_sha256 == _bind("i_digest")
    ).order_by(m.inbox.c.id.desc()).limit(1).scalar_subquery()
    failed = select(m.inbox.c.id).where(
        m.inbox.c.channel == _bind("i_channel"), m.inbox.c.ota_booking_id == _bind("i_ota_id"),
        m.inbox.c.status == "failed").exists()
    return select(prior.label("prior"), failed.label("failures"))


def _booking_and_seen():
    """The booking row (locked) and whether the revision is applied already: one statement (a
    revision row always belongs to the booking of its channel and OTA id)."""
    seen = select(m.booking_revisions.c.id).where(
        m.booking_revisions.c.channel == _bind("b_channel"),
        m.booking_revisions.c.ota_booking_id == _bind("b_ota_id"),
        m.booking_revisions.c.revision == _bind("b_revision")).exists().label("seen_revision")
    return select(m.bookings, seen).where(
        m.bookings.c.channel == _bind("b_channel"), m.bookings.c.ota_booking_id == _bind("b_ota_id")
    ).with_for_update(of=m.bookings)
