"""Booking.com's wire format: every message we build and every answer we read.

Pure functions, no I/O, so that a partner holding Booking.com's real specification changes
this one file. What the public note (../shared/protocols/booking.md) states is followed as
stated. Where it is silent the guess is made here, once, in :class:`Options`, and can be
overridden through ``ChannelSettings.options`` (the adapter's docstring lists them):

- the token endpoint's path and shape (not public): ``POST /token-based-authentication/exchange``
  with JSON ``{"client_id", "client_secret"}`` answering ``{"jwt", "expires_in"}``;
- how an amount is written: OpenTravel's own rule, the integer in minor units with
  ``DecimalPlaces`` (``AmountAfterTax="45600" DecimalPlaces="2"`` is 456.00), or, with
  ``amount_format: decimal``, the decimal text (``"456.00"``). Reading accepts both: a
  decimal point means the text is the amount, no decimal point with ``DecimalPlaces``
  means minor units, neither means major units;
- how a warning names the item it refused: its ``RecordID`` holds the ``LocatorID`` of the
  message (``RPH`` and a "LocatorID n" in the text are read too);
- the reservation statuses (``Commit`` / ``Modify`` / ``Cancel`` and the PMS words);
- a nightly rate's ``ExpireDate`` is the day after its last night unless
  ``ExpireDateExclusiveIndicator="false"`` says otherwise;
- ``ResID_Source`` in acknowledgements, the message ``Version``, naive timestamps (UTC);
- the whole B.XML read-back (``/hotels/xml/roomrateavailability``), which is
  Booking-proprietary: the request ``<request><hotel_id/><date_from/><date_to/></request>``
  and the answer ``<roomrateavailability><room id><date value><roomstosell/><rate id>
  <price persons>..`` are modelled, not documented.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from lxml import etree

from adapters.base.contract import (
    AriUpdate,
    BookingRevision,
    Delivery,
    Guest,
    NightPrice,
    Price,
    Stay,
    content_fingerprint,
)
from adapters.base.contract import item_problem as base_item_problem
from adapters.base.errors import ParseError
from adapters.base.xml import OTA_NS, local, parse, restriction_messages, tostring, xs_datetime
from adapters.base.xml import children as _children
from adapters.base.xml import first as _first
from adapters.base.xml import text as _text
from adapters.base.xml import xs_date as _date
from channelmgr.money import EXPONENT

CHANNEL = "booking"
ACCEPT_VERSION = "1.1"  # header that selects the current message versions (documented)
CONTENT_TYPE = "text/xml; charset=utf-8"
O = f"{{{OTA_NS}}}"


# ---- what the note leaves open, in one place ------------------------------------------


@dataclass(frozen=True)
class Options:
    """Paths, limits and guesses; each field can be set in ``ChannelSettings.options``."""

    avail_path: str = "/hotels/ota/OTA_HotelAvailNotif"
    rates_path: str = "/hotels/ota/OTA_HotelRateAmountNotif"
    reservations_path: str = "/hotels/ota/OTA_HotelResNotif"
    modifications_path: str = "/hotels/ota/OTA_HotelResModifyNotif"
    readback_path: str = "/hotels/xml/roomrateavailability"
    auth: Literal["basic", "token"] = "basic"
    token_path: str = "/token-based-authentication/exchange"  # GUESS: not public; may be a full URL
    token_lifetime_seconds: int = 3600  # documented: a JWT lives one hour
    tokens_per_hour: int = 30  # documented limit
    amount_format: Literal["minor", "decimal"] = "minor"  # GUESS, see the module docstring
    message_version: str = "1.0"  # GUESS: the OTA Version attribute (Accept-Version picks the real one)
    ack_source: str = "channelmgr"  # GUESS: ResID_Source of our acknowledgements
    naive_timezone: str = "UTC"  # GUESS: zone of timestamps that carry no offset
    hotel_ids: tuple[str, ...] = ()  # optional ?hotel_ids= filter when pulling reservations
    ack_attempts: int = 3  # a 5xx on acknowledge: retry (documented), this many times in all

    @classmethod
    def from_settings(cls, options: dict[str, Any] | None) -> Options:
        options = dict(options or {})
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in options.items() if k in known}
        if isinstance(values.get("hotel_ids"), str):
            values["hotel_ids"] = tuple(h.strip() for h in values["hotel_ids"].split(",") if h.strip())
        elif "hotel_ids" in values:
            values["hotel_ids"] = tuple(str(h) for h in values["hotel_ids"])
        if values.get("auth", "basic") not in ("basic", "token"):
            raise ValueError(f"booking: options.auth must be 'basic' or 'token', not {values['auth']!r}")
        if values.get("amount_format", "minor") not in ("minor", "decimal"):
            raise ValueError("booking: options.amount_format must be 'minor' or 'decimal'")
        for k in ("token_lifetime_seconds", "tokens_per_hour", "ack_attempts"):
            if k in values:
                values[k] = int(values[k])
        return cls(**values)


# ---- money ------------------------------------------------------------------------------


def decimal_places(currency: str, given: str | int | None = None) -> int:
    """ISO 4217 minor-unit exponent; an unknown currency needs DecimalPlaces to be read."""
    exp = EXPONENT.get((currency or "").upper())
    if exp is not None:
        return exp
    if given is not None and str(given).strip().isdigit():
        return int(str(given).strip())
    raise ParseError(f"currency {currency!r} is unknown and the message gives no DecimalPlaces")


def format_amount(minor: int, currency: str, fmt: str = "minor") -> tuple[str, int]:
    """Integer minor units -> (AmountAfterTax text, DecimalPlaces), exactly, never via float."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"amounts are integers in minor units, not {type(minor).__name__}")
    exp = decimal_places(currency)
    if fmt == "decimal":
        q = Decimal(minor).scaleb(-exp)
        return (f"{q:.{exp}f}" if exp else str(minor)), exp
    return str(minor), exp


