"""The contract every channel adapter fulfils, and the domain types it speaks.

An adapter turns these domain objects into one OTA's messages and back (codec), carries
them (client), receives what the OTA pushes to us (inbound), and knows nothing of the
ledger's database. The sync engine knows nothing of wire formats. Codes inside these types
are the OTA's own (hotel id, room and rate codes as mapped); the engine translates.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Awaitable, Callable, ClassVar, Literal, Protocol, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from aiohttp import web

    from adapters.base.sandbox import Sandbox, SandboxCatalog

# ---- what an adapter declares --------------------------------------------------------


@dataclass(frozen=True)
class SaleWindow:
    """The nights an OTA accepts, counted in the calendar the OTA counts days in.

    The OTA's *today* is its local date in ``zone`` (None: the property's own zone). It
    accepts nights from ``today - past_days`` to ``today + ahead_days``. Where the OTA sells
    late-night rooms (凌晨房: "tonight" is still the previous date until 06:00), set
    ``late_night_until``: before that local time the window also starts at yesterday.
    ``known`` says what of this is published by the OTA and what is modelled.

    The engine clips every range to this window before it batches; a night outside is
    settled ``skipped`` with :meth:`describe` as the reason and never sent. Each sandbox
    enforces the same window with its own code, so a mismatch fails a test.
    """

    ahead_days: int = 365
    past_days: int = 0
    zone: str | None = None
    late_night_until: time | None = None
    known: str = ""

    def today(self, now: datetime, property_zone: str) -> date:
        from zoneinfo import ZoneInfo

        return now.astimezone(ZoneInfo(self.zone or property_zone)).date()

    def bounds(self, now: datetime, property_zone: str) -> tuple[date, date]:
        """(first, last) night the OTA accepts at ``now`` (an aware datetime), inclusive."""
        from zoneinfo import ZoneInfo

        if now.tzinfo is None:
            raise ValueError("a naive datetime has no meaning here; give it a time zone")
        lt = now.astimezone(ZoneInfo(self.zone or property_zone))
        past = self.past_days
        if self.late_night_until is not None and lt.time() < self.late_night_until:
            past = max(past, 1)
        return lt.date() - timedelta(days=past), lt.date() + timedelta(days=self.ahead_days)

    def describe(self) -> str:
        first = "today" if not self.past_days else ("yesterday" if self.past_days == 1 else f"today-{self.past_days}")
        text = f"{first}..today+{self.ahead_days}"
        if self.late_night_until is not None and self.past_days < 1:
            text += f" (yesterday too before {self.late_night_until.strftime('%H:%M')})"
        where = self.zone or "the hotel's zone"
        return f"{text} in {where}"


@dataclass(frozen=True)
class Capabilities:
    """Limits the engine respects when it batches and schedules pushes to this OTA."""

    max_hotels_per_message: int = 1
    max_months_per_message: int | None = None  # calendar months one message may touch
    max_days_per_message: int | None = None  # span from first to last date in a message
    max_items_per_message: int = 100  # AriUpdate items per push_ari call
    window: SaleWindow = SaleWindow()  # the nights the OTA accepts (see SaleWindow)
    supports_ranges: bool = True  # an item may carry a date range, not only a single date
    inventory_level: Literal["room", "rate"] = "room"  # where rooms_to_sell is held
    restrictions: frozenset[str] = frozenset({"min_los", "max_los", "cta", "ctd", "stop_sell"})
    occupancy_pricing: bool = True  # prices per number of guests
    rate_limit_per_second: float = 5.0  # budget per (channel, property)
    rate_limit_burst: int = 10
    booking_delivery: Literal["pull", "push"] = "pull"
    readback: bool = False  # can read back what the OTA holds
    readback_max_days: int = 31
    currencies: frozenset[str] | None = None  # None = any
    # the OTA's fallback for a booking we have not acknowledged (issue 12): after this many
    # minutes it stops waiting for us (Booking.com e-mails the property); None = no fallback
    ack_deadline_minutes: float | None = None
    ack_fallback: str = ""  # what happens then, in words, and whether it is documented or modelled

    @property
    def horizon_days(self) -> int:
        """How far ahead of the OTA's today it accepts nights."""
        return self.window.ahead_days

    @property
    def past_days(self) -> int:
        """How many days before the OTA's today it accepts at any hour."""
        return self.window.past_days


