"""What goes into the ledger and what comes out, in the hotel's words."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from adapters.base.contract import Guest


class LedgerError(ValueError):
    """A change the ledger refuses (unknown code, impossible value). Nothing was written."""


# ---- the catalog, declared in mappings/*.yaml ---------------------------------------


@dataclass(frozen=True)
class RoomTypeSpec:
    code: str
    name: str
    physical_rooms: int


@dataclass(frozen=True)
class RatePlanSpec:
    code: str
    name: str
    room_type: str
    occupancy: int
    meal_plan: str | None = None
    parent: str | None = None  # a derived plan's parent plan code


@dataclass(frozen=True)
class PropertySpec:
    code: str
    name: str
    timezone: str
    currency: str
    room_types: tuple[RoomTypeSpec, ...] = ()
    rate_plans: tuple[RatePlanSpec, ...] = ()
    channels: tuple[str, ...] = ()  # channels the property is listed on


# ---- changes to what can be sold ----------------------------------------------------


@dataclass(frozen=True)
class AriChange:
    """Set rooms, price and restrictions over an inclusive range of nights.

    Fields left None are not changed. Rate-level fields need a rate plan.
    """

    property: str
    room_type: str
    start: date
    end: date
    rate_plan: str | None = None
    rooms: int | None = None  # physical rooms for sale on those nights
    out_of_order: int | None = None
    held: int | None = None
    price_minor: int | None = None
    occupancy: int | None = None  # default: the rate plan's occupancy
    min_los: int | None = None
    max_los: int | None = None
    cta: bool | None = None
    ctd: bool | None = None
    stop_sell: bool | None = None


@dataclass(frozen=True)
class ChangeSummary:
    correlation_id: str
    cells_changed: int
    journal_rows: int
    outbox_rows: int


# ---- bookings -----------------------------------------------------------------------


@dataclass(frozen=True)
class LocalStay:
    """A stay with the OTA's codes and, when mapped, the local ones."""

    room_code: str
    rate_code: str | None
    room_type: str | None  # local code; None when the OTA code is not mapped
    rate_plan: str | None
    nights: tuple[tuple[date, int | None], ...]  # (night, price in minor units)
    rooms: int = 1


@dataclass(frozen=True)
class IncomingBooking:
    """A booking revision with OTA codes translated; the ledger applies it."""

    channel: str
    hotel_code: str
    property: str | None  # local property code; None when the OTA hotel is not mapped
    ota_booking_id: str
    revision: str
    action: Literal["new", "modify", "cancel"]
    stays: tuple[LocalStay, ...] = ()
    amount_minor: int | None = None
    currency: str | None = None
    guest: Guest = Guest()
    special_requests: str | None = None
    booked_at: datetime | None = None
    revised_at: datetime | None = None
    inbox_id: int | None = None
    unmapped: tuple[str, ...] = ()  # what could not be mapped, in words
    # digest of the booking's content without envelope fields (contract.content_fingerprint):
    # the same content as the revision applied last is a resend, answered as a duplicate
    fingerprint: str | None = None


@dataclass(frozen=True)
class BookingResult:
    booking_id: int
    confirmation: str
    status: Literal["confirmed", "cancelled"]
    duplicate: bool = False
    superseded: bool = False
    overbooked: bool = False
    outbox_rows: int = 0
    nights_changed: tuple[tuple[str, date], ...] = field(default=())
