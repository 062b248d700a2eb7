"""Bookings in: inbox first, then parse, map, apply, and only then acknowledge.

This is the engine's side of the BookingReceiver contract (push channels call it from
their inbound handlers) and the ingest of pulled deliveries (pull channels). The raw
message is stored before anything else (DESIGN.md invariant 2); a message that cannot be
read stays in the inbox with its reason and is raised to operators; the OTA hears
"success" only after the booking is committed.
"""

from __future__ import annotations

import collections
import dataclasses
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Mapping, Sequence

import structlog

from adapters.base.contract import BookingRevision, Confirmation, Delivery, Stay, content_fingerprint
from adapters.base.errors import ParseError
from channelmgr import dates
from channelmgr.ledger.ledger import Ledger
from channelmgr.ledger.types import IncomingBooking, LocalStay
from channelmgr.mapping import MappingSet

log = structlog.get_logger("channelmgr.inbound")

# Stays an OTA cannot have sold (a mutated or corrupt date): kept for a person, never applied
# night by night (a 1,000-year stay would hold the write lock for many minutes).
DEFAULT_MAX_STAY_NIGHTS = 90  # per channel: channels.<ota>.max_stay_nights
PAST_DAYS_NEW = 3  # a new booking's check-in may be this many days before the hotel's date
PAST_DAYS_CHANGE = 400  # a modification of a stay in progress (or long over) may lie further back
MAX_AHEAD_DAYS = 2 * 366  # no OTA sells further ahead than this
MAX_BOOKING_NIGHTS = 3_000  # room stays x nights in one message
MAX_ROOMS_PER_STAY = 500
RAW_KEPT = 64 * 1024  # of a stored message, kept (head and tail) for the booking id hint


class ImpossibleStay(Exception):
    """A booking whose dates the OTA cannot have sold: it is kept in the inbox (failed, with
    the reason) and raised as a conflict for a person; nothing is applied. The inbound
    handler answers the OTA per its protocol (an error, so the OTA keeps it and a person
    on its side sees it too); a pulled one is not acknowledged."""


class Unapplicable(ParseError):
    """A stored message whose content the ledger cannot take (a number too large for its
    column, say): failed with the reason and a conflict; the handler answers as for an
    unreadable message (an error code, not "system busy")."""


def transient(e: BaseException) -> bool:
    """A failure that says nothing about the message: the database away, locked, a
    concurrent write of the same booking. Delivered again, it will apply."""
    from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError

    if isinstance(e, DataError):
        return False
    if isinstance(e, DBAPIError) and getattr(e, "connection_invalidated", False):
        return True
    return isinstance(e, (OperationalError, InterfaceError, IntegrityError, OSError, TimeoutError))