# ---- ARI going out -------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    occupancy: int
    amount_minor: int


@dataclass(frozen=True)
class AriUpdate:
    """What one OTA should hold for one room (and rate) over an inclusive date range.

    ``rate is None`` means a room-level item (rooms to sell for the room type). Fields left
    None are not sent. With ``inventory_level == "rate"`` the engine puts ``rooms_to_sell``
    on the rate-level items instead.
    """

    hotel: str
    room: str
    rate: str | None
    start: date
    end: date
    rooms_to_sell: int | None = None
    prices: tuple[Price, ...] = ()
    currency: str | None = None
    min_los: int | None = None
    max_los: int | None = None
    cta: bool | None = None
    ctd: bool | None = None
    stop_sell: bool | None = None
    key: str = ""  # the engine's id for this item; results refer to it

    @property
    def room_level(self) -> bool:
        return self.rate is None


@dataclass(frozen=True)
class ItemResult:
    key: str
    status: Literal["applied", "rejected", "skipped"]
    code: str | None = None  # the OTA's code (e.g. ROOM_ID_INVALID, 322, isv.invalid-parameter)
    text: str | None = None
    retriable: bool = False  # a rejection that may succeed later (e.g. processing)


@dataclass(frozen=True)
class PushOutcome:
    results: tuple[ItemResult, ...]
    request_ids: tuple[str, ...] = ()


# ---- bookings coming in --------------------------------------------------------------


@dataclass(frozen=True)
class Guest:
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    id_number: str | None = None


@dataclass(frozen=True)
class NightPrice:
    night: date
    amount_minor: int


@dataclass(frozen=True)
class Stay:
    """Rooms of one room type and rate over checkin .. checkout (exclusive)."""

    room: str
    rate: str | None
    checkin: date
    checkout: date
    rooms: int = 1
    guests: int | None = None
    nightly: tuple[NightPrice, ...] = ()


@dataclass(frozen=True)
class BookingRevision:
    """One revision of one OTA booking, the same for every channel.

    ``revision`` identifies this revision (idempotency key with channel and
    ota_booking_id); ``revised_at`` orders revisions that arrive out of order.
    ``tonight`` is set when the OTA marks a late-night (凌晨) booking for the current night.
    """

    channel: str
    hotel: str
    ota_booking_id: str
    revision: str
    action: Literal["new", "modify", "cancel"]
    stays: tuple[Stay, ...] = ()
    amount_minor: int | None = None
    currency: str | None = None
    guest: Guest = Guest()
    special_requests: str | None = None
    booked_at: datetime | None = None
    revised_at: datetime | None = None
    tonight: bool = False
    raw: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def content_fingerprint(rev: BookingRevision) -> str:
    """A digest of what a booking revision says about the booking, nothing of the envelope.

    EchoToken, TimeStamp, SOAP headers, signatures, Date, the OTA's own stamps and the hotel
    code are not in a :class:`BookingRevision`'s content and not in this digest, so a message
    sent again with new envelope fields has the same fingerprint; new and modify are one
    kind here (the same content is the same booking), a cancel another. Every codec uses it
    where the OTA gives no revision of its own, and the engine compares it with what it
    applied last (a resend of applied content is answered as already processed).
    """
    import hashlib
    import json

    def when(dt: datetime | None) -> str | None:
        if dt is None:
            return None
        from datetime import timezone

        return (dt.astimezone(timezone.utc) if dt.tzinfo else dt).isoformat()

    content = {
        "id": rev.ota_booking_id,
        "kind": "cancel" if rev.action == "cancel" else "booking",
        "stays": [[s.room, s.rate, s.checkin.isoformat(), s.checkout.isoformat(), s.rooms, s.guests,
                   [[n.night.isoformat(), n.amount_minor] for n in s.nightly]] for s in rev.stays],
        "amount": rev.amount_minor, "currency": rev.currency,
        "guest": [rev.guest.name, rev.guest.phone, rev.guest.email, rev.guest.id_number],
        "requests": rev.special_requests, "booked_at": when(rev.booked_at), "tonight": rev.tonight,
    }
    text = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Confirmation:
    """What the ledger made of a booking revision; the adapter answers the OTA with it."""

    confirmation: str  # our confirmation number
    status: Literal["confirmed", "cancelled"]
    duplicate: bool = False  # this exact revision was processed before
    overbooked: bool = False


