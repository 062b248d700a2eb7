"""Request and response models of the operator API; the OpenAPI document is made from them.

Inputs are bounded here (lengths, ranges, patterns), so what reaches the ledger is already
of a size and shape the database takes; anything else is a 400 with the field named.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_ID = 2 ** 62
# stay dates a hotel can mean (a date next to date.max overflows the night after it)
FIRST_DATE, LAST_DATE = date(2000, 1, 1), date(2199, 12, 31)
CODE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
CHANNEL = r"^[a-z][a-z0-9_]{0,31}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _no_control(v: str | None) -> str | None:
    if v is not None and any(ord(ch) < 32 and ch not in "\t\n\r" for ch in v):
        raise ValueError("must not contain control characters")
    return v


class Error(BaseModel):
    error: str = Field(description="what is wrong, in a sentence")
    field: str | None = Field(None, description="the input field it is about, when there is one")


# ---- login ------------------------------------------------------------------------------
class LoginIn(_In):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    name: str
    role: str
    csrf_token: str = Field(description="send it back in the X-CSRF-Token header on every POST/PUT/DELETE")
    expires_at: str


class Me(BaseModel):
    name: str
    role: str
    sees_guest_data: bool
    auth: Literal["session", "token"]


class Ok(BaseModel):
    ok: bool = True


class UserOut(BaseModel):
    name: str
    role: str
    disabled: bool
    created_at: str
    has_token: bool


class UsersOut(BaseModel):
    users: list[UserOut]


# ---- status -----------------------------------------------------------------------------
class ChannelStatus(BaseModel):
    channel: str
    enabled: bool
    breaker: str
    last_success_at: str | None
    last_error_at: str | None
    last_error: str | None
    outbox_depth: int
    oldest_pending_at: str | None
    dead_letters: int


class UnackedOldest(BaseModel):
    ota_booking_id: str
    revision: str
    received_at: str
    deadline_at: str = Field(description="when the OTA's fallback lapses (Booking.com: 30 min, then e-mail)")
    seconds_left: int


class Unacked(BaseModel):
    count: int
    oldest: UnackedOldest


class StatusOut(BaseModel):
    channels: list[ChannelStatus]
    inbox_failed: int
    inbox_stuck: int
    conflicts_open: dict[str, int]
    unacknowledged: dict[str, Unacked] = Field(default_factory=dict, description="per channel, bookings not yet "
                                                                                 "acknowledged to the OTA (issue 12)")


# ---- sync log ---------------------------------------------------------------------------
class SyncLogQuery(_In):
    channel: str | None = Field(None, pattern=CHANNEL, description="only this OTA")
    property: str | None = Field(None, pattern=CODE, description="only this hotel")
    since: str = Field("1h", max_length=40, description="how far back: 10m, 2h, 1d or an ISO time")
    failed: bool = Field(False, description="only calls that did not succeed")
    after_id: int = Field(0, ge=0, le=MAX_ID, description="only rows after this id (follow live), oldest first")
    before_id: int | None = Field(None, ge=1, le=MAX_ID, description="page back: the newest rows before this id")
    limit: int = Field(200, ge=1, le=1000)
    full: bool = Field(False, description="include the (redacted) request and response")


class SyncLogRow(BaseModel):
    id: int
    at: str
    run_id: str | None
    channel: str
    property: str | None
    direction: str
    operation: str
    items: int
    result: str
    duration_ms: float
    request_id: str | None
    attempt: int
    error: str | None
    request: str | None = None
    response: str | None = None


class SyncLogOut(BaseModel):
    rows: list[SyncLogRow]
    last_id: int = Field(description="pass as after_id to get what came since")
    first_id: int | None = Field(None, description="pass as before_id for the page before (None: no rows)")


# ---- journal ----------------------------------------------------------------------------
class JournalQuery(_In):
    property: str | None = Field(None, pattern=CODE, description="only this hotel")
    limit: int = Field(50, ge=1, le=500, description="the newest N changes")


class JournalRow(BaseModel):
    id: int
    at: str
    actor: str
    property: str | None
    entity: str
    key: Any = None
    action: str
    before: Any = None
    after: Any = None
    reason: str | None
    correlation_id: str


class JournalOut(BaseModel):
    rows: list[JournalRow]


# ---- conflicts --------------------------------------------------------------------------
class ConflictsQuery(_In):
    status: Literal["open", "resolved", "all"] = "open"
    kind: str | None = Field(None, pattern=r"^[a-z_]{1,32}$")
    before_id: int | None = Field(None, ge=1, le=MAX_ID, description="keyset paging: ids below this")
    limit: int = Field(50, ge=1, le=500)


class ConflictOut(BaseModel):
    id: int
    at: str | None
    kind: str
    property: str | None
    channel: str | None
    booking_id: int | None
    inbox_id: int | None
    summary: str
    detail: Any = None
    status: str
    resolved_at: str | None
    resolved_by: str | None
    resolution: str | None


class ConflictsOut(BaseModel):
    conflicts: list[ConflictOut]
    open_by_kind: dict[str, int]


class ConflictPath(_In):
    id: int = Field(ge=1, le=MAX_ID)


class ResolveIn(_In):
    note: str = Field(min_length=1, max_length=2000, description="what was done about it")

    _nc = field_validator("note")(classmethod(lambda cls, v: _no_control(v)))


# ---- bookings ---------------------------------------------------------------------------
class BookingsQuery(_In):
    ota_id: str | None = Field(None, min_length=1, max_length=128, description="the OTA's booking id")
    confirmation: str | None = Field(None, min_length=1, max_length=32, description="our confirmation number")
    arrival: date | None = Field(None, ge=FIRST_DATE, le=LAST_DATE, description="check-in date")
    status: Literal["confirmed", "cancelled", "pending"] | None = None
    channel: str | None = Field(None, pattern=CHANNEL)
    property: str | None = Field(None, pattern=CODE)
    before_id: int | None = Field(None, ge=1, le=MAX_ID, description="keyset paging: bookings older than this id")
    offset: int = Field(0, ge=0, le=100_000)
    limit: int = Field(50, ge=1, le=500)

    _nc = field_validator("ota_id", "confirmation")(classmethod(lambda cls, v: _no_control(v)))


class Guest(BaseModel):
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    id_number: str | None = None


class BookingRow(BaseModel):
    id: int
    channel: str
    ota_booking_id: str
    confirmation: str | None
    property: str | None
    hotel_code: str
    status: str
    checkin: str | None
    checkout: str | None
    rooms: int
    amount_minor: int | None
    currency: str | None
    booked_at: str | None
    received_at: str | None
    overbooked: bool
    unmapped: bool
    guest: Guest


class BookingsOut(BaseModel):
    bookings: list[BookingRow]
    next_before_id: int | None = Field(description="pass as before_id for the next page (None: no more)")


class BookingPath(_In):
    id: int = Field(ge=1, le=MAX_ID)


class BookingNight(BaseModel):
    night: str
    room_code: str
    rate_code: str | None
    rooms: int
    price_minor: int | None
    counted: bool


class BookingRevision(BaseModel):
    revision: str
    action: str
    outcome: str
    revised_at: str | None


class BookingOut(BaseModel):
    id: int
    channel: str
    ota_booking_id: str
    hotel_code: str
    property: str | None
    confirmation: str | None
    status: str
    revision: str | None
    checkin: str | None
    checkout: str | None
    rooms: int
    amount_minor: int | None
    currency: str | None
    overbooked: bool
    unmapped: bool
    guest: Guest
    special_requests: str | None
    nights: list[BookingNight]
    revisions: list[BookingRevision]
    conflicts: list[ConflictOut]


# ---- calendar ---------------------------------------------------------------------------
MAX_CALENDAR_NIGHTS = 62


class CalendarQuery(_In):
    property: str = Field(pattern=CODE, examples=["SHA-BUND"])
    from_: date = Field(alias="from", ge=FIRST_DATE, le=LAST_DATE)
    to: date = Field(ge=FIRST_DATE, le=LAST_DATE)
    channel: str | None = Field(None, pattern=CHANNEL, description="also what this OTA should hold, derived "
                                                                   "through the mappings")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CalendarNight(BaseModel):
    date: str
    physical: int
    out_of_order: int
    sold: int
    held: int
    free: int
    stop_sold: bool
    closed: bool


class CalendarRoomType(BaseModel):
    room_type: str
    nights: list[CalendarNight]


class CalendarRate(BaseModel):
    rate_plan: str
    date: str
    occupancy: int
    price_minor: int | None
    currency: str | None
    min_los: int | None
    max_los: int | None
    cta: bool | None
    ctd: bool | None
    stop_sell: bool | None


class ChannelCellOut(BaseModel):
    channel: str
    hotel: str
    room: str
    rate: str | None
    night: str
    room_type: str
    rate_plan: str | None
    rooms_to_sell: int | None
    prices: dict[str, int] = Field(description="occupancy -> price in minor units")
    currency: str | None
    min_los: int | None
    max_los: int | None
    cta: bool | None
    ctd: bool | None
    stop_sell: bool | None
    price_refused: str | None


class CalendarOut(BaseModel):
    property: str
    timezone: str
    currency: str
    from_: str = Field(alias="from")
    to: str
    room_types: list[CalendarRoomType]
    rates: list[CalendarRate]
    channel: str | None = None
    channel_cells: list[ChannelCellOut] | None = None

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


# ---- mappings ---------------------------------------------------------------------------
class MappingRecorded(BaseModel):
    fingerprint: str
    at: str | None
    actor: str
    files: list[str]


class MappingsOut(BaseModel):
    fingerprint: str | None = Field(description="the version in force in this daemon")
    recorded: MappingRecorded | None = Field(description="the last version put in force, and when")
    versions: int
    problems: list[str] = Field(description="why the last edit was refused (file:line:col), if it was")


# ---- ARI --------------------------------------------------------------------------------
class AriIn(_In):
    """What `channelmgr ari set` takes, as JSON."""

    property: str = Field(pattern=CODE, examples=["SHA-BUND"])
    room_type: str = Field(pattern=CODE, examples=["DK"])
    rate_plan: str | None = Field(None, pattern=CODE, examples=["BAR-DK"])
    from_: date = Field(alias="from", ge=FIRST_DATE, le=LAST_DATE, description="first night")
    to: date = Field(ge=FIRST_DATE, le=LAST_DATE, description="last night (included)")
    rooms: int | None = Field(None, ge=0, le=100_000)
    out_of_order: int | None = Field(None, ge=0, le=100_000)
    held: int | None = Field(None, ge=0, le=100_000)
    price: str | None = Field(None, pattern=r"^\d{1,12}(\.\d{1,3})?$",
                              description="price per night in the hotel's currency, e.g. \"688.00\"")
    min_los: int | None = Field(None, ge=1, le=999)
    max_los: int | None = Field(None, ge=1, le=999)
    cta: bool | None = None
    ctd: bool | None = None
    stop_sell: bool | None = None
    reason: str | None = Field(None, max_length=500)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    _nc = field_validator("reason")(classmethod(lambda cls, v: _no_control(v)))


class AriOut(BaseModel):
    cells_changed: int
    journal_rows: int
    outbox_rows: int
    correlation_id: str
    nights: int
    warnings: list[str]


# ---- the reservations desk (issue 12) -----------------------------------------------------
AMOUNT = r"^\d{1,12}(\.\d{1,3})?$"
SOURCE = r"^[a-z][a-z0-9_]{0,31}$"


class DirectBookingIn(_In):
    """A direct booking (the PMS, the website's booking engine): what `channelmgr bookings add` takes."""

    property: str = Field(pattern=CODE, examples=["SHA-BUND"])
    room_type: str = Field(pattern=CODE, examples=["DK"])
    rate_plan: str = Field(pattern=CODE, examples=["BAR-DK"])
    arrival: date = Field(ge=FIRST_DATE, le=LAST_DATE)
    departure: date = Field(ge=FIRST_DATE, le=LAST_DATE)
    rooms: int = Field(1, ge=1, le=100)
    guest_name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=40)
    email: str | None = Field(None, max_length=254)
    request: str | None = Field(None, max_length=500, description="special requests, in the guest's words")
    source: str = Field("website", pattern=SOURCE, description="website, phone, walk_in, agency, corporate")
    amount: str | None = Field(None, pattern=AMOUNT, description="the whole stay's price, e.g. \"1288.00\"; "
                                                                "default: the ledger's rates")
    override: bool = Field(False, description="take it with no free room (operator role; journaled)")

    _nc = field_validator("guest_name", "phone", "email", "request")(classmethod(lambda cls, v: _no_control(v)))