_DECIMAL = re.compile(r"[+-]?\d{1,18}(\.\d{1,9})?")  # within Decimal's 28 digits


def parse_amount(text: str | None, currency: str | None, places: str | None = None) -> int | None:
    """An OTA amount as integer minor units of ``currency``; refuses what would need rounding."""
    if text is None or not text.strip():
        return None
    raw = text.strip()
    if not _DECIMAL.fullmatch(raw):  # xs:decimal: no exponents, no NaN, nothing to overflow
        raise ParseError(f"{raw!r} is not an amount")
    value = Decimal(raw)
    exp = decimal_places(currency or "", places)
    if "." not in raw and places not in (None, ""):
        value = value.scaleb(-int(places))  # OpenTravel: minor units with DecimalPlaces
    scaled = value.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise ParseError(f"amount {raw} has more decimals than {currency} has minor units")
    return int(scaled)


# ---- building ARI messages ---------------------------------------------------------------


@dataclass
class Built:
    """One message ready to send, and which item each LocatorID belongs to."""

    body: bytes = b""
    locators: dict[str, int] = field(default_factory=dict)  # LocatorID -> index of the AriUpdate

    @property
    def empty(self) -> bool:
        return not self.locators


def _stamp(now: datetime | None) -> str:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _root(name: str, opts: Options, now: datetime | None) -> etree._Element:
    return etree.Element(O + name, nsmap={None: OTA_NS},
                         attrib={"TimeStamp": _stamp(now), "Version": opts.message_version})


def _control(parent: etree._Element, u: AriUpdate, *, rate: bool) -> None:
    attrs = {"Start": u.start.isoformat(), "End": u.end.isoformat(), "InvTypeCode": u.room}
    if rate and u.rate is not None:
        attrs["RatePlanCode"] = u.rate
    etree.SubElement(parent, O + "StatusApplicationControl", attrib=attrs)


