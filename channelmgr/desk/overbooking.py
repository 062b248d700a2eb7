"""Overbooking, handled: the ways out of an overbooked booking (the room type's upgrade ladder
in the mapping, the property's partner hotels), settling it (upgrade in one ledger
transaction, relocation or cancellation recorded), and the look ahead over the next nights.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import select, update

from channelmgr import dates
from channelmgr.ledger import models as m
from channelmgr.ledger.ledger import Ledger, _bind, new_correlation_id
from channelmgr.ledger.types import LedgerError
from channelmgr.web.queries import Conflict, NotFound


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _free(row, rt) -> int:
    physical = row.physical if row.physical is not None else rt.physical_rooms
    return physical - row.out_of_order - row.sold - row.held


class Overbooking:
    def __init__(self, ledger: Ledger, settings, mappings: Callable[[], Any]):
        self.ledger = ledger
        self.db = ledger.db
        self.settings = settings
        self.mappings = mappings

    async def _conflict(self, conn, conflict_id: int):
        c = (await conn.execute(select(m.conflicts).where(m.conflicts.c.id == conflict_id))).first()
        if c is None:
            raise NotFound(f"there is no conflict #{conflict_id}")
        return c

    async def ways_out(self, conflict_id: int, conn=None) -> dict[str, Any]:
        """Upgrades (room types on the ladder free on every night of the booking) and partners."""
        async def q(conn):
            c = await self._conflict(conn, conflict_id)
            if c.kind != "overbooking" or c.booking_id is None:
                return {"upgrades": [], "partners": [], "booking_id": c.booking_id}
            code = (await conn.execute(select(m.properties.c.code).where(m.properties.c.id == c.property_id))).scalar()
            cat = await Ledger.catalog(conn, code)
            rt_code = {r.id: r.code for r in cat.room_types.values()}
            nights = (await conn.execute(select(m.booking_nights).where(
                m.booking_nights.c.booking_id == c.booking_id, m.booking_nights.c.counted.is_(True)))).all()
            pm = self.mappings().get(code) if self.mappings() else None
            upgrades = []
            sources = sorted({n.room_type_id for n in nights})
            for src in sources:
                mine = [n for n in nights if n.room_type_id == src]
                spec = pm.room_types.get(rt_code.get(src)) if pm else None
                for target in (spec.overbooking.upgrade_to if spec else ()):
                    trt = cat.room_types.get(target)
                    if trt is None:
                        continue
                    inv = {r.night: r for r in (await conn.execute(select(m.inventory).where(
                        m.inventory.c.room_type_id == trt.id,
                        m.inventory.c.night.in_([n.night for n in mine])))).all()}
                    free = min((_free(inv[n.night], trt) if n.night in inv else trt.physical_rooms) - n.rooms
                               for n in mine)
                    upgrades.append({"from": rt_code.get(src), "to": target, "free_after": free, "possible": free >= 0})
            partners = [{"name": p.name, "phone": p.phone} for p in (pm.file.partner_hotels if pm else ())]
            return {"booking_id": c.booking_id, "upgrades": upgrades, "partners": partners}

        return await (q(conn) if conn is not None else self.db.read(q))

    async def note_ways_out(self, conn, booking_id: int) -> int:
        """Write the ways out into the booking's open overbooking conflicts (scan)."""
        rows = (await conn.execute(select(m.conflicts.c.id, m.conflicts.c.detail).where(
            m.conflicts.c.booking_id == booking_id, m.conflicts.c.kind == "overbooking",
            m.conflicts.c.status == "open"))).all()
        n = 0
        for r in rows:
            ways = await self.ways_out(r.id, conn)
            detail = dict(r.detail or {})
            new = {"upgrades": ways["upgrades"], "partners": ways["partners"]}
            if detail.get("ways_out") != new:
                detail["ways_out"] = new
                await conn.execute(update(m.conflicts).where(m.conflicts.c.id == r.id).values(detail=detail))
                n += 1
        return n

    async def resolve(self, conflict_id: int, *, actor: str, upgrade_to: str | None = None,
                      relocate: str | None = None, cancel: bool = False, note: str | None = None,
                      direct_cancel: Callable[[int, str], Any] | None = None) -> dict[str, Any]:
        chosen = [x for x in (upgrade_to, relocate, cancel or None) if x]
        if len(chosen) != 1:
            raise LedgerError("settle an overbooking one way: --upgrade-to ROOM_TYPE, --relocate \"Partner\" "
                              "or --cancel")
        if upgrade_to:
            return await self._upgrade(conflict_id, upgrade_to, actor=actor, note=note)
        async def tx(conn):
            c = await self._conflict(conn, conflict_id)
            if c.status != "open":
                raise Conflict(f"conflict #{conflict_id} is already {c.status} (by {c.resolved_by or '?'})")
            if c.kind != "overbooking":
                raise LedgerError(f"conflict #{conflict_id} is a {c.kind}, not an overbooking: use --note")
            return c

        c = await self.db.read(tx)
        if relocate:
            code = await self._property_code(c.property_id)
            pm = self.mappings().get(code) if self.mappings() else None
            partners = {p.name: p for p in (pm.file.partner_hotels if pm else ())}
            if relocate not in partners:
                known = "; ".join(partners) or "none (add partner_hotels to the mapping)"
                raise LedgerError(f"{relocate!r} is not a partner hotel of {code}; the partners are: {known}")
            p = partners[relocate]
            how = f"relocated to {p.name} ({p.phone})" + (f": {note}" if note else "")
        else:
            direct = await self._is_direct(c.booking_id)
            if direct and direct_cancel is not None:
                await direct_cancel(c.booking_id, note or "cancelled to settle an overbooking")
                how = "cancelled (the direct booking was cancelled in the ledger)" + (f": {note}" if note else "")
            else:
                how = ("cancelled: the OTA booking must be cancelled on the OTA, which sends the cancellation here"
                       + (f": {note}" if note else ""))
        await self._close(conflict_id, actor, how)
        return await self._conflict_out(conflict_id)

    async def _property_code(self, pid):
        async def q(conn):
            return (await conn.execute(select(m.properties.c.code).where(m.properties.c.id == pid))).scalar()

        return await self.db.read(q)

    async def _is_direct(self, booking_id) -> bool:
        async def q(conn):
            return (await conn.execute(select(m.bookings.c.channel).where(m.bookings.c.id == booking_id))).scalar()

        return (await self.db.read(q)) in self.settings.sources

    async def _close(self, conflict_id: int, actor: str, how: str, conn=None) -> None:
        async def tx(conn):
            c = await self._conflict(conn, conflict_id)
            if c.status != "open":
                raise Conflict(f"conflict #{conflict_id} is already {c.status} (by {c.resolved_by or '?'})")
            at = utcnow()
            await conn.execute(update(m.conflicts).where(m.conflicts.c.id == conflict_id).values(
                status="resolved", resolved_at=at, resolved_by=actor[:64], resolution=how))
            await Ledger.add_journal(conn, [Ledger._jrow(at, actor[:64], c.property_id, "conflict",
                                                         {"conflict": conflict_id, "kind": c.kind}, "resolve",
                                                         {"status": c.status},
                                                         {"status": "resolved", "resolution": how}, how,
                                                         new_correlation_id())])

        if conn is not None:
            await tx(conn)
        else:
            await self.db.write(tx)

    async def _conflict_out(self, conflict_id: int) -> dict[str, Any]:
        from channelmgr.web import queries

        return await queries.conflict(self.db, conflict_id)

    async def _upgrade(self, conflict_id: int, target: str, *, actor: str, note: str | None) -> dict[str, Any]:
        """Move the booking's nights to ``target`` in ONE ledger transaction: sold moves from
        the old room type to the new one night by night, the booking's nights follow, a
        journal row per cell and for the booking, both room types are queued for every OTA,
        and the conflict is closed with who, when and how."""
        cid = new_correlation_id()

        async def tx(conn):
            c = await self._conflict(conn, conflict_id)
            if c.status != "open":
                raise Conflict(f"conflict #{conflict_id} is already {c.status} (by {c.resolved_by or '?'})")
            if c.kind != "overbooking" or c.booking_id is None:
                raise LedgerError(f"conflict #{conflict_id} is a {c.kind}, not an overbooking of a booking")
            b = (await conn.execute(select(m.bookings).where(m.bookings.c.id == c.booking_id))).first()
            if b.status == "cancelled":
                raise LedgerError(f"booking {b.ota_booking_id} is cancelled already: resolve with --note")
            code = (await conn.execute(select(m.properties.c.code).where(m.properties.c.id == b.property_id))).scalar()
            cat = await Ledger.catalog(conn, code)
            trt = cat.room_type(target)
            pm = self.mappings().get(code) if self.mappings() else None
            nights = (await conn.execute(select(m.booking_nights).where(
                m.booking_nights.c.booking_id == b.id, m.booking_nights.c.counted.is_(True)))).all()
            rt_by_id = {r.id: r for r in cat.room_types.values()}
            moving = [n for n in nights if n.room_type_id != trt.id]
            if not moving:
                raise LedgerError(f"booking {b.ota_booking_id} is in {target} already")
            for src in {n.room_type_id for n in moving}:
                spec = pm.room_types.get(rt_by_id[src].code) if pm else None
                ladder = spec.overbooking.upgrade_to if spec else ()
                if target not in ladder:
                    raise LedgerError(f"{target} is not on the upgrade ladder of {rt_by_id[src].code} "
                                      f"({', '.join(ladder) or 'empty'}; overbooking.upgrade_to in the mapping)")
            keys = [(n.room_type_id, n.night) for n in moving] + [(trt.id, n.night) for n in moving]
            rows = await Ledger._lock_inventory(conn, b.property_id, keys)
            delta: dict[tuple[int, date], int] = {}
            for n in moving:
                delta[(n.room_type_id, n.night)] = delta.get((n.room_type_id, n.night), 0) - n.rooms
                delta[(trt.id, n.night)] = delta.get((trt.id, n.night), 0) + n.rooms
            short = [f"{target} on {night} ({_free(rows[(rt, night)], trt)} free)"
                     for (rt, night), d in sorted(delta.items()) if rt == trt.id and _free(rows[(rt, night)], trt) - d < 0]
            if short:
                raise LedgerError("cannot upgrade: no free room in " + "; ".join(short))
            now = utcnow()
            journal = []
            upd = []
            reason = f"booking {b.channel}:{b.ota_booking_id} upgrade"
            for (rt, night), d in sorted(delta.items()):
                row = rows[(rt, night)]
                after = max(0, row.sold + d)
                upd.append({"k_rt": rt, "k_night": night, "v_sold": after})
                journal.append(Ledger._jrow(now, actor, b.property_id, "inventory",
                                            {"room_type": rt_by_id[rt].code, "night": night.isoformat()}, "sold",
                                            {"sold": row.sold}, {"sold": after}, reason, cid))
            await conn.execute(update(m.inventory).where(
                m.inventory.c.room_type_id == _bind("k_rt"), m.inventory.c.night == _bind("k_night")
            ).values(sold=_bind("v_sold")), upd)
            for n in moving:
                await conn.execute(update(m.booking_nights).where(m.booking_nights.c.id == n.id).values(
                    room_type_id=trt.id))
            await conn.execute(update(m.bookings).where(m.bookings.c.id == b.id).values(overbooked=False,
                                                                                          updated_at=now))
            froms = sorted({rt_by_id[n.room_type_id].code for n in moving})
            how = (f"upgraded to {target} from {', '.join(froms)} ({len(moving)} night(s)); every OTA is sent both "
                   "room types' new counts") + (f": {note}" if note else "")
            journal.insert(0, Ledger._jrow(now, actor, b.property_id, "booking",
                                           {"channel": b.channel, "ota_booking_id": b.ota_booking_id}, "upgrade",
                                           {"room_types": froms}, {"room_type": target}, how, cid))
            await Ledger.add_journal(conn, journal)
            cells = [("rooms", rt, None, n) for rt, n in delta]
            closing = [("rooms", rt, None, n) for (rt, n), d in delta.items() if d > 0]
            import inspect

            if "closing" in inspect.signature(Ledger.enqueue).parameters:  # closures pushed first (issue 13)
                await Ledger.enqueue(conn, b.property_id, cat.channels, cells, cid, now, closing=closing)
            else:
                await Ledger.enqueue(conn, b.property_id, cat.channels, cells, cid, now)
            await self._close(conflict_id, actor, how, conn=conn)

        await self.db.write(tx)
        return await self._conflict_out(conflict_id)

    async def check(self, days: int | None = None, today: date | None = None) -> list[dict[str, Any]]:
        """Per property, the overbooked nights of the next ``days`` (7): sold past physical."""
        days = days or self.settings.overbooking_check_days

        async def q(conn):
            props = (await conn.execute(select(m.properties).where(m.properties.c.active.is_(True)))).all()
            out = []
            for p in props:
                start = today or dates.business_date(utcnow(), p.timezone)
                end = start + timedelta(days=days - 1)
                rts = {r.id: r for r in (await conn.execute(select(m.room_types).where(
                    m.room_types.c.property_id == p.id))).all()}
                nights = []
                for r in (await conn.execute(select(m.inventory).where(
                        m.inventory.c.property_id == p.id, m.inventory.c.night.between(start, end))
                        .order_by(m.inventory.c.night, m.inventory.c.room_type_id))).all():
                    rt = rts.get(r.room_type_id)
                    if rt is None:
                        continue
                    free = _free(r, rt)
                    if free < 0:
                        nights.append({"room_type": rt.code, "night": r.night.isoformat(), "over": -free,
                                       "sold": r.sold,
                                       "physical": r.physical if r.physical is not None else rt.physical_rooms})
                out.append({"property": p.code, "from": start.isoformat(), "to": end.isoformat(),
                            "overbooked": nights})
            return out

        return await self.db.read(q)
