"""The Booking.com channel: OpenTravel XML over HTTPS, bookings pulled and acknowledged.

Every request goes through :class:`HttpClient` (one Exchange per call for the sync log),
carries ``Accept-Version: 1.1`` and Booking.com's auth, and every answer's
``<!-- RUID: [...] -->`` comment becomes the Exchange's request id, because support asks
for it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any, Literal

from adapters.base.contract import (
    AriUpdate,
    Capabilities,
    ChannelAdapter,
    ChannelSettings,
    Confirmation,
    Delivery,
    ExchangeObserver,
    PushOutcome,
    SaleWindow,
    outcome,
)
from adapters.base.errors import (
    AuthError,
    ChannelError,
    FatalError,
    ParseError,
    RateLimitedError,
    RetriableError,
)
from adapters.base.http import HttpClient, Reply, classify_status
from adapters.booking import codec
from adapters.booking.auth import make_auth
from adapters.booking.codec import AckRef, Built, Options
from channelmgr.security import fields as guest_fields

Rejections = dict[int, tuple[str | None, str, bool]]  # item index -> (code, text, retriable)


# where Booking.com's OTA-XML carries names and free text (masked in the sync log)
GUEST_FIELDS = guest_fields(
    xml_names=("GivenName", "MiddleName", "Surname", "NamePrefix", "NameSuffix", "NameTitle", "PersonName"),
    xml_texts=("SpecialRequest", "SpecialRequests", "Comment", "Comments", "AddressLine"))

class BookingAdapter(ChannelAdapter):
    """Booking.com (OTA_HotelAvailNotif, OTA_HotelRateAmountNotif, OTA_HotelResNotif, B.XML).

    Facts follow ../shared/protocols/booking.md. Guesses where it is silent live in
    ``adapters/booking/codec.py`` (:class:`~adapters.booking.codec.Options`) and each can be
    set in ``settings.options``:

    - ``auth``: ``basic`` (``username``/``password``, default) or ``token``
      (``key``/``secret`` exchanged for a one-hour JWT, at most 30 an hour);
    - ``token_path``: the token endpoint, not public; modelled as
      ``POST /token-based-authentication/exchange`` with JSON client_id/client_secret
      answering ``{"jwt", "expires_in"}``;
    - ``amount_format``: ``minor`` (OpenTravel's integer with DecimalPlaces, default) or
      ``decimal``;
    - warnings name the refused message by ``RecordID`` = its ``LocatorID``;
    - ``ack_source`` (ResID_Source of acknowledgements), ``message_version``,
      ``naive_timezone``, ``hotel_ids`` (pull filter), ``ack_attempts``;
    - the B.XML read-back request and answer shapes (Booking-proprietary, modelled);
    - every path (``avail_path``, ``rates_path``, ``reservations_path``,
      ``modifications_path``, ``readback_path``).

    One hotel and one calendar month per message: the engine batches that way, and a
    batch that does not is refused here (FatalError) before anything is sent. An item
    needs up to two messages (availability and restrictions, prices); it is applied only
    when every part of it was.
    """

    name = "booking"
    capabilities = Capabilities(
        max_hotels_per_message=1,
        max_months_per_message=1,
        max_days_per_message=None,
        max_items_per_message=100,
        window=SaleWindow(
            ahead_days=codec.DAYS_AHEAD, past_days=1, zone="Europe/Amsterdam",
            known="Booking.com's note: dates at most one day in the past in the hotel's CET day "
                  "(NOT_A_VALID_DATE); send at least 12 months ahead. The far end (two years) is "
                  "modelled."),
        supports_ranges=True,
        inventory_level="room",
        restrictions=frozenset({"min_los", "max_los", "cta", "ctd", "stop_sell"}),
        occupancy_pricing=True,
        rate_limit_per_second=3.0,  # none published; modest so a 429 stays rare
        rate_limit_burst=6,
        booking_delivery="pull",
        readback=True,
        readback_max_days=codec.READBACK_MAX_DAYS,
        ack_deadline_minutes=30,
        ack_fallback=("Booking.com: a reservation not retrieved and acknowledged (OTA_HotelResNotif) within 30 minutes "
                      "is sent to the property by e-mail instead (documented)."),
    )
    sandbox_class = "adapters.booking.sandbox:BookingSandbox"

    def __init__(self, settings: ChannelSettings, observer: ExchangeObserver | None = None):
        super().__init__(settings, observer)
        self.opts = Options.from_settings(settings.options)
        self.auth = make_auth(self.opts.auth, settings.credentials, self.opts.tokens_per_hour)
        self.http = HttpClient(settings, observer, redact=self._redact, guest_fields=GUEST_FIELDS)

    @classmethod
    def sandbox_credentials(cls) -> dict[str, str]:
        return {"username": "bk-" + secrets.token_hex(8), "password": secrets.token_urlsafe(24),
                "key": "bk-client-" + secrets.token_hex(8), "secret": secrets.token_urlsafe(32)}

    async def close(self) -> None:
        await self.http.close()

    # ---- transport --------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        for s in self.auth.secrets():
            text = text.replace(s, "***")
        return codec.redact_tokens(text)

    async def _fetch_token(self, client_id: str, client_secret: str) -> tuple[str, float]:
        def interpret(reply: Reply) -> tuple[str, float]:
            reply.request_id = codec.ruid(reply.body) or codec.token_ruid(reply.body)
            self._fail(reply)
            try:
                return codec.token_answer(reply.body, self.opts.token_lifetime_seconds)
            except ParseError as e:
                raise FatalError(f"the token endpoint answered without a token: {e}",
                                 status=reply.status, request_id=reply.request_id) from None

        return await self.http.call(
            "POST", self.opts.token_path, operation="token", interpret=interpret,
            data=codec.token_request(client_id, client_secret),
            headers={"Accept-Version": codec.ACCEPT_VERSION, "Content-Type": "application/json"},
            log_request='{"client_id": "***", "client_secret": "***"}')

    async def _send(self, method: str, path: str, *, operation: str, interpret: Callable[[Reply], Any],
                    hotel: str | None = None, items: int = 0, body: bytes | None = None,
                    params: dict[str, str] | None = None) -> Any:
        """One request with auth; a token refused with 401 is replaced once and the call repeated."""
        for attempt in (1, 2):
            headers = {"Accept-Version": codec.ACCEPT_VERSION, **(await self.auth.headers(self._fetch_token))}
            if body is not None:
                headers["Content-Type"] = codec.CONTENT_TYPE
            try:
                return await self.http.call(method, path, operation=operation, interpret=interpret, hotel=hotel,
                                            items=items, data=body, headers=headers, params=params)
            except AuthError:
                if attempt == 1 and self.auth.invalidate():
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _fail(self, reply: Reply) -> None:
        """Raise the right error for an answer that failed as a whole (the note's status codes)."""
        status = reply.status
        if status < 300:
            return
        code, text = None, None
        try:
            answer = codec.read_answer(reply.body)
            issue = (answer.errors or answer.warnings or (None,))[0]
            if issue is not None:
                code, text = issue.code, issue.text
        except ParseError:
            pass
        kw = {"code": code, "status": status, "request_id": reply.request_id}
        if status == 401:
            raise AuthError(f"Booking.com refused the credentials: {text or 'Authorization Required'}", **kw)
        if status == 403:
            raise FatalError(f"no access to this hotel: {text or 'forbidden'}", **kw)
        if status == 404:
            raise FatalError(f"not found: {text or reply.text[:200]}", **kw)
        if status == 409:
            raise RetriableError(f"the response token does not match; pull again ({text or 'conflict'})", **kw)
        if status == 400:
            raise FatalError(f"Booking.com refused the message: {text or reply.text[:200]}", **kw)
        classify_status(reply, text=text and f"HTTP {status}: {text}", code=code)
        raise FatalError(f"unexpected HTTP {status}: {text or reply.text[:200]}", **kw)

    # ---- ARI out ----------------------------------------------------------------------
    def _check_batch(self, updates: Sequence[AriUpdate]) -> None:
        caps = self.capabilities
        hotels = {u.hotel for u in updates}
        if len(hotels) > caps.max_hotels_per_message:
            raise FatalError(f"Booking.com takes one hotel per message; this batch has {len(hotels)} "
                             f"({', '.join(sorted(hotels))})", code="CHANNELMGR_BATCH_LIMIT")
        months = {(d.year, d.month) for u in updates for d in (u.start, u.end)}
        if caps.max_months_per_message and len(months) > caps.max_months_per_message:
            shown = ", ".join(f"{y}-{m:02d}" for y, m in sorted(months))
            raise FatalError(f"Booking.com takes one calendar month per message; this batch touches {shown}",
                             code="CHANNELMGR_BATCH_LIMIT")
        if len(updates) > caps.max_items_per_message:
            raise FatalError(f"{len(updates)} items exceed the {caps.max_items_per_message} per message",
                             code="CHANNELMGR_BATCH_LIMIT")

    def _interpret_notif(self, reply: Reply, built: Built) -> tuple[Rejections, str | None]:
        reply.request_id = codec.ruid(reply.body)
        if reply.status != 400:
            self._fail(reply)
        try:
            answer = codec.read_answer(reply.body)
        except ParseError as e:
            if reply.status == 400:
                raise FatalError(f"Booking.com refused the message: {reply.text[:200]}", status=400,
                                 request_id=reply.request_id) from None
            raise RetriableError(f"Booking.com's answer could not be read ({e}); the values will be sent again",
                                 status=reply.status, request_id=reply.request_id) from None
        rejected: Rejections = {}
        if reply.status == 400 or (answer.errors and not answer.success):
            named = [e for e in answer.errors if e.record in built.locators]
            if not named:
                first = answer.errors[0] if answer.errors else None
                raise FatalError(f"Booking.com refused the message: {first.text if first else reply.text[:200]}",
                                 code=first.code if first else None, status=reply.status,
                                 request_id=reply.request_id)
            for e in named:
                rejected.setdefault(built.locators[e.record], (e.code, e.text, False))
            for idx in set(built.locators.values()) - set(rejected):
                rejected[idx] = ("NOT_APPLIED", "Booking.com refused the whole message because of other items", True)
            reply.result = "rejected"
            reply.note = "; ".join(f"{e.code}: {e.text}" for e in named[:5])
            return rejected, reply.request_id
        if not answer.success:
            raise FatalError("Booking.com answered with neither Success nor Errors", status=reply.status,
                             request_id=reply.request_id)
        unnamed = []
        for w in answer.warnings:
            if w.record in built.locators:
                rejected.setdefault(built.locators[w.record], (w.code, w.text, False))
            else:
                unnamed.append(w)
        if rejected:
            reply.result = "partial"
        notes = [f"{w.code}: {w.text}" for w in answer.warnings][:5]
        reply.note = "; ".join(notes) or None
        return rejected, reply.request_id

    async def push_ari(self, updates: Sequence[AriUpdate], *, full: bool = False) -> PushOutcome:
        """Availability/restrictions, then prices; Booking.com has no separate full-sync call."""
        if not updates:
            return PushOutcome(())
        self._check_batch(updates)
        rejected: Rejections = {}
        for i, u in enumerate(updates):
            problem = codec.item_problem(u)
            if problem:
                rejected[i] = (problem[0], problem[1], False)
        hotel = updates[0].hotel
        messages = [
            (codec.avail_notif(hotel, updates, self.opts, skip=rejected), self.opts.avail_path, "avail_notif"),
            (codec.rate_amount_notif(hotel, updates, self.opts, skip=rejected), self.opts.rates_path,
             "rate_amount_notif"),
        ]
        sent: set[int] = set()
        request_ids: list[str] = []
        for built, path, operation in messages:
            if built.empty:
                continue
            got, rid = await self._send(
                "POST", path, operation=operation, hotel=hotel, items=len(set(built.locators.values())),
                body=built.body, interpret=lambda r, b=built: self._interpret_notif(r, b))
            if rid:
                request_ids.append(rid)
            for idx, why in got.items():
                rejected.setdefault(idx, why)
            sent |= set(built.locators.values())
        return outcome(updates, rejected, sent, unsent="nothing to send for this item", request_ids=request_ids)

    # ---- read-back ----------------------------------------------------------------------
    async def read_back(self, hotel: str, start: date, end: date) -> list[AriUpdate]:
        """B.XML roomrateavailability, 31 days a call (a longer span is read in pieces)."""
        out: list[AriUpdate] = []
        day = start
        while day <= end:
            last = min(end, day + timedelta(days=codec.READBACK_MAX_DAYS - 1))

            def interpret(reply: Reply) -> list[AriUpdate]:
                reply.request_id = codec.ruid(reply.body)
                self._fail(reply)
                try:
                    return codec.readback(reply.body, hotel)
                except ParseError as e:
                    raise FatalError(f"the read-back answer could not be read: {e}", status=reply.status,
                                     request_id=reply.request_id) from None

            out.extend(await self._send("POST", self.opts.readback_path, operation="read_back", hotel=hotel,
                                        body=codec.readback_request(hotel, day, last), interpret=interpret))
            day = last + timedelta(days=1)
        return out

    # ---- bookings in --------------------------------------------------------------------
    def _interpret_feed(self, reply: Reply, feed: Literal["new", "modify"]) -> list[Delivery]:
        reply.request_id = codec.ruid(reply.body)
        self._fail(reply)
        try:
            deliveries = codec.reservation_feed(reply.body, feed, self.opts)
        except ParseError as e:
            try:
                answer = codec.read_answer(reply.body)
            except ParseError:
                answer = None
            if answer is not None and answer.errors:
                first = answer.errors[0]
                raise FatalError(f"Booking.com answered the pull with an error: {first.text}", code=first.code,
                                 status=reply.status, request_id=reply.request_id) from None
            kind = "reservation" if feed == "new" else "modification"
            reply.result = "partial"
            reply.note = f"unreadable message kept for the inbox: {e}"
            reply.extra["items"] = 1
            return [Delivery(raw=reply.body or b"(empty answer)", kind=kind, error=f"{e}")]
        reply.extra["items"] = len(deliveries)  # the sync log counts what came back
        bad = sum(1 for d in deliveries if d.error)
        reply.note = f"{len(deliveries)} reservation message(s)" + (f", {bad} unreadable" if bad else "")
        if bad:
            reply.result = "partial"
        return deliveries

    async def pull_bookings(self) -> list[Delivery]:
        """New reservations, then modifications and cancellations; nothing is acknowledged here."""
        params = {"hotel_ids": ",".join(self.opts.hotel_ids)} if self.opts.hotel_ids else None
        out: list[Delivery] = []
        failure: ChannelError | None = None
        for feed, path, operation in (("new", self.opts.reservations_path, "pull_reservations"),
                                      ("modify", self.opts.modifications_path, "pull_modifications")):
            try:
                out.extend(await self._send("GET", path, operation=operation, params=params,
                                            interpret=lambda r, f=feed: self._interpret_feed(r, f)))
            except ChannelError as e:  # one feed failing must not hold back the other's bookings
                failure = failure or e
        if failure is not None and not out:
            raise failure
        return out

    def _interpret_ack(self, reply: Reply) -> None:
        reply.request_id = codec.ruid(reply.body)
        self._fail(reply)
        try:
            answer = codec.read_answer(reply.body)
        except ParseError:
            return  # acknowledged (2xx); the body is not needed
        if answer.errors and not answer.success:
            first = answer.errors[0]
            raise FatalError(f"Booking.com refused the acknowledgement: {first.text}", code=first.code,
                             status=reply.status, request_id=reply.request_id)
        if answer.warnings:
            reply.result = "partial"
            reply.note = "; ".join(f"{w.code}: {w.text}" for w in answer.warnings[:5])

    async def acknowledge(self, accepted: Sequence[tuple[Delivery, Confirmation]]) -> None:
        """Post OTA_HotelResNotifRS / OTA_HotelResModifyNotifRS for what was committed.

        An unacknowledged booking falls back to e-mail after 30 minutes, so a retriable
        failure is tried again here (``ack_attempts``) before it is left to the next pull.
        """
        feeds: dict[str, list[AckRef]] = {"new": [], "modify": []}
        for delivery, _conf in accepted:
            ref = delivery.ack_ref
            if isinstance(ref, AckRef) and delivery.error is None:
                feeds[ref.feed].append(ref)
        for feed, refs in feeds.items():
            if not refs:
                continue
            body = codec.acknowledgement(refs, feed, self.opts)  # type: ignore[arg-type]
            path = self.opts.reservations_path if feed == "new" else self.opts.modifications_path
            hotels = {r.hotel for r in refs}
            hotel = next(iter(hotels)) if len(hotels) == 1 else None
            for attempt in range(1, max(1, self.opts.ack_attempts) + 1):
                try:
                    await self._send("POST", path, operation=f"ack_{feed}", body=body, items=len(refs),
                                     hotel=hotel,
                                     interpret=self._interpret_ack)
                    break
                except RetriableError as e:
                    wait = e.retry_after if isinstance(e, RateLimitedError) and e.retry_after else 0.2 * 2 ** attempt
                    if attempt >= self.opts.ack_attempts or wait > 10:
                        raise
                    await asyncio.sleep(wait)