class BookingChangeIn(_In):
    """A change of a direct booking; fields left out stay. ``cancel: true`` with a reason cancels it."""

    room_type: str | None = Field(None, pattern=CODE)
    rate_plan: str | None = Field(None, pattern=CODE)
    arrival: date | None = Field(None, ge=FIRST_DATE, le=LAST_DATE)
    departure: date | None = Field(None, ge=FIRST_DATE, le=LAST_DATE)
    rooms: int | None = Field(None, ge=1, le=100)
    guest_name: str | None = Field(None, min_length=1, max_length=200)
    phone: str | None = Field(None, min_length=3, max_length=40)
    email: str | None = Field(None, max_length=254)
    request: str | None = Field(None, max_length=500, description="\"\" withdraws the request")
    amount: str | None = Field(None, pattern=AMOUNT)
    override: bool = False
    cancel: bool = False
    reason: str | None = Field(None, max_length=500, description="why it is cancelled (with cancel)")

    _nc = field_validator("guest_name", "phone", "email", "request", "reason")(
        classmethod(lambda cls, v: _no_control(v)))


class BookingRefPath(_In):
    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9#][A-Za-z0-9_.:\-]{0,127}$",
                     description="our confirmation number, the OTA's booking id or the booking's id")


class DirectBookingOut(BaseModel):
    id: int
    confirmation: str
    ota_booking_id: str
    status: str
    duplicate: bool
    overbooked: bool
    amount_minor: int | None
    currency: str | None
    outbox_rows: int


