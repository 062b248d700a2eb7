"""Ctrip / Trip.com's wire format: every message we build and every message we read.

Pure functions, no I/O. Ctrip publishes no specification; what
../shared/protocols/ctrip.md states (taken from public partner code) is followed as
stated, and every name it gives lives here as a named constant so that a partner holding
the real specification changes this one file. Where the note is silent the guess is made
here, once, and marked GUESS:

- endpoint paths (:data:`AVAIL_PATH`, :data:`RATES_PATH`) are the ``.asmx`` ones of the note;
- an amount is written as decimal text in major units (``AmountAfterTax="456.00"``);
- a refused item is named by ``Error/@RecordID`` = the ``LocatorID`` of its message;
- a modification arrives as ``OTA_HotelResRQ`` with ``HotelReservation/@ResStatus="Modify"``
  (``OTA_HotelResModifyRQ`` with ``HotelResModify`` elements is read the same way);
- a cancellation (``OTA_CancelRQ``) names the hotel by a second ``UniqueID`` with
  ``Type="10"`` (OpenTravel code list UIT: hotel);
- the revision of a pushed booking is what the reservation says changed: its
  ``LastModifyDateTime`` with the content's fingerprint (the stamp has whole seconds only),
  else the fingerprint alone (``contract.content_fingerprint``). ``SequenceNmbr``,
  ``EchoToken`` and ``TimeStamp`` are the envelope's (a resend carries new ones) and are not
  part of it; ``TimeStamp`` still orders a revision that has no ``LastModifyDateTime``;
- a message that names the booking by Ctrip's id but not the hotel (a cancellation without
  ``UniqueID Type="10"``, a modification without ``BasicPropertyInfo``) is read with
  ``hotel=""``; the inbound handler takes the hotel of the booking the ledger holds;
- the answer to ``OTA_CancelRQ`` is ``OTA_CancelRS @Status="Cancelled"`` with
  ``UniqueID @Type="501"`` (Ctrip's id) and ``"502"`` (our confirmation), the answer to
  ``OTA_ReadRQ`` an ``OTA_ResRetrieveRS`` holding the ``HotelReservation``.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from lxml import etree

from adapters.base.contract import AriUpdate, BookingRevision, Guest, NightPrice, Stay, content_fingerprint
from adapters.base.contract import item_problem as base_item_problem
from adapters.base.errors import ParseError
from adapters.base.xml import OTA_NS, local, parse, restriction_messages, tostring, unwrap_soap, wrap_soap, xs_datetime
from adapters.base.xml import children as _children
from adapters.base.xml import first as _first
from adapters.base.xml import text as _text
from adapters.base.xml import xs_date as _date
from channelmgr.money import EXPONENT

CHANNEL = "ctrip"
O = f"{{{OTA_NS}}}"

# ---- names from the partner note ------------------------------------------------------
AVAIL_PATH = "/Hotel/OTAReceive/HotelAvailNotif.asmx"
RATES_PATH = "/Hotel/OTAReceive/HotelRateAmountNotif.asmx"
SOAP_ACTION = "http://www.opentravel.org/OTA/2003/05/Request"
CONTENT_TYPE = "text/xml; charset=utf-8"
MAX_DAYS_PER_MESSAGE = 365
DAYS_AHEAD = 365  # modelled: the sale horizon, today .. today + 365 in the hotel's zone
SET_LIMIT = "SetLimit"  # AvailStatusMessage/@BookingLimitMessageType
SELL_CODE = "Sell"  # BaseByGuestAmt/@Code: the selling price (vendor use of the attribute)
MEALS_ELEMENT = "MealsIncluded"  # Ctrip extension inside Rate, not in the OpenTravel schema
BREAKFAST_ATTR = "NumberOfBreakfast"  # its attribute
RES_ID_CTRIP = "501"  # HotelReservationID/@ResID_Type: Ctrip's order id
RES_ID_OURS = "502"  # ... our confirmation number
UNIQUE_ID_RESERVATION = "14"  # UniqueID/@Type of a reservation (OpenTravel UIT)
UNIQUE_ID_HOTEL = "10"  # UniqueID/@Type of a hotel (OpenTravel UIT) - GUESS for OTA_CancelRQ

# error types and codes
TYPE_UNKNOWN, TYPE_BUSINESS, TYPE_AUTH = "1", "3", "4"
CODE_AUTH = "497"
CODE_NO_AVAILABILITY = "322"
CODE_SYSTEM = "448"  # retry
CODE_UNABLE = "450"
CODE_PROCESSING = "498"  # retriable
CODE_ALREADY_PROCESSED = "127"  # Warning on a repeat
RETRIABLE_CODES = frozenset({CODE_SYSTEM, CODE_PROCESSING})

STATUS_SUCCESS, STATUS_CANCELLED, STATUS_PROCESSING, STATUS_REJECTED = "S", "C", "P", "R"


@dataclass(frozen=True)
class Options:
    """Paths and guesses; each field can be set in ``ChannelSettings.options``."""

    soap: bool = False  # wrap messages in a SOAP 1.1 envelope
    avail_path: str = AVAIL_PATH
    rates_path: str = RATES_PATH
    requestor_type: str = "13"  # GUESS: RequestorID/@Type
    company_code: str = "channelmgr"  # GUESS: CompanyName/@Code we send
    company_context: str = "Ctrip"  # GUESS: CompanyName/@CodeContext we send
    message_version: str = "1.0"
    naive_timezone: str = "Asia/Shanghai"  # GUESS: zone of timestamps without an offset
    breakfast: dict[str, int] = field(default_factory=dict)  # rate code -> breakfasts (MealsIncluded)

    @classmethod
    def from_settings(cls, options: dict[str, Any] | None) -> Options:
        options = dict(options or {})
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in options.items() if k in known}
        if "soap" in values:
            v = values["soap"]
            values["soap"] = v if isinstance(v, bool) else str(v).strip().lower() in ("1", "true", "yes", "on")
        if "breakfast" in values:
            values["breakfast"] = {str(k): int(v) for k, v in dict(values["breakfast"] or {}).items()}
        return cls(**values)


# ---- money -------------------------------------------------------------------------------

_DECIMAL = re.compile(r"[+-]?\d{1,18}(\.\d{1,9})?")


def format_amount(minor: int, currency: str) -> str:
    """Integer minor units -> decimal text in major units (CNY 45600 -> "456.00"), exactly."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"amounts are integers in minor units, not {type(minor).__name__}")
    exp = EXPONENT.get((currency or "").upper())
    if exp is None:
        raise ValueError(f"currency {currency!r} has no known number of decimals")
    return f"{Decimal(minor).scaleb(-exp):.{exp}f}" if exp else str(minor)


