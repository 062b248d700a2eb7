"""Answers to an operator's questions, read from the ledger's database.

They work whether the daemon runs or not: status and the sync log live in the database.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select

from channelmgr.ledger import models as m
from channelmgr.ledger.db import Database


def _aware(dt):
    return None if dt is None else (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc))


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """'10m', '2h', '1d', '90s' or an ISO time."""
    now = now or datetime.now(timezone.utc)
    mt = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if mt:
        n, unit = int(mt.group(1)), mt.group(2)
        return now - timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: n})
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since takes 10m, 2h, 1d or a time like 2026-11-22T08:00, not {text!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


STUCK_SECONDS = 60


async def status(db: Database, channels: list[str] | None = None,
                 disabled: list[str] | None = None) -> dict[str, Any]:
    """Per channel health; ``disabled`` channels (``enabled: false``) are shown as such."""
    async def q(conn):
        st = {r.channel: r for r in (await conn.execute(select(m.channel_status))).all()}
        depth = dict((await conn.execute(select(m.outbox.c.channel, func.count()).where(
            m.outbox.c.status.in_(("pending", "claimed"))).group_by(m.outbox.c.channel))).all())
        dead = dict((await conn.execute(select(m.outbox.c.channel, func.count()).where(
            m.outbox.c.status == "dead").group_by(m.outbox.c.channel))).all())
        oldest = dict((await conn.execute(select(m.outbox.c.channel, func.min(m.outbox.c.created_at)).where(
            m.outbox.c.status.in_(("pending", "claimed"))).group_by(m.outbox.c.channel))).all())
        failed_inbox = (await conn.execute(select(func.count()).select_from(m.inbox).where(
            m.inbox.c.status == "failed"))).scalar()
        # stored but neither applied nor failed for over a minute: a crash between the two
        # (re-processed at the next start) or a handler still stuck
        stuck_inbox = (await conn.execute(select(func.count()).select_from(m.inbox).where(
            m.inbox.c.status == "received",
            m.inbox.c.received_at < datetime.now(timezone.utc) - timedelta(seconds=STUCK_SECONDS)))).scalar()
        open_conflicts = dict((await conn.execute(select(m.conflicts.c.kind, func.count()).where(
            m.conflicts.c.status == "open").group_by(m.conflicts.c.kind))).all())
        names = sorted(set(channels or []) | set(disabled or []) | set(st) | set(depth) | set(dead))
        out = []
        for name in names:
            r = st.get(name)
            out.append({
                "channel": name,
                "enabled": name not in (disabled or []),
                "breaker": "disabled" if name in (disabled or []) else (r.breaker if r else "closed"),
                "last_success_at": _iso(_aware(r.last_success_at)) if r else None,
                "last_error_at": _iso(_aware(r.last_error_at)) if r else None,
                "last_error": r.last_error if r else None,
                "outbox_depth": depth.get(name, 0),
                "oldest_pending_at": _iso(_aware(oldest.get(name))),
                "dead_letters": dead.get(name, 0),
            })
        return {"channels": out, "inbox_failed": failed_inbox, "inbox_stuck": stuck_inbox,
                "conflicts_open": open_conflicts}

    out = await db.read(q)
    # issue 12: the oldest booking not acknowledged to its OTA per channel, and its time left
    from channelmgr.desk.service import unacknowledged

    out["unacknowledged"] = await unacknowledged(db)
    return out


async def logs(db: Database, *, channel: str | None = None, property: str | None = None,
               since: datetime | None = None, failed: bool = False, after_id: int = 0,
               limit: int = 200, before_id: int | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` rows (oldest first), or those after ``after_id`` (following
    live), or the newest before ``before_id`` (paging back)."""
    async def q(conn):
        s = m.sync_log
        stmt = select(s).where(s.c.id > after_id)
        if before_id is not None:
            stmt = stmt.where(s.c.id < before_id)
        if channel:
            stmt = stmt.where(s.c.channel == channel)
        if property:
            stmt = stmt.where(s.c.property == property)
        if since:
            stmt = stmt.where(s.c.at >= since)
        if failed:
            stmt = stmt.where(s.c.result.not_in(("ok", "skipped")))
        if after_id:
            stmt = stmt.order_by(s.c.id).limit(limit)
            rows = (await conn.execute(stmt)).all()
        else:
            rows = list(reversed((await conn.execute(stmt.order_by(s.c.id.desc()).limit(limit))).all()))
        return [{"id": r.id, "at": _iso(_aware(r.at)), "run_id": r.run_id, "channel": r.channel,
                 "property": r.property, "direction": r.direction, "operation": r.operation, "items": r.items,
                 "result": r.result, "duration_ms": r.duration_ms, "request_id": r.request_id,
                 "attempt": r.attempt, "error": r.error, "request": r.request, "response": r.response}
                for r in rows]

    return await db.read(q)


def _iso(dt) -> str | None:
    return None if dt is None else dt.isoformat()


async def activity(db: Database, marks: dict[str, int] | None = None) -> dict[str, Any]:
    """What happened per channel since ``marks`` (the high-water ids an earlier call returned;
    none: just take the marks): booking revisions received and OTA calls that failed; and
    how many pushes wait now. The terminal's line per channel every few seconds."""
    async def q(conn):
        br, sl, ob = m.booking_revisions, m.sync_log, m.outbox
        now = {"revisions": (await conn.execute(select(func.max(br.c.id)))).scalar() or 0,
               "sync_log": (await conn.execute(select(func.max(sl.c.id)))).scalar() or 0}
        waiting = dict((await conn.execute(select(ob.c.channel, func.count()).where(
            ob.c.status.in_(("pending", "claimed"))).group_by(ob.c.channel))).all())
        if marks is None:
            return {"marks": now, "bookings": {}, "errors": {}, "waiting": waiting}
        bookings = dict((await conn.execute(select(br.c.channel, func.count()).where(
            br.c.id > marks["revisions"], br.c.id <= now["revisions"]).group_by(br.c.channel))).all())
        errors = dict((await conn.execute(select(sl.c.channel, func.count()).where(
            sl.c.id > marks["sync_log"], sl.c.id <= now["sync_log"],
            sl.c.result.not_in(("ok", "skipped"))).group_by(sl.c.channel))).all())
        return {"marks": now, "bookings": bookings, "errors": errors, "waiting": waiting}

    return await db.read(q)