class RevealIn(_In):
    why: str = Field(min_length=3, max_length=500, description="why guest data is revealed (audited)")

    _nc = field_validator("why")(classmethod(lambda cls, v: _no_control(v)))


class ChannelTold(BaseModel):
    channel: str
    pushes: int
    sent: int
    waiting: int
    failed: int
    last_at: str | None


class RequestOut(BaseModel):
    id: int
    booking_id: int
    confirmation: str | None
    channel: str
    ota_booking_id: str
    property: str | None
    arrival: str | None
    kind: str
    text: str
    status: str
    received_at: str | None
    due_at: str
    seconds_left: int
    overdue: bool
    answered_at: str | None
    answered_by: str | None
    note: str | None
    done_at: str | None
    done_by: str | None


class DeskBookingOut(BookingOut):
    source: str
    direct: bool
    channels_told: list[ChannelTold]
    requests: list[RequestOut]


class RequestsQuery(_In):
    overdue: bool = False
    status: Literal["open", "answered", "done", "withdrawn", "all"] = "open"
    property: str | None = Field(None, pattern=CODE)


class RequestsOut(BaseModel):
    requests: list[RequestOut]


class RequestPath(_In):
    id: int = Field(ge=1, le=MAX_ID)


class AnswerIn(_In):
    note: str = Field(min_length=1, max_length=2000)

    _nc = field_validator("note")(classmethod(lambda cls, v: _no_control(v)))