def parse_amount(text: str | None, currency: str | None) -> int | None:
    """Decimal text in major units -> integer minor units, via Decimal; refuses rounding."""
    if text is None or not text.strip():
        return None
    raw = text.strip()
    if not _DECIMAL.fullmatch(raw):
        raise ParseError(f"{raw!r} is not an amount")
    exp = EXPONENT.get((currency or "").upper())
    if exp is None:
        raise ParseError(f"currency {currency!r} is unknown")
    scaled = Decimal(raw).scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise ParseError(f"amount {raw} has more decimals than {currency} has minor units")
    return int(scaled)


# ---- building ARI messages -----------------------------------------------------------------


@dataclass
class Built:
    body: bytes = b""
    locators: dict[str, int] = field(default_factory=dict)  # LocatorID -> index of the AriUpdate

    @property
    def empty(self) -> bool:
        return not self.locators


def _stamp(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def pos(parent: etree._Element, username: str, password: str, opts: Options) -> etree._Element:
    """``POS/Source/RequestorID @ID @MessagePassword @Type`` with ``CompanyName``."""
    p = etree.SubElement(parent, O + "POS")
    rid = etree.SubElement(etree.SubElement(p, O + "Source"), O + "RequestorID",
                           ID=username, MessagePassword=password, Type=opts.requestor_type)
    etree.SubElement(rid, O + "CompanyName", Code=opts.company_code, CodeContext=opts.company_context)
    return p


def _root(name: str, opts: Options, now: datetime | None) -> etree._Element:
    return etree.Element(O + name, nsmap={None: OTA_NS},
                         attrib={"TimeStamp": _stamp(now), "Version": opts.message_version})


def serialize(root: etree._Element, opts: Options) -> bytes:
    return tostring(wrap_soap(root) if opts.soap else root)


def _control(parent: etree._Element, u: AriUpdate, *, rate: bool) -> None:
    attrs = {"Start": u.start.isoformat(), "End": u.end.isoformat(), "InvTypeCode": u.room}
    if rate and u.rate is not None:
        attrs["RatePlanCode"] = u.rate
    etree.SubElement(parent, O + "StatusApplicationControl", attrib=attrs)


def avail_notif(hotel: str, updates: Sequence[AriUpdate], username: str, password: str,
                opts: Options = Options(), now: datetime | None = None, skip: Iterable[int] = ()) -> Built:
    """OTA_HotelAvailNotifRQ: rooms to sell (``SetLimit``) per room type, restrictions per rate.

    The 2015B schema allows one ``RestrictionStatus`` per message, so stop-sell, closed to
    arrival and closed to departure each get a message of their own (same dates and codes).
    """
    skip = set(skip)
    root = _root("OTA_HotelAvailNotifRQ", opts, now)
    pos(root, username, password, opts)
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
            m = message(i, BookingLimit=str(u.rooms_to_sell), BookingLimitMessageType=SET_LIMIT)
            _control(m, u, rate=False)
        def new_message(i: int = i, u: AriUpdate = u) -> etree._Element:
            m = message(i)
            _control(m, u, rate=True)
            return m

        restriction_messages(u, new_message)
    built.body = serialize(root, opts) if built.locators else b""
    return built


def rate_amount_notif(hotel: str, updates: Sequence[AriUpdate], username: str, password: str,
                      opts: Options = Options(), now: datetime | None = None, skip: Iterable[int] = ()) -> Built:
    """OTA_HotelRateAmountNotifRQ: one ``BaseByGuestAmt @Code="Sell"`` per occupancy.

    ``MealsIncluded @NumberOfBreakfast`` (Ctrip's extension) follows the amounts when
    ``options.breakfast`` names the rate.
    """
    skip = set(skip)
    root = _root("OTA_HotelRateAmountNotifRQ", opts, now)
    pos(root, username, password, opts)
    msgs = etree.SubElement(root, O + "RateAmountMessages", HotelCode=hotel)
    built = Built()
    for i, u in enumerate(updates):
        if i in skip or not u.prices or u.rate is None:
            continue
        loc = str(len(built.locators) + 1)
        built.locators[loc] = i
        m = etree.SubElement(msgs, O + "RateAmountMessage", LocatorID=loc)
        _control(m, u, rate=True)
        rate_el = etree.SubElement(etree.SubElement(m, O + "Rates"), O + "Rate")
        amts = etree.SubElement(rate_el, O + "BaseByGuestAmts")
        for p in sorted(u.prices, key=lambda p: p.occupancy):
            etree.SubElement(amts, O + "BaseByGuestAmt", AmountAfterTax=format_amount(p.amount_minor, u.currency or ""),
                             CurrencyCode=u.currency or "", NumberOfGuests=str(p.occupancy), Code=SELL_CODE)
        if u.rate in opts.breakfast:
            etree.SubElement(rate_el, O + MEALS_ELEMENT, attrib={BREAKFAST_ATTR: str(opts.breakfast[u.rate])})
    built.body = serialize(root, opts) if built.locators else b""
    return built


def strip_extensions(root: etree._Element) -> etree._Element:
    """A copy without Ctrip's vendor extensions (for validating against OpenTravel 2015B)."""
    import copy

    root = copy.deepcopy(root)
    for el in list(root.iter(O + MEALS_ELEMENT)):
        el.getparent().remove(el)  # BaseByGuestAmt/@Code="Sell" is a schema-valid attribute: kept
    return root


def item_problem(u: AriUpdate) -> tuple[str, str] | None:
    """Why an item cannot be written at all (code, text), before anything is sent."""
    return base_item_problem(u, max_occupancy=99)


def span_days(updates: Iterable[AriUpdate]) -> int:
    """Days from the first to the last date the updates touch (inclusive)."""
    ups = list(updates)
    if not ups:
        return 0
    return (max(u.end for u in ups) - min(u.start for u in ups)).days + 1


# ---- reading answers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    type: str | None
    code: str | None
    text: str
    record: str | None = None


@dataclass(frozen=True)
class Answer:
    root: str
    success: bool
    warnings: tuple[Issue, ...] = ()
    errors: tuple[Issue, ...] = ()
    element: etree._Element | None = None


def _issue(el: etree._Element) -> Issue:
    text = el.get("ShortText") or (el.text or "").strip() or el.get("Code") or "no text given"
    return Issue(el.get("Type"), el.get("Code"), text, el.get("RecordID") or el.get("RPH"))


def read_answer(body: bytes) -> Answer:
    """Success / Warnings / Errors of any Ctrip answer (bare or in a SOAP envelope)."""
    root = unwrap_soap(parse(body))
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
    return Answer(
        root=local(root), success=success is not None,
        warnings=tuple(_issue(w) for w in (warnings if warnings is not None else ())
                       if isinstance(w.tag, str) and local(w) == "Warning"),
        errors=tuple(_issue(e) for e in (errors if errors is not None else ())
                     if isinstance(e.tag, str) and local(e) == "Error"),
        element=root,
    )


# ---- inbound: reading what Ctrip pushes ---------------------------------------------------

Kind = Literal["reservation", "modification", "cancellation", "read", "avail", "unknown"]
KIND = {"new": "reservation", "modify": "modification", "cancel": "cancellation"}
MODIFY_STATUSES = {"modify", "modified"}
CANCEL_STATUSES = {"cancel", "cancelled", "canceled"}


@dataclass(frozen=True)
class Requestor:
    id: str | None
    password: str | None
    company_code: str | None = None


@dataclass
class Inbound:
    """One request from Ctrip: its operation, who sent it, the payload and the echo fields."""

    root: etree._Element
    operation: str  # the root element's local name
    soap: bool
    requestor: Requestor
    echo_token: str | None = None

    @property
    def kind(self) -> Kind:
        return {"OTA_HotelResRQ": "reservation", "OTA_HotelResModifyRQ": "modification",
                "OTA_CancelRQ": "cancellation", "OTA_ReadRQ": "read",
                "OTA_HotelAvailRQ": "avail"}.get(self.operation, "unknown")


def read_inbound(body: bytes) -> Inbound:
    """Parse (safely: no DOCTYPE, no entities) and say what the request is and who sent it."""
    doc = parse(body)
    soap = local(doc) == "Envelope"
    root = unwrap_soap(doc)
    rid = _first(root, "POS", "Source", "RequestorID")
    company = _first(rid, "CompanyName")
    requestor = Requestor(rid.get("ID") if rid is not None else None,
                          rid.get("MessagePassword") if rid is not None else None,
                          company.get("Code") if company is not None else None)
    return Inbound(root, local(root), soap, requestor, root.get("EchoToken"))


def _datetime(value: str | None, opts: Options) -> datetime | None:
    return xs_datetime(value, opts.naive_timezone)


def _is_cjk(text: str) -> bool:
    return any(unicodedata.name(ch, "").startswith(("CJK", "HANGUL", "HIRAGANA", "KATAKANA")) for ch in text)


def person_name(person: etree._Element | None) -> str | None:
    """``GivenName``/``MiddleName``/``Surname`` as one name, or the element's own text.

    A Chinese (CJK) name is written surname first without a space (张 + 伟 -> 张伟); any
    other is "Given Middle Surname". The characters are kept exactly as sent.
    """
    if person is None:
        return None
    given = [t for t in (_text(g) for g in _children(person, "GivenName")) if t]
    middle = [t for t in (_text(m) for m in _children(person, "MiddleName")) if t]
    surname = _text(_first(person, "Surname"))
    if not given and not middle and not surname:
        return _text(person)
    if surname and given and (_is_cjk(surname) or _is_cjk(given[0])):
        return surname + "".join(given + middle)
    return " ".join(given + middle + ([surname] if surname else [])) or None


def _ids(el: etree._Element | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for rid in _children(el, "ResGlobalInfo", "HotelReservationIDs", "HotelReservationID"):
        if rid.get("ResID_Type") and rid.get("ResID_Value"):
            out.setdefault(rid.get("ResID_Type"), rid.get("ResID_Value"))
    for uid in _children(el, "UniqueID"):
        if uid.get("Type") and uid.get("ID"):
            out.setdefault("uid:" + uid.get("Type"), uid.get("ID"))
    return out


def _with_revision(rev: BookingRevision, res: etree._Element | None) -> BookingRevision:
    """The revision id: what the reservation says changed, never the envelope's fields."""
    fp = content_fingerprint(rev)
    stamp = (res.get("LastModifyDateTime") or "").strip() if res is not None else ""
    return dataclasses.replace(rev, revision=f"mod-{stamp}-{fp[:16]}" if stamp else f"fp-{fp}")


def _stay(rs: etree._Element, opts: Options) -> tuple[Stay, int | None, str | None]:
    rt = _first(rs, "RoomTypes", "RoomType")
    rr = _first(rs, "RoomRates", "RoomRate")
    rp = _first(rs, "RatePlans", "RatePlan")
    room = (rt.get("RoomTypeCode") if rt is not None else None) or (rr.get("RoomTypeCode") if rr is not None else None)
    if not room:
        raise ParseError("RoomStay has no RoomTypeCode")
    rate = (rp.get("RatePlanCode") if rp is not None else None) or (rr.get("RatePlanCode") if rr is not None else None)
    ts = _first(rs, "TimeSpan")
    if ts is None:
        raise ParseError("RoomStay has no TimeSpan")
    checkin = _date(ts.get("Start"), "TimeSpan Start")
    checkout = _date(ts.get("End"), "TimeSpan End") if ts.get("End") else None
    if checkout is None:
        m = re.fullmatch(r"P(\d+)[ND]", (ts.get("Duration") or "").strip())
        if not m:
            raise ParseError("TimeSpan has neither End nor Duration")
        checkout = checkin + timedelta(days=int(m.group(1)))
    if checkout <= checkin:
        raise ParseError(f"checkout {checkout} is not after checkin {checkin}")
    units = (rt.get("NumberOfUnits") if rt is not None else None) or (
        rr.get("NumberOfUnits") if rr is not None else None) or "1"
    if not units.strip().isdigit() or int(units) < 1:
        raise ParseError(f"NumberOfUnits {units!r} is not a number of rooms")
    total = _first(rs, "Total")
    currency = total.get("CurrencyCode") if total is not None else None
    nightly: list[NightPrice] = []
    for r in _children(rr, "Rates", "Rate"):
        base = _first(r, "Base")
        if base is None:
            continue
        cur = base.get("CurrencyCode") or currency
        currency = currency or cur
        amount = parse_amount(base.get("AmountAfterTax"), cur)
        start = _date(r.get("EffectiveDate"), "Rate EffectiveDate")
        end = _date(r.get("ExpireDate"), "Rate ExpireDate") if r.get("ExpireDate") else start + timedelta(days=1)
        night = start
        while night < max(end, start + timedelta(days=1)):
            if amount is not None:
                nightly.append(NightPrice(night, amount))
            night += timedelta(days=1)
    guests = None
    gc = _children(rs, "GuestCounts", "GuestCount")
    if gc:
        counts = [int(g.get("Count")) for g in gc if (g.get("Count") or "").isdigit()]
        guests = sum(counts) or None
    stay_total = parse_amount(total.get("AmountAfterTax"), currency) if total is not None else None
    return (Stay(room, rate, checkin, checkout, int(units), guests, tuple(nightly)), stay_total, currency)


def reservation(msg: Inbound, raw: bytes, opts: Options = Options()) -> BookingRevision:
    """OTA_HotelResRQ (new or ``ResStatus="Modify"``) / OTA_HotelResModifyRQ -> BookingRevision."""
    res_list = _children(msg.root, "HotelReservations", "HotelReservation") or \
        _children(msg.root, "HotelResModifies", "HotelResModify")
    if len(res_list) != 1:
        raise ParseError(f"{msg.operation} holds {len(res_list)} reservations; one is expected")
    res = res_list[0]
    ids = _ids(res)
    oid = ids.get(RES_ID_CTRIP) or ids.get("uid:" + UNIQUE_ID_RESERVATION)
    if not oid:
        raise ParseError(f"the reservation has no HotelReservationID with ResID_Type={RES_ID_CTRIP}")
    status = (res.get("ResStatus") or msg.root.get("ResStatus") or "").strip().lower()
    if status in CANCEL_STATUSES:
        action = "cancel"
    elif status in MODIFY_STATUSES or msg.operation == "OTA_HotelResModifyRQ":
        action = "modify"
    else:
        action = "new"
    stays_el = _children(res, "RoomStays", "RoomStay")
    if not stays_el and action != "cancel":
        raise ParseError("the reservation has no RoomStay")
    stays, totals, currency = [], [], None
    for rs in stays_el:
        stay, total, cur = _stay(rs, opts)
        stays.append(stay)
        totals.append(total)
        currency = currency or cur
    hotel = None
    for el in (_first(res, "ResGlobalInfo", "BasicPropertyInfo"), *(_first(rs, "BasicPropertyInfo") for rs in stays_el)):
        if el is not None and el.get("HotelCode"):
            hotel = el.get("HotelCode")
            break
    if not hotel and action == "new":
        raise ParseError("the reservation names no hotel (BasicPropertyInfo/@HotelCode)")
    gtotal = _first(res, "ResGlobalInfo", "Total")
    if gtotal is not None and gtotal.get("AmountAfterTax"):
        currency = gtotal.get("CurrencyCode") or currency
        amount = parse_amount(gtotal.get("AmountAfterTax"), currency)
    elif totals and all(t is not None for t in totals):
        amount = sum(t for t in totals if t is not None)
    else:
        amount = None
    customer = _first(res, "ResGuests", "ResGuest", "Profiles", "ProfileInfo", "Profile", "Customer")
    phone_el = _first(customer, "Telephone")
    guest = Guest(name=person_name(_first(customer, "PersonName")),
                  phone=(phone_el.get("PhoneNumber") or _text(phone_el)) if phone_el is not None else None,
                  email=_text(_first(customer, "Email")))
    texts = [t for t in (_text(_first(s, "Text")) or _text(s)
                         for s in _children(res, "ResGlobalInfo", "SpecialRequests", "SpecialRequest")) if t]
    texts += [t for t in (_text(_first(c, "Text")) or _text(c)
                          for c in _children(res, "ResGlobalInfo", "Comments", "Comment")) if t]
    return _with_revision(BookingRevision(
        channel=CHANNEL, hotel=hotel or "", ota_booking_id=oid, revision="", action=action,
        stays=tuple(stays), amount_minor=amount, currency=currency, guest=guest,
        special_requests="\n".join(dict.fromkeys(texts)) or None,
        booked_at=_datetime(res.get("CreateDateTime"), opts),
        revised_at=_datetime(res.get("LastModifyDateTime") or msg.root.get("TimeStamp"), opts),
        raw=raw, extra={"operation": msg.operation, "ids": ids},
    ), res)


def cancellation(msg: Inbound, raw: bytes, opts: Options = Options()) -> BookingRevision:
    """OTA_CancelRQ -> a cancel revision (Ctrip's id: UniqueID Type 14/501, hotel: Type 10)."""
    ids = {u.get("Type"): u.get("ID") for u in _children(msg.root, "UniqueID") if u.get("Type") and u.get("ID")}
    oid = ids.get(UNIQUE_ID_RESERVATION) or ids.get(RES_ID_CTRIP)
    if not oid:
        raise ParseError(f"OTA_CancelRQ has no UniqueID with Type={UNIQUE_ID_RESERVATION}")
    hotel = ids.get(UNIQUE_ID_HOTEL)
    if not hotel:
        vendor = _first(msg.root, "Verification", "Vendor")
        hotel = vendor.get("Code") if vendor is not None else None
    # no hotel (UniqueID Type=10 is optional in OpenTravel): hotel "" and the inbound
    # handler takes the hotel of the booking held under Ctrip's id
    reason = _text(_first(msg.root, "Reasons", "Reason"))
    return _with_revision(BookingRevision(
        channel=CHANNEL, hotel=hotel or "", ota_booking_id=oid, revision="", action="cancel",
        special_requests=reason, revised_at=_datetime(msg.root.get("TimeStamp"), opts), raw=raw,
        extra={"operation": msg.operation, "ids": ids},
    ), None)


def read_request_id(msg: Inbound) -> str | None:
    """Ctrip's order id in an OTA_ReadRQ (any UniqueID, or a HotelReservationID)."""
    for uid in msg.root.iter(O + "UniqueID", "UniqueID"):
        if uid.get("ID"):
            return uid.get("ID")
    for rid in msg.root.iter(O + "HotelReservationID", "HotelReservationID"):
        if rid.get("ResID_Value"):
            return rid.get("ResID_Value")
    return None


@dataclass(frozen=True)
class AvailQuery:
    hotel: str
    room: str
    rate: str | None
    checkin: date
    checkout: date
    rooms: int


def avail_query(msg: Inbound) -> AvailQuery:
    seg = _first(msg.root, "AvailRequestSegments", "AvailRequestSegment")
    if seg is None:
        raise ParseError("OTA_HotelAvailRQ has no AvailRequestSegment")
    ref = _first(seg, "HotelSearchCriteria", "Criterion", "HotelRef")
    sdr = _first(seg, "StayDateRange")
    cand = _first(seg, "RoomStayCandidates", "RoomStayCandidate")
    rp = _first(seg, "RatePlanCandidates", "RatePlanCandidate")
    if ref is None or not ref.get("HotelCode") or sdr is None or cand is None or not cand.get("RoomTypeCode"):
        raise ParseError("OTA_HotelAvailRQ needs HotelRef/@HotelCode, StayDateRange and RoomStayCandidate/@RoomTypeCode")
    checkin, checkout = _date(sdr.get("Start"), "StayDateRange Start"), _date(sdr.get("End"), "StayDateRange End")
    if checkout <= checkin:
        raise ParseError("StayDateRange End is not after Start")
    qty = cand.get("Quantity") or "1"
    return AvailQuery(ref.get("HotelCode"), cand.get("RoomTypeCode"), rp.get("RatePlanCode") if rp is not None else None,
                      checkin, checkout, int(qty) if qty.isdigit() and int(qty) > 0 else 1)


# ---- inbound: our answers -------------------------------------------------------------------

RS_OF = {"OTA_HotelResRQ": "OTA_HotelResRS", "OTA_HotelResModifyRQ": "OTA_HotelResRS",
         "OTA_CancelRQ": "OTA_CancelRS", "OTA_ReadRQ": "OTA_ResRetrieveRS", "OTA_HotelAvailRQ": "OTA_HotelAvailRS"}


def _rs(name: str, opts: Options, echo: str | None, now: datetime | None = None) -> etree._Element:
    attrs = {"TimeStamp": _stamp(now), "Version": opts.message_version}
    if echo:
        attrs["EchoToken"] = echo
    return etree.Element(O + name, nsmap={None: OTA_NS}, attrib=attrs)


def _finish(root: etree._Element, soap: bool) -> bytes:
    return tostring(wrap_soap(root) if soap else root)


def error_answer(operation: str | None, code: str, text: str, *, type_: str = TYPE_BUSINESS, soap: bool = False,
                 echo: str | None = None, opts: Options = Options()) -> bytes:
    """``<...RS><Errors><Error Type Code ShortText/></Errors></...RS>``."""
    root = _rs(RS_OF.get(operation or "", "OTA_HotelResRS"), opts, echo)
    if local(root) == "OTA_CancelRS":
        root.set("Status", "Ignored")
    errs = etree.SubElement(root, O + "Errors")
    e = etree.SubElement(errs, O + "Error", Type=type_, Code=code, ShortText=text[:255])
    e.text = text
    return _finish(root, soap)


def _warnings(root: etree._Element, duplicate: bool) -> None:
    if duplicate:
        ws = etree.SubElement(root, O + "Warnings")
        w = etree.SubElement(ws, O + "Warning", Type=TYPE_BUSINESS, Code=CODE_ALREADY_PROCESSED,
                             ShortText="already processed")
        w.text = "this request was processed before; the earlier answer stands"


def _reservation_el(parent: etree._Element, tag: str, status: str, oid: str, confirmation: str | None,
                    hotel: str | None) -> None:
    res = etree.SubElement(parent, O + tag, ResStatus=status)
    glob = etree.SubElement(res, O + "ResGlobalInfo")
    ids = etree.SubElement(glob, O + "HotelReservationIDs")
    etree.SubElement(ids, O + "HotelReservationID", ResID_Type=RES_ID_CTRIP, ResID_Value=oid)
    if confirmation:
        etree.SubElement(ids, O + "HotelReservationID", ResID_Type=RES_ID_OURS, ResID_Value=confirmation)
    etree.SubElement(glob, O + "BasicPropertyInfo", **({"HotelCode": hotel} if hotel else {}))


def res_answer(operation: str, oid: str, confirmation: str, status: str, *, duplicate: bool = False,
               hotel: str | None = None, soap: bool = False, echo: str | None = None,
               opts: Options = Options()) -> bytes:
    """OTA_HotelResRS: Success, (Warning 127 on a repeat), HotelReservation @ResStatus + ids."""
    root = _rs(RS_OF.get(operation, "OTA_HotelResRS"), opts, echo)
    etree.SubElement(root, O + "Success")
    _warnings(root, duplicate)
    _reservation_el(etree.SubElement(root, O + "HotelReservations"), "HotelReservation", status, oid,
                    confirmation, hotel)
    return _finish(root, soap)


def cancel_answer(oid: str, confirmation: str, *, duplicate: bool = False, soap: bool = False,
                  echo: str | None = None, opts: Options = Options()) -> bytes:
    """OTA_CancelRS @Status="Cancelled": Success, UniqueID 501 (Ctrip's) and 502 (ours)."""
    root = _rs("OTA_CancelRS", opts, echo)
    root.set("Status", "Cancelled")
    etree.SubElement(root, O + "Success")
    _warnings(root, duplicate)
    etree.SubElement(root, O + "UniqueID", Type=RES_ID_CTRIP, ID=oid)
    etree.SubElement(root, O + "UniqueID", Type=RES_ID_OURS, ID=confirmation)
    return _finish(root, soap)


def read_answer_rs(oid: str, confirmation: str, status: str, *, hotel: str | None = None, soap: bool = False,
                   echo: str | None = None, opts: Options = Options()) -> bytes:
    """OTA_ResRetrieveRS for OTA_ReadRQ: the order's ResStatus and both ids."""
    root = _rs("OTA_ResRetrieveRS", opts, echo)
    etree.SubElement(root, O + "Success")
    _reservation_el(etree.SubElement(root, O + "ReservationsList"), "HotelReservation", status, oid,
                    confirmation, hotel)
    return _finish(root, soap)


def avail_answer(q: AvailQuery, available: int | None, *, soap: bool = False, echo: str | None = None,
                 opts: Options = Options()) -> bytes:
    """OTA_HotelAvailRS: Success with the room type and how many can be sold, or Error 322."""
    if available is None or available < q.rooms:
        return error_answer("OTA_HotelAvailRQ", CODE_NO_AVAILABILITY,
                            f"room {q.room} cannot be sold for {q.checkin}..{q.checkout}", soap=soap, echo=echo,
                            opts=opts)
    root = _rs("OTA_HotelAvailRS", opts, echo)
    etree.SubElement(root, O + "Success")
    stay = etree.SubElement(etree.SubElement(root, O + "RoomStays"), O + "RoomStay")
    etree.SubElement(etree.SubElement(stay, O + "RoomTypes"), O + "RoomType", RoomTypeCode=q.room,
                     NumberOfUnits=str(available))
    if q.rate:
        etree.SubElement(etree.SubElement(stay, O + "RatePlans"), O + "RatePlan", RatePlanCode=q.rate)
    etree.SubElement(stay, O + "TimeSpan", Start=q.checkin.isoformat(), End=q.checkout.isoformat())
    etree.SubElement(stay, O + "BasicPropertyInfo", HotelCode=q.hotel)
    return _finish(root, soap)


_PASSWORD_ATTR = re.compile(r'(MessagePassword\s*=\s*)(["\'])(.*?)\2')


def redact(text: str) -> str:
    """MessagePassword values out of anything logged, whatever credentials are configured."""
    return _PASSWORD_ATTR.sub(r"\1\2***\2", text)