def avail_notif(hotel: str, updates: Sequence[AriUpdate], opts: Options = Options(),
                now: datetime | None = None, skip: Iterable[int] = ()) -> Built:
    """OTA_HotelAvailNotifRQ: rooms to sell on room-level messages, restrictions per rate.

    The 2015B schema allows one ``RestrictionStatus`` per message, so stop-sell, closed to
    arrival and closed to departure each get a message of their own (same dates and codes).
    """
    skip = set(skip)
    root = _root("OTA_HotelAvailNotifRQ", opts, now)
    msgs = etree.SubElement(root, O + "AvailStatusMessages", HotelCode=hotel)
    built = Built()

    def message(i: int, **attrs: str) -> etree._Element:
        loc = str(len(built.locators) + 1)
        built.locators[loc] = i
        return etree.SubElement(msgs, O + "AvailStatusMessage", attrib={**attrs, "LocatorID": loc})

    for i, u in enumerate(updates):
        if i in skip:
            continue
        if u.rooms_to_sell is not None:
            if u.rooms_to_sell < 0:
                raise ValueError(f"item {u.key}: rooms to sell cannot be negative")
            m = message(i, BookingLimit=str(u.rooms_to_sell))
            _control(m, u, rate=False)  # room level: InvTypeCode only
        def new_message(i: int = i, u: AriUpdate = u) -> etree._Element:
            m = message(i)
            _control(m, u, rate=True)
            return m

        restriction_messages(u, new_message)
    built.body = tostring(root) if built.locators else b""
    return built


def rate_amount_notif(hotel: str, updates: Sequence[AriUpdate], opts: Options = Options(),
                      now: datetime | None = None, skip: Iterable[int] = ()) -> Built:
    """OTA_HotelRateAmountNotifRQ: one BaseByGuestAmt per occupancy, amounts exact."""
    skip = set(skip)
    root = _root("OTA_HotelRateAmountNotifRQ", opts, now)
    msgs = etree.SubElement(root, O + "RateAmountMessages", HotelCode=hotel)
    built = Built()
    for i, u in enumerate(updates):
        if i in skip or not u.prices or u.rate is None:
            continue
        loc = str(len(built.locators) + 1)
        built.locators[loc] = i
        m = etree.SubElement(msgs, O + "RateAmountMessage", LocatorID=loc)
        _control(m, u, rate=True)
        amts = etree.SubElement(etree.SubElement(etree.SubElement(m, O + "Rates"), O + "Rate"),
                                O + "BaseByGuestAmts")
        for p in sorted(u.prices, key=lambda p: p.occupancy):
            amount, places = format_amount(p.amount_minor, u.currency or "", opts.amount_format)
            etree.SubElement(amts, O + "BaseByGuestAmt", AmountAfterTax=amount, CurrencyCode=u.currency or "",
                             DecimalPlaces=str(places), NumberOfGuests=str(p.occupancy))
    built.body = tostring(root) if built.locators else b""
    return built


def item_problem(u: AriUpdate) -> tuple[str, str] | None:
    """Why an item cannot be written at all (code, text), before anything is sent."""
    return base_item_problem(u, max_occupancy=999)


# ---- reading Booking.com's answers -------------------------------------------------------

_RUID = re.compile(rb"<!--\s*RUID:\s*\[?\s*([^\]]*?)\s*\]?\s*-->")
_LOCATOR_IN_TEXT = re.compile(r"LocatorID\D{0,3}(\d+)", re.IGNORECASE)


def ruid(body: bytes) -> str | None:
    """The request id Booking.com puts in a closing comment of every answer."""
    m = _RUID.search(body or b"")
    return m.group(1).decode("utf-8", "replace") if m else None


@dataclass(frozen=True)
class Issue:
    """One Warning or Error: its code, its words and the message it names (if any)."""

    code: str | None
    text: str
    record: str | None = None


@dataclass(frozen=True)
class Answer:
    root: str
    success: bool
    warnings: tuple[Issue, ...] = ()
    errors: tuple[Issue, ...] = ()


