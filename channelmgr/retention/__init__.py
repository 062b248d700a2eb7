"""Retention (issue 13): the outbox and the sync log must not grow forever.

``prune`` removes what nobody needs once it is old: outbox rows that are settled (``done``,
``skipped``: pushed, superseded, or outside the OTA's window; ``dead`` rows stay for a person)
and the request/response bodies of old sync-log rows (the rows themselves stay: when, what,
result, how long, the error). The journal is the ledger's history and is kept, unless the
configuration gives it a retention of its own (``retention.journal_days``).

Work is done in small transactions of at most ``batch`` rows, so the write lock (on SQLite
every booking waits behind it) is never held for long, whatever the backlog. The same code
runs from `channelmgr db prune --older-than 90d` and from the daemon's daily job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, or_, select, update

from channelmgr.ledger import models as m
from channelmgr.ledger.db import Database

_AGE = re.compile(r"\A\s*(\d{1,5})\s*([dhw]?)\s*\Z")
SETTLED = ("done", "skipped")


class RetentionError(ValueError):
    pass


def parse_age(text: str) -> timedelta:
    """``90d``, ``12w``, ``36h`` or a bare number of days; at least one hour."""
    mt = _AGE.match(text or "")
    if not mt:
        raise RetentionError(f"'{text}' is not an age; write it like 90d (days), 12w (weeks) or 36h (hours)")
    n, unit = int(mt.group(1)), mt.group(2) or "d"
    age = {"d": timedelta(days=n), "w": timedelta(weeks=n), "h": timedelta(hours=n)}[unit]
    if age < timedelta(hours=1):
        raise RetentionError(f"'{text}' is too short: keep at least an hour")
    return age


@dataclass(frozen=True)
class PruneResult:
    cutoff: datetime
    outbox_deleted: int
    sync_log_bodies_cleared: int
    journal_deleted: int
    journal_cutoff: datetime | None


async def prune(db: Database, older_than: timedelta, *, journal_older_than: timedelta | None = None,
                batch: int = 2000, now: datetime | None = None) -> PruneResult:
    now = now or datetime.now(timezone.utc)
    cutoff = now - older_than
    o, s, j = m.outbox, m.sync_log, m.journal

    async def rounds(make) -> int:
        total = 0
        while True:
            n = await db.write(make)
            total += n
            if n < batch:
                return total

    async def outbox_tx(conn) -> int:
        ids = (await conn.execute(select(o.c.id).where(o.c.created_at < cutoff, o.c.status.in_(SETTLED))
                                  .order_by(o.c.created_at).limit(batch))).scalars().all()
        if ids:
            await conn.execute(delete(o).where(o.c.id.in_(ids)))
        return len(ids)

    async def synclog_tx(conn) -> int:
        ids = (await conn.execute(select(s.c.id).where(s.c.at < cutoff, or_(
            s.c.request.is_not(None), s.c.response.is_not(None))).order_by(s.c.at).limit(batch))).scalars().all()
        if ids:
            await conn.execute(update(s).where(s.c.id.in_(ids)).values(request=None, response=None))
        return len(ids)

    jcut = now - journal_older_than if journal_older_than is not None else None

    async def journal_tx(conn) -> int:
        ids = (await conn.execute(select(j.c.id).where(j.c.at < jcut).order_by(j.c.id).limit(batch))).scalars().all()
        if ids:
            await conn.execute(delete(j).where(j.c.id.in_(ids)))
        return len(ids)

    outbox_n = await rounds(outbox_tx)
    bodies_n = await rounds(synclog_tx)
    journal_n = await rounds(journal_tx) if jcut is not None else 0
    return PruneResult(cutoff, outbox_n, bodies_n, journal_n, jcut)
