"""The desk as one object the CLI, the API and the daemon hold; and its scan.

The scan reads the booking revisions the ledger took since it last looked (a high-water mark
in ``desk_state``), whatever their source, and for each booking: brings its special
requests in line, keeps its contacts' keyed digests and raises the suspicious flags, and
writes the ways out into a new overbooking conflict. Then it raises ``ack_deadline``
conflicts for pulled bookings not acknowledged to their OTA before its fallback lapses.
The daemon runs it every ``desk.scan_interval_seconds``; a direct booking runs it at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import structlog
from sqlalchemy import func, select, text, update

from channelmgr import dates
from channelmgr.desk.bookings import DirectDesk
from channelmgr.desk.contacts import normalise_email, normalise_phone, phone_problem
from channelmgr.desk.overbooking import Overbooking
from channelmgr.desk.requests import RequestDesk
from channelmgr.ledger import models as m
from channelmgr.ledger.ledger import Ledger, _insert

log = structlog.get_logger("channelmgr.desk")
BATCH = 50  # booking revisions per transaction: a scan never holds the write lock for long
ACK_LOOKBACK = timedelta(days=1)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(dt):
    return None if dt is None else (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc))


def capabilities_of(channel: str):
    from adapters.base.registry import available, load

    if channel not in available():
        return None
    try:
        return load(channel).capabilities
    except Exception:  # noqa: BLE001 - an adapter that cannot load declares nothing
        return None


class Desk:
    def __init__(self, ledger: Ledger, settings, mappings: Callable[[], Any]):
        self.ledger = ledger
        self.db = ledger.db
        self.cipher = ledger.cipher
        self.settings = settings
        self.mappings = mappings
        self.direct = DirectDesk(ledger, settings, mappings)
        self.requests = RequestDesk(ledger, settings)
        self.overbooking = Overbooking(ledger, settings, mappings)

    # ---- the scan ------------------------------------------------------------------------
    async def scan(self, now: datetime | None = None) -> dict[str, int]:
        totals = {"bookings": 0, "opened": 0, "withdrawn": 0, "flags": 0, "ack_raised": 0, "ack_closed": 0}
        for _ in range(50):  # bounded per run; the next run goes on
            done = await self._scan_batch(totals)
            if done < BATCH:
                break
        raised, closed = await self.check_acks(now)
        totals["ack_raised"], totals["ack_closed"] = raised, closed
        return totals

    async def _scan_batch(self, totals: dict[str, int]) -> int:
        async def behind(conn):  # a read first: no write lock taken when there is nothing new
            mark = (await conn.execute(select(m.desk_state.c.value).where(m.desk_state.c.name == "revisions"))).scalar()
            top = (await conn.execute(select(func.max(m.booking_revisions.c.id)))).scalar()
            return (top or 0) > (mark or 0)

        if not await self.db.read(behind):
            return 0

        async def committed_top(conn):
            # PostgreSQL hands out revision ids at insert and commits in any order: a scan that
            # read id N+1 while N was still in flight would move its mark past N for ever (that
            # booking's requests and flags never seen). A SHARE lock waits for every transaction
            # that has inserted a revision (they hold ROW EXCLUSIVE from before their nextval) to
            # end, so no id at or below the max read under it is still to come. Held for no more
            # than that read. SQLite has one writer: its ids commit in order.
            await conn.execute(text("LOCK TABLE booking_revisions IN SHARE MODE"))
            return (await conn.execute(select(func.max(m.booking_revisions.c.id)))).scalar() or 0

        top = await self.db.write(committed_top) if self.db.dialect == "postgresql" else None

        async def tx(conn):
            mark = (await conn.execute(select(m.desk_state.c.value).where(m.desk_state.c.name == "revisions")
                                       .with_for_update())).scalar()
            if mark is None:
                await conn.execute(_insert(conn, m.desk_state).values(name="revisions", value=0)
                                   .on_conflict_do_nothing(index_elements=["name"]))
                mark = 0
            revs = (await conn.execute(select(m.booking_revisions.c.id, m.booking_revisions.c.booking_id,
                                              m.booking_revisions.c.action, m.booking_revisions.c.outcome)
                                       .where(m.booking_revisions.c.id > mark,
                                              *([m.booking_revisions.c.id <= top] if top is not None else []))
                                       .order_by(m.booking_revisions.c.id).limit(BATCH))).all()
            if not revs:
                return 0
            seen: dict[int, set[str]] = {}
            for r in revs:
                if r.outcome == "applied":
                    seen.setdefault(r.booking_id, set()).add(r.action)
            for bid, actions in seen.items():
                await self.scan_booking(conn, bid, actions, totals)
            await conn.execute(update(m.desk_state).where(m.desk_state.c.name == "revisions")
                               .values(value=revs[-1].id))
            return len(revs)

        return await self.db.write(tx)

    async def scan_now(self, booking_id: int, action: str) -> None:
        """A direct booking's requests and flags at once (the CLI has no daemon scanning)."""
        totals: dict[str, int] = {"bookings": 0, "opened": 0, "withdrawn": 0, "flags": 0}

        async def tx(conn):
            await self.scan_booking(conn, booking_id, {action}, totals)

        await self.db.write(tx)

    async def scan_booking(self, conn, booking_id: int, actions: set[str], totals: dict[str, int]) -> None:
        got = await self.requests.sync(conn, booking_id)
        totals["bookings"] += 1
        totals["opened"] += got["opened"]
        totals["withdrawn"] += got["withdrawn"]
        totals["flags"] += await self._suspicious(conn, booking_id, actions)
        await self.overbooking.note_ways_out(conn, booking_id)

    # ---- suspicious bookings -------------------------------------------------------------
    async def _suspicious(self, conn, booking_id: int, actions: set[str]) -> int:
        s = self.settings.suspicious
        b = (await conn.execute(select(m.bookings, m.properties.c.timezone, m.properties.c.code.label("pcode"))
                                .outerjoin(m.properties, m.properties.c.id == m.bookings.c.property_id)
                                .where(m.bookings.c.id == booking_id))).first()
        if b is None:
            return 0
        phone = self.cipher.decrypt(b.guest_phone_ct)
        email = self.cipher.decrypt(b.guest_email_ct)
        at = _aware(b.received_at)
        digests = {}
        p = normalise_phone(phone, s.default_country)
        if p:
            digests["phone"] = self.cipher.digest("phone\0" + p)
        e = normalise_email(email)
        if e:
            digests["email"] = self.cipher.digest("email\0" + e)
        c = m.desk_contacts
        first_time = True
        for kind, dg in digests.items():
            prior = (await conn.execute(select(func.count()).select_from(c).where(
                c.c.digest == dg, c.c.booking_id != booking_id, c.c.at < at))).scalar()
            if prior:
                first_time = False
            existing = (await conn.execute(select(c.c.id).where(c.c.booking_id == booking_id, c.c.kind == kind))).scalar()
            values = {"digest": dg, "channel": b.channel, "at": at, "rooms": b.rooms}
            if b.status == "cancelled":
                values["cancelled_at"] = _aware(b.updated_at)
            if existing is None:
                await conn.execute(c.insert().values(booking_id=booking_id, kind=kind, **values))
            else:
                await conn.execute(update(c).where(c.c.id == existing).values(**values))
        flags: list[tuple[str, str]] = []
        if b.status != "cancelled" and ("new" in actions or "modify" in actions):
            for kind, dg in digests.items():
                rooms = (await conn.execute(select(func.coalesce(func.sum(c.c.rooms), 0)).where(
                    c.c.digest == dg, c.c.at >= at - timedelta(hours=1), c.c.at <= at,
                    c.c.cancelled_at.is_(None)))).scalar()
                if rooms > s.rooms_per_contact_hour:
                    chans = (await conn.execute(select(c.c.channel).where(
                        c.c.digest == dg, c.c.at >= at - timedelta(hours=1)).distinct())).scalars().all()
                    flags.append((f"rooms_per_{kind}",
                                  f"one {kind} booked {rooms} rooms within an hour across "
                                  f"{', '.join(sorted(chans))} (more than {s.rooms_per_contact_hour})"))
            problem = phone_problem(phone, s.default_country)
            if problem:
                flags.append(("impossible_phone", f"the phone number cannot be one: {problem}"))
            if b.checkin is not None and b.checkout is not None and b.timezone:
                today = dates.business_date(at, b.timezone)
                nights = (b.checkout - b.checkin).days
                if (b.checkin <= today and nights >= s.tonight_min_nights and first_time
                        and (b.amount_minor or 0) >= s.tonight_min_amount_minor):
                    flags.append(("tonight_long_expensive",
                                  f"arrival tonight for {nights} nights, {b.amount_minor / 100:.2f} {b.currency}, "
                                  "from a guest never seen before"))
        if b.status == "cancelled":
            for kind, dg in digests.items():
                n = (await conn.execute(select(func.count()).select_from(c).where(
                    c.c.digest == dg, c.c.cancelled_at >= utcnow() - timedelta(days=7)))).scalar()
                if n > s.cancellations_per_contact_week:
                    flags.append((f"cancellations_per_{kind}",
                                  f"one {kind} cancelled {n} bookings within a week (more than "
                                  f"{s.cancellations_per_contact_week})"))
        if not flags:
            return 0
        have = {(r.detail or {}).get("flag") for r in (await conn.execute(select(m.conflicts.c.detail).where(
            m.conflicts.c.booking_id == booking_id, m.conflicts.c.kind == "suspicious"))).all()}
        raised = 0
        for code, why in flags:
            if code in have:
                continue
            await Ledger.raise_conflict(
                conn, kind="suspicious", property_id=b.property_id, channel=b.channel, booking_id=booking_id,
                summary=f"{b.channel} booking {b.ota_booking_id} ({b.confirmation}) looks suspicious: {why}. "
                        "It was taken as usual; check it with the guest or the OTA.",
                detail={"flag": code, "reason": why})
            raised += 1
        return raised

    # ---- OTA acknowledgement deadlines ------------------------------------------------------
    async def record_acks(self, channel: str, accepted) -> None:
        """Pulled revisions acknowledged to their OTA (the daemon, after acknowledge succeeded)."""
        rows = [{"channel": channel, "ota_booking_id": d.revision.ota_booking_id, "revision": d.revision.revision,
                 "acked_at": utcnow()} for d, _conf in accepted if d.revision is not None]
        if not rows:
            return

        async def tx(conn):
            await conn.execute(_insert(conn, m.desk_acks).values(rows).on_conflict_do_nothing(
                index_elements=["channel", "ota_booking_id", "revision"]))

        await self.db.write(tx)

    def _deadlines(self) -> dict[str, Any]:
        return _deadlines()

    @staticmethod
    async def _unacked(conn, now: datetime, channels: list[str]):
        r, a = m.booking_revisions, m.desk_acks
        acked = select(a.c.id).where(a.c.channel == r.c.channel, a.c.ota_booking_id == r.c.ota_booking_id,
                                     a.c.revision == r.c.revision).exists()
        return (await conn.execute(select(r.c.id, r.c.booking_id, r.c.channel, r.c.ota_booking_id, r.c.revision,
                                          r.c.received_at, r.c.revised_at)
                                   .where(r.c.channel.in_(channels), r.c.received_at >= now - ACK_LOOKBACK,
                                          r.c.inbox_id.is_not(None), ~acked)
                                   .order_by(r.c.received_at))).all()

    @staticmethod
    def _started(row) -> datetime:
        rec, rev = _aware(row.received_at), _aware(row.revised_at)
        return rev if (rev is not None and rev <= rec) else rec

    async def check_acks(self, now: datetime | None = None) -> tuple[int, int]:
        now = now or utcnow()
        dl = self._deadlines()
        if not dl:
            return 0, 0
        warn = timedelta(minutes=self.settings.ack_warn_minutes)

        async def anything(conn):  # a read first: no write lock taken when there is nothing to do
            rows = await Desk._unacked(conn, now, list(dl))
            due = any(now >= self._started(r) + timedelta(minutes=dl[r.channel].ack_deadline_minutes) - warn
                      for r in rows)
            opened = (await conn.execute(select(func.count()).select_from(m.conflicts).where(
                m.conflicts.c.kind == "ack_deadline", m.conflicts.c.status == "open"))).scalar()
            return due or bool(opened)

        if not await self.db.read(anything):
            return 0, 0

        async def tx(conn):
            raised = closed = 0
            rows = await Desk._unacked(conn, now, list(dl))
            open_ = {(c.detail or {}).get("revision_id"): c for c in (await conn.execute(
                select(m.conflicts.c.id, m.conflicts.c.detail).where(
                    m.conflicts.c.kind == "ack_deadline", m.conflicts.c.status == "open"))).all()}
            pending_ids = set()
            for r in rows:
                pending_ids.add(r.id)
                caps = dl[r.channel]
                deadline = self._started(r) + timedelta(minutes=caps.ack_deadline_minutes)
                if now < deadline - warn or r.id in open_:
                    continue
                have = (await conn.execute(select(func.count()).select_from(m.conflicts).where(
                    m.conflicts.c.kind == "ack_deadline", m.conflicts.c.booking_id == r.booking_id,
                    m.conflicts.c.channel == r.channel))).scalar()
                already = False
                if have:
                    for c in (await conn.execute(select(m.conflicts.c.detail).where(
                            m.conflicts.c.kind == "ack_deadline", m.conflicts.c.booking_id == r.booking_id))).all():
                        if (c.detail or {}).get("revision_id") == r.id:
                            already = True
                if already:
                    continue
                left = int((deadline - now).total_seconds())
                pid = (await conn.execute(select(m.bookings.c.property_id).where(
                    m.bookings.c.id == r.booking_id))).scalar()
                await Ledger.raise_conflict(
                    conn, kind="ack_deadline", property_id=pid, channel=r.channel, booking_id=r.booking_id,
                    summary=(f"{r.channel} booking {r.ota_booking_id} (revision {r.revision}) is in the ledger but "
                             f"not acknowledged to {r.channel}; its fallback lapses at {deadline.isoformat()} "
                             f"({'in ' + str(max(left, 0) // 60) + ' min' if left > 0 else 'lapsed'}): "
                             f"{caps.ack_fallback} Check the channel (`channelmgr status`, `channelmgr logs "
                             f"--channel {r.channel} --failed`)."),
                    detail={"revision_id": r.id, "ota_booking_id": r.ota_booking_id, "revision": r.revision,
                            "deadline_at": deadline.isoformat(), "fallback": caps.ack_fallback})
                raised += 1
            for rid, c in open_.items():  # acknowledged since (or aged out): closed by the system
                if rid not in pending_ids:
                    await conn.execute(update(m.conflicts).where(m.conflicts.c.id == c.id).values(
                        status="resolved", resolved_at=now, resolved_by="system",
                        resolution="the booking was acknowledged to the OTA"))
                    closed += 1
            return raised, closed

        return await self.db.write(tx)

    async def unacknowledged(self, now: datetime | None = None) -> dict[str, Any]:
        return await unacknowledged(self.db, now)


def _deadlines() -> dict[str, Any]:
    out = {}
    for ch in ("booking", "ctrip", "fliggy", "meituan"):
        caps = capabilities_of(ch)
        if caps is not None and caps.ack_deadline_minutes and caps.booking_delivery == "pull":
            out[ch] = caps
    return out


async def unacknowledged(db, now: datetime | None = None) -> dict[str, Any]:
    """Per pull channel with a fallback: how many wait, the oldest, and its time left."""
    now = now or utcnow()
    dl = _deadlines()
    if not dl:
        return {}

    async def q(conn):
        return await Desk._unacked(conn, now, list(dl))

    out: dict[str, Any] = {}
    for r in await db.read(q):
        caps = dl[r.channel]
        deadline = Desk._started(r) + timedelta(minutes=caps.ack_deadline_minutes)
        c = out.setdefault(r.channel, {"count": 0, "oldest": None})
        c["count"] += 1
        if c["oldest"] is None:
            c["oldest"] = {"ota_booking_id": r.ota_booking_id, "revision": r.revision,
                           "received_at": _aware(r.received_at).isoformat(), "deadline_at": deadline.isoformat(),
                           "seconds_left": int((deadline - now).total_seconds())}
    return out