def _issue(el: etree._Element) -> Issue:
    text = (el.text or "").strip() or el.get("ShortText") or el.get("Code") or "no text given"
    record = el.get("RecordID") or el.get("RPH")
    if record is None:
        m = _LOCATOR_IN_TEXT.search(" ".join(filter(None, [el.text, el.get("ShortText"), el.get("Tag")])))
        record = m.group(1) if m else None
    return Issue(el.get("Code") or None, text, record)


def read_answer(body: bytes) -> Answer:
    """Success / Warnings / Errors of any Booking.com answer (namespaced or bare)."""
    root = parse(body)
    success = warnings = errors = None
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        name = local(el)
        if name == "Success" and success is None:
            success = el
        elif name == "Warnings" and warnings is None:
            warnings = el
        elif name == "Errors" and errors is None:
            errors = el
    if local(root) == "Errors":
        errors = root
    return Answer(
        root=local(root), success=success is not None,
        warnings=tuple(_issue(w) for w in (warnings if warnings is not None else ())
                       if isinstance(w.tag, str) and local(w) == "Warning"),
        errors=tuple(_issue(e) for e in (errors if errors is not None else ())
                     if isinstance(e.tag, str) and local(e) == "Error"),
    )


# ---- reservations in ---------------------------------------------------------------------

NEW_STATUSES = {"commit", "book", "reserved", "requested", "initiate", "confirmed", "new", "pending",
                "waitlisted", "hold"}
MODIFY_STATUSES = {"modify", "modified", "commitoverrideedits"}
CANCEL_STATUSES = {"cancel", "cancelled", "canceled", "request denied", "cancellation"}
KIND = {"new": "reservation", "modify": "modification", "cancel": "cancellation"}
RESERVATION_ELEMENTS = ("HotelReservation", "HotelResModify")


@dataclass(frozen=True)
class AckRef:
    """What acknowledging one reservation needs: its feed, hotel and Booking.com id."""

    feed: Literal["new", "modify"]
    hotel: str
    ota_booking_id: str
    source: str | None = None


def _datetime(value: str | None, opts: Options) -> datetime | None:
    return xs_datetime(value, opts.naive_timezone)


def _duration_nights(value: str | None) -> int | None:
    m = re.fullmatch(r"P(\d+)[ND]", (value or "").strip())
    return int(m.group(1)) if m else None


def _action(res: etree._Element, feed: str, root_status: str | None) -> str:
    status = (res.get("ResStatus") or root_status or "").strip()
    low = status.lower()
    if low in CANCEL_STATUSES or any(u.get("Type") == "15" for u in _children(res, "UniqueID")):
        return "cancel"
    if low in MODIFY_STATUSES:
        return "modify"
    if low in NEW_STATUSES or not status:
        return "modify" if feed == "modify" else "new"
    raise ParseError(f"reservation status {status!r} is not one channelmgr knows (new, modify or cancel)")


def _booking_id(res: etree._Element) -> tuple[str, str | None]:
    ids = _children(res, "ResGlobalInfo", "HotelReservationIDs", "HotelReservationID")
    for i in ids:
        if i.get("ResID_Type") == "14" and i.get("ResID_Value"):
            return i.get("ResID_Value").strip(), i.get("ResID_Source")
    for u in _children(res, "UniqueID"):
        if u.get("Type") in ("14", "15") and u.get("ID"):
            return u.get("ID").strip(), None
    for i in ids:
        if not i.get("ResID_Type") and i.get("ResID_Value"):
            return i.get("ResID_Value").strip(), i.get("ResID_Source")
    raise ParseError("the reservation carries no id (HotelReservationID ResID_Type=14 or UniqueID)")


def _hotel(res: etree._Element) -> str:
    for path in (("ResGlobalInfo", "BasicPropertyInfo"), ("RoomStays", "RoomStay", "BasicPropertyInfo")):
        for el in _children(res, *path):
            if el.get("HotelCode"):
                return el.get("HotelCode").strip()
    return ""


