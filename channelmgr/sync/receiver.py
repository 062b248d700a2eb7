"""Bookings in: inbox first, then parse, map, apply, and only then acknowledge.

This is the engine's side of the BookingReceiver contract (push channels call it from
their inbound handlers) and the ingest of pulled deliveries (pull channels). The raw
message is stored before anything else (DESIGN.md invariant 2); a message that cannot be
read stays in the inbox with its reason and is raised to operators; the OTA hears
"success" only after the booking is committed.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Callable, Sequence

import structlog

from adapters.base.contract import BookingRevision, Confirmation, Delivery, Stay
from channelmgr import dates
from channelmgr.ledger.ledger import Ledger
from channelmgr.ledger.types import IncomingBooking, LocalStay
from channelmgr.mapping import MappingSet

log = structlog.get_logger("channelmgr.inbound")


class Receiver:
    def __init__(self, ledger: Ledger, mappings: Callable[[], MappingSet | None],
                 on_committed: Callable[[str], None] | None = None,
                 capabilities: Callable[[str], object] | None = None):
        self.ledger = ledger
        self.mappings = mappings
        self.on_committed = on_committed or (lambda channel: None)
        self.capabilities = capabilities

    # ---- BookingReceiver ------------------------------------------------------------
    async def store(self, channel: str, raw: bytes, kind: str) -> int:
        inbox_id, _ = await self.ledger.store_inbox(channel, raw, kind)
        return inbox_id

    async def reject(self, inbox_id: int, reason: str) -> None:
        first = await self.ledger.reject_inbox(inbox_id, reason)
        if first:
            log.error("unreadable OTA message kept in the inbox", inbox_id=inbox_id, reason=reason[:300])

    async def apply(self, inbox_id: int, revision: BookingRevision) -> Confirmation:
        incoming = self.translate(revision, inbox_id)
        result = await self.ledger.apply_booking(incoming)
        log.info("booking applied", channel=revision.channel, ota_booking_id=revision.ota_booking_id,
                 revision=revision.revision, action=revision.action, confirmation=result.confirmation,
                 duplicate=result.duplicate, superseded=result.superseded, overbooked=result.overbooked,
                 property=incoming.property)
        if result.outbox_rows:
            self.on_committed(revision.channel)
        return Confirmation(result.confirmation, result.status, duplicate=result.duplicate,
                            overbooked=result.overbooked)

    async def lookup(self, channel: str, ota_booking_id: str) -> Confirmation | None:
        b = await self.ledger.booking(channel, ota_booking_id)
        if b is None:
            return None
        return Confirmation(b["confirmation"], "cancelled" if b["status"] == "cancelled" else "confirmed",
                            overbooked=b["overbooked"])

    async def rooms_to_sell(self, channel: str, hotel: str, room: str, rate: str | None,
                            checkin: date, checkout: date) -> int | None:
        from channelmgr.mapping.derive import rooms_to_sell

        ms = self.mappings()
        pm = ms.by_hotel(channel, hotel) if ms else None
        ch = pm.channel(channel) if pm else None
        local = pm.local_room(channel, room) if pm else None
        if ch is None or local is None or checkout <= checkin:
            return None
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
            inbox_id=inbox_id, unmapped=tuple(unmapped))

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