@dataclass
class Delivery:
    """A booking message fetched from a pull channel, not yet acknowledged."""

    raw: bytes
    kind: str  # reservation | modification | cancellation
    revision: BookingRevision | None = None
    error: str | None = None  # why it could not be read (kept in the inbox)
    ack_ref: Any = None  # whatever the adapter needs to acknowledge it


class BookingReceiver(Protocol):
    """What a push channel's inbound handler calls; the engine implements it."""

    async def store(self, channel: str, raw: bytes, kind: str) -> int:
        """Keep the raw message durably (inbox) before anything else; returns its id."""

    async def reject(self, inbox_id: int, reason: str) -> None:
        """The message could not be read: keep it with the reason, raise it to operators."""

    async def apply(self, inbox_id: int, revision: BookingRevision) -> Confirmation:
        """Commit the revision to the ledger (idempotent); only then answer the OTA."""

    async def lookup(self, channel: str, ota_booking_id: str) -> Confirmation | None:
        """Status of a booking we hold (for the OTA's status queries)."""

    async def hotel_of(self, channel: str, ota_booking_id: str) -> str | None:
        """The OTA hotel code of a booking we hold (None if we hold none by that id): a
        message that names the booking but not its hotel is still applied to it."""

    async def rooms_to_sell(self, channel: str, hotel: str, room: str, rate: str | None,
                            checkin: date, checkout: date) -> int | None:
        """How many rooms this channel may sell for the whole stay now (None if unknown)."""


# ---- observing every call ------------------------------------------------------------


@dataclass
class Exchange:
    """One call to or from an OTA, for the sync log. Request/response already redacted."""

    channel: str
    operation: str
    direction: Literal["out", "in"] = "out"
    hotel: str | None = None
    items: int = 0
    result: str = "ok"  # ok | partial | retry | rate_limited | failed | rejected
    duration_ms: float = 0.0
    request_id: str | None = None
    status: int | None = None
    error: str | None = None
    request: str | None = None
    response: str | None = None


ExchangeObserver = Callable[[Exchange], Awaitable[None] | None]


@dataclass
class ChannelSettings:
    """How to reach one OTA. ``credentials`` hold secrets read from env/files, never logged."""

    name: str
    endpoint: str
    credentials: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    timeout_seconds: float = 15.0

    def __repr__(self) -> str:  # never print secrets
        return f"ChannelSettings(name={self.name!r}, endpoint={self.endpoint!r}, credentials=<{len(self.credentials)} hidden>)"