def _total(el: etree._Element | None) -> tuple[int | None, str | None]:
    if el is None:
        return None, None
    currency = el.get("CurrencyCode")
    amount = el.get("AmountAfterTax") or el.get("AmountBeforeTax")
    return parse_amount(amount, currency, el.get("DecimalPlaces")), currency


def _stay(rs: etree._Element, default_span: tuple[date, date] | None) -> tuple[Stay, int | None, str | None]:
    room_rate = _first(rs, "RoomRates", "RoomRate")
    rtype = _first(rs, "RoomTypes", "RoomType")
    room = (rtype.get("RoomTypeCode") if rtype is not None else None) or \
           (room_rate.get("RoomTypeCode") if room_rate is not None else None)
    if not room:
        raise ParseError("a room stay names no room (RoomType@RoomTypeCode)")
    rplan = _first(rs, "RatePlans", "RatePlan")
    rate = (rplan.get("RatePlanCode") if rplan is not None else None) or \
           (room_rate.get("RatePlanCode") if room_rate is not None else None)
    span = _first(rs, "TimeSpan")
    if span is not None and span.get("Start") and (span.get("End") or span.get("Duration")):
        checkin = _date(span.get("Start"), "TimeSpan@Start")
        if span.get("End"):
            checkout = _date(span.get("End"), "TimeSpan@End")
        else:
            nights = _duration_nights(span.get("Duration"))
            if nights is None:
                raise ParseError(f"TimeSpan@Duration {span.get('Duration')!r} is not a number of nights")
            checkout = checkin + timedelta(days=nights)
    elif default_span is not None:
        checkin, checkout = default_span
    else:
        raise ParseError(f"room stay {room} has no dates (TimeSpan)")
    if checkout <= checkin:
        raise ParseError(f"room stay {room} ends ({checkout}) before it starts ({checkin})")
    units = (room_rate.get("NumberOfUnits") if room_rate is not None else None) or \
            (rtype.get("NumberOfUnits") if rtype is not None else None) or "1"
    try:
        rooms = int(units)
    except ValueError:
        raise ParseError(f"NumberOfUnits {units!r} is not a number") from None
    counts = [int(g.get("Count", "0") or 0) for g in _children(rs, "GuestCounts", "GuestCount")]
    nightly: dict[date, int] = {}
    currency = None
    for rr in _children(rs, "RoomRates", "RoomRate"):
        for r in _children(rr, "Rates", "Rate"):
            base = _first(r, "Base")
            amount, cur = _total(base)
            if amount is None:
                continue
            currency = currency or cur
            start = _date(r.get("EffectiveDate") or checkin.isoformat(), "Rate@EffectiveDate")
            end = _date(r.get("ExpireDate"), "Rate@ExpireDate") if r.get("ExpireDate") else start + timedelta(days=1)
            if r.get("ExpireDateExclusiveIndicator") == "false" or end <= start:
                end = end + timedelta(days=1)  # ExpireDate is the last night itself
            day = start
            while day < end:
                if checkin <= day < checkout:
                    nightly[day] = nightly.get(day, 0) + amount
                day += timedelta(days=1)
    stay_total, stay_currency = _total(_first(rs, "Total"))
    stay = Stay(room=room.strip(), rate=rate.strip() if rate else None, checkin=checkin, checkout=checkout,
                rooms=rooms, guests=sum(counts) if counts else None,
                nightly=tuple(NightPrice(d, a) for d, a in sorted(nightly.items())))
    if stay_total is None and nightly:
        stay_total = sum(nightly.values())
    return stay, stay_total, stay_currency or currency


