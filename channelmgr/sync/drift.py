"""Watchdog: read back what an OTA holds, compare with what it should hold, repair.

Only for channels whose protocol allows a read-back (Booking.com's B.XML, for one). Drift
happens: Booking.com re-opens a cancelled room by itself, an extranet user edits a price by
hand. Each mismatch is raised as one conflict per property and channel, and the cells are
queued for a push, so the OTA comes back to the ledger's values.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import structlog

from channelmgr import dates
from channelmgr.ledger.ledger import Ledger
from channelmgr.mapping.derive import all_keys, derive

if TYPE_CHECKING:  # pragma: no cover
    from channelmgr.daemon import Daemon

log = structlog.get_logger("channelmgr.drift")


async def check_drift(daemon: "Daemon", channel: str, days: int | None = None) -> int:
    """Compare and repair one channel; returns the number of cells found drifting."""
    chrt = daemon.channels[channel]
    caps = chrt.adapter.capabilities
    ms = daemon.mappings
    total = 0
    for pm in (ms.properties.values() if ms else ()):
        ch = pm.channel(channel)
        if ch is None:
            continue
        today = dates.business_date(datetime.now(timezone.utc), pm.timezone)
        end = today + timedelta(days=min(days or caps.readback_max_days, caps.readback_max_days) - 1)
        held = await chrt.adapter.read_back(ch.hotel_id, today, end)
        snap = await daemon.rt.ledger.snapshot(pm.code, today, end)
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
                    drifting.append((c, f"rooms_to_sell {u.rooms_to_sell} != {c.rooms_to_sell}"))
                    continue
            if c.rate is not None and u.prices and c.prices:
                held_prices = {p.occupancy: p.amount_minor for p in u.prices}
                if any(held_prices.get(o) not in (None, a) for o, a in c.prices):
                    drifting.append((c, f"price {held_prices} != {dict(c.prices)}"))
        if not drifting:
            continue
        total += len(drifting)
        keys = [("rooms" if c.rate_plan is None else "rate", c.room_type, c.rate_plan, c.night) for c, _ in drifting]
        await daemon.rt.ledger.enqueue_cells(pm.code, channel, keys, actor="watchdog",
                                             reason=f"{channel} drifted from the ledger; repair pushed",
                                             detail={"drifting": len(drifting)})
        sample = "; ".join(f"{c.room}/{c.rate or '-'} {c.night}: {why}" for c, why in drifting[:5])

        async def tx(conn, pm=pm, sample=sample, n=len(drifting)):
            from sqlalchemy import select

            from channelmgr.ledger import models as m

            pid = (await conn.execute(select(m.properties.c.id).where(m.properties.c.code == pm.code))).scalar()
            await Ledger.raise_conflict(conn, kind="drift", property_id=pid, channel=channel,
                                        summary=f"{channel} held other values than the ledger for {n} cell(s) of "
                                                f"{pm.code}; repairs were pushed. e.g. {sample}",
                                        detail={"cells": n})

        await daemon.rt.db.write(tx)
        log.warning("drift repaired", channel=channel, property=pm.code, cells=len(drifting))
        chrt.wakeup.set()
    return total
