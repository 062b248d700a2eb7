"""A fake Meituan over real HTTP, following the same MODELLED protocol as the adapter.

It reads requests with its own code (json + hmac here; it never imports the adapter's
codec, client or signer, so a codec bug cannot hide behind its mirror image) and enforces:

- MWS header auth: ``Date`` within +-5 minutes (code 1002), ``PartnerId`` ours (1003),
  ``Authorization: MWS <appKey>:<base64 hmac-sha1(appSecret, "POST <path>\\n<Date>")>``
  (1001); answered with HTTP 401;
- ``/hotel/ari/push``: one known hotel (2001), at most 40 items (1102), each item a known
  room (2002) / rate plan of that room (2003), dates today .. today+180 in Beijing time (and yesterday until 06:00)
  (2004), values in range (2005: inventory 0..9999, price 1..99,999,999 fen, CNY only,
  minLos/maxLos 1..99 with minLos <= maxLos); refused items are listed in
  ``data.failItems`` by ``seq`` and the rest applied;
- ``/hotel/ari/query``: at most 31 days (1101);
- ``/hotel/order/query`` by ``orderId`` (2101 when unknown) or ``updatedSince``;
- pushes order notices, signed the same way, to ``deliver_to`` + ``/order/pay``,
  ``/order/modify`` or ``/order/refund``; a notice counts as delivered only when the answer
  is HTTP 200 with ``code`` 0, otherwise it is delivered again later;
- faults: ``fault_response`` in Meituan's JSON (HTTP status, ``Retry-After``), and
  ``malformed_rate`` truncates notice bodies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import date, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web

from adapters.base.sandbox import BookingEvent, Sandbox, SandboxBooking, SandboxCatalog

BEIJING = ZoneInfo("Asia/Shanghai")
PUSH_PATH = "/hotel/ari/push"
QUERY_PATH = "/hotel/ari/query"
ORDER_QUERY_PATH = "/hotel/order/query"
NOTICE_PATHS = {"new": "/order/pay", "modify": "/order/modify", "cancel": "/order/refund"}
ORDER_STATUS = {"new": "PAID", "modify": "MODIFIED", "cancel": "REFUNDED"}
MAX_ITEMS = 40
HORIZON_DAYS = 180
LATE_NIGHT_END_HOUR = 6  # before 06:00 Beijing time the previous date is still sold
QUERY_MAX_DAYS = 31
SKEW_SECONDS = 300
MAX_PRICE_FEN = 99_999_999
MAX_INVENTORY = 9999


class Refused(Exception):
    def __init__(self, code: int, message: str, status: int = 200):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _sign(secret: str, method: str, path: str, date_header: str) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{method} {path}\n{date_header}".encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


class MeituanSandbox(Sandbox):
    name = "meituan"
    delivery = "push"
    inventory_level = "room"
    id_prefix = "MT"

    def __init__(self, catalog: SandboxCatalog, credentials: dict[str, str], deliver_to: str | None = None,
                 *, seed: int | None = None):
        super().__init__(catalog, credentials, deliver_to, seed=seed)
        self.clock = time.time  # tests move it
        self.updated: dict[str, datetime] = {}  # order id -> last change

    def today(self, hotel: str | None = None) -> date:
        """Meituan counts days in Beijing time."""
        return datetime.fromtimestamp(self.clock(), BEIJING).date()

    def new_booking_id(self) -> str:
        return f"{int(self.clock() * 1000) % 10 ** 12:012d}{next(self._ids):04d}"

    def protocol_routes(self) -> list[web.RouteDef]:
        return [web.post(PUSH_PATH, self._h_push), web.post(QUERY_PATH, self._h_query),
                web.post(ORDER_QUERY_PATH, self._h_order_query)]

    # ---- answers ------------------------------------------------------------------------
    @staticmethod
    def _json(code: int, message: str, data: Any = None, status: int = 200,
              headers: dict[str, str] | None = None) -> web.Response:
        doc: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            doc["data"] = data
        hdrs = {"M-TraceId": secrets.token_hex(12), **(headers or {})}
        return web.Response(status=status, body=json.dumps(doc, ensure_ascii=False).encode("utf-8"),
                            content_type="application/json", charset="utf-8", headers=hdrs)

    def fault_response(self, status: int, retry_after: float | None) -> web.Response:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        if status == 429:
            data = {"retryAfter": retry_after} if retry_after is not None else None
            return self._json(5002, "request too frequent", data, status, headers)
        return self._json(5001, "system busy, try again later", None, status, headers)

    # ---- the gate -----------------------------------------------------------------------
    def _authenticate(self, request: web.Request) -> None:
        date_header = request.headers.get("Date", "")
        try:
            sent = parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError, IndexError):
            raise Refused(1002, "Date header missing or invalid", 401) from None
        if abs(self.clock() - sent) > SKEW_SECONDS:
            raise Refused(1002, "request expired: Date is more than 5 minutes from server time", 401)
        partner = self.credentials.get("username", "")
        if not partner or not hmac.compare_digest(request.headers.get("PartnerId", "").encode(), partner.encode()):
            raise Refused(1003, "unknown PartnerId", 401)
        auth = request.headers.get("Authorization", "")
        key, secret = self.credentials.get("key", ""), self.credentials.get("secret", "")
        if not auth.startswith("MWS ") or ":" not in auth:
            raise Refused(1001, "Authorization missing", 401)
        got_key, _, got_sig = auth[4:].strip().partition(":")
        if not key or not hmac.compare_digest(got_key.encode(), key.encode()):
            raise Refused(1001, "invalid appKey", 401)
        want = _sign(secret, request.method, request.path, date_header)
        if not hmac.compare_digest(got_sig.encode(), want.encode()):
            raise Refused(1001, "signature verification failed", 401)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        self._authenticate(request)
        try:
            doc = json.loads((await request.read()).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise Refused(1101, "request body is not JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("body"), dict):
            raise Refused(1101, "request body must be {partnerId, body}")
        if str(doc.get("partnerId")) != self.credentials.get("username"):
            raise Refused(1003, "partnerId in the body does not match the PartnerId header", 401)
        return doc["body"]

    def _wrap(self, fn):
        async def handle(request: web.Request) -> web.Response:
            try:
                return await fn(await self._body(request))
            except Refused as e:
                return self._json(e.code, e.message, status=e.status)
        return handle

    async def _h_push(self, request: web.Request) -> web.Response:
        return await self._wrap(self._push)(request)

    async def _h_query(self, request: web.Request) -> web.Response:
        return await self._wrap(self._query)(request)

    async def _h_order_query(self, request: web.Request) -> web.Response:
        return await self._wrap(self._order_query)(request)

    def _day(self, v: Any) -> date:
        if not isinstance(v, str):
            raise Refused(2004, f"date {v!r} is not yyyy-MM-dd")
        try:
            return date.fromisoformat(v)
        except ValueError:
            raise Refused(2004, f"date {v!r} is not yyyy-MM-dd") from None

    # ---- ARI ----------------------------------------------------------------------------
    async def _push(self, body: dict[str, Any]) -> web.Response:
        hotel_id = body.get("hotelId")
        hotel = self.catalog.hotel(str(hotel_id)) if hotel_id is not None else None
        if hotel is None:
            raise Refused(2001, f"hotel {hotel_id!r} is not connected to this partner")
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise Refused(1101, "items must be a non-empty list")
        if len(items) > MAX_ITEMS:
            raise Refused(1102, f"at most {MAX_ITEMS} items per request, got {len(items)}")
        fails, ok = [], 0
        for n, it in enumerate(items):
            seq = it.get("seq", n) if isinstance(it, dict) else n
            try:
                self._apply_item(hotel.code, hotel.currency, it)
                ok += 1
            except Refused as e:
                fails.append({"seq": seq, "code": e.code, "message": e.message})
        return self._json(0, "ok", {"successCount": ok, "failItems": fails})

    def _apply_item(self, hotel: str, currency: str, it: Any) -> None:
        if not isinstance(it, dict):
            raise Refused(1101, "an item must be an object")
        room, rate = it.get("roomId"), it.get("ratePlanId")
        if not isinstance(room, str) or not self.catalog.has_room(hotel, room):
            raise Refused(2002, f"room {room!r} does not exist in hotel {hotel}")
        if rate is not None and (not isinstance(rate, str) or not self.catalog.has_rate(hotel, room, rate)):
            raise Refused(2003, f"rate plan {rate!r} does not exist under room {room}")
        start, end = self._day(it.get("startDate")), self._day(it.get("endDate"))
        now = datetime.fromtimestamp(self.clock(), BEIJING)
        today = now.date()
        if end < start:
            raise Refused(2004, "endDate is before startDate")
        # late-night rooms (凌晨房): until 06:00 Beijing time "tonight" is still yesterday's date
        first = today - timedelta(days=1) if now.hour < LATE_NIGHT_END_HOUR else today
        if start < first or end > today + timedelta(days=HORIZON_DAYS):
            raise Refused(2004, f"dates must lie within {first} .. {today + timedelta(days=HORIZON_DAYS)}")
        values: dict[str, Any] = {}
        room_values: dict[str, Any] = {}
        if "inventory" in it:
            inv = it["inventory"]
            if not _int(inv) or not 0 <= inv <= MAX_INVENTORY:
                raise Refused(2005, f"inventory {inv!r} out of range 0..{MAX_INVENTORY}")
            room_values["rooms_to_sell"] = inv
        if "closed" in it:
            if not isinstance(it["closed"], bool):
                raise Refused(2005, "closed must be true or false")
            (values if rate is not None else room_values)["stop_sell"] = it["closed"]
        if rate is not None:
            if "price" in it:
                price, occ = it["price"], it.get("occupancy", 2)
                if not _int(price) or not 0 < price <= MAX_PRICE_FEN:
                    raise Refused(2005, f"price {price!r} must be fen within 1..{MAX_PRICE_FEN}")
                if not _int(occ) or not 1 <= occ <= 9:
                    raise Refused(2005, f"occupancy {occ!r} out of range 1..9")
                cur = it.get("currency", "CNY")
                if cur != currency:
                    raise Refused(2005, f"currency {cur!r}: this hotel sells in {currency}")
                values.update(price_minor=price, currency=cur, prices={occ: price})
            for f, k in (("minLos", "min_los"), ("maxLos", "max_los")):
                if f in it:
                    if not _int(it[f]) or not 1 <= it[f] <= 99:
                        raise Refused(2005, f"{f} {it[f]!r} out of range 1..99")
                    values[k] = it[f]
            if "min_los" in values and "max_los" in values and values["min_los"] > values["max_los"]:
                raise Refused(2005, "minLos is greater than maxLos")
        elif any(k in it for k in ("price", "minLos", "maxLos")):
            raise Refused(1101, "prices and stay limits belong to a rate plan item")
        d = start
        while d <= end:
            if room_values:
                self.set_cell(hotel, room, None, d, **room_values)
            if rate is not None and values:
                self.set_cell(hotel, room, rate, d, **values)
            d += timedelta(days=1)

    async def _query(self, body: dict[str, Any]) -> web.Response:
        hotel = str(body.get("hotelId"))
        if self.catalog.hotel(hotel) is None:
            raise Refused(2001, f"hotel {hotel!r} is not connected to this partner")
        start, end = self._day(body.get("startDate")), self._day(body.get("endDate"))
        if end < start or (end - start).days + 1 > QUERY_MAX_DAYS:
            raise Refused(1101, f"a query spans 1..{QUERY_MAX_DAYS} days")
        items = []
        for row in self.state(hotel)["cells"]:
            d = date.fromisoformat(row["date"])
            if not start <= d <= end:
                continue
            item: dict[str, Any] = {"roomId": row["room"], "ratePlanId": row["rate"], "date": row["date"]}
            if row["rate"] is None:
                item.update(inventory=row["rooms_to_sell"], closed=row["stop_sell"])
            else:
                prices = row.get("prices") or {}
                occ = max((int(k) for k in prices), default=2)
                item.update(price=row["price_minor"], occupancy=occ, currency=row["currency"],
                            minLos=row["min_los"], maxLos=row["max_los"], closed=row["stop_sell"])
            items.append({k: v for k, v in item.items() if v is not None or k == "ratePlanId"})
        return self._json(0, "ok", {"items": items})

    # ---- orders -------------------------------------------------------------------------
    def order(self, booking: SandboxBooking, event: BookingEvent) -> dict[str, Any]:
        """One order as Meituan sends it (notice body and query result alike)."""
        d = event.snapshot
        ci, co = date.fromisoformat(d["checkin"]), date.fromisoformat(d["checkout"])
        nights = max(1, (co - ci).days)
        amount = int(d.get("amount_minor") or 0)
        per, rest = divmod(amount, nights)
        daily = [{"date": (ci + timedelta(days=i)).isoformat(), "price": per + (rest if i == 0 else 0)}
                 for i in range(nights)]
        guest = d.get("guest") or {}
        return {
            "orderId": booking.ota_booking_id, "orderVersion": event.revision,
            "orderStatus": ORDER_STATUS[event.action],
            "hotelId": d["hotel"], "roomId": d["room"], "ratePlanId": d.get("rate"),
            "checkinDate": d["checkin"], "checkoutDate": d["checkout"],
            "roomNum": int(d.get("rooms", 1)), "personNum": int(d.get("guests", 2)),
            "totalPrice": amount, "currency": d.get("currency") or "CNY", "dailyPrices": daily,
            "contactName": guest.get("name"), "contactPhone": guest.get("phone"),
            "contactEmail": guest.get("email"), "guestNames": [guest["name"]] if guest.get("name") else [],
            "remark": d.get("special_requests"), "midnightOrder": bool(d.get("tonight")),
            "bookTime": _ms(booking.created_at), "updateTime": _ms(event.created_at),
        }

    async def _order_query(self, body: dict[str, Any]) -> web.Response:
        hotel = str(body.get("hotelId"))
        if self.catalog.hotel(hotel) is None:
            raise Refused(2001, f"hotel {hotel!r} is not connected to this partner")
        if body.get("orderId") is not None:
            b = self.bookings.get(str(body["orderId"]))
            if b is None or b.data.get("hotel") != hotel:
                raise Refused(2101, f"order {body['orderId']} not found")
            return self._json(0, "ok", {"orders": [self.order(b, b.events[-1])]})
        since = body.get("updatedSince")
        if not _int(since):
            raise Refused(1101, "give orderId or updatedSince (epoch milliseconds)")
        found = [self.order(b, b.events[-1]) for b in self.bookings.values()
                 if b.data.get("hotel") == hotel and b.events and _ms(b.events[-1].created_at) >= since]
        return self._json(0, "ok", {"orders": found})

    async def deliver(self, booking: SandboxBooking, event: BookingEvent) -> bool:
        if not self.deliver_to:
            return False
        url = self.deliver_to.rstrip("/") + NOTICE_PATHS[event.action]
        body = json.dumps({"partnerId": self.credentials.get("username"), "body": self.order(booking, event)},
                          ensure_ascii=False).encode("utf-8")
        if self.malformed():
            body = self.corrupt(body)
        date_header = formatdate(self.clock(), usegmt=True)
        headers = {"Content-Type": "application/json; charset=utf-8", "Date": date_header,
                   "PartnerId": self.credentials.get("username", ""),
                   "Authorization": f"MWS {self.credentials.get('key', '')}:"
                                    f"{_sign(self.credentials.get('secret', ''), 'POST', urlsplit(url).path, date_header)}"}
        event.state = "delivered" if event.state == "queued" else event.state
        async with self.client.post(url, data=body, headers=headers) as resp:
            text = await resp.read()
        if resp.status != 200:
            event.last_error = f"HTTP {resp.status}: {text[:200].decode('utf-8', 'replace')}"
            return False
        try:
            doc = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return False
        return isinstance(doc, dict) and doc.get("code") == 0


__all__ = ["MeituanSandbox"]
