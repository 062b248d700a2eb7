"""A faithful fake Fliggy (TOP ``/router/rest``) over real HTTP.

It reads requests with its own code and never imports the adapter's signer or codec, so
a bug there cannot hide behind its mirror image. It enforces what
../shared/protocols/fliggy.md says TOP enforces and answers, as TOP does, with HTTP 200
and ``{"error_response": {"code", "msg", "sub_code", "sub_msg", "request_id"}}``:

- app_key (29), signature by md5 / hmac / hmac-sha256 (25), timestamp ``yyyy-MM-dd
  HH:mm:ss`` GMT+8 within 10 minutes (31), session (27), method (22), ``v=2.0`` and
  ``format=json`` (41), missing parameters (40);
- ``rates.increment`` / ``rates.update``: at most 30 entries (41 isv.invalid-parameter),
  known out_rid / rateplan_code (15 isv.rateplan-not-exist), dates yesterday .. today+180
  in GMT+8, quota 0..999 or 60000 (closed) / 61000 (open), price 1..99999999 fen,
  status 0/1 (41 isv.invalid-parameter:*). A bad entry is named
  ``rate_inventory_price_map[i]`` in sub_msg; nothing of a refused call is applied.
- orders: ``order.search`` (created window <= 30 days, within the last 90 days, pages of
  20, <= 20 tids), ``order.detail.search`` (<= 20 tids), ``order.update`` (opt_type 1..6,
  confirm_code for 2). The order fields are modelled (see the codec's docstring). The
  sandbox serves an order's current state; an order needs confirming while any of its
  revisions is unacknowledged; ``order.detail.search`` marks those revisions delivered and
  ``order.update`` acknowledges the delivered ones.

State cells are rate level: rooms_to_sell = quota, price_minor = fen, currency CNY,
stop_sell from status (0 closed) or the quota sentinels.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import date, datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from adapters.base.sandbox import Sandbox, SandboxBooking, SandboxCatalog

CST = timezone(timedelta(hours=8))
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
TOLERANCE = timedelta(minutes=10)
MAX_ENTRIES = 30
MAX_IDS = 20
PAGE = 20
SEARCH_SPAN = timedelta(days=30)
HISTORY = timedelta(days=90)
CLOSED, OPEN = 60000, 61000
METHODS = {
    "taobao.xhotel.rates.increment", "taobao.xhotel.rates.update", "taobao.xhotel.order.search",
    "taobao.xhotel.order.detail.search", "taobao.xhotel.order.update",
}


class TopRefusal(Exception):
    def __init__(self, code: int, msg: str, sub_code: str | None = None, sub_msg: str | None = None):
        super().__init__(msg)
        self.code, self.msg, self.sub_code, self.sub_msg = code, msg, sub_code, sub_msg


def _invalid(what: str, text: str) -> TopRefusal:
    return TopRefusal(41, "Invalid arguments", f"isv.invalid-parameter:{what}", text)


def _cst(dt: datetime) -> str:
    return dt.astimezone(CST).strftime(TS_FORMAT)


def _whole(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


class FliggySandbox(Sandbox):
    name = "fliggy"
    delivery = "pull"
    inventory_level = "rate"

    def __init__(self, catalog: SandboxCatalog, credentials: dict[str, str], deliver_to: str | None = None,
                 *, seed: int | None = None):
        super().__init__(catalog, credentials, deliver_to, seed=seed)
        self.confirm_codes: dict[str, str] = {}
        self.opt_types: dict[str, list[int]] = {}

    def today(self, hotel: str | None = None) -> date:
        """Fliggy counts dates in GMT+8 whatever the hotel's zone."""
        return datetime.now(CST).date()

    def protocol_routes(self) -> list[web.RouteDef]:
        return [web.post("/router/rest", self._h_router)]

    # ---- answers ----------------------------------------------------------------------
    @staticmethod
    def _rid() -> str:
        return secrets.token_hex(6)

    def _json(self, payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(status=status, body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                            content_type="application/json", charset="utf-8", headers=headers)

    def _error(self, e: TopRefusal, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        err: dict[str, Any] = {"code": e.code, "msg": e.msg}
        if e.sub_code:
            err["sub_code"] = e.sub_code
        if e.sub_msg:
            err["sub_msg"] = e.sub_msg
        err["request_id"] = self._rid()
        return self._json({"error_response": err}, status, headers)

    def _ok(self, method: str, result: dict[str, Any], simplify: bool, lists: dict[str, str] | None = None) -> web.Response:
        result = dict(result)
        result["request_id"] = self._rid()
        if simplify:
            return self._json(result)
        for key, inner in (lists or {}).items():  # the classic shape wraps lists in an object
            if key in result:
                result[key] = {inner: result[key]}
        return self._json({method.removeprefix("taobao.").replace(".", "_") + "_response": result})

    def fault_response(self, status: int, retry_after: float | None) -> web.Response:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        if status == 429:
            wait = f"{retry_after:g}" if retry_after is not None else "1"
            e = TopRefusal(7, "App Call Limited", "accesscontrol.limited-by-app-access-count",
                           f"This ban will last for {wait} more seconds")
        else:
            e = TopRefusal(10, "Service currently unavailable", "isp.top-remote-unavailable",
                           "injected fault")
        return self._error(e, status, headers)

    # ---- the gate -----------------------------------------------------------------------
    @staticmethod
    def _signature(params: dict[str, str], secret: str, method: str) -> str | None:
        pairs = sorted(((k, v) for k, v in params.items() if k != "sign"), key=lambda kv: kv[0].encode("utf-8"))
        text = "".join(k + v for k, v in pairs).encode("utf-8")
        key = secret.encode("utf-8")
        if method == "md5":
            return hashlib.md5(key + text + key).hexdigest().upper()
        if method == "hmac":
            return hmac.new(key, text, hashlib.md5).hexdigest().upper()
        if method == "hmac-sha256":
            return hmac.new(key, text, hashlib.sha256).hexdigest().upper()
        return None

    def _gate(self, p: dict[str, str]) -> None:
        method = p.get("method")
        if not method:
            raise TopRefusal(21, "Missing Method")
        if method not in METHODS:
            raise TopRefusal(22, "Invalid Method", sub_msg=f"{method} is not a method of this API")
        app_key = p.get("app_key")
        if not app_key:
            raise TopRefusal(28, "Missing App Key")
        if not hmac.compare_digest(app_key.encode(), self.credentials.get("key", "").encode()):
            raise TopRefusal(29, "Invalid App Key")
        sign_method = p.get("sign_method", "md5")
        if not p.get("sign"):
            raise TopRefusal(40, "Missing required arguments:sign")
        want = self._signature(p, self.credentials.get("secret", ""), sign_method)
        if want is None:
            raise TopRefusal(41, "Invalid arguments:sign_method", sub_msg=f"{sign_method} is not md5, hmac or hmac-sha256")
        if not hmac.compare_digest(want.encode(), p["sign"].encode()):
            raise TopRefusal(25, "Invalid signature")
        try:
            ts = datetime.strptime(p.get("timestamp", ""), TS_FORMAT).replace(tzinfo=CST)
        except ValueError:
            raise TopRefusal(31, "Invalid timestamp", sub_msg="timestamp must be yyyy-MM-dd HH:mm:ss (GMT+8)") from None
        if abs(datetime.now(CST) - ts) > TOLERANCE:
            raise TopRefusal(31, "Invalid timestamp",
                             sub_msg=f"timestamp {p['timestamp']} is more than 10 minutes from {_cst(datetime.now(CST))}")
        if p.get("v") != "2.0":
            raise TopRefusal(41, "Invalid arguments:v", sub_msg="v must be 2.0")
        if p.get("format", "xml") != "json":
            raise TopRefusal(41, "Invalid arguments:format", sub_msg="this sandbox answers format=json only")
        session = p.get("session")
        if not session:
            raise TopRefusal(26, "Missing session")
        if not hmac.compare_digest(session.encode(), self.credentials.get("session", "").encode()):
            raise TopRefusal(27, "Invalid session", "sessionkey-not-generated-by-server",
                             "the session does not belong to this app")

    async def _h_router(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            self._gate(params)
            method = params["method"]
            simplify = params.get("simplify", "false").lower() == "true"
            if method in ("taobao.xhotel.rates.increment", "taobao.xhotel.rates.update"):
                return self._ok(method, self._rates(params, overwrite=method.endswith("update")), simplify,
                                {"gid_and_rpids": "string"})
            if method == "taobao.xhotel.order.search":
                return self._ok(method, self._search(params), simplify, {"hotel_orders": "x_hotel_order"})
            if method == "taobao.xhotel.order.detail.search":
                resp = self._ok(method, self._detail(params), simplify, {"hotel_orders": "x_hotel_order"})
                if self.malformed():
                    resp = web.Response(status=200, body=self.corrupt(resp.body), content_type="application/json",
                                        charset="utf-8")
                return resp
            return self._ok(method, self._update(params), simplify)
        except TopRefusal as e:
            return self._error(e)

    # ---- prices and quota -----------------------------------------------------------------
    def _locate(self, out_rid: str, rateplan_code: str) -> str | None:
        for code, hotel in self.catalog.hotels.items():
            if rateplan_code in hotel.rooms.get(out_rid, ()):
                return code
        return None

    def _rates(self, p: dict[str, str], *, overwrite: bool) -> dict[str, Any]:
        raw = p.get("rate_inventory_price_map")
        if not raw:
            raise TopRefusal(40, "Missing required arguments:rate_inventory_price_map")
        try:
            entries = json.loads(raw)
        except ValueError:
            raise _invalid("rate_inventory_price_map", "rate_inventory_price_map is not JSON") from None
        if not isinstance(entries, list) or not entries:
            raise _invalid("rate_inventory_price_map", "rate_inventory_price_map must be a non-empty list")
        if len(entries) > MAX_ENTRIES:
            raise _invalid("rate_inventory_price_map",
                           f"at most {MAX_ENTRIES} rate plans a call, this call has {len(entries)}")
        today = self.today()
        lo, hi = today - timedelta(days=1), today + timedelta(days=180)
        writes = []
        for i, e in enumerate(entries):
            where = f"rate_inventory_price_map[{i}]"
            if not isinstance(e, dict) or not isinstance(e.get("data"), dict):
                raise _invalid("rate_inventory_price_map", f"{where}: needs out_rid, rateplan_code and data")
            rid, rp = e.get("out_rid"), e.get("rateplan_code")
            if not isinstance(rid, str) or not isinstance(rp, str):
                raise _invalid("rate_inventory_price_map", f"{where}: out_rid and rateplan_code are text")
            hotel = self._locate(rid, rp)
            if hotel is None:
                raise TopRefusal(15, "Remote service error", "isv.rateplan-not-exist",
                                 f"{where}: no rate plan {rp} of room {rid}")
            data = e["data"]
            if data.get("use_room_inventory") not in (False, None):
                raise _invalid("use_room_inventory", f"{where}: rate-level quota needs use_room_inventory false")
            days = data.get("inventory_price")
            if not isinstance(days, list) or not days:
                raise _invalid("inventory_price", f"{where}: inventory_price must be a non-empty list")
            for cell in days:
                if not isinstance(cell, dict):
                    raise _invalid("inventory_price", f"{where}: inventory_price holds objects")
                try:
                    day = date.fromisoformat(str(cell.get("date")))
                except ValueError:
                    raise _invalid("date", f"{where}: {cell.get('date')!r} is not a date") from None
                if not lo <= day <= hi:
                    raise _invalid("date", f"{where}: {day} is outside {lo}..{hi}")
                values: dict[str, Any] = {}
                if "status" in cell:
                    if cell["status"] not in (0, 1) or isinstance(cell["status"], bool):
                        raise _invalid("status", f"{where}: status must be 0 or 1")
                    values["stop_sell"] = cell["status"] == 0
                if "quota" in cell:  # a sentinel says more than status
                    q = _whole(cell["quota"])
                    if q is None or not (0 <= q <= 999 or q in (CLOSED, OPEN)):
                        raise _invalid("quota", f"{where}: quota {cell['quota']!r} is not 0..999, 60000 or 61000")
                    if q == CLOSED:
                        values["stop_sell"] = True
                    elif q == OPEN:
                        values["stop_sell"] = False
                    else:
                        values["rooms_to_sell"] = q
                if "price" in cell:
                    pr = _whole(cell["price"])
                    if pr is None or not 1 <= pr <= 99_999_999:
                        raise _invalid("price", f"{where}: price {cell['price']!r} is not 1..99999999 fen")
                    values["price_minor"], values["currency"] = pr, "CNY"
                if not values:
                    raise TopRefusal(40, "Missing required arguments", "isv.missing-parameter",
                                     f"{where}: {day} has neither quota, price nor status")
                writes.append((hotel, rid, rp, day, values))
        for hotel, rid, rp, day, values in writes:
            if overwrite:  # the overwrite call replaces what the date held
                values = {"rooms_to_sell": None, "price_minor": None, "currency": None, "stop_sell": None, **values}
            self.set_cell(hotel, rid, rp, day, **values)
        return {"gid_and_rpids": sorted({f"{rid}_{rp}" for _, rid, rp, _, _ in writes})}

    # ---- orders -----------------------------------------------------------------------------
    @staticmethod
    def _tid(oid: str) -> int | str:
        return int(oid) if oid.isdigit() else oid

    def _summary(self, b: SandboxBooking) -> dict[str, Any]:
        last = b.events[-1]
        pending = any(e.state != "acknowledged" for e in b.events)
        if b.status == "cancelled":
            status = "TRADE_CLOSED"
        else:
            status = "WAIT_SELLER_SEND_GOODS" if pending else "WAIT_BUYER_CONFIRM_GOODS"
        return {"tid": self._tid(b.ota_booking_id), "out_hid": b.data["hotel"], "trade_status": status,
                "gmt_create": _cst(b.created_at), "gmt_modified": _cst(last.created_at),
                "order_version": last.revision, "need_confirm": pending}

    def _detail_of(self, b: SandboxBooking) -> dict[str, Any]:
        d = b.data
        ci, co = date.fromisoformat(d["checkin"]), date.fromisoformat(d["checkout"])
        nights = [ci + timedelta(days=i) for i in range((co - ci).days)]
        total = int(d.get("amount_minor") or 0)
        each = [total // len(nights)] * len(nights)
        each[-1] += total - sum(each)
        guest = d.get("guest") or {}
        out = self._summary(b)
        out.update({
            "out_rid": d["room"], "rateplan_code": d.get("rate"), "checkin_date": ci.isoformat(),
            "checkout_date": co.isoformat(), "room_number": d.get("rooms", 1), "guest_count": d.get("guests", 2),
            "total_room_price": total, "currency": "CNY",
            "daily_price_info": [{"date": n.isoformat(), "price": p} for n, p in zip(nights, each)],
            "contact_name": guest.get("name"), "contact_phone": guest.get("phone"),
            "contact_email": guest.get("email"),
            "guests": [{"name": guest.get("name")}] if guest.get("name") else [],
            "message": d.get("special_requests"), "late_night": bool(d.get("tonight")),
        })
        return out

    @staticmethod
    def _tids(p: dict[str, str], required: bool) -> list[str] | None:
        raw = p.get("tids") or p.get("tid")
        if not raw:
            if required:
                raise TopRefusal(40, "Missing required arguments:tids")
            return None
        tids = [t.strip() for t in raw.split(",") if t.strip()]
        if len(tids) > MAX_IDS:
            raise _invalid("tids", f"at most {MAX_IDS} ids a call, got {len(tids)}")
        return tids

    def _search(self, p: dict[str, str]) -> dict[str, Any]:
        try:
            start = datetime.strptime(p.get("created_start", ""), TS_FORMAT).replace(tzinfo=CST)
            end = datetime.strptime(p.get("created_end", ""), TS_FORMAT).replace(tzinfo=CST)
        except ValueError:
            raise TopRefusal(40, "Missing required arguments:created_start,created_end", "isv.missing-parameter",
                             "created_start and created_end are yyyy-MM-dd HH:mm:ss") from None
        if end < start:
            raise _invalid("created_end", "created_end is before created_start")
        if end - start > SEARCH_SPAN:
            raise _invalid("created_window", "the created-time window is at most 30 days")
        if start < datetime.now(CST) - HISTORY - timedelta(minutes=10):
            raise _invalid("created_start", "only orders of the last 90 days can be searched")
        try:
            page = int(p.get("page_no", "1"))
            size = int(p.get("page_size", str(PAGE)))
        except ValueError:
            raise _invalid("page_no", "page_no and page_size are numbers") from None
        if page < 1 or not 1 <= size <= PAGE:
            raise _invalid("page_size", f"page_no >= 1, page_size 1..{PAGE}")
        tids = self._tids(p, required=False)
        found = [b for b in self.bookings.values()
                 if start <= b.created_at.astimezone(CST).replace(microsecond=0) <= end
                 and (tids is None or b.ota_booking_id in tids)]
        found.sort(key=lambda b: (b.created_at, b.ota_booking_id))
        chunk = found[(page - 1) * size: page * size]
        return {"total_results": len(found), "hotel_orders": [self._summary(b) for b in chunk]}

    def _detail(self, p: dict[str, str]) -> dict[str, Any]:
        out = []
        for tid in self._tids(p, required=True) or []:
            b = self.bookings.get(tid)
            if b is None:
                raise TopRefusal(15, "Remote service error", "isv.order-not-exist", f"no order {tid}")
            out.append(self._detail_of(b))
            for e in b.events:
                if e.state != "acknowledged":
                    e.state = "delivered"
                    e.attempts += 1
        return {"hotel_orders": out}

    def _update(self, p: dict[str, str]) -> dict[str, Any]:
        tid = p.get("tid")
        if not tid:
            raise TopRefusal(40, "Missing required arguments:tid")
        try:
            opt = int(p.get("opt_type", ""))
        except ValueError:
            raise TopRefusal(40, "Missing required arguments:opt_type") from None
        if opt not in range(1, 7):
            raise _invalid("opt_type", "opt_type is 1..6")
        b = self.bookings.get(tid)
        if b is None:
            raise TopRefusal(15, "Remote service error", "isv.order-not-exist", f"no order {tid}")
        if opt == 2:
            if not p.get("confirm_code"):
                raise TopRefusal(40, "Missing required arguments:confirm_code", "isv.missing-parameter",
                                 "opt_type 2 needs confirm_code")
            if b.status == "cancelled":
                raise TopRefusal(15, "Remote service error", "isv.order-status-invalid",
                                 f"order {tid} is cancelled and cannot be confirmed")
            self.confirm_codes[tid] = p["confirm_code"]
        if opt == 1 and b.status != "cancelled":  # the hotel refuses the order: no room
            self._take(b.data, +1, check=False)
            b.status = "cancelled"
        self.opt_types.setdefault(tid, []).append(opt)
        if opt in (1, 2):
            for e in b.events:
                if e.state == "delivered":
                    e.state = "acknowledged"
                    e.last_error = None
        return {"result": True, "tid": self._tid(tid)}
