"""A faithful fake Ctrip / Trip.com over real HTTP, on the paths of the partner note.

It reads requests with its own lxml code (through the safe ``adapters.base.xml.parse``)
and writes the bookings it pushes with its own writer; it never imports the adapter's
codec or client. It enforces what the note says Ctrip enforces: ``RequestorID @ID
@MessagePassword`` (``Error Type="4" Code="497"``), known hotel, room type and rate plan,
at most 365 days per message, the sale horizon (today .. today + 365 in the hotel's zone, and
yesterday too until 06:00 there: late-night rooms, 凌晨房),
and answers ``Success`` or ``Errors`` (HTTP 200, bare or SOAP as the request came).

Where the note is silent the sandbox decides, the same way the codec guesses: a message
is applied whole or not at all; a refused part is named by ``Error/@RecordID`` = its
``LocatorID``; unknown codes, bad dates and too long spans are ``Type="3" Code="450"``.
Bookings are pushed to ``deliver_to`` as ``OTA_HotelResRQ`` (``ResStatus`` Commit / Modify,
``SequenceNmbr`` = the revision) and ``OTA_CancelRQ`` (``UniqueID`` Type 14 = the order,
Type 10 = the hotel); an answer counts as accepted when it has no Errors and says
``ResStatus`` S / C (or ``OTA_CancelRS @Status="Cancelled"``).
"""

from __future__ import annotations

import hmac
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web
from lxml import etree

from adapters.base.errors import ParseError
from adapters.base.sandbox import BookingEvent, Sandbox, SandboxBooking, SandboxCatalog
from adapters.base.xml import OTA_NS, parse
from channelmgr.money import EXPONENT

NS = f"{{{OTA_NS}}}"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ACTION = "http://www.opentravel.org/OTA/2003/05/Request"
AVAIL_PATHS = ("/Hotel/OTAReceive/HotelAvailNotif.asmx", "/OTA_HotelAvailNotif")
RATE_PATHS = ("/Hotel/OTAReceive/HotelRateAmountNotif.asmx", "/OTA_HotelRateAmountNotif")
MAX_DAYS = 365
HORIZON_DAYS = 365
AUTH, UNABLE, SYSTEM = "497", "450", "448"


class Refused(Exception):
    def __init__(self, code: str, text: str, type_: str = "3", record: str | None = None):
        super().__init__(text)
        self.code, self.text, self.type, self.record = code, text, type_, record


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _minor(text: str | None, currency: str) -> int:
    if not text or not re.fullmatch(r"\d{1,15}(\.\d{1,9})?", text.strip()):
        raise ValueError(f"AmountAfterTax {text!r} is not an amount")
    value = Decimal(text.strip()).scaleb(EXPONENT.get(currency.upper(), 2))
    if value != value.to_integral_value():
        raise ValueError(f"{text} has more decimals than {currency} allows")
    return int(value)


def _money(minor: int, currency: str) -> str:
    exp = EXPONENT.get(currency.upper(), 2)
    return f"{Decimal(minor).scaleb(-exp):.{exp}f}" if exp else str(minor)


