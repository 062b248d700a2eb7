"""The Fliggy channel: signed TOP calls (``/router/rest``), orders pulled and confirmed.

Every call goes through :class:`HttpClient` (one Exchange per call for the sync log) and
is signed afresh (timestamp, ``sign``) by :mod:`adapters.fliggy.auth`. TOP answers errors
with HTTP 200 and ``{"error_response": {...}}``; they are classified here once:

- 7 (app call limited), 8 (call frequency exceeded) -> RateLimitedError, the delay from
  the text ("... N more seconds") or ``options.rate_limit_default_seconds`` (8) /
  ``app_limit_default_seconds`` (7);
- 25 (signature), 26/27 (session), 28/29 (app key), 12 (user permissions) -> AuthError;
  31 (timestamp: our clock is off by more than 10 minutes) -> FatalError;
- ``isp.*`` sub-codes and 10 (service unavailable) -> RetriableError;
- ``isv.*`` and everything else -> FatalError, or, when the error names one entry of the
  rates map (``rate_inventory_price_map[i]``), that item is rejected with the OTA's
  sub-code and the rest are sent again;
- HTTP 429 -> RateLimitedError (Retry-After, else the default), 5xx / timeouts -> RetriableError.

Orders: ``order.search`` over created-time windows of at most 30 days covering
``options.lookback_days`` (default 30, at most 90), pages of 20; only orders that still need
us (``need_confirm``, and not a revision this adapter already acknowledged) are fetched
with ``order.detail.search`` (one tid a call, so one unreadable detail is one inbox entry).
``acknowledge`` alone calls ``order.update``: ``opt_type`` 2 with ``confirm_code`` = our
confirmation for a new or changed order; a guest's cancellation with
``options.cancel_opt_type`` (default 1, the hotel's cancel/no-room answer) and the same
confirm_code. Guesses about field names live in :mod:`adapters.fliggy.codec`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from adapters.base.contract import (
    AriUpdate,
    Capabilities,
    ChannelAdapter,
    ChannelSettings,
    Confirmation,
    Delivery,
    ExchangeObserver,
    ItemResult,
    PushOutcome,
    SaleWindow,
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
from adapters.fliggy import auth, codec
from adapters.fliggy.codec import AckRef, Options, TopError
from channelmgr.security import fields as guest_fields

AUTH_CODES = {"12", "25", "26", "27", "28", "29"}
RETRY_CODES = {"10"}
ACKED_MEMORY = 10_000


# where Fliggy's TOP JSON and form fields carry names and free text (masked in the sync log)
GUEST_FIELDS = guest_fields(json_names=("contact_name", "name", "guest_name"), json_texts=("message", "remark"),
                            form_names=("contact_name", "guest_name"), form_texts=("message", "remark"))

class FliggyAdapter(ChannelAdapter):
    """Fliggy / Taobao Open Platform (``taobao.xhotel.*``).

    Options (``settings.options``): ``sign_method`` (``hmac-sha256`` default, ``hmac``,
    ``md5``), ``simplify``, ``path`` (``/router/rest``), ``lookback_days``,
    ``cancel_opt_type``, ``rate_limit_default_seconds``, ``app_limit_default_seconds``.
    Credentials: ``key`` (app_key), ``secret``, ``session``.

    Prices and quota go with ``taobao.xhotel.rates.increment``; a full sync
    (``push_ari(full=True)``) uses ``taobao.xhotel.rates.update`` (overwrite).
    """

    name = "fliggy"
    capabilities = Capabilities(
        max_hotels_per_message=1,
        max_months_per_message=None,
        max_days_per_message=None,
        max_items_per_message=codec.MAX_RATEPLANS_PER_CALL,
        window=SaleWindow(
            ahead_days=codec.FUTURE_DAYS, past_days=codec.PAST_DAYS, zone="Asia/Shanghai",
            known="Fliggy's note: dates from yesterday to today + 180 days (GMT+8); yesterday at "
                  "any hour, so the late-night rule needs nothing more."),
        supports_ranges=True,  # a range becomes one inventory_price per night in its entry
        inventory_level="rate",
        restrictions=frozenset({"stop_sell"}),  # the rates call has no LOS / CTA / CTD
        occupancy_pricing=False,  # one price: the highest occupancy's
        rate_limit_per_second=5.0,
        rate_limit_burst=10,
        booking_delivery="pull",
        readback=False,
        currencies=frozenset({codec.CURRENCY}),
        ack_deadline_minutes=30,
        ack_fallback=("Fliggy: an order pulled but not confirmed to Fliggy within 30 minutes goes to the merchant "
                      "console for manual confirmation, and may be closed (modelled: no public figure)."),
    )
    sandbox_class = "adapters.fliggy.sandbox:FliggySandbox"

    def __init__(self, settings: ChannelSettings, observer: ExchangeObserver | None = None):
        super().__init__(settings, observer)
        self.opts = Options.from_settings(settings.options)
        self.http = HttpClient(settings, observer, guest_fields=GUEST_FIELDS)
        self.clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)  # tests move it
        self._acked: dict[str, str] = {}  # tid -> revision acknowledged by this adapter

    @classmethod
    def sandbox_credentials(cls) -> dict[str, str]:
        return {"key": str(20_000_000 + secrets.randbelow(9_000_000)),
                "secret": secrets.token_hex(16), "session": "6100" + secrets.token_hex(20)}

    async def close(self) -> None:
        await self.http.close()

    # ---- transport --------------------------------------------------------------------
    def _raise_top(self, err: TopError, status: int | None) -> None:
        kw: dict[str, Any] = {"status": status, "request_id": err.request_id}
        code = err.sub_code or err.code
        if err.code in ("7", "8"):
            default = self.opts.app_limit_default_seconds if err.code == "7" else self.opts.rate_limit_default_seconds
            raise RateLimitedError(err.text, retry_after=err.retry_after(default), code=err.code, **kw)
        if err.code in AUTH_CODES:
            raise AuthError(err.text, code=err.code, **kw)
        if err.code == "31":
            raise FatalError(err.text + " (check this machine's clock: TOP allows 10 minutes)", code=err.code, **kw)
        if (err.sub_code or "").startswith("isp.") or err.code in RETRY_CODES:
            raise RetriableError(err.text, code=code, **kw)
        raise FatalError(err.text, code=code, **kw)

    def _interpret(self, reply: Reply) -> dict[str, Any]:
        try:
            doc = codec.read_json(reply.body)
        except ParseError:
            doc = None
        if doc is not None:
            reply.request_id = codec.request_id(doc)
        err = codec.error_of(doc) if doc is not None else None
        if reply.status >= 400:
            try:
                classify_status(reply, text=err.text if err else None, code=(err.sub_code or err.code) if err else None)
            except RateLimitedError as e:
                if not e.retry_after or e.retry_after <= 0:
                    e.retry_after = err.retry_after(self.opts.rate_limit_default_seconds) if err \
                        else self.opts.rate_limit_default_seconds
                raise
        if doc is None:
            raise RetriableError(f"Fliggy's answer is not JSON: {reply.text[:200]}", status=reply.status)
        if err is not None:
            reply.result = "rejected"
            self._raise_top(err, reply.status)
        return doc

    async def call(self, method: str, business: Mapping[str, Any], *, operation: str | None = None,
                   hotel: str | None = None, items: int = 0,
                   interpret: Callable[[Reply], Any] | None = None) -> Any:
        """One signed TOP call; returns the answer's JSON (or what ``interpret`` makes of it)."""
        params = auth.signed_params(method, {k: str(v) for k, v in business.items()},
                                    self.settings.credentials, sign_method=self.opts.sign_method,
                                    now=self.clock(), simplify=self.opts.simplify)
        return await self.http.call("POST", self.opts.path,
                                    operation=operation or method.removeprefix("taobao.xhotel."),
                                    interpret=interpret or self._interpret, hotel=hotel, items=items, data=params)

    # ---- ARI out ----------------------------------------------------------------------
    async def push_ari(self, updates: Sequence[AriUpdate], *, full: bool = False) -> PushOutcome:
        if not updates:
            return PushOutcome(())
        hotels = {u.hotel for u in updates}
        if len(hotels) > 1:
            raise FatalError(f"Fliggy takes one hotel per call; this batch has {len(hotels)}",
                             code="CHANNELMGR_BATCH_LIMIT")
        hotel = next(iter(hotels))
        method = codec.M_RATES_UPDATE if full else codec.M_RATES_INCREMENT
        built = codec.build_rates(updates, codec.fliggy_today(self.clock()))
        results: dict[int, ItemResult] = dict(built.results)
        request_ids: list[str] = []
        pending = list(zip(built.owners, built.entries))
        size = codec.MAX_RATEPLANS_PER_CALL
        chunks = [pending[i:i + size] for i in range(0, len(pending), size)]
        for chunk in chunks:
            while chunk:
                try:
                    doc = await self.call(method, {"rate_inventory_price_map": codec.rate_map_json(
                        [e for _, e in chunk])}, hotel=hotel, items=len(chunk))
                except FatalError as e:
                    idx = self._named_entry(e, len(chunk))
                    if idx is None or isinstance(e, AuthError):
                        raise
                    owner = chunk[idx][0]
                    results[owner] = ItemResult(updates[owner].key, "rejected", e.code, e.text)
                    del chunk[idx]
                    continue
                rid = codec.request_id(doc)
                if rid:
                    request_ids.append(rid)
                for owner, _ in chunk:
                    results[owner] = ItemResult(updates[owner].key, "applied", text=built.notes.get(owner))
                break
        return PushOutcome(tuple(results[i] for i in range(len(updates))), tuple(request_ids))

    @staticmethod
    def _named_entry(e: ChannelError, n: int) -> int | None:
        err = TopError(code=str(e.code), msg=e.text)
        idx = err.item_index
        return idx if idx is not None and 0 <= idx < n else None

    # ---- bookings in --------------------------------------------------------------------
    def _windows(self) -> list[tuple[datetime, datetime]]:
        end = self.clock() + timedelta(minutes=5)  # orders created in the last seconds, clock skew
        oldest = end - timedelta(days=self.opts.lookback_days)
        out = []
        while end > oldest:
            start = max(oldest, end - timedelta(days=codec.ORDER_WINDOW_DAYS))
            out.append((start, end))
            end = start
        return out

    async def _search(self) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start, end in self._windows():
            page = 1
            while True:
                doc = await self.call(codec.M_ORDER_SEARCH, {
                    "created_start": codec.top_time(start), "created_end": codec.top_time(end),
                    "page_no": page, "page_size": codec.ORDER_PAGE_SIZE}, operation="order.search",
                    interpret=self._interpret_search)
                try:
                    orders, total = codec.order_page(doc)
                    for o in orders:
                        found.setdefault(codec.tid_of(o), o)
                except ParseError as e:
                    raise RetriableError(f"Fliggy's order search could not be read: {e}") from None
                if not orders or page * codec.ORDER_PAGE_SIZE >= total:
                    break
                page += 1
        return list(found.values())

    def _interpret_search(self, reply: Reply) -> Any:
        """``_interpret``, and the sync log counts the orders that came back on this page."""
        doc = self._interpret(reply)
        try:
            reply.extra["items"] = len(codec.order_page(doc)[0])
        except ParseError:
            pass  # the caller says why it cannot be read
        return doc

    def _needs_us(self, order: dict[str, Any]) -> bool:
        flag = order.get("need_confirm")
        if flag is not None and str(flag).lower() in ("false", "0"):
            return False
        tid = codec.tid_of(order)
        return self._acked.get(tid) != codec.revision_of(order)

    async def pull_bookings(self) -> list[Delivery]:
        """Orders waiting for the hotel's answer; nothing is acknowledged here."""
        out: list[Delivery] = []
        for order in await self._search():
            if not self._needs_us(order):
                continue
            tid = codec.tid_of(order)
            hint = codec.action_of(order) if order.get("trade_status") else "new"

            def interpret(reply: Reply, tid: str = tid, hint: str = hint) -> list[Delivery]:
                try:
                    doc = codec.read_json(reply.body)
                except ParseError:
                    doc = None
                if doc is not None and codec.error_of(doc) is not None or reply.status >= 400:
                    self._interpret(reply)
                got = codec.deliveries_from_detail(reply.body, tid, hint)
                if any(d.error for d in got):
                    reply.result = "partial"
                    reply.note = "unreadable order detail kept for the inbox"
                return got

            out.extend(await self.call(codec.M_ORDER_DETAIL, {"tids": tid}, operation="order.detail.search",
                                       interpret=interpret, items=1))
        return out

    async def acknowledge(self, accepted: Sequence[tuple[Delivery, Confirmation]]) -> None:
        """``order.update`` for each committed revision (never for unreadable ones)."""
        failure: ChannelError | None = None
        for delivery, conf in accepted:
            ref = delivery.ack_ref
            if not isinstance(ref, AckRef) or delivery.error is not None:
                continue
            if self._acked.get(ref.tid) == ref.revision:
                continue
            opt = self.opts.cancel_opt_type if ref.action == "cancel" else codec.OPT_CONFIRM
            try:
                await self.call(codec.M_ORDER_UPDATE, {"tid": ref.tid, "opt_type": opt,
                                                       "confirm_code": conf.confirmation},
                                operation="order.update", hotel=ref.hotel, items=1)
            except ChannelError as e:  # one refused order must not hold back the others
                failure = failure or e
                continue
            self._acked[ref.tid] = ref.revision
            if len(self._acked) > ACKED_MEMORY:  # forget the oldest; Fliggy's need_confirm still holds
                for tid in list(self._acked)[: ACKED_MEMORY // 10]:
                    del self._acked[tid]
        if failure is not None:
            raise failure
