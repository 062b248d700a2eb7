"""A faithful fake Booking.com over real HTTP, on Booking.com's own paths.

It reads requests with its own parsing (lxml through the safe ``adapters.base.xml.parse``)
and writes reservations with its own writer; it never imports the adapter's codec or
client, so a codec bug cannot hide behind its mirror image. It enforces what the public
note says Booking.com enforces: Basic or token auth (30 tokens an hour), ``Accept-Version``,
one hotel and one calendar month per message, dates no more than one day before today in
the CET day (``NOT_A_VALID_DATE``), unknown hotel (403), unknown room or rate
(``ROOM_ID_INVALID``), a currency other than the hotel's
(``CURRENCY_CODE_DONT_MATCH_HOTEL_CURRENCY``), the same dates twice in one message
(``WARN_DUPLICATE_DATES``), and answers with Success / Warnings / Errors and a
``<!-- RUID: [...] -->`` comment every time.

Where the note is silent the sandbox models Booking.com the same way the codec guesses:
warnings name the refused message by ``RecordID`` = its ``LocatorID``; reservations carry
``ResStatus`` Commit / Modify / Cancel; the token endpoint and the B.XML read-back shapes
are the ones in the codec's docstring. The codes for two hotels or two months in one
message (``MULTIPLE_HOTELS``, ``MULTIPLE_MONTHS``) and a missing ``Accept-Version``
(``VERSION_REQUIRED``) are the sandbox's own words.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from lxml import etree

from adapters.base.errors import ParseError
from adapters.base.sandbox import BookingEvent, Sandbox, SandboxBooking, SandboxCatalog
from adapters.base.xml import OTA_NS, parse
from channelmgr.money import EXPONENT

NS = f"{{{OTA_NS}}}"
CET = ZoneInfo("Europe/Amsterdam")
TOKEN_PATH = "/token-based-authentication/exchange"
TOKEN_LIFETIME = 3600
TOKENS_PER_HOUR = 30
MAX_DAYS_AHEAD = 730  # modelled: two years ahead (the note asks partners for >= 12 months)
READBACK_MAX_DAYS = 31
DUPLICATE_TEXT = "these dates were already given in this message; this message was not applied"


class Refused(Exception):
    """A whole request refused: HTTP status, Booking.com error code and words."""

    def __init__(self, status: int, code: str | None, text: str):
        super().__init__(text)
        self.status, self.code, self.text = status, code, text


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _amount_minor(text: str | None, places: str | None, currency: str) -> int:
    """Booking.com reads AmountAfterTax the OpenTravel way; it never rounds money."""
    if not text:
        raise ValueError("AmountAfterTax is missing")
    text = text.strip()
    if not re.fullmatch(r"\d{1,15}(\.\d{1,15})?", text):
        raise ValueError(f"{text!r} is not an amount")
    value = Decimal(text)
    if "." not in text and places:
        value = value.scaleb(-int(places))
    exp = EXPONENT.get(currency.upper(), 2)
    minor = value.scaleb(exp)
    if minor != minor.to_integral_value():
        raise ValueError(f"{text} has more decimals than {currency} allows")
    return int(minor)


def _money_text(minor: int, currency: str) -> str:
    exp = EXPONENT.get(currency.upper(), 2)
    return f"{Decimal(minor).scaleb(-exp):.{exp}f}" if exp else str(minor)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class BookingSandbox(Sandbox):
    name = "booking"
    delivery = "pull"
    inventory_level = "room"

    def __init__(self, catalog: SandboxCatalog, credentials: dict[str, str], deliver_to: str | None = None,
                 *, seed: int | None = None):
        super().__init__(catalog, credentials, deliver_to, seed=seed)
        self.clock: Callable[[], float] = time.time  # tests move it to pass an hour
        self.tokens: dict[str, float] = {}  # jwt -> expiry (clock seconds)
        self.issued: dict[str, deque[float]] = {}  # client_id -> times tokens were issued
        self._signing_key = secrets.token_bytes(32)
        self.ruids: list[str] = []
        self._booking_seq = 0

    # ---- what Booking.com is ----------------------------------------------------------
    def today(self, hotel: str | None = None) -> date:
        """Booking.com counts dates in the CET day, whatever the hotel's own zone."""
        return datetime.now(CET).date()

    def new_booking_id(self) -> str:
        self._booking_seq += 1
        return f"{4000000000 + int(time.time()) % 100000 * 1000 + self._booking_seq % 1000:010d}"

    def protocol_routes(self) -> list[web.RouteDef]:
        return [
            web.post("/hotels/ota/OTA_HotelAvailNotif", self._h_avail),
            web.post("/hotels/ota/OTA_HotelRateAmountNotif", self._h_rates),
            web.get("/hotels/ota/OTA_HotelResNotif", self._h_new_feed),
            web.post("/hotels/ota/OTA_HotelResNotif", self._h_new_ack),
            web.get("/hotels/ota/OTA_HotelResModifyNotif", self._h_modify_feed),
            web.post("/hotels/ota/OTA_HotelResModifyNotif", self._h_modify_ack),
            web.post("/hotels/xml/roomrateavailability", self._h_readback),
            web.post(TOKEN_PATH, self._h_token),
        ]

    # ---- answers ----------------------------------------------------------------------
    def _ruid(self) -> str:
        ruid = base64.b64encode(secrets.token_bytes(36)).decode("ascii")
        self.ruids.append(ruid)
        del self.ruids[:-1000]
        return ruid

    def _respond(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                 content_type: str = "text/xml") -> web.Response:
        body = body.rstrip(b"\n") + f"\n<!-- RUID: [{self._ruid()}] -->\n".encode()
        return web.Response(status=status, body=body, content_type=content_type, charset="utf-8", headers=headers)

    @staticmethod
    def _doc(el: etree._Element) -> bytes:
        return etree.tostring(el, xml_declaration=True, encoding="UTF-8")

    def _rs(self, name: str) -> etree._Element:
        return etree.Element(NS + name, nsmap={None: OTA_NS}, TimeStamp=datetime.now(UTC).replace(
            microsecond=0).isoformat(), Target="Production", Version="2.001")

    def _answer(self, rs_name: str, applied: int, problems: list[tuple[str, str, str]],
                warnings: list[tuple[str, str, str]]) -> web.Response:
        """200 Success (+Warnings naming what did not apply) or 400 Errors when nothing applied."""
        root = self._rs(rs_name)
        if problems and applied == 0:
            errs = etree.SubElement(root, NS + "Errors")
            for record, code, text in problems:
                e = etree.SubElement(errs, NS + "Error", Type="3", Code=code, ShortText=text[:64], RecordID=record)
                e.text = text
            return self._respond(400, self._doc(root))
        etree.SubElement(root, NS + "Success")
        if problems or warnings:
            ws = etree.SubElement(root, NS + "Warnings")
            for record, code, text in problems + warnings:
                w = etree.SubElement(ws, NS + "Warning", Type="3", Code=code, ShortText=text[:64], RecordID=record)
                w.text = text
        return self._respond(200, self._doc(root))

    def _refusal(self, rs_name: str | None, e: Refused, headers: dict[str, str] | None = None) -> web.Response:
        if rs_name is None:  # Booking.com's bare error document (auth, transport)
            root = etree.Element("Errors")
            err = etree.SubElement(root, "Error", ShortText=e.text)
            if e.code:
                err.set("Code", e.code)
        else:
            root = self._rs(rs_name)
            errs = etree.SubElement(root, NS + "Errors")
            err = etree.SubElement(errs, NS + "Error", Type="3", ShortText=e.text[:64])
            if e.code:
                err.set("Code", e.code)
            err.text = e.text
        return self._respond(e.status, self._doc(root), headers)

    def fault_response(self, status: int, retry_after: float | None) -> web.Response:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        text = "Too many requests" if status == 429 else "Internal error, try again later"
        return self._refusal(None, Refused(status, None, text), headers)

    # ---- the gate every protocol request passes -----------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            want_user, want_pw = self.credentials.get("username"), self.credentials.get("password")
            return bool(want_user and want_pw) and hmac.compare_digest(user.encode(), want_user.encode()) \
                and hmac.compare_digest(password.encode(), want_pw.encode())
        if header.startswith("Bearer "):
            expires = self.tokens.get(header[7:].strip())
            return expires is not None and expires > self.clock()
        return False

    def _gate(self, request: web.Request, rs_name: str | None, *, version: bool = True) -> web.Response | None:
        if not self._authorized(request):
            return self._refusal(None, Refused(401, None, "Authorization Required"),
                                 {"WWW-Authenticate": 'Basic realm="Booking.com supply"'})
        if version and request.headers.get("Accept-Version") != "1.1":
            return self._refusal(rs_name, Refused(400, "VERSION_REQUIRED",
                                                  "send Accept-Version: 1.1 for the current message version"))
        return None

    async def _document(self, request: web.Request, expected: str) -> etree._Element:
        try:
            root = parse(await request.read())
        except ParseError as e:
            raise Refused(400, "XML_PARSE_ERROR", str(e)) from None
        if etree.QName(root).localname != expected or etree.QName(root).namespace != OTA_NS:
            raise Refused(400, "INVALID_REQUEST", f"expected {expected} in the OpenTravel 2003/05 namespace")
        return root

    def _hotel_of(self, root: etree._Element, group: str) -> tuple[str, etree._Element]:
        groups = root.findall(NS + group)
        if not groups:
            raise Refused(400, "INVALID_REQUEST", f"the message has no {group}")
        codes = {g.get("HotelCode") for g in groups}
        if len(groups) > 1 or len(codes) != 1:
            raise Refused(400, "MULTIPLE_HOTELS", "only one hotel per message is allowed")
        hotel = codes.pop()
        if not hotel or self.catalog.hotel(hotel) is None:
            raise Refused(403, "NO_ACCESS_TO_HOTEL", f"no access to hotel {hotel}")
        return hotel, groups[0]

    def _span(self, msg: etree._Element) -> tuple[date, date, str | None, str | None]:
        sac = msg.find(NS + "StatusApplicationControl")
        if sac is None:
            raise ValueError("StatusApplicationControl is missing")
        try:
            start, end = date.fromisoformat(sac.get("Start", "")), date.fromisoformat(sac.get("End", ""))
        except ValueError:
            raise ValueError("Start and End must be dates (YYYY-MM-DD)") from None
        return start, end, sac.get("InvTypeCode"), sac.get("RatePlanCode")

    def _check_months(self, spans: list[tuple[date, date]]) -> None:
        months = {(d.year, d.month) for s, e in spans for d in (s, e)}
        if len(months) > 1:
            raise Refused(400, "MULTIPLE_MONTHS", "only one calendar month per message is allowed")

    def _check_dates(self, start: date, end: date) -> str | None:
        today = self.today()
        if end < start:
            return "End is before Start"
        if start < today - timedelta(days=1):
            return f"{start} is more than one day in the past (today is {today} CET)"
        if end > today + timedelta(days=MAX_DAYS_AHEAD):
            return f"{end} is too far in the future"
        return None

    def _check_codes(self, hotel: str, room: str | None, rate: str | None) -> str | None:
        if not room or not self.catalog.has_room(hotel, room):
            return f"room {room} is not a room of hotel {hotel}"
        if rate is not None and not self.catalog.has_rate(hotel, room, rate):
            return f"rate {rate} is not a rate of room {room}"
        return None

    # ---- availability and restrictions --------------------------------------------------
    async def _h_avail(self, request: web.Request) -> web.Response:
        rs = "OTA_HotelAvailNotifRS"
        denied = self._gate(request, rs)
        if denied:
            return denied
        try:
            root = await self._document(request, "OTA_HotelAvailNotifRQ")
            hotel, group = self._hotel_of(root, "AvailStatusMessages")
            msgs = group.findall(NS + "AvailStatusMessage")
            if not msgs:
                raise Refused(400, "INVALID_REQUEST", "no AvailStatusMessage")
            spans = []
            for m in msgs:
                try:
                    s, e, _, _ = self._span(m)
                    spans.append((s, e))
                except ValueError:
                    pass
            self._check_months(spans)
        except Refused as e:
            return self._refusal(rs, e)
        problems, warnings, seen, applied = [], [], set(), 0
        for pos, m in enumerate(msgs, 1):
            record = m.get("LocatorID") or str(pos)
            try:
                start, end, room, rate = self._span(m)
            except ValueError as e:
                problems.append((record, "NOT_A_VALID_DATE", str(e)))
                continue
            bad = self._check_dates(start, end)
            if bad:
                problems.append((record, "NOT_A_VALID_DATE", bad))
                continue
            bad = self._check_codes(hotel, room, rate)
            if bad:
                problems.append((record, "ROOM_ID_INVALID", bad))
                continue
            try:
                values, facets = self._avail_values(m, rate)
            except ValueError as e:
                problems.append((record, "INVALID_VALUE", str(e)))
                continue
            facets = [(room, *f) for f in facets]  # a date repeats only for the same room (and rate)
            days = _days(start, end)
            if any((f, d) in seen for f in facets for d in days):
                warnings.append((record, "WARN_DUPLICATE_DATES", DUPLICATE_TEXT))
                continue
            seen.update((f, d) for f in facets for d in days)
            for level_rate, vals in values.items():
                for d in days:
                    self.set_cell(hotel, room, level_rate, d, **vals)
            applied += 1
        return self._answer(rs, applied, problems, warnings)

    @staticmethod
    def _avail_values(m: etree._Element, rate: str | None) -> tuple[dict[str | None, dict[str, Any]], list[tuple]]:
        values: dict[str | None, dict[str, Any]] = {}
        facets: list[tuple] = []
        limit = m.get("BookingLimit")
        if limit is not None:
            if rate is not None:
                raise ValueError("BookingLimit is set on room-level messages (InvTypeCode only)")
            if not limit.isdigit():
                raise ValueError(f"BookingLimit {limit!r} is not a number of rooms")
            values.setdefault(None, {})["rooms_to_sell"] = int(limit)
            facets.append(("rooms",))
        for los in m.findall(f"{NS}LengthsOfStay/{NS}LengthOfStay"):
            kind, t = los.get("MinMaxMessageType"), los.get("Time", "")
            if not t.isdigit():
                raise ValueError(f"LengthOfStay Time {t!r} is not a number of nights")
            field = {"SetMinLOS": "min_los", "SetMaxLOS": "max_los"}.get(kind or "")
            if field is None:
                if kind == "SetForwardMinStay":
                    continue  # accepted, not modelled in the cells
                raise ValueError(f"MinMaxMessageType {kind!r} is not supported")
            values.setdefault(rate, {})[field] = int(t)
            facets.append((field, rate))
        status = m.find(NS + "RestrictionStatus")
        if status is not None:
            restriction = status.get("Restriction") or "Master"
            field = {"Master": "stop_sell", "Arrival": "cta", "Departure": "ctd"}.get(restriction)
            if field is None or status.get("Status") not in ("Open", "Close"):
                raise ValueError(f"RestrictionStatus {restriction}/{status.get('Status')} is not supported")
            values.setdefault(rate, {})[field] = status.get("Status") == "Close"
            facets.append((field, rate))
        return values, facets

    # ---- prices -------------------------------------------------------------------------
    async def _h_rates(self, request: web.Request) -> web.Response:
        rs = "OTA_HotelRateAmountNotifRS"
        denied = self._gate(request, rs)
        if denied:
            return denied
        try:
            root = await self._document(request, "OTA_HotelRateAmountNotifRQ")
            hotel, group = self._hotel_of(root, "RateAmountMessages")
            msgs = group.findall(NS + "RateAmountMessage")
            if not msgs:
                raise Refused(400, "INVALID_REQUEST", "no RateAmountMessage")
            spans = []
            for m in msgs:
                try:
                    s, e, _, _ = self._span(m)
                    spans.append((s, e))
                except ValueError:
                    pass
            self._check_months(spans)
        except Refused as e:
            return self._refusal(rs, e)
        currency = self.catalog.hotel(hotel).currency
        problems, warnings, seen, applied = [], [], set(), 0
        for pos, m in enumerate(msgs, 1):
            record = m.get("LocatorID") or str(pos)
            try:
                start, end, room, rate = self._span(m)
            except ValueError as e:
                problems.append((record, "NOT_A_VALID_DATE", str(e)))
                continue
            bad = self._check_dates(start, end)
            if bad:
                problems.append((record, "NOT_A_VALID_DATE", bad))
                continue
            if rate is None:
                problems.append((record, "ROOM_ID_INVALID", "prices need a RatePlanCode"))
                continue
            bad = self._check_codes(hotel, room, rate)
            if bad:
                problems.append((record, "ROOM_ID_INVALID", bad))
                continue
            amounts = m.findall(f"{NS}Rates/{NS}Rate/{NS}BaseByGuestAmts/{NS}BaseByGuestAmt")
            if not amounts:
                problems.append((record, "INVALID_VALUE", "no BaseByGuestAmt"))
                continue
            if any((a.get("CurrencyCode") or "") != currency for a in amounts):
                problems.append((record, "CURRENCY_CODE_DONT_MATCH_HOTEL_CURRENCY",
                                 f"hotel {hotel} sells in {currency}"))
                continue
            try:
                prices = {}
                for a in amounts:
                    guests = a.get("NumberOfGuests", "")
                    if not guests.isdigit() or int(guests) < 1:
                        raise ValueError(f"NumberOfGuests {guests!r} is not a number of guests")
                    prices[int(guests)] = _amount_minor(a.get("AmountAfterTax"), a.get("DecimalPlaces"), currency)
            except ValueError as e:
                problems.append((record, "INVALID_VALUE", f"{e}"))
                continue
            days = _days(start, end)
            facets = [("price", room, rate, g) for g in prices]
            if any((f, d) in seen for f in facets for d in days):
                warnings.append((record, "WARN_DUPLICATE_DATES", DUPLICATE_TEXT))
                continue
            seen.update((f, d) for f in facets for d in days)
            top = prices[max(prices)]
            for d in days:
                old = (self.cell(hotel, room, rate, d) or {}).get("prices") or {}
                self.set_cell(hotel, room, rate, d, price_minor=top, currency=currency, prices={**old, **prices})
            applied += 1
        return self._answer(rs, applied, problems, warnings)

    # ---- reservations -------------------------------------------------------------------
    async def _h_new_feed(self, request: web.Request) -> web.Response:
        return await self._h_feed(request, "new")

    async def _h_modify_feed(self, request: web.Request) -> web.Response:
        return await self._h_feed(request, "modify")

    async def _h_new_ack(self, request: web.Request) -> web.Response:
        return await self._h_ack(request, "new")

    async def _h_modify_ack(self, request: web.Request) -> web.Response:
        return await self._h_ack(request, "modify")

    def _feed_events(self, feed: str, hotels: set[str] | None) -> list[tuple[SandboxBooking, BookingEvent]]:
        return [(b, e) for b, e in self.pending_events()
                if (e.action == "new") == (feed == "new") and (not hotels or b.data["hotel"] in hotels)]

    async def _h_feed(self, request: web.Request, feed: str) -> web.Response:
        root_name = "OTA_HotelResNotifRQ" if feed == "new" else "OTA_HotelResModifyNotifRQ"
        denied = self._gate(request, None)
        if denied:
            return denied
        hotels = None
        if request.query.get("hotel_ids"):
            hotels = {h.strip() for h in request.query["hotel_ids"].split(",") if h.strip()}
            unknown = [h for h in hotels if self.catalog.hotel(h) is None]
            if unknown:
                return self._refusal(None, Refused(403, "NO_ACCESS_TO_HOTEL", f"no access to hotel {unknown[0]}"))
        events = self._feed_events(feed, hotels)
        body = self._doc(self.reservations_message(root_name, events))
        for _, e in events:
            e.state = "delivered"
            e.attempts += 1
        if events and self.malformed():
            body = self.corrupt(body)
            for _, e in events:
                e.last_error = "served corrupted (fault injection)"
        return self._respond(200, body)

    def reservations_message(self, root_name: str, events: list[tuple[SandboxBooking, BookingEvent]]) -> etree._Element:
        """Our own writer of OTA_HotelResNotifRQ / OTA_HotelResModifyNotifRQ (valid against 2015B)."""
        root = etree.Element(NS + root_name, nsmap={None: OTA_NS},
                             TimeStamp=datetime.now(UTC).isoformat(timespec="seconds"),
                             Target="Production", Version="2.001")
        if not events:
            return root
        if root_name == "OTA_HotelResNotifRQ":
            holder, tag = etree.SubElement(root, NS + "HotelReservations"), "HotelReservation"
        else:
            holder, tag = etree.SubElement(root, NS + "HotelResModifies"), "HotelResModify"
        for booking, event in events:
            self._reservation(holder, tag, booking, event)
        return root

    def _reservation(self, holder: etree._Element, tag: str, booking: SandboxBooking, event: BookingEvent) -> None:
        d = event.snapshot
        status = {"new": "Commit", "modify": "Modify", "cancel": "Cancel"}[event.action]
        res = etree.SubElement(holder, NS + tag, ResStatus=status,
                               CreateDateTime=booking.events[0].created_at.isoformat(),
                               LastModifyDateTime=event.created_at.isoformat())
        S = lambda parent, name, **attrs: etree.SubElement(parent, NS + name, **attrs)
        currency = d.get("currency") or "EUR"
        checkin, checkout = date.fromisoformat(d["checkin"]), date.fromisoformat(d["checkout"])
        nights = _days(checkin, checkout - timedelta(days=1))
        total = int(d.get("amount_minor") or 0)
        per_night = [total // len(nights)] * len(nights)
        per_night[-1] += total - sum(per_night)
        stays = S(res, "RoomStays")
        stay = S(stays, "RoomStay", IndexNumber="1")
        S(S(stay, "RoomTypes"), "RoomType", RoomTypeCode=d["room"], NumberOfUnits=str(d.get("rooms", 1)))
        if d.get("rate"):
            S(S(stay, "RatePlans"), "RatePlan", RatePlanCode=d["rate"])
        room_rate = S(S(stay, "RoomRates"), "RoomRate", RoomTypeCode=d["room"], NumberOfUnits=str(d.get("rooms", 1)),
                      **({"RatePlanCode": d["rate"]} if d.get("rate") else {}))
        rates = S(room_rate, "Rates")
        for night, amount in zip(nights, per_night):
            r = S(rates, "Rate", EffectiveDate=night.isoformat(), ExpireDate=(night + timedelta(days=1)).isoformat(),
                  RateTimeUnit="Day", UnitMultiplier="1")
            S(r, "Base", AmountAfterTax=_money_text(amount, currency), CurrencyCode=currency)
        S(S(stay, "GuestCounts"), "GuestCount", AgeQualifyingCode="10", Count=str(d.get("guests", 2)))
        S(stay, "TimeSpan", Start=checkin.isoformat(), End=checkout.isoformat())
        S(stay, "Total", AmountAfterTax=_money_text(total, currency), CurrencyCode=currency)
        S(stay, "BasicPropertyInfo", HotelCode=d["hotel"])
        guest = d.get("guest") or {}
        if guest.get("name") or guest.get("phone") or guest.get("email"):
            customer = S(S(S(S(S(S(res, "ResGuests"), "ResGuest"), "Profiles"), "ProfileInfo"), "Profile"), "Customer")
            name = (guest.get("name") or "").strip()
            if name:
                person = S(customer, "PersonName")
                given, _, surname = name.rpartition(" ")
                if given:
                    S(person, "GivenName").text = given
                S(person, "Surname").text = surname
            if guest.get("phone"):
                S(customer, "Telephone", PhoneTechType="1", PhoneNumber=guest["phone"])
            if guest.get("email"):
                S(customer, "Email").text = guest["email"]
        glob = S(res, "ResGlobalInfo")
        if d.get("special_requests"):
            S(S(S(glob, "SpecialRequests"), "SpecialRequest", Name="guest request"), "Text").text = d["special_requests"]
        S(glob, "Total", AmountAfterTax=_money_text(total, currency), CurrencyCode=currency)
        S(S(glob, "HotelReservationIDs"), "HotelReservationID", ResID_Type="14", ResID_Value=booking.ota_booking_id,
          ResID_Source="Booking.com", ResID_Date=booking.events[0].created_at.isoformat())
        S(glob, "BasicPropertyInfo", HotelCode=d["hotel"])

    async def _h_ack(self, request: web.Request, feed: str) -> web.Response:
        rs = "OTA_HotelResNotifRS" if feed == "new" else "OTA_HotelResModifyNotifRS"
        denied = self._gate(request, rs)
        if denied:
            return denied
        try:
            root = await self._document(request, rs)
        except Refused as e:
            return self._refusal(rs, e)
        if root.find(NS + "Success") is None:
            return self._refusal(rs, Refused(400, "INVALID_REQUEST", "an acknowledgement holds Success"))
        if self.faults.ack_error_rate and self.rng.random() < self.faults.ack_error_rate:
            return self.fault_response(self.faults.status, self.faults.retry_after)
        element = "HotelReservation" if feed == "new" else "HotelResModify"
        acked, warnings = 0, []
        for res in root.iter(NS + element):
            glob = res.find(NS + "ResGlobalInfo")
            ids = glob.findall(f"{NS}HotelReservationIDs/{NS}HotelReservationID") if glob is not None else []
            prop = glob.find(NS + "BasicPropertyInfo") if glob is not None else None
            for rid in ids:
                oid = rid.get("ResID_Value")
                booking = self.bookings.get(oid or "")
                if booking is None:
                    warnings.append((oid or "-", "RESERVATION_NOT_FOUND", f"reservation {oid} not found"))
                    continue
                if prop is not None and prop.get("HotelCode") not in (None, booking.data["hotel"]):
                    warnings.append((oid, "HOTEL_ID_INVALID",
                                     f"reservation {oid} is not of hotel {prop.get('HotelCode')}"))
                    continue
                for e in booking.events:
                    if e.state == "delivered" and (e.action == "new") == (feed == "new"):
                        e.state = "acknowledged"
                        e.last_error = None
                acked += 1
        if acked == 0 and warnings:
            return self._refusal(rs, Refused(404, warnings[0][1], warnings[0][2]))
        return self._answer(rs, acked, [], warnings)

    # ---- B.XML read-back (modelled) -------------------------------------------------------
    async def _h_readback(self, request: web.Request) -> web.Response:
        denied = self._gate(request, None, version=False)
        if denied:
            return denied
        try:
            try:
                req = parse(await request.read())
            except ParseError as e:
                raise Refused(400, "XML_PARSE_ERROR", str(e)) from None
            hotel = (req.findtext("hotel_id") or "").strip()
            try:
                start = date.fromisoformat((req.findtext("date_from") or "").strip())
                end = date.fromisoformat((req.findtext("date_to") or "").strip())
            except ValueError:
                raise Refused(400, "NOT_A_VALID_DATE", "date_from and date_to must be dates") from None
            h = self.catalog.hotel(hotel)
            if h is None:
                raise Refused(403, "NO_ACCESS_TO_HOTEL", f"no access to hotel {hotel}")
            if not 1 <= (end - start).days + 1 <= READBACK_MAX_DAYS:
                raise Refused(400, "NOT_A_VALID_DATE", f"a request covers 1 to {READBACK_MAX_DAYS} days")
        except Refused as e:
            return self._refusal(None, e)
        out = etree.Element("roomrateavailability", hotel_id=hotel, currency=h.currency)
        for room, rates in sorted(h.rooms.items()):
            room_el = None
            for d in _days(start, end):
                room_cell = self.cell(hotel, room, None, d)
                rate_cells = [(r, self.cell(hotel, room, r, d)) for r in rates]
                rate_cells = [(r, c) for r, c in rate_cells if c is not None]
                if room_cell is None and not rate_cells:
                    continue
                if room_el is None:
                    room_el = etree.SubElement(out, "room", id=room)
                date_el = etree.SubElement(room_el, "date", value=d.isoformat())
                if room_cell is not None and room_cell.get("rooms_to_sell") is not None:
                    etree.SubElement(date_el, "roomstosell").text = str(room_cell["rooms_to_sell"])
                for r, c in rate_cells:
                    rate_el = etree.SubElement(date_el, "rate", id=r)
                    for guests, minor in sorted((c.get("prices") or {}).items()):
                        etree.SubElement(rate_el, "price", persons=str(guests)).text = _money_text(
                            minor, c.get("currency") or h.currency)
                    for tag, key in (("minimumstay", "min_los"), ("maximumstay", "max_los")):
                        if c.get(key) is not None:
                            etree.SubElement(rate_el, tag).text = str(c[key])
                    for tag, key in (("closed", "stop_sell"), ("closedonarrival", "cta"),
                                     ("closedondeparture", "ctd")):
                        if c.get(key) is not None:
                            etree.SubElement(rate_el, tag).text = "1" if c[key] else "0"
        return self._respond(200, self._doc(out))

    # ---- token auth (modelled endpoint) ---------------------------------------------------
    async def _h_token(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read())
            client_id, secret = str(data["client_id"]), str(data["client_secret"])
        except (ValueError, KeyError, TypeError):
            return self._refusal(None, Refused(400, "INVALID_REQUEST", "send JSON with client_id and client_secret"))
        want_id, want_secret = self.credentials.get("key"), self.credentials.get("secret")
        if not (want_id and want_secret and hmac.compare_digest(client_id.encode(), want_id.encode())
                and hmac.compare_digest(secret.encode(), want_secret.encode())):
            return self._refusal(None, Refused(401, None, "Authorization Required"))
        now = self.clock()
        issued = self.issued.setdefault(client_id, deque())
        while issued and now - issued[0] >= 3600:
            issued.popleft()
        if len(issued) >= TOKENS_PER_HOUR:
            wait = max(1, int(3600 - (now - issued[0])) + 1)
            return self._refusal(None, Refused(429, "TOO_MANY_TOKENS", f"at most {TOKENS_PER_HOUR} tokens an hour"),
                                 {"Retry-After": str(wait)})
        issued.append(now)
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64url(json.dumps({"sub": client_id, "iat": int(now), "exp": int(now) + TOKEN_LIFETIME,
                                      "jti": secrets.token_hex(8)}).encode())
        signature = _b64url(hmac.new(self._signing_key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        jwt = f"{header}.{payload}.{signature}"
        self.tokens[jwt] = now + TOKEN_LIFETIME
        ruid = self._ruid()
        return web.json_response({"jwt": jwt, "expires_in": TOKEN_LIFETIME, "ruid": ruid})