class Receiver:
    def __init__(self, ledger: Ledger, mappings: Callable[[], MappingSet | None],
                 on_committed: Callable[[str], None] | None = None,
                 capabilities: Callable[[str], object] | None = None,
                 max_stay_nights: Mapping[str, int] | None = None,
                 booking_id_hint: Callable[[str, bytes], str | None] | None = None):
        self.ledger = ledger
        self.mappings = mappings
        self.on_committed = on_committed or (lambda channel: None)
        self.capabilities = capabilities
        self.max_stay_nights = dict(max_stay_nights or {})
        # the OTA's booking id read, best effort, from a message that cannot be read whole
        # (the adapter's booking_id_hint): the same booking arriving intact later closes
        # the conflict by itself
        self.booking_id_hint = booking_id_hint
        self._recent_raw: collections.OrderedDict[int, tuple[str, bytes]] = collections.OrderedDict()

    # ---- BookingReceiver ------------------------------------------------------------
    async def store(self, channel: str, raw: bytes, kind: str) -> int:
        inbox_id, _ = await self.ledger.store_inbox(channel, raw, kind)
        if self.booking_id_hint is not None:  # kept a moment, for reject's hint (bounded)
            keep = raw if len(raw) <= 2 * RAW_KEPT else raw[:RAW_KEPT] + raw[-RAW_KEPT:]
            self._recent_raw[inbox_id] = (channel, keep)
            while len(self._recent_raw) > 32:
                self._recent_raw.popitem(last=False)
        return inbox_id

    def _hinted_booking_id(self, inbox_id: int) -> str | None:
        kept = self._recent_raw.pop(inbox_id, None)
        if kept is None or self.booking_id_hint is None:
            return None
        try:
            oid = self.booking_id_hint(*kept)
        except Exception as e:  # noqa: BLE001 - a hint, never a reason to fail
            log.warning("booking id hint failed", inbox_id=inbox_id, error=f"{e.__class__.__name__}: {e}"[:200])
            return None
        return oid.strip()[:128] if isinstance(oid, str) and oid.strip() else None

    async def reject(self, inbox_id: int, reason: str, ota_booking_id: str | None = None) -> None:
        ota_booking_id = ota_booking_id or self._hinted_booking_id(inbox_id)
        first = await self.ledger.reject_inbox(inbox_id, reason, ota_booking_id=ota_booking_id)
        if first:
            log.error("unreadable OTA message kept in the inbox", inbox_id=inbox_id, reason=reason[:300])

    async def apply(self, inbox_id: int, revision: BookingRevision) -> Confirmation:
        """Apply a stored revision. Whatever fails on the way (a bug, RecursionError, the
        database), the stored message is marked failed with the reason and raised as a
        conflict before the exception goes on to the caller (which answers the OTA with a
        retriable error, or does not acknowledge a pulled one): no message is left
        ``received`` with no reason. A later delivery that applies marks it applied."""
        try:
            return await self._apply(inbox_id, revision)
        except ImpossibleStay:
            raise  # already kept with its reason and its own conflict
        except Exception as e:
            reason = (f"{revision.channel} booking {revision.ota_booking_id} {revision.revision}: applying failed: "
                      f"{e.__class__.__name__}: {e}")
            await self.fail_stored(inbox_id, reason, ota_booking_id=revision.ota_booking_id)
            if transient(e):
                raise  # the OTA is asked to deliver it again (retriable answer, or not acknowledged)
            raise Unapplicable(reason[:500]) from e  # its content: delivering it again changes nothing

    async def store_and_apply(self, channel: str, raw: bytes, kind: str,
                              revision: BookingRevision) -> tuple[int, Confirmation]:
        """:meth:`store` then :meth:`apply`, in one transaction when it can be (issue 13:
        one commit, not two, and no inbox row written twice): the message is stored and
        the revision applied together, and only then does the caller answer the OTA.
        Whatever fails on the way, the message is then stored on its own and kept with the
        reason (failed, with a conflict) exactly as :meth:`apply` does, and the same
        exceptions reach the caller (ImpossibleStay, Unapplicable, a transient one). A
        message whose hotel must be read from the booking held, or whose dates are
        impossible, takes the two steps."""
        if not revision.hotel or self.stay_problem(revision) is not None:
            inbox_id = await self.store(channel, raw, kind)
            return inbox_id, await self.apply(inbox_id, revision)
        try:
            incoming = self.translate(revision, None)
            inbox_id, result = await self.ledger.store_and_apply(channel, raw, kind, incoming)
        except Exception as e:  # nothing of it committed: stored now, on its own, with the reason
            inbox_id = await self.store(channel, raw, kind)
            reason = (f"{revision.channel} booking {revision.ota_booking_id} {revision.revision}: applying failed: "
                      f"{e.__class__.__name__}: {e}")
            await self.fail_stored(inbox_id, reason, ota_booking_id=revision.ota_booking_id)
            if transient(e):
                raise
            raise Unapplicable(reason[:500]) from e
        self._applied(revision, incoming, result)
        return inbox_id, Confirmation(result.confirmation, result.status, duplicate=result.duplicate,
                                      overbooked=result.overbooked)

    def _applied(self, revision: BookingRevision, incoming: IncomingBooking, result) -> None:
        log.info("booking applied", channel=revision.channel, ota_booking_id=revision.ota_booking_id,
                 revision=revision.revision, action=revision.action, confirmation=result.confirmation,
                 duplicate=result.duplicate, superseded=result.superseded, overbooked=result.overbooked,
                 property=incoming.property)
        if result.outbox_rows:
            self.on_committed(revision.channel)

    async def fail_stored(self, inbox_id: int | None, reason: str, ota_booking_id: str | None = None) -> None:
        """Best effort (the database may be what failed): a row left ``received`` is
        re-processed at the next start."""
        if inbox_id is None:
            return
        try:
            await self.reject(inbox_id, reason, ota_booking_id)  # the conflict closes when it arrives intact
        except Exception as e:
            log.error("could not mark a stored message failed; it stays received and is re-processed at start-up",
                      inbox_id=inbox_id, error=f"{e.__class__.__name__}: {e}"[:300])

    async def _apply(self, inbox_id: int, revision: BookingRevision) -> Confirmation:
        if not revision.hotel:  # a message naming the booking but not its hotel: the one we hold
            held = await self.hotel_of(revision.channel, revision.ota_booking_id)
            if held:
                revision = dataclasses.replace(revision, hotel=held)
        problem = self.stay_problem(revision)
        if problem is not None:
            await self.hold_impossible(inbox_id, revision, problem)
            raise ImpossibleStay(problem)
        incoming = self.translate(revision, inbox_id)
        result = await self.ledger.apply_booking(incoming)
        self._applied(revision, incoming, result)
        return Confirmation(result.confirmation, result.status, duplicate=result.duplicate,
                            overbooked=result.overbooked)

    # ---- bookings an OTA cannot have sold ---------------------------------------------
    def stay_problem(self, rev: BookingRevision, now: datetime | None = None) -> str | None:
        """Why this revision's dates are impossible for its OTA, or None when they are fine.

        Cheap and bounded (nothing is expanded night by night): check-out not after
        check-in, a stay longer than the channel allows, a new booking arriving days after
        its check-in (years, for a corrupt date), a check-in beyond any OTA's horizon, more
        nights or rooms in one message than a booking can hold."""
        if rev.action == "cancel":
            return None
        ms = self.mappings()
        pm = ms.by_hotel(rev.channel, rev.hotel) if ms else None
        today = dates.business_date(now or datetime.now(timezone.utc), pm.timezone if pm else "UTC")
        limit = self.max_stay_nights.get(rev.channel, DEFAULT_MAX_STAY_NIGHTS)
        past = PAST_DAYS_NEW if rev.action == "new" else PAST_DAYS_CHANGE
        total = 0
        for s in rev.stays:
            where = f"{s.room} {s.checkin}..{s.checkout}"
            nights = (s.checkout - s.checkin).days
            if nights <= 0:
                return f"{where}: check-out is not after check-in"
            if nights > limit:
                return f"{where}: a stay of {nights} nights is longer than {rev.channel} allows ({limit})"
            if s.checkin < today - timedelta(days=past):
                return (f"{where}: check-in is {(today - s.checkin).days} days before the hotel's date {today} "
                        f"(a {rev.action} booking may be at most {past} days late)")
            if s.checkin > today + timedelta(days=MAX_AHEAD_DAYS):
                return f"{where}: check-in is more than {MAX_AHEAD_DAYS} days after the hotel's date {today}"
            if not 1 <= s.rooms <= MAX_ROOMS_PER_STAY:
                return f"{where}: {s.rooms} rooms (a stay holds 1..{MAX_ROOMS_PER_STAY})"
            total += nights
        if total > MAX_BOOKING_NIGHTS:
            return f"{len(rev.stays)} room stays of {total} nights in all (at most {MAX_BOOKING_NIGHTS})"
        return None

    async def hold_impossible(self, inbox_id: int, rev: BookingRevision, problem: str) -> None:
        first = await self.ledger.reject_inbox(
            inbox_id, f"impossible stay, not applied: {problem}", kind="impossible_stay",
            ota_booking_id=rev.ota_booking_id,
            summary=f"{rev.channel} booking {rev.ota_booking_id} ({rev.action}, hotel {rev.hotel}) has dates "
                    f"the OTA cannot have sold and is kept in the inbox (#{inbox_id}) for a person, not "
                    f"applied: {problem}")
        if first:
            log.error("booking with impossible dates kept in the inbox, not applied", inbox_id=inbox_id,
                      channel=rev.channel, ota_booking_id=rev.ota_booking_id, problem=problem)

    async def lookup(self, channel: str, ota_booking_id: str) -> Confirmation | None:
        b = await self.ledger.booking(channel, ota_booking_id)
        if b is None:
            return None
        return Confirmation(b["confirmation"], "cancelled" if b["status"] == "cancelled" else "confirmed",
                            overbooked=b["overbooked"])

    async def hotel_of(self, channel: str, ota_booking_id: str) -> str | None:
        b = await self.ledger.booking(channel, ota_booking_id)
        return (b.get("hotel_code") or None) if b is not None else None

    async def rooms_to_sell(self, channel: str, hotel: str, room: str, rate: str | None,
                            checkin: date, checkout: date) -> int | None:
        from channelmgr.mapping.derive import rooms_to_sell

        ms = self.mappings()
        pm = ms.by_hotel(channel, hotel) if ms else None
        ch = pm.channel(channel) if pm else None
        local = pm.local_room(channel, room) if pm else None
        if ch is None or local is None or checkout <= checkin:
            return None
        if (checkout - checkin).days > self.max_stay_nights.get(channel, DEFAULT_MAX_STAY_NIGHTS):
            return 0  # a stay no channel sells: nothing to offer (and no unbounded read)
        snap = await self.ledger.snapshot(pm.code, checkin, checkout - timedelta(days=1))
        return min(rooms_to_sell(snap.free[(local, n)], ch) for n in dates.nights(checkin, checkout))

    # ---- pulled deliveries ----------------------------------------------------------
    async def ingest(self, channel: str, deliveries: Sequence[Delivery]) -> list[tuple[Delivery, Confirmation]]:
        """Store, apply and return what may be acknowledged (committed ones only)."""
        accepted: list[tuple[Delivery, Confirmation]] = []
        for d in deliveries:
            inbox_id = await self.store(channel, d.raw or b"", d.kind)
            if d.error or d.revision is None:
                await self.reject(inbox_id, d.error or "the message carried no booking")
                continue
            try:
                conf = await self.apply(inbox_id, d.revision)
            except ImpossibleStay:
                continue  # kept for a person; not acknowledged, so the OTA keeps it on its side too
            except Exception as e:  # a bug or a database outage: not acknowledged, pulled again
                log.error("booking could not be applied; it will be pulled again", channel=channel,
                          ota_booking_id=d.revision.ota_booking_id, error=f"{e.__class__.__name__}: {e}")
                continue
            accepted.append((d, conf))
        return accepted

    # ---- OTA codes -> local ---------------------------------------------------------
    def translate(self, rev: BookingRevision, inbox_id: int | None) -> IncomingBooking:
        ms = self.mappings()
        pm = ms.by_hotel(rev.channel, rev.hotel) if ms else None
        unmapped: list[str] = []
        if pm is None:
            unmapped.append(f"{rev.channel} hotel {rev.hotel} is not in any mapping")
        stays = []
        for s in rev.stays:
            stays.append(self._local_stay(rev, s, pm, unmapped))
        return IncomingBooking(
            channel=rev.channel, hotel_code=rev.hotel, property=pm.code if pm else None,
            ota_booking_id=rev.ota_booking_id, revision=rev.revision, action=rev.action, stays=tuple(stays),
            amount_minor=rev.amount_minor, currency=rev.currency, guest=rev.guest,
            special_requests=rev.special_requests, booked_at=rev.booked_at, revised_at=rev.revised_at,
            inbox_id=inbox_id, unmapped=tuple(unmapped), fingerprint=content_fingerprint(rev))

    @staticmethod
    def _local_stay(rev: BookingRevision, s: Stay, pm, unmapped: list[str]) -> LocalStay:
        room_type = pm.local_room(rev.channel, s.room) if pm else None
        rate_plan = pm.local_rate(rev.channel, s.rate) if (pm and s.rate) else None
        if pm is not None and room_type is None:
            unmapped.append(f"{rev.channel} room {s.room} of hotel {rev.hotel} is not mapped")
        if pm is not None and s.rate and rate_plan is None:
            unmapped.append(f"{rev.channel} rate {s.rate} of hotel {rev.hotel} is not mapped")
        checkin, checkout = s.checkin, s.checkout
        if pm is not None and rev.tonight:
            first = dates.arrival_night(checkin, rev.booked_at, pm.timezone, tonight=True)
            shift = (checkin - first).days
            checkin, checkout = first, checkout - timedelta(days=shift)
        prices = {n.night: n.amount_minor for n in s.nightly}
        if checkin != s.checkin:  # late-night shift: prices follow their nights
            prices = {n.night - (s.checkin - checkin): n.amount_minor for n in s.nightly}
        nights = tuple((n, prices.get(n)) for n in dates.nights(checkin, checkout)) if checkout > checkin else ()
        return LocalStay(room_code=s.room, rate_code=s.rate, room_type=room_type, rate_plan=rate_plan,
                         nights=nights, rooms=s.rooms)