def _guest(res: etree._Element) -> Guest:
    customers = _children(res, "ResGuests", "ResGuest", "Profiles", "ProfileInfo", "Profile", "Customer")
    if not customers:
        return Guest()
    c = next((c for c in customers if c.get("PrimaryIndicator") == "true"), customers[0])
    person = _first(c, "PersonName")
    parts = [_text(g) for g in _children(person, "GivenName")] + [_text(_first(person, "Surname"))]
    name = " ".join(p for p in parts if p) or None
    phone = None
    for t in _children(c, "Telephone"):
        if t.get("PhoneTechType") != "3" and t.get("PhoneNumber"):  # 3 = fax
            phone = t.get("PhoneNumber").strip()
            break
    return Guest(name=name, phone=phone, email=_text(_first(c, "Email")))


def _requests(res: etree._Element) -> str | None:
    texts: list[str] = []
    holders = _children(res, "ResGlobalInfo") + _children(res, "RoomStays", "RoomStay")
    for h in holders:
        for sr in _children(h, "SpecialRequests", "SpecialRequest"):
            t = _text(_first(sr, "Text")) or sr.get("Name")
            if t:
                texts.append(t)
        for cm in _children(h, "Comments", "Comment"):
            t = _text(_first(cm, "Text"))
            if t:
                texts.append(t)
            texts.extend(x for x in (_text(li) for li in _children(cm, "ListItem")) if x)
    return "\n".join(texts) if texts else None


def reservation(res: etree._Element, *, feed: Literal["new", "modify"] = "new", root_status: str | None = None,
                opts: Options = Options(), raw: bytes | None = None) -> tuple[BookingRevision, AckRef]:
    """One HotelReservation / HotelResModify element -> one BookingRevision."""
    action = _action(res, feed, root_status)
    oid, source = _booking_id(res)
    hotel = _hotel(res)
    glob = _first(res, "ResGlobalInfo")
    span = _first(glob, "TimeSpan")
    default_span = None
    if span is not None and span.get("Start") and span.get("End"):
        default_span = (_date(span.get("Start"), "TimeSpan@Start"), _date(span.get("End"), "TimeSpan@End"))
    stays, stay_totals, currency = [], [], None
    for rs in _children(res, "RoomStays", "RoomStay"):
        stay, total, cur = _stay(rs, default_span)
        stays.append(stay)
        stay_totals.append(total)
        currency = currency or cur
    amount, total_currency = _total(_first(glob, "Total"))
    if amount is None and stay_totals and all(t is not None for t in stay_totals):
        amount = sum(stay_totals)  # type: ignore[arg-type]
    currency = total_currency or currency
    created = _datetime(res.get("CreateDateTime"), opts)
    modified = _datetime(res.get("LastModifyDateTime"), opts)
    raw = raw if raw is not None else etree.tostring(res, encoding="UTF-8", with_tail=False)
    # the revision is what Booking.com says changed: the reservation's own stamp (a
    # CreateDateTime only for the new booking itself: modifications keep it), else the
    # content's fingerprint (contract.content_fingerprint: no envelope field, EchoToken or
    # TimeStamp of the pulled message, is part of it)
    stamp = (res.get("LastModifyDateTime") or (res.get("CreateDateTime") if action == "new" else None) or "").strip()
    rev = BookingRevision(
        channel=CHANNEL, hotel=hotel, ota_booking_id=oid, revision="", action=action,  # type: ignore[arg-type]
        stays=tuple(stays), amount_minor=amount, currency=currency, guest=_guest(res),
        special_requests=_requests(res), booked_at=created, revised_at=modified or created, raw=raw,
        extra={"res_status": res.get("ResStatus") or root_status, "element": local(res)},
    )
    rev = dataclasses.replace(rev, revision=f"{action}@{stamp}" if stamp else f"fp-{content_fingerprint(rev)}")
    return rev, AckRef(feed, hotel, oid, source)


