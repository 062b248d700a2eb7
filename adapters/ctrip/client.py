"""The Ctrip / Trip.com channel: OpenTravel XML, ARI pushed to Ctrip, bookings pushed to us.

Every request goes through :class:`HttpClient` (one Exchange per call for the sync log,
credentials redacted, ``MessagePassword`` attributes masked besides).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import time
from typing import TYPE_CHECKING

from adapters.base.contract import (
    AriUpdate,
    BookingReceiver,
    BookingRevision,
    Capabilities,
    ChannelAdapter,
    ChannelSettings,
    ExchangeObserver,
    PushOutcome,
    SaleWindow,
    outcome,
)
from adapters.base.errors import AuthError, FatalError, ParseError, RetriableError
from adapters.base.http import HttpClient, Reply, classify_status
from adapters.ctrip import codec
from adapters.ctrip.auth import requestor
from adapters.ctrip.codec import Built, Options
from channelmgr.security import fields as guest_fields

if TYPE_CHECKING:  # pragma: no cover
    from aiohttp import web

Rejections = dict[int, tuple[str | None, str, bool]]  # item index -> (code, text, retriable)


# where Ctrip's OTA-XML carries names and free text (masked in the sync log)
GUEST_FIELDS = guest_fields(
    xml_names=("GivenName", "MiddleName", "Surname", "NamePrefix", "NameSuffix", "NameTitle", "PersonName"),
    xml_texts=("SpecialRequest", "SpecialRequests", "Comment", "Comments", "AddressLine", "Reasons"))

class CtripAdapter(ChannelAdapter):
    """Ctrip / Trip.com hotel direct connect (OTA_HotelAvailNotif, OTA_HotelRateAmountNotif,
    pushed OTA_HotelResRQ / OTA_CancelRQ / OTA_ReadRQ / OTA_HotelAvailRQ).

    Ctrip publishes no specification: ../shared/protocols/ctrip.md is derived from public
    partner code, and so is everything here. Every name from it (paths, the ``Sell`` code,
    the ``MealsIncluded @NumberOfBreakfast`` extension, ResID types 501/502, error codes)
    is a named constant in ``adapters/ctrip/codec.py``; guesses where it is silent are
    marked GUESS there. Settable in ``settings.options`` (:class:`~adapters.ctrip.codec.Options`):

    - ``soap``: wrap messages in a SOAP 1.1 envelope (``SOAPAction`` of the note); off by default;
    - ``avail_path`` / ``rates_path``: the ``.asmx`` endpoints under ``settings.endpoint``;
    - ``requestor_type``, ``company_code``, ``company_context``: RequestorID/@Type and CompanyName;
    - ``breakfast``: ``{rate code: breakfasts}`` sent as ``MealsIncluded`` on prices.

    Modifications are read from ``OTA_HotelResRQ`` with ``ResStatus="Modify"`` (that is
    what the sandbox sends) and from ``OTA_HotelResModifyRQ``. A message spans at most 365
    days; a batch that does not fit is refused here (FatalError) before anything is sent.
    Errors 497 -> AuthError, 448 / 498 -> RetriableError, others fatal or per item when
    ``Error/@RecordID`` names the message (LocatorID). Ctrip has no read-back.
    """

    name = "ctrip"
    capabilities = Capabilities(
        max_hotels_per_message=1,
        max_months_per_message=None,
        max_days_per_message=codec.MAX_DAYS_PER_MESSAGE,
        max_items_per_message=200,
        window=SaleWindow(
            ahead_days=codec.DAYS_AHEAD, past_days=0, zone=None, late_night_until=time(6, 0),
            known="Modelled: Ctrip sells from today in the hotel's zone to a year ahead, and keeps "
                  "selling tonight (凌晨房) for the previous date until 06:00, as Chinese OTAs do; "
                  "the note publishes no window."),
        supports_ranges=True,
        inventory_level="room",
        restrictions=frozenset({"min_los", "max_los", "cta", "ctd", "stop_sell"}),
        occupancy_pricing=True,
        rate_limit_per_second=2.0,  # no published limit: stay conservative
        rate_limit_burst=4,
        booking_delivery="push",
        readback=False,
        ack_deadline_minutes=15,
        ack_fallback=("Ctrip/Trip.com pushes the order to us and our answer is the acknowledgement; an order left "
                      "unconfirmed is confirmed by Ctrip staff by phone or e-mail after about 15 minutes (modelled: no "
                      "public figure)."),
    )
    sandbox_class = "adapters.ctrip.sandbox:CtripSandbox"

    def __init__(self, settings: ChannelSettings, observer: ExchangeObserver | None = None):
        super().__init__(settings, observer)
        self.opts = Options.from_settings(settings.options)
        self.http = HttpClient(settings, observer, redact=codec.redact, guest_fields=GUEST_FIELDS)

    @classmethod
    def sandbox_credentials(cls) -> dict[str, str]:
        return {"username": "ct-" + secrets.token_hex(8), "password": secrets.token_hex(16)}

    async def close(self) -> None:
        await self.http.close()

    # ---- transport --------------------------------------------------------------------
    def headers(self) -> dict[str, str]:
        h = {"Content-Type": codec.CONTENT_TYPE}
        if self.opts.soap:
            h["SOAPAction"] = f'"{codec.SOAP_ACTION}"'
        return h

    def _interpret(self, reply: Reply, built: Built) -> Rejections:
        """Read an answer: whole-call failures raise, item failures come back by index."""
        answer: codec.Answer | None = None
        try:
            answer = codec.read_answer(reply.body)
        except ParseError:
            answer = None
        if reply.status >= 400:
            first = answer.errors[0] if answer and answer.errors else None
            if first is not None and first.code == codec.CODE_AUTH:
                raise AuthError(f"Ctrip refused the credentials: {first.text}", code=first.code, status=reply.status)
            classify_status(reply, text=first and f"HTTP {reply.status}: {first.text}",
                            code=first.code if first else None)
        if answer is None:
            raise RetriableError(f"Ctrip's answer could not be read: {reply.text[:200]}", status=reply.status)
        if answer.errors:
            named = [e for e in answer.errors if e.record in built.locators]
            if not named:
                first = answer.errors[0]
                kw = {"code": first.code, "status": reply.status}
                if first.code == codec.CODE_AUTH or first.type == codec.TYPE_AUTH:
                    raise AuthError(f"Ctrip refused the credentials: {first.text}", **kw)
                if first.code in codec.RETRIABLE_CODES:
                    raise RetriableError(f"Ctrip could not process the message now: {first.text}", **kw)
                raise FatalError(f"Ctrip refused the message: {first.text}", **kw)
            rejected: Rejections = {}
            for e in named:
                rejected.setdefault(built.locators[e.record], (e.code, e.text, e.code in codec.RETRIABLE_CODES))
            for idx in set(built.locators.values()) - set(rejected):
                rejected[idx] = ("NOT_APPLIED", "Ctrip refused the whole message because of other items", True)
            reply.result = "rejected"
            reply.note = "; ".join(f"{e.code}: {e.text}" for e in named[:5])
            return rejected
        if not answer.success:
            raise FatalError("Ctrip answered with neither Success nor Errors", status=reply.status)
        rejected = {}
        for w in answer.warnings:
            if w.record in built.locators:
                rejected.setdefault(built.locators[w.record], (w.code, w.text, False))
        if rejected:
            reply.result = "partial"
        reply.note = "; ".join(f"{w.code}: {w.text}" for w in answer.warnings[:5]) or None
        return rejected

    async def send(self, built: Built, path: str, operation: str, hotel: str | None) -> Rejections:
        """POST one built message; the rejected items by index."""
        return await self.http.call(
            "POST", path, operation=operation, hotel=hotel, items=len(set(built.locators.values())),
            data=built.body, headers=self.headers(), interpret=lambda r: self._interpret(r, built))

    # ---- ARI out ----------------------------------------------------------------------
    def _check_batch(self, updates: Sequence[AriUpdate]) -> None:
        caps = self.capabilities
        hotels = {u.hotel for u in updates}
        if len(hotels) > caps.max_hotels_per_message:
            raise FatalError(f"Ctrip takes one hotel per message; this batch has {len(hotels)}",
                             code="CHANNELMGR_BATCH_LIMIT")
        if len(updates) > caps.max_items_per_message:
            raise FatalError(f"{len(updates)} items exceed the {caps.max_items_per_message} per message",
                             code="CHANNELMGR_BATCH_LIMIT")
        days = codec.span_days(u for u in updates if u.end >= u.start)
        if caps.max_days_per_message and days > caps.max_days_per_message:
            raise FatalError(f"Ctrip takes at most {caps.max_days_per_message} days per message; "
                             f"this batch spans {days}", code="CHANNELMGR_BATCH_LIMIT")

    async def push_ari(self, updates: Sequence[AriUpdate], *, full: bool = False) -> PushOutcome:
        """Availability and restrictions, then prices (Ctrip has no separate full-sync call)."""
        if not updates:
            return PushOutcome(())
        self._check_batch(updates)
        username, password = requestor(self.settings.credentials)
        rejected: Rejections = {}
        for i, u in enumerate(updates):
            problem = codec.item_problem(u)
            if problem:
                rejected[i] = (problem[0], problem[1], False)
        hotel = updates[0].hotel
        sent: set[int] = set()
        avail = codec.avail_notif(hotel, updates, username, password, self.opts, skip=rejected)
        if not avail.empty:
            for idx, why in (await self.send(avail, self.opts.avail_path, "avail_notif", hotel)).items():
                rejected.setdefault(idx, why)
            sent |= set(avail.locators.values())
        skip = {i for i, (_c, _t, retriable) in rejected.items() if not retriable}
        rates = codec.rate_amount_notif(hotel, updates, username, password, self.opts, skip=skip)
        if not rates.empty:
            for idx, why in (await self.send(rates, self.opts.rates_path, "rate_amount_notif", hotel)).items():
                rejected.setdefault(idx, why)
            sent |= set(rates.locators.values())
        return outcome(updates, rejected, sent, unsent="nothing to send for this item")

    # ---- bookings pushed to us --------------------------------------------------------
    def inbound_routes(self, receiver: BookingReceiver) -> list[web.RouteDef]:
        from adapters.ctrip.inbound import routes

        return routes(self, receiver)

    @staticmethod
    def booking_id_hint(raw: bytes) -> str | None:
        """Ctrip's order id in a message that cannot be read whole, best effort: a
        ``HotelReservationID ResID_Type="501"`` or a ``UniqueID Type="14"/"501"``. In a
        truncated OTA_HotelResRQ the id (in ResGlobalInfo, at the end) is usually gone:
        then there is none and the conflict stays open for a person."""
        import re

        for pattern in (rb'<(?:\w{1,16}:)?HotelReservationID\b[^>]{0,400}?ResID_Value="([^"<>]{1,64})"',
                        rb'<(?:\w{1,16}:)?UniqueID\b[^>]{0,200}?Type="(?:14|501)"[^>]{0,200}?ID="([^"<>]{1,64})"'):
            for found in re.finditer(pattern, raw[:65536]):
                tag = found.group(0)
                if b"HotelReservationID" in tag and b'ResID_Type="501"' not in tag:
                    continue
                return found.group(1).decode("utf-8", "replace")
        return None

    def read_stored(self, raw: bytes, kind: str) -> BookingRevision:
        """A pushed message kept in the inbox, read again (start-up re-processing)."""
        from adapters.ctrip.inbound import read_stored

        return read_stored(self, raw, kind)