class ChannelAdapter(abc.ABC):
    """Base class of the four adapters; subclasses override the hooks they need.

    Registered through the ``channelmgr.adapters`` entry-point group.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    sandbox_class: ClassVar[str]  # "adapters.<ota>.sandbox:<Class>"

    def __init__(self, settings: ChannelSettings, observer: ExchangeObserver | None = None):
        self.settings = settings
        self.observer = observer

    # -- out ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def push_ari(self, updates: Sequence[AriUpdate], *, full: bool = False) -> PushOutcome:
        """Send one batch (already within capabilities); a result for every item.

        ``full`` is set by the nightly full sync: the items are the complete truth for
        their dates (an OTA with separate delta and overwrite calls uses the overwrite).

        Raises RetriableError / RateLimitedError / FatalError when the whole call failed.
        """

    async def read_back(self, hotel: str, start: date, end: date) -> list[AriUpdate]:
        """What the OTA holds now, as single-date items; NotImplementedError if it cannot."""
        raise NotImplementedError(f"{self.name} has no read-back")

    # -- in: pull channels -------------------------------------------------------------
    async def pull_bookings(self) -> list[Delivery]:
        """New booking revisions waiting at the OTA (pull channels)."""
        return []

    async def acknowledge(self, accepted: Sequence[tuple[Delivery, Confirmation]]) -> None:
        """Tell the OTA these were committed (only after commit)."""

    # -- in: push channels -------------------------------------------------------------
    def inbound_routes(self, receiver: BookingReceiver) -> list["web.RouteDef"]:
        """aiohttp routes the daemon mounts under /inbound/<name>/ for OTA pushes."""
        return []

    # -- sandbox -----------------------------------------------------------------------
    @classmethod
    def make_sandbox(cls, catalog: "SandboxCatalog", credentials: dict[str, str],
                     deliver_to: str | None = None) -> "Sandbox":
        import importlib

        module, _, attr = cls.sandbox_class.partition(":")
        sandbox_cls = getattr(importlib.import_module(module), attr)
        return sandbox_cls(catalog=catalog, credentials=credentials, deliver_to=deliver_to)

    @classmethod
    def sandbox_credentials(cls) -> dict[str, str]:
        """Fresh random credentials for a loopback sandbox and the adapter talking to it."""
        return {}

    async def close(self) -> None:
        """Release connections."""


# ---- helpers every adapter's push uses ------------------------------------------------

Rejection = tuple[str | None, str | None, bool]  # (the OTA's code, its text, retriable)


def item_problem(u: AriUpdate, *, max_occupancy: int = 999) -> tuple[str, str] | None:
    """Why an item cannot be written in any message (code, text): refused before sending."""
    from channelmgr.money import EXPONENT

    if u.end < u.start:
        return "CHANNELMGR_BAD_RANGE", "the range ends before it starts"
    if u.rooms_to_sell is not None and u.rooms_to_sell < 0:
        return "CHANNELMGR_NEGATIVE_ROOMS", "rooms to sell cannot be negative"
    if u.prices:
        if u.rate is None:
            return "CHANNELMGR_PRICE_WITHOUT_RATE", "prices need a rate plan"
        if not u.currency:
            return "CHANNELMGR_NO_CURRENCY", "prices need a currency"
        if u.currency.upper() not in EXPONENT:
            return "CHANNELMGR_UNKNOWN_CURRENCY", f"{u.currency} has no known number of decimals"
        for p in u.prices:
            if isinstance(p.amount_minor, bool) or not isinstance(p.amount_minor, int) or p.amount_minor < 0:
                return "CHANNELMGR_BAD_AMOUNT", f"price for {p.occupancy} guest(s) is not a whole, non-negative amount"
            if not 1 <= p.occupancy <= max_occupancy:
                return "CHANNELMGR_BAD_OCCUPANCY", f"occupancy {p.occupancy} is outside 1..{max_occupancy}"
    return None


def outcome(updates: Sequence[AriUpdate], rejected: dict[int, Rejection], sent: set[int], *,
            unsent: str = "nothing to send for this item", request_ids: Sequence[str] = ()) -> PushOutcome:
    """A result for every item, by position: rejected with the OTA's reason, applied when it
    went out in an accepted message, else skipped with ``unsent`` as the reason."""
    results = []
    for i, u in enumerate(updates):
        if i in rejected:
            code, text, retriable = rejected[i]
            results.append(ItemResult(u.key, "rejected", code, text, retriable))
        elif i in sent:
            results.append(ItemResult(u.key, "applied"))
        else:
            results.append(ItemResult(u.key, "skipped", text=unsent))
    return PushOutcome(tuple(results), tuple(request_ids))