class CtripSandbox(Sandbox):
    name = "ctrip"
    delivery = "push"
    id_prefix = "CT"
    inventory_level = "room"

    def __init__(self, catalog: SandboxCatalog, credentials: dict[str, str], deliver_to: str | None = None,
                 *, seed: int | None = None):
        super().__init__(catalog, credentials, deliver_to, seed=seed)
        self.soap_delivery = False  # push bookings in a SOAP envelope
        self.answers: list[bytes] = []  # what the receiver answered, newest last

    def new_booking_id(self) -> str:
        return str(int(super().new_booking_id()[len(self.id_prefix):]) + 1_000_000_000)

    def protocol_routes(self) -> list[web.RouteDef]:
        return ([web.post(p, self._h_avail) for p in AVAIL_PATHS]
                + [web.post(p, self._h_rates) for p in RATE_PATHS])

    # ---- answers ------------------------------------------------------------------------
    @staticmethod
    def _rs(name: str) -> etree._Element:
        return etree.Element(NS + name, nsmap={None: OTA_NS}, Version="1.0",
                             TimeStamp=datetime.now(UTC).replace(microsecond=0).isoformat())

    @staticmethod
    def _respond(root: etree._Element, soap: bool, status: int = 200) -> web.Response:
        if soap:
            env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soap": SOAP_NS})
            etree.SubElement(env, f"{{{SOAP_NS}}}Body").append(root)
            root = env
        return web.Response(status=status, body=etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
                            content_type="text/xml", charset="utf-8")

    def _errors(self, rs_name: str, errors: list[Refused], soap: bool, status: int = 200) -> web.Response:
        root = self._rs(rs_name)
        errs = etree.SubElement(root, NS + "Errors")
        for e in errors:
            el = etree.SubElement(errs, NS + "Error", Type=e.type, Code=e.code, ShortText=e.text[:255])
            if e.record:
                el.set("RecordID", e.record)
        return self._respond(root, soap, status)

    def fault_response(self, status: int, retry_after: float | None) -> web.Response:
        root = self._rs("OTA_HotelAvailNotifRS")
        etree.SubElement(etree.SubElement(root, NS + "Errors"), NS + "Error", Type="1", Code=SYSTEM,
                         ShortText="too many requests" if status == 429 else "system error, try again later")
        resp = self._respond(root, False, status)
        if retry_after is not None:
            resp.headers["Retry-After"] = f"{retry_after:g}"
        return resp

    # ---- the gate -----------------------------------------------------------------------
    async def _read(self, request: web.Request, expected: str) -> tuple[etree._Element, bool]:
        try:
            doc = parse(await request.read())
        except ParseError as e:
            raise Refused(UNABLE, f"unable to process: {e}") from None
        soap = etree.QName(doc).namespace == SOAP_NS
        if soap:
            body = doc.find(f"{{{SOAP_NS}}}Body")
            if body is None or len(body) == 0:
                raise Refused(UNABLE, "the SOAP envelope has no Body")
            doc = body[0]
        if etree.QName(doc).localname != expected or etree.QName(doc).namespace != OTA_NS:
            raise Refused(UNABLE, f"expected {expected} in the OpenTravel 2003/05 namespace")
        return doc, soap

    def _check_auth(self, root: etree._Element) -> None:
        rid = root.find(f"{NS}POS/{NS}Source/{NS}RequestorID")
        got_id = rid.get("ID", "") if rid is not None else ""
        got_pw = rid.get("MessagePassword", "") if rid is not None else ""
        want_id, want_pw = self.credentials.get("username", ""), self.credentials.get("password", "")
        ok = bool(want_id and want_pw) and hmac.compare_digest(got_id.encode(), want_id.encode()) \
            and hmac.compare_digest(got_pw.encode(), want_pw.encode())
        if not ok:
            raise Refused(AUTH, "authorization failed: RequestorID or MessagePassword is wrong", "4")

    def _hotel(self, root: etree._Element, group: str) -> tuple[str, etree._Element]:
        g = root.find(NS + group)
        if g is None:
            raise Refused(UNABLE, f"the message has no {group}")
        hotel = g.get("HotelCode") or ""
        if self.catalog.hotel(hotel) is None:
            raise Refused(UNABLE, f"unknown hotel {hotel}")
        return hotel, g

    def _control(self, m: etree._Element, hotel: str, record: str) -> tuple[date, date, str, str | None]:
        sac = m.find(NS + "StatusApplicationControl")
        if sac is None:
            raise Refused(UNABLE, "StatusApplicationControl is missing", record=record)
        try:
            start, end = date.fromisoformat(sac.get("Start", "")), date.fromisoformat(sac.get("End", ""))
        except ValueError:
            raise Refused(UNABLE, "Start and End must be dates", record=record) from None
        room, rate = sac.get("InvTypeCode") or "", sac.get("RatePlanCode")
        if not self.catalog.has_room(hotel, room):
            raise Refused(UNABLE, f"unknown room type {room}", record=record)
        if rate is not None and not self.catalog.has_rate(hotel, room, rate):
            raise Refused(UNABLE, f"unknown rate plan {rate} of room type {room}", record=record)
        today = self.today(hotel)
        if end < start:
            raise Refused(UNABLE, "End is before Start", record=record)
        first = today - timedelta(days=1) if self.late_night(hotel) else today
        if start < first or end > today + timedelta(days=HORIZON_DAYS):
            raise Refused(UNABLE, f"{start}..{end} is outside the sale horizon {first}..{today + timedelta(days=HORIZON_DAYS)}"
                                  f" (today is {today}; yesterday is sold until 06:00)", record=record)
        return start, end, room, rate

    def _check_span(self, spans: list[tuple[date, date]]) -> None:
        if spans:
            days = (max(e for _, e in spans) - min(s for s, _ in spans)).days + 1
            if days > MAX_DAYS:
                raise Refused(UNABLE, f"a message may span at most {MAX_DAYS} days; this one spans {days}")

    # ---- ARI ----------------------------------------------------------------------------
    async def _h_avail(self, request: web.Request) -> web.Response:
        return await self._notif(request, "OTA_HotelAvailNotifRQ", "OTA_HotelAvailNotifRS",
                                 "AvailStatusMessages", "AvailStatusMessage", self._avail_values)

    async def _h_rates(self, request: web.Request) -> web.Response:
        return await self._notif(request, "OTA_HotelRateAmountNotifRQ", "OTA_HotelRateAmountNotifRS",
                                 "RateAmountMessages", "RateAmountMessage", self._rate_values)

    async def _notif(self, request: web.Request, rq: str, rs: str, group: str, tag: str, values) -> web.Response:
        soap = False
        try:
            root, soap = await self._read(request, rq)
            self._check_auth(root)
            hotel, g = self._hotel(root, group)
            msgs = g.findall(NS + tag)
            if not msgs:
                raise Refused(UNABLE, f"no {tag}")
        except Refused as e:
            return self._errors(rs, [e], soap)
        currency = self.catalog.hotel(hotel).currency
        problems: list[Refused] = []
        writes: list[tuple[str, str | None, list[date], dict[str, Any]]] = []
        spans = []
        for pos, m in enumerate(msgs, 1):
            record = m.get("LocatorID") or str(pos)
            try:
                start, end, room, rate = self._control(m, hotel, record)
                spans.append((start, end))
                for level_rate, vals in values(m, rate, currency, record).items():
                    writes.append((room, level_rate, _days(start, end), vals))
            except Refused as e:
                problems.append(e)
        try:
            self._check_span(spans)
        except Refused as e:
            problems.insert(0, e)
        if problems:  # Ctrip applies a message whole or not at all
            return self._errors(rs, problems, soap)
        for room, rate, days, vals in writes:
            for d in days:
                if "prices" in vals:
                    old = (self.cell(hotel, room, rate, d) or {}).get("prices") or {}
                    prices = {**old, **vals["prices"]}
                    self.set_cell(hotel, room, rate, d, prices=prices, price_minor=prices[max(prices)],
                                  currency=vals["currency"])
                else:
                    self.set_cell(hotel, room, rate, d, **vals)
        root = self._rs(rs)
        etree.SubElement(root, NS + "Success")
        return self._respond(root, soap)

    @staticmethod
    def _avail_values(m: etree._Element, rate: str | None, currency: str, record: str) -> dict[str | None, dict]:
        values: dict[str | None, dict[str, Any]] = {}
        limit = m.get("BookingLimit")
        if limit is not None:
            if m.get("BookingLimitMessageType") not in (None, "SetLimit"):
                raise Refused(UNABLE, "BookingLimitMessageType must be SetLimit", record=record)
            if not limit.isdigit():
                raise Refused(UNABLE, f"BookingLimit {limit!r} is not a number of rooms", record=record)
            values.setdefault(None, {})["rooms_to_sell"] = int(limit)  # rooms are held per room type
        for los in m.findall(f"{NS}LengthsOfStay/{NS}LengthOfStay"):
            kind, t = los.get("MinMaxMessageType"), los.get("Time", "")
            field = {"SetMinLOS": "min_los", "SetMaxLOS": "max_los"}.get(kind or "")
            if field is None or not t.isdigit():
                raise Refused(UNABLE, f"LengthOfStay {kind}/{t} is not supported", record=record)
            values.setdefault(rate, {})[field] = int(t)
        status = m.find(NS + "RestrictionStatus")
        if status is not None:
            field = {"Master": "stop_sell", "Arrival": "cta", "Departure": "ctd"}.get(
                status.get("Restriction") or "Master")
            if field is None or status.get("Status") not in ("Open", "Close"):
                raise Refused(UNABLE, "RestrictionStatus must be Master|Arrival|Departure and Open|Close",
                              record=record)
            values.setdefault(rate, {})[field] = status.get("Status") == "Close"
        if not values:
            raise Refused(UNABLE, "the message sets nothing", record=record)
        return values

    @staticmethod
    def _rate_values(m: etree._Element, rate: str | None, currency: str, record: str) -> dict[str | None, dict]:
        if rate is None:
            raise Refused(UNABLE, "prices need a RatePlanCode", record=record)
        amounts = m.findall(f"{NS}Rates/{NS}Rate/{NS}BaseByGuestAmts/{NS}BaseByGuestAmt")
        if not amounts:
            raise Refused(UNABLE, "no BaseByGuestAmt", record=record)
        prices = {}
        for a in amounts:
            if (a.get("CurrencyCode") or "") != currency:
                raise Refused(UNABLE, f"currency must be the hotel's ({currency})", record=record)
            guests = a.get("NumberOfGuests", "")
            if not guests.isdigit() or int(guests) < 1:
                raise Refused(UNABLE, f"NumberOfGuests {guests!r} is not a number of guests", record=record)
            try:
                prices[int(guests)] = _minor(a.get("AmountAfterTax"), currency)
            except ValueError as e:
                raise Refused(UNABLE, str(e), record=record) from None
        return {rate: {"prices": prices, "currency": currency}}

    # ---- bookings pushed to the channel manager ----------------------------------------
    def _pos(self, root: etree._Element) -> None:
        rid = etree.SubElement(etree.SubElement(etree.SubElement(root, NS + "POS"), NS + "Source"),
                               NS + "RequestorID", ID=self.credentials.get("username", ""),
                               MessagePassword=self.credentials.get("password", ""), Type="13")
        etree.SubElement(rid, NS + "CompanyName", Code="C", CodeContext="Ctrip")

    def booking_message(self, booking: SandboxBooking, event: BookingEvent) -> etree._Element:
        """Our own writer of OTA_HotelResRQ / OTA_CancelRQ (valid against OpenTravel 2015B)."""
        d = event.snapshot
        stamp = event.created_at.astimezone(UTC).replace(microsecond=0).isoformat()
        S = lambda parent, name, **attrs: etree.SubElement(parent, NS + name, **attrs)
        if event.action == "cancel":
            root = etree.Element(NS + "OTA_CancelRQ", nsmap={None: OTA_NS}, Version="1.0", TimeStamp=stamp,
                                 SequenceNmbr=str(event.revision), CancelType="Commit")
            self._pos(root)
            S(root, "UniqueID", Type="14", ID=booking.ota_booking_id)
            S(root, "UniqueID", Type="10", ID=d["hotel"])
            return root
        root = etree.Element(NS + "OTA_HotelResRQ", nsmap={None: OTA_NS}, Version="1.0", TimeStamp=stamp,
                             SequenceNmbr=str(event.revision), PrimaryLangID="zh-cn")
        self._pos(root)
        created = booking.events[0].created_at.astimezone(UTC).replace(microsecond=0).isoformat()
        res = S(S(root, "HotelReservations"), "HotelReservation", CreateDateTime=created, LastModifyDateTime=stamp,
                ResStatus="Modify" if event.action == "modify" else "Commit")
        currency = d.get("currency") or "CNY"
        checkin, checkout = date.fromisoformat(d["checkin"]), date.fromisoformat(d["checkout"])
        nights = _days(checkin, checkout - timedelta(days=1))
        total = int(d.get("amount_minor") or 0)
        per_night = [total // len(nights)] * len(nights)
        per_night[-1] += total - sum(per_night)
        rooms = str(d.get("rooms", 1))
        stay = S(S(res, "RoomStays"), "RoomStay")
        S(S(stay, "RoomTypes"), "RoomType", RoomTypeCode=d["room"], NumberOfUnits=rooms)
        if d.get("rate"):
            S(S(stay, "RatePlans"), "RatePlan", RatePlanCode=d["rate"])
        rr = S(S(stay, "RoomRates"), "RoomRate", RoomTypeCode=d["room"], NumberOfUnits=rooms,
               **({"RatePlanCode": d["rate"]} if d.get("rate") else {}))
        rates = S(rr, "Rates")
        for night, amount in zip(nights, per_night):
            r = S(rates, "Rate", EffectiveDate=night.isoformat(), ExpireDate=(night + timedelta(days=1)).isoformat())
            S(r, "Base", AmountAfterTax=_money(amount, currency), CurrencyCode=currency)
        S(S(stay, "GuestCounts"), "GuestCount", AgeQualifyingCode="10", Count=str(d.get("guests", 2)))
        S(stay, "TimeSpan", Start=checkin.isoformat(), End=checkout.isoformat())
        S(stay, "Total", AmountAfterTax=_money(total, currency), CurrencyCode=currency)
        S(stay, "BasicPropertyInfo", HotelCode=d["hotel"])
        guest = d.get("guest") or {}
        if guest.get("name") or guest.get("phone") or guest.get("email"):
            customer = S(S(S(S(S(S(res, "ResGuests"), "ResGuest"), "Profiles"), "ProfileInfo"), "Profile"),
                         "Customer")
            if guest.get("name"):
                S(S(customer, "PersonName"), "Surname").text = guest["name"]  # Ctrip sends the whole name
            if guest.get("phone"):
                S(customer, "Telephone", PhoneNumber=guest["phone"])
            if guest.get("email"):
                S(customer, "Email").text = guest["email"]
        glob = S(res, "ResGlobalInfo")
        if d.get("special_requests"):
            S(S(S(glob, "SpecialRequests"), "SpecialRequest"), "Text").text = d["special_requests"]
        S(glob, "Total", AmountAfterTax=_money(total, currency), CurrencyCode=currency)
        S(S(glob, "HotelReservationIDs"), "HotelReservationID", ResID_Type="501", ResID_Value=booking.ota_booking_id)
        S(glob, "BasicPropertyInfo", HotelCode=d["hotel"])
        return root

    def accepted(self, body: bytes, action: str) -> bool:
        """Whether the receiver's answer is a success: no Errors, ResStatus S/C (or Cancelled)."""
        try:
            root = parse(body)
        except ParseError:
            return False
        if etree.QName(root).namespace == SOAP_NS:
            b = root.find(f"{{{SOAP_NS}}}Body")
            if b is None or len(b) == 0:
                return False
            root = b[0]
        if root.find(NS + "Errors") is not None or root.find(NS + "Success") is None:
            return False
        if etree.QName(root).localname == "OTA_CancelRS":
            return action == "cancel" and root.get("Status") == "Cancelled"
        res = root.find(f"{NS}HotelReservations/{NS}HotelReservation")
        return res is not None and res.get("ResStatus") in ("S", "C")

    async def deliver(self, booking: SandboxBooking, event: BookingEvent) -> bool:
        if not self.deliver_to:
            return False
        root = self.booking_message(booking, event)
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        if self.soap_delivery:
            env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soap": SOAP_NS})
            etree.SubElement(env, f"{{{SOAP_NS}}}Body").append(root)
            root = env
            headers["SOAPAction"] = f'"{SOAP_ACTION}"'
        body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        if self.malformed():
            body = self.corrupt(body)
            event.last_error = "sent corrupted (fault injection)"
        async with self.client.post(self.deliver_to, data=body, headers=headers) as resp:
            answer = await resp.read()
        self.answers.append(answer)
        del self.answers[:-200]
        if event.state == "queued":
            event.state = "delivered"
        return resp.status == 200 and self.accepted(answer, event.action)
