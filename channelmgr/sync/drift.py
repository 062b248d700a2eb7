"""Watchdog: read back what an OTA holds, compare with what it should hold, repair.

Only for channels whose protocol allows a read-back (Booking.com's B.XML, for one). Drift
happens: Booking.com re-opens a cancelled room by itself, an extranet user edits a price by
hand. Each mismatch is raised as one conflict per property and channel, and the cells are
queued for a push, so the OTA comes back to the ledger's values.

A repair must never sell the last room twice. An OTA that holds *fewer* rooms than the
ledger says it should has most likely just sold one, and the booking is on its way (not
pulled yet, or not pushed to us yet). Raising the OTA's count back would re-open a room
that is gone, and the next guest would book it. So, for a read-back below the ledger:

1. a pull channel's bookings are pulled first, then the OTA is read back and compared
   again (the sale now in the ledger, the counts agree);
2. a count is never raised in the same minute as a fresh sale on that channel: not while a
   booking from that channel for that room and night arrived in the ledger within the last
   ``FRESH_SALE_SECONDS``, and not before a drop the ledger cannot explain has been seen
   for that long (on a later watchdog round, after another pull).

A read-back above the ledger (the OTA offers rooms the hotel does not have) and a price
drift are repaired at once: that direction cannot oversell.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import structlog
from sqlalchemy import func, select

from channelmgr import dates
from channelmgr.ledger import models as m
from channelmgr.ledger.ledger import Ledger
from channelmgr.mapping.derive import all_keys, derive

if TYPE_CHECKING:  # pragma: no cover
    from channelmgr.daemon import Daemon

log = structlog.get_logger("channelmgr.drift")

FRESH_SALE_SECONDS = 60.0
# issue 13: the read-back channels (Booking.com, Meituan) go through the properties in the
# same order at the same pace, so each property's ledger snapshot (seven queries) is taken
# for one and used again by the other, when the ledger has not changed since (the highest
# journal id: every ledger change writes one) and it is at most this old
SNAPSHOT_SHARE_SECONDS = 5.0


def _drops(daemon: "Daemon") -> dict[tuple, float]:
    """(channel, property, room, rate, night) -> when a drop below the ledger was first seen."""
    d = getattr(daemon, "drift_drops", None)
    if d is None:
        d = daemon.drift_drops = {}
    return d


async def _compare(daemon: "Daemon", channel: str, pm: Any, today, end) -> list[tuple[Any, str, bool]]:
    """(cell the ledger wants, why, the OTA holds fewer rooms) for every drifting cell."""
    chrt = daemon.channels[channel]
    caps = chrt.adapter.capabilities
    ch = pm.channel(channel)
    held = await chrt.adapter.read_back(ch.hotel_id, today, end)
    snap = await _snapshot(daemon, pm.code, today, end)
    want = derive(pm, channel, snap, all_keys(pm, channel, dates.days(today, end)), today=today,
                  supported=caps.restrictions, inventory_level=caps.inventory_level)
    have = {}
    for u in held:
        for n in dates.days(u.start, u.end):
            have[(u.room, u.rate, n)] = u
    drifting = []
    for c in want:
        u = have.get((c.room, c.rate, c.night))
        if u is None:
            continue
        if c.rate is None or caps.inventory_level == "rate":
            if u.rooms_to_sell is not None and c.rooms_to_sell is not None and u.rooms_to_sell != c.rooms_to_sell:
                drifting.append((c, f"rooms_to_sell {u.rooms_to_sell} != {c.rooms_to_sell}",
                                 u.rooms_to_sell < c.rooms_to_sell))
                continue
        if c.rate is not None and u.prices and c.prices:
            held_prices = {p.occupancy: p.amount_minor for p in u.prices}
            if any(held_prices.get(o) not in (None, a) for o, a in c.prices):
                drifting.append((c, f"price {held_prices} != {dict(c.prices)}", False))
    return drifting


async def _journal_head(conn) -> int:
    return (await conn.execute(select(func.max(m.journal.c.id)))).scalar() or 0


async def _snapshot(daemon: "Daemon", code: str, today, end):
    """The ledger of one property over [today, end], shared between channels (see
    SNAPSHOT_SHARE_SECONDS): taken again whenever anything in the ledger changed."""
    shared = getattr(daemon, "drift_snapshots", None)
    if shared is None:
        shared = daemon.drift_snapshots = {}
    key, now = (code, today, end), time.monotonic()
    for k in [k for k, (_, at, _) in shared.items() if now - at > SNAPSHOT_SHARE_SECONDS]:
        del shared[k]
    hit = shared.get(key)
    if hit is not None and await daemon.rt.db.read(_journal_head) == hit[0]:
        return hit[2]

    async def q(conn):  # the journal head and the snapshot in one read transaction
        return await _journal_head(conn), await daemon.rt.ledger.snapshot(code, today, end, conn=conn)

    head, snap = await daemon.rt.db.read(q)
    shared[key] = (head, now, snap)
    return snap


async def _fresh_sales(daemon: "Daemon", property_code: str, channel: str, since: datetime) -> set[tuple[str, Any]]:
    """(room type code, night) of bookings from ``channel`` that reached the ledger since ``since``."""

    async def q(conn):
        rows = (await conn.execute(
            select(m.room_types.c.code, m.booking_nights.c.night)
            .select_from(m.booking_nights)
            .join(m.bookings, m.bookings.c.id == m.booking_nights.c.booking_id)
            .join(m.room_types, m.room_types.c.id == m.booking_nights.c.room_type_id)
            .join(m.properties, m.properties.c.id == m.bookings.c.property_id)
            .where(m.properties.c.code == property_code, m.bookings.c.channel == channel,
                   m.bookings.c.updated_at >= since))).all()
        return {(r.code, r.night) for r in rows}

    return await daemon.rt.db.read(q)


def readback_gap(properties: int, spread_over: float | None, per_second: float | None) -> float:
    """Seconds between two read-backs of one channel in a round (issue 13).

    A round reads back every property once. Spread over ``spread_over`` seconds (most of
    the watchdog interval) rather than in a burst, and never faster than ``per_second``
    read-backs a second per channel: at 10,000 properties a burst every 5 minutes was more
    than a core, and more calls than an OTA lets one account make; with the cap a round
    takes ``properties / per_second`` seconds when that is longer than the interval. One
    read-back of a channel is in flight at a time. 0 means back to back (driven by hand)."""
    gap = 0.0
    if spread_over and properties > 0:
        gap = spread_over / properties
    if per_second:
        gap = max(gap, 1.0 / per_second)
    return gap


async def check_drift(daemon: "Daemon", channel: str, days: int | None = None, *,
                      spread_over: float | None = None, per_second: float | None = None,
                      sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                      clock: Callable[[], float] = time.monotonic) -> int:
    """Compare and repair one channel, property by property; returns the number of cells
    found drifting (repaired now or held back for a later round). With ``spread_over`` and/or
    ``per_second`` the read-backs are spaced (``readback_gap``); without, back to back."""
    ms = daemon.mappings
    codes = [code for code, pm in (ms.properties.items() if ms else ()) if pm.channel(channel) is not None]
    gap = readback_gap(len(codes), spread_over, per_second)
    state = {"pulled": False}
    total = 0
    t0 = clock()
    for i, code in enumerate(codes):
        if gap:
            wait = t0 + i * gap - clock()
            if wait > 0:
                await sleep(wait)
        ms = daemon.mappings  # a mapping edit during a long round: the version in force now
        pm = ms.get(code) if ms else None
        if pm is None or pm.channel(channel) is None:
            continue
        try:
            total += await _check_property(daemon, channel, pm, days, state)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # one hotel's read-back failing does not end the round for the others
            log.warning("drift check failed", channel=channel, property=code, error=f"{e.__class__.__name__}: {e}")
    return total


async def _check_property(daemon: "Daemon", channel: str, pm: Any, days: int | None, state: dict) -> int:
    chrt = daemon.channels[channel]
    caps = chrt.adapter.capabilities
    drops = _drops(daemon)
    today = dates.business_date(datetime.now(timezone.utc), pm.timezone)
    end = today + timedelta(days=min(days or caps.readback_max_days, caps.readback_max_days) - 1)
    drifting = await _compare(daemon, channel, pm, today, end)
    if any(lower for _, _, lower in drifting) and caps.booking_delivery == "pull" and not state["pulled"]:
        # fewer rooms at the OTA than the ledger thinks: a booking may be on its way
        state["pulled"] = True
        got = await daemon.pull(channel)
        log.info("read-back below the ledger: pulled bookings before comparing again", channel=channel,
                 property=pm.code, bookings=got)
        drifting = await _compare(daemon, channel, pm, today, end)
    now_mono = time.monotonic()
    seen_lower = set()
    held_back: list[tuple[Any, str]] = []
    repair: list[tuple[Any, str]] = []
    fresh: set | None = None
    for c, why, lower in drifting:
        if not lower:
            repair.append((c, why))
            continue
        key = (channel, pm.code, c.room, c.rate, c.night)
        seen_lower.add(key)
        first = drops.setdefault(key, now_mono)
        if fresh is None:
            fresh = await _fresh_sales(daemon, pm.code, channel,
                                       datetime.now(timezone.utc) - timedelta(seconds=FRESH_SALE_SECONDS))
        if (c.room_type, c.night) in fresh or now_mono - first < FRESH_SALE_SECONDS:
            held_back.append((c, why))
        else:
            repair.append((c, why))
    for key in [k for k in drops if k[0] == channel and k[1] == pm.code and k not in seen_lower]:
        del drops[key]  # the OTA no longer holds fewer rooms than the ledger: forget the drop
    if held_back:
        log.warning("read-back below the ledger right after a sale: not raised this round", channel=channel,
                    property=pm.code, cells=len(held_back),
                    sample="; ".join(f"{c.room}/{c.rate or '-'} {c.night}: {why}" for c, why in held_back[:3]))
    if not repair:
        return len(drifting)
    for c, _ in repair:
        drops.pop((channel, pm.code, c.room, c.rate, c.night), None)
    keys = [("rooms" if c.rate_plan is None else "rate", c.room_type, c.rate_plan, c.night) for c, _ in repair]
    await daemon.rt.ledger.enqueue_cells(pm.code, channel, keys, actor="watchdog",
                                         reason=f"{channel} drifted from the ledger; repair pushed",
                                         detail={"drifting": len(repair)})
    sample = "; ".join(f"{c.room}/{c.rate or '-'} {c.night}: {why}" for c, why in repair[:5])

    async def tx(conn, pm=pm, sample=sample, n=len(repair)):
        pid = (await conn.execute(select(m.properties.c.id).where(m.properties.c.code == pm.code))).scalar()
        await Ledger.raise_conflict(conn, kind="drift", property_id=pid, channel=channel,
                                    summary=f"{channel} held other values than the ledger for {n} cell(s) of "
                                            f"{pm.code}; repairs were pushed. e.g. {sample}",
                                    detail={"cells": n})

    await daemon.rt.db.write(tx)
    log.warning("drift repaired", channel=channel, property=pm.code, cells=len(repair))
    chrt.wakeup.set()
    return len(drifting)