class SettleIn(_In):
    """Settle an overbooking: exactly one of upgrade_to, relocate, cancel."""

    upgrade_to: str | None = Field(None, pattern=CODE, examples=["DK"])
    relocate: str | None = Field(None, min_length=1, max_length=200, description="a partner hotel's name")
    cancel: bool = False
    note: str | None = Field(None, max_length=2000)

    _nc = field_validator("relocate", "note")(classmethod(lambda cls, v: _no_control(v)))


class AuditRow(BaseModel):
    id: int
    at: str | None
    actor: str
    booking_id: int
    confirmation: str | None
    channel: str
    ota_booking_id: str
    why: str
    via: str


class AuditOut(BaseModel):
    rows: list[AuditRow]


# ---- reports (issue 14, channelmgr/reports) ----------------------------------------------
class ReportPath(_In):
    report: Literal["summary", "channels", "pace", "lead-time", "cancellations"]


class ReportQueryIn(_In):
    property: str = Field(pattern=CODE, examples=["SHA-BUND"])
    from_: date = Field(alias="from", ge=FIRST_DATE, le=LAST_DATE, description="first date (included)")
    to: date = Field(ge=FIRST_DATE, le=LAST_DATE, description="last date (included)")
    by: Literal["day", "week", "month"] | None = Field(None, description="week = ISO 8601 week, Monday first")
    group: Literal["channel", "room_type", "rate_plan"] = "channel"
    basis: Literal["stay", "booking"] = "stay"
    format: Literal["json", "csv", "xlsx"] = "json"

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ReportOut(BaseModel):
    """Money in minor units per currency (``money``), ``converted`` only where the mapping gives a rate."""

    report: str
    property: str
    timezone: str
    currency: str
    from_: str = Field(alias="from")
    to: str
    basis: str
    by: str | None
    group: str | None
    week: str | None = None
    rows: list[dict[str, Any]]
    totals: dict[str, Any] | None

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
