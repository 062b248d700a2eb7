"""The Meituan channel: JSON over HTTP with MWS header signing, orders pushed to us."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from adapters.base.contract import (
    AriUpdate,
    BookingReceiver,
    BookingRevision,
    Capabilities,
    ChannelAdapter,
    ChannelSettings,
    Delivery,
    ExchangeObserver,
    PushOutcome,
    SaleWindow,
    outcome,
)
from adapters.base.errors import (
    AuthError,
    FatalError,
    ParseError,
    RateLimitedError,
    RetriableError,
)
from adapters.base.http import HttpClient, Reply, classify_status, retry_after_seconds
from adapters.meituan import codec
from adapters.meituan.auth import make_signer
from adapters.meituan.codec import Answer, Options
from channelmgr.security import fields as guest_fields

if TYPE_CHECKING:  # pragma: no cover
    from aiohttp import web

REQUEST_ID_HEADERS = ("M-TraceId", "X-Request-Id")


# where Meituan's JSON carries names and free text (masked in the sync log)
GUEST_FIELDS = guest_fields(json_names=("contactName", "guestNames", "guestName"), json_texts=("remark",))

class MeituanAdapter(ChannelAdapter):
    """Meituan hotel direct-connect. THE WIRE FORMAT IS MODELLED, not documented.

    No public specification exists; ../shared/protocols/meituan.md lists the conventions
    of Meituan's public open platforms, which are followed (header auth ``Date`` /
    ``PartnerId`` / ``Authorization: MWS appKey:signature``, body
    ``{"partnerId", "body"}``, answers with a result code, at most 40 price items a
    request, orders notified to us with ``order/pay`` / ``order/refund`` and a query
    method for recovery). Everything else (paths, field names, result codes, limits) is
    a model kept in ``adapters/meituan/codec.py``; a partner holding the real document
    changes that file (and, through ``settings.options``, any of :class:`Options`:
    ``ari_push_path``, ``ari_query_path``, ``order_query_path``, ``notice_*_path``,
    ``signer`` (``mws`` or ``params``), ``date_skew_seconds``, ``readback_max_days``,
    ``verify_inbound``).

    Credentials: ``username`` = PartnerId, ``key`` = appKey, ``secret`` = appSecret.

    Out: one ``POST /hotel/ari/push`` per batch (one hotel, at most 40 items; rooms carry
    inventory and closed, rate plans carry the price in fen for their standard occupancy
    and minLos / maxLos / closed). Refused items come back by ``seq`` and are rejected
    with Meituan's code; the rest were applied. Read-back: ``POST /hotel/ari/query``.

    In: Meituan pushes ``/order/pay`` (new), ``/order/modify`` (a new orderVersion) and
    ``/order/refund`` (cancel) to :meth:`inbound_routes`. Recovery after an outage is an
    explicit call, :meth:`recover` / :meth:`query_order` (``POST /hotel/order/query``);
    :meth:`pull_bookings` stays empty so the engine never applies a push twice by design.
    """

    name = "meituan"
    capabilities = Capabilities(
        max_hotels_per_message=1,
        max_months_per_message=None,
        max_days_per_message=None,
        max_items_per_message=codec.MAX_ITEMS,
        window=SaleWindow(
            ahead_days=codec.HORIZON_DAYS, past_days=0, zone="Asia/Shanghai",
            late_night_until=time(6, 0),
            known="Modelled (the wire format is modelled too): today .. today + 180 in Beijing "
                  "time, and yesterday until 06:00 Beijing time, since Meituan sells late-night "
                  "rooms (凌晨房) for the previous date."),
        supports_ranges=True,
        inventory_level="room",  # Meituan holds inventory per room type
        restrictions=frozenset({"min_los", "max_los", "stop_sell"}),
        occupancy_pricing=False,  # one price per room night of a rate plan
        rate_limit_per_second=5.0,  # none published; modest
        rate_limit_burst=10,
        booking_delivery="push",
        readback=True,
        readback_max_days=codec.READBACK_MAX_DAYS,
        currencies=frozenset({"CNY"}),
        ack_deadline_minutes=10,
        ack_fallback=("Meituan pushes the order and our answer is the acknowledgement; an order left unconfirmed goes "
                      "to manual confirmation by Meituan after about 10 minutes (modelled: no public figure)."),
    )
    sandbox_class = "adapters.meituan.sandbox:MeituanSandbox"

    def __init__(self, settings: ChannelSettings, observer: ExchangeObserver | None = None):
        super().__init__(settings, observer)
        self.opts = Options.from_settings(settings.options)
        self.signer = make_signer(self.opts.signer, settings.credentials, self.opts.date_skew_seconds)
        self.http = HttpClient(settings, observer, guest_fields=GUEST_FIELDS)

    @classmethod
    def sandbox_credentials(cls) -> dict[str, str]:
        return {"username": "mt-" + secrets.token_hex(6), "key": "mtkey-" + secrets.token_hex(8),
                "secret": secrets.token_urlsafe(32)}

    async def close(self) -> None:
        await self.http.close()

    # ---- transport --------------------------------------------------------------------
    def _interpret(self, reply: Reply) -> Answer:
        """Meituan's answer -> Answer with code 0, or the right ChannelError."""
        for h in REQUEST_ID_HEADERS:
            if reply.headers.get(h):
                reply.request_id = reply.headers[h]
                break
        try:
            ans: Answer | None = codec.read_answer(reply.body)
        except ParseError:
            ans = None
        code = str(ans.code) if ans is not None else None
        text = f"Meituan: {ans.message}" if ans is not None and ans.message else None
        kw: dict[str, Any] = {"code": code, "status": reply.status, "request_id": reply.request_id}
        if ans is not None and ans.code in codec.AUTH_CODES:
            raise AuthError(text or "Meituan refused the credentials", **kw)
        if reply.status >= 400:
            try:
                classify_status(reply, text=text and f"HTTP {reply.status}: {text}", code=code)
            except RateLimitedError as e:
                if not e.retry_after:
                    e.retry_after = (codec.retry_after(ans.data) if ans else None) or 1.0
                raise
        if ans is None:
            # a push sets absolute values, so sending it again is safe
            raise RetriableError(f"Meituan's answer could not be read: {reply.text[:200]}", status=reply.status,
                                 request_id=reply.request_id)
        if ans.code == codec.CODE_RATE_LIMITED:
            wait = (codec.retry_after(ans.data) or retry_after_seconds(reply.headers.get("Retry-After"))
                    or 1.0)
            raise RateLimitedError(text or "Meituan asks us to slow down", retry_after=wait, **kw)
        if ans.code in codec.RETRIABLE_CODES:
            raise RetriableError(text or "Meituan is busy", **kw)
        if ans.code == codec.CODE_TOO_MANY_ITEMS:
            raise FatalError(text or "too many items in one request (the batch limit is wrong)", **kw)
        if ans.code != codec.CODE_OK:
            raise FatalError(text or f"Meituan refused the request (code {code})", **kw)
        return ans

    async def _send(self, path: str, body: Any, *, operation: str, hotel: str | None = None, items: int = 0,
                    interpret: Callable[[Reply], Any] | None = None) -> Any:
        partner = self.settings.credentials.get("username") or ""
        data = codec.envelope(partner, body)
        signed_path = urlsplit(self.http.url(path)).path or "/"
        signed = self.signer.sign("POST", signed_path, data)
        headers = {"Content-Type": codec.CONTENT_TYPE, "Accept": "application/json", **signed.headers}
        return await self.http.call("POST", path, operation=operation, interpret=interpret or self._interpret,
                                    hotel=hotel, items=items, data=data, headers=headers,
                                    params=signed.params or None)

    # ---- ARI out ----------------------------------------------------------------------
    async def push_ari(self, updates: Sequence[AriUpdate], *, full: bool = False) -> PushOutcome:
        """One ``/hotel/ari/push``; Meituan has no separate full-sync call (values are absolute)."""
        if not updates:
            return PushOutcome(())
        hotels = {u.hotel for u in updates}
        if len(hotels) > 1:
            raise FatalError(f"Meituan takes one hotel per request; this batch has {len(hotels)} "
                             f"({', '.join(sorted(hotels))})", code="CHANNELMGR_BATCH_LIMIT")
        hotel = updates[0].hotel
        rejected: dict[int, tuple[str | None, str, bool]] = {}
        items = []
        for i, u in enumerate(updates):
            problem = codec.item_problem(u)
            if problem:
                rejected[i] = (problem[0], problem[1], False)
                continue
            item = codec.ari_item(i, u)
            if len(item) <= 4 + (u.rate is not None):  # nothing but ids and dates
                continue
            items.append(item)
        sent = {it["seq"] for it in items}
        request_ids: tuple[str, ...] = ()
        if items:
            def interpret(reply: Reply) -> dict[int, tuple[str, str]]:
                ans = self._interpret(reply)
                fails = {s: f for s, f in codec.fail_items(ans.data).items() if s in sent}
                if fails:
                    reply.result = "rejected" if len(fails) == len(sent) else "partial"
                    reply.note = "; ".join(f"{c}: {m}" for c, m in list(fails.values())[:5])
                return fails

            fails, rid = await self._push(hotel, items, interpret)
            request_ids = (rid,) if rid else ()
            for seq, (code, text) in fails.items():
                rejected.setdefault(seq, (code, text, code == str(codec.CODE_SYSTEM_BUSY)))
        return outcome(updates, rejected, sent, unsent="nothing Meituan holds changes with this item", request_ids=request_ids)

    async def _push(self, hotel: str, items: list[dict[str, Any]], interpret) -> tuple[dict, str | None]:
        rid: list[str | None] = [None]

        def wrapped(reply: Reply):
            try:
                return interpret(reply)
            finally:
                rid[0] = reply.request_id

        fails = await self._send(self.opts.ari_push_path, codec.ari_push(hotel, items), operation="ari_push",
                                 hotel=hotel, items=len(items), interpret=wrapped)
        return fails, rid[0]

    # ---- read-back ----------------------------------------------------------------------
    async def read_back(self, hotel: str, start: date, end: date) -> list[AriUpdate]:
        """``/hotel/ari/query``, ``readback_max_days`` a call; single-date items."""
        out: list[AriUpdate] = []
        day = start
        step = max(1, self.opts.readback_max_days)
        while day <= end:
            last = min(end, day + timedelta(days=step - 1))

            def interpret(reply: Reply) -> list[AriUpdate]:
                ans = self._interpret(reply)
                try:
                    return codec.readback(ans.data, hotel)
                except ParseError as e:
                    raise FatalError(f"the read-back answer could not be read: {e}", status=reply.status,
                                     request_id=reply.request_id) from None

            out.extend(await self._send(self.opts.ari_query_path, codec.ari_query(hotel, day, last),
                                        operation="ari_query", hotel=hotel, interpret=interpret))
            day = last + timedelta(days=1)
        return out

    # ---- bookings in --------------------------------------------------------------------
    def inbound_routes(self, receiver: BookingReceiver) -> list["web.RouteDef"]:
        from adapters.meituan.inbound import routes

        return routes(self, receiver)

    @staticmethod
    def booking_id_hint(raw: bytes) -> str | None:
        """Meituan's order id in a notice that cannot be read whole (truncated, not JSON),
        best effort: the first ``"orderId"`` near the start (it comes first in the order
        body). The engine uses it only to close the message's conflict by itself when the
        same order later arrives intact."""
        import re

        found = re.search(rb'"orderId"\s{0,8}:\s{0,8}"?([A-Za-z0-9_.:-]{1,64})', raw[:65536])
        return found.group(1).decode("ascii") if found else None

    def read_stored(self, raw: bytes, kind: str) -> BookingRevision:
        """A pushed message kept in the inbox, read again (start-up re-processing)."""
        from adapters.meituan.inbound import read_stored

        return read_stored(self, raw, kind)

    async def _query_orders(self, body: dict[str, Any], hotel: str) -> list[dict[str, Any]]:
        def interpret(reply: Reply) -> list[dict[str, Any]]:
            try:
                ans = self._interpret(reply)
            except FatalError as e:
                if e.code == str(codec.CODE_ORDER_NOT_FOUND):
                    reply.note = "no such order"
                    return []
                raise
            try:
                return codec.orders(ans.data)
            except ParseError as e:
                raise FatalError(f"the order query answer could not be read: {e}", status=reply.status,
                                 request_id=reply.request_id) from None

        return await self._send(self.opts.order_query_path, body, operation="order_query", hotel=hotel,
                                interpret=interpret)

    async def query_order(self, hotel: str, ota_booking_id: str) -> BookingRevision | None:
        """The latest revision Meituan holds of one order (None when Meituan knows none)."""
        found = await self._query_orders(codec.order_query(hotel, order_id=ota_booking_id), hotel)
        for o in found:
            if str(o.get("orderId")) == str(ota_booking_id):
                return codec.order(o, raw=codec.order_json(o))
        return None

    async def recover(self, hotel: str, since: datetime) -> list[Delivery]:
        """Every order of ``hotel`` updated since ``since``, latest revision each, for the
        engine's ingest after an outage (idempotent by revision, so orders that did arrive
        are duplicates). An unreadable order is returned with its error, for the inbox."""
        out = []
        for o in await self._query_orders(codec.order_query(hotel, updated_since=since), hotel):
            raw = codec.order_json(o)
            try:
                rev = codec.order(o, raw=raw)
                out.append(Delivery(raw=raw, kind=codec.KIND[rev.action], revision=rev))
            except ParseError as e:
                out.append(Delivery(raw=raw, kind="reservation", error=str(e)))
        return out