def reservation_feed(body: bytes, feed: Literal["new", "modify"], opts: Options = Options()) -> list[Delivery]:
    """A pulled OTA_HotelResNotifRQ / OTA_HotelResModifyNotifRQ -> one Delivery per reservation.

    Raises ParseError only when the body as a whole cannot be read; a reservation that
    cannot be read becomes a Delivery with ``error`` and its raw bytes, never dropped.
    """
    root = parse(body)
    if local(root) in RESERVATION_ELEMENTS:
        elements = [root]
    else:
        elements = [el for el in root.iter() if isinstance(el.tag, str) and local(el) in RESERVATION_ELEMENTS
                    and (el.getparent() is None or local(el.getparent()) != "CurrentStateReservation")]
        if not elements and local(root) not in ("OTA_HotelResNotifRQ", "OTA_HotelResModifyNotifRQ",
                                                "OTA_ResRetrieveRS"):
            raise ParseError(f"expected a reservation message, got <{local(root)}>")
    out = []
    default_kind = "reservation" if feed == "new" else "modification"
    for el in elements:
        raw = etree.tostring(el, encoding="UTF-8", with_tail=False)
        try:
            rev, ref = reservation(el, feed=feed, root_status=root.get("ResStatus"), opts=opts, raw=raw)
        except (ParseError, ValueError) as e:
            out.append(Delivery(raw=raw, kind=default_kind, error=f"{e}"))
            continue
        out.append(Delivery(raw=raw, kind=KIND[rev.action], revision=rev, ack_ref=ref))
    return out


def acknowledgement(refs: Sequence[AckRef], feed: Literal["new", "modify"], opts: Options = Options(),
                    now: datetime | None = None) -> bytes:
    """OTA_HotelResNotifRS / OTA_HotelResModifyNotifRS naming what we committed.

    Booking.com documents a ResGlobalInfo holding only HotelReservationIDs; strict 2015B
    wants a BasicPropertyInfo after them, which Booking.com accepts too, so it is added.
    """
    if feed == "new":
        root = _root("OTA_HotelResNotifRS", opts, now)
        etree.SubElement(root, O + "Success")
        holder = etree.SubElement(root, O + "HotelReservations")
        element = "HotelReservation"
    else:
        root = _root("OTA_HotelResModifyNotifRS", opts, now)
        etree.SubElement(root, O + "Success")
        holder = etree.SubElement(root, O + "HotelResModifies")
        element = "HotelResModify"
    seen = set()
    for ref in refs:
        if (ref.hotel, ref.ota_booking_id) in seen:
            continue
        seen.add((ref.hotel, ref.ota_booking_id))
        res = etree.SubElement(holder, O + element)
        glob = etree.SubElement(res, O + "ResGlobalInfo")
        ids = etree.SubElement(glob, O + "HotelReservationIDs")
        etree.SubElement(ids, O + "HotelReservationID", ResID_Value=ref.ota_booking_id,
                         ResID_Source=opts.ack_source, ResID_Type="14")
        etree.SubElement(glob, O + "BasicPropertyInfo", HotelCode=ref.hotel)
    return tostring(root)


# ---- B.XML read-back (Booking-proprietary; modelled) -------------------------------------

READBACK_MAX_DAYS = 31
DAYS_AHEAD = 730  # modelled: how far ahead Booking.com takes dates (the note asks for >= 12 months)


def readback_request(hotel: str, start: date, end: date) -> bytes:
    days = (end - start).days + 1
    if not 1 <= days <= READBACK_MAX_DAYS:
        raise ValueError(f"a read-back covers 1..{READBACK_MAX_DAYS} days, not {days}")
    root = etree.Element("request")
    etree.SubElement(root, "hotel_id").text = hotel
    etree.SubElement(root, "date_from").text = start.isoformat()
    etree.SubElement(root, "date_to").text = end.isoformat()
    return tostring(root)


def _flag(el: etree._Element | None) -> bool | None:
    t = _text(el)
    return None if t is None else t in ("1", "true")


def _int(el: etree._Element | None) -> int | None:
    t = _text(el)
    if t is None:
        return None
    try:
        return int(t)
    except ValueError:
        raise ParseError(f"<{local(el)}> {t!r} is not a number") from None


def readback(body: bytes, hotel: str) -> list[AriUpdate]:
    """A B.XML roomrateavailability answer -> single-date AriUpdates (room and rate level)."""
    root = parse(body)
    if local(root) != "roomrateavailability":
        raise ParseError(f"expected <roomrateavailability>, got <{local(root)}>")
    currency = root.get("currency")
    out: list[AriUpdate] = []
    for room in _children(root, "room"):
        rid = room.get("id")
        for d in _children(room, "date"):
            day = _date(d.get("value"), "date@value")
            # each element's children read once, by name (issue 13: six passes over a rate's
            # children for each of a month's rates made the read-back parse a watchdog's cost)
            dk = _by_name(d)
            n = _int(_one(dk, "roomstosell"))
            if n is not None:
                out.append(AriUpdate(hotel, rid, None, day, day, rooms_to_sell=n, key=f"{rid}|-|{day}"))
            for r in dk.get("rate", ()):
                cur = r.get("currency") or currency
                rk = _by_name(r)
                prices = []
                for p in rk.get("price", ()):
                    amount = parse_amount(_text(p), cur)
                    if amount is not None:
                        prices.append(Price(int(p.get("persons", "1")), amount))
                out.append(AriUpdate(
                    hotel, rid, r.get("id"), day, day, prices=tuple(sorted(prices, key=lambda p: p.occupancy)),
                    currency=cur if prices else None, min_los=_int(_one(rk, "minimumstay")),
                    max_los=_int(_one(rk, "maximumstay")), cta=_flag(_one(rk, "closedonarrival")),
                    ctd=_flag(_one(rk, "closedondeparture")), stop_sell=_flag(_one(rk, "closed")),
                    key=f"{rid}|{r.get('id')}|{day}"))
    return out


def _by_name(el: etree._Element) -> dict[str, list[etree._Element]]:
    """An element's child elements by local name, in document order."""
    out: dict[str, list[etree._Element]] = {}
    for c in el:
        tag = c.tag
        if isinstance(tag, str):
            out.setdefault(tag.rpartition("}")[2], []).append(c)
    return out


def _one(by_name: dict[str, list[etree._Element]], name: str) -> etree._Element | None:
    """The first child of that name (from ``_by_name``), or None."""
    got = by_name.get(name)
    return got[0] if got else None


# ---- token auth (modelled) -----------------------------------------------------------------


def token_request(client_id: str, client_secret: str) -> bytes:
    return json.dumps({"client_id": client_id, "client_secret": client_secret}).encode()


def token_answer(body: bytes, default_lifetime: int) -> tuple[str, float]:
    """(jwt, seconds it lives) from the token endpoint's JSON answer."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ParseError("the token endpoint did not answer JSON") from None
    token = data.get("jwt") or data.get("access_token") or data.get("token") if isinstance(data, dict) else None
    if not token or not isinstance(token, str):
        raise ParseError("the token endpoint's answer holds no token (jwt)")
    lifetime = data.get("expires_in", default_lifetime)
    try:
        lifetime = float(int(lifetime))
    except (TypeError, ValueError):
        lifetime = float(default_lifetime)
    return token, lifetime


def token_ruid(body: bytes) -> str | None:
    """The token endpoint answers JSON, so its request id is a field, not a comment."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    ruid = data.get("ruid") if isinstance(data, dict) else None
    return ruid if isinstance(ruid, str) else None


# a token starts where a run of token characters starts (the lookbehind) and is read
# possessively: linear time, whatever the text (issue 10)
_JWT = re.compile(r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]++\.[A-Za-z0-9_\-]++\.[A-Za-z0-9_\-]*+")
_TOKEN_FIELD = re.compile(r'("(?:jwt|access_token|token|client_secret)"\s*:\s*)"[^"]*"')


def redact_tokens(text: str) -> str:
    """Bearer tokens out of anything logged (they are not in settings.credentials)."""
    return _TOKEN_FIELD.sub(r'\1"***"', _JWT.sub("***", text))
