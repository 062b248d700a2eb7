"""Meituan's wire format (MODELLED): every message we build and every answer we read.

No public specification of Meituan's hotel supplier direct-connect exists; the public
Meituan open platforms share the conventions in ../shared/protocols/meituan.md and this
module follows them. Everything else here is a model, kept in one place so that a partner
holding the real document changes this file alone: every path, limit and field name is a
constant below or a field of :class:`Options` (overridable through
``ChannelSettings.options``).

The model:

- JSON over HTTP(S), one method per path, request body ``{"partnerId": .., "body": ..}``,
  answer ``{"code": 0, "message": "ok", "data": ..}`` (HTTP 200 also for business errors;
  ``code`` carries them, see ``CODE_*``);
- ``POST /hotel/ari/push``: one hotel, at most 40 items, each item one room (inventory,
  room closed) or one rate plan (price in fen for the plan's standard occupancy, minLos,
  maxLos, closed) over ``startDate``..``endDate`` inclusive; the answer lists the items it
  refused in ``data.failItems`` by their ``seq``; the others were applied;
- ``POST /hotel/ari/query``: read back one hotel over at most 31 days, answering single-date
  items in the same field names;
- ``POST /hotel/order/query``: one order by ``orderId``, or every order of a hotel updated
  since ``updatedSince`` (epoch ms), for recovery after an outage;
- Meituan notifies us: ``POST <ours>/order/pay`` (new booking), ``/order/modify`` (a new
  ``orderVersion`` of a paid order), ``/order/refund`` (cancellation), signed the same way
  as our calls; we answer ``{"code": 0, "data": {"confirmNo": ..}}`` once committed and a
  non-zero code otherwise, and Meituan delivers the notice again later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from adapters.base.contract import (
    AriUpdate,
    BookingRevision,
    Guest,
    NightPrice,
    Price,
    Stay,
)
from adapters.base.errors import ParseError

CHANNEL = "meituan"
CONTENT_TYPE = "application/json; charset=utf-8"

# ---- result codes (modelled) -------------------------------------------------------------
CODE_OK = 0
CODE_AUTH_SIGNATURE = 1001  # Authorization missing, wrong appKey or wrong signature
CODE_AUTH_DATE = 1002  # Date header missing or too far from Meituan's clock
CODE_AUTH_PARTNER = 1003  # PartnerId unknown or not the one the key belongs to
CODE_PARAM_INVALID = 1101  # the request as a whole cannot be read
CODE_TOO_MANY_ITEMS = 1102  # more than MAX_ITEMS items in one push
CODE_UNKNOWN_HOTEL = 2001
CODE_UNKNOWN_ROOM = 2002
CODE_UNKNOWN_RATE = 2003
CODE_BAD_DATE = 2004  # outside the bookable window, or end before start
CODE_BAD_VALUE = 2005  # a number out of range, a currency the hotel does not sell in
CODE_ORDER_NOT_FOUND = 2101
CODE_MESSAGE_UNREADABLE = 3001  # our answer to a notice we could not read (Meituan redelivers)
CODE_SYSTEM_BUSY = 5001  # retriable
CODE_RATE_LIMITED = 5002  # retriable after data.retryAfter seconds

AUTH_CODES = frozenset({CODE_AUTH_SIGNATURE, CODE_AUTH_DATE, CODE_AUTH_PARTNER})
RETRIABLE_CODES = frozenset({CODE_SYSTEM_BUSY})

# ---- limits (modelled on the note's defaults) ----------------------------------------------
MAX_ITEMS = 40  # price pushes carry at most 40 items a request (the note)
HORIZON_DAYS = 180
READBACK_MAX_DAYS = 31
DATE_SKEW_SECONDS = 300
TIMEZONE = "Asia/Shanghai"

ORDER_STATUS_ACTION = {"PAID": "new", "CONFIRMED": "new", "MODIFIED": "modify", "REFUNDED": "cancel",
                       "CANCELLED": "cancel"}
KIND = {"new": "reservation", "modify": "modification", "cancel": "cancellation"}


@dataclass(frozen=True)
class Options:
    """Paths, limits and guesses; each field can be set in ``ChannelSettings.options``."""

    ari_push_path: str = "/hotel/ari/push"
    ari_query_path: str = "/hotel/ari/query"
    order_query_path: str = "/hotel/order/query"
    # where Meituan notifies us, relative to /inbound/meituan/
    notice_pay_path: str = "/order/pay"
    notice_modify_path: str = "/order/modify"
    notice_refund_path: str = "/order/refund"
    signer: Literal["mws", "params"] = "mws"
    date_skew_seconds: int = DATE_SKEW_SECONDS  # inbound notices older/newer than this are refused
    readback_max_days: int = READBACK_MAX_DAYS
    verify_inbound: bool = True  # check the MWS signature and PartnerId of notices

    @classmethod
    def from_settings(cls, options: dict[str, Any] | None) -> Options:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in dict(options or {}).items() if k in known}
        if values.get("signer", "mws") not in ("mws", "params"):
            raise ValueError(f"meituan: options.signer must be 'mws' or 'params', not {values['signer']!r}")
        for k in ("date_skew_seconds", "readback_max_days"):
            if k in values:
                values[k] = int(values[k])
        if "verify_inbound" in values:
            values["verify_inbound"] = bool(values["verify_inbound"])
        return cls(**values)


# ---- envelope and answers -------------------------------------------------------------------


def envelope(partner_id: str, body: Any) -> bytes:
    """The request body every Meituan call carries: UTF-8 JSON, Chinese text as is."""
    return json.dumps({"partnerId": partner_id, "body": body}, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Answer:
    code: int
    message: str
    data: Any


def read_answer(raw: bytes) -> Answer:
    """``{"code", "message", "data"}``; ParseError when it is not that."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ParseError(f"not JSON: {e}") from None
    if not isinstance(doc, dict) or "code" not in doc:
        raise ParseError("the answer has no result code")
    code = doc["code"]
    if isinstance(code, bool) or not isinstance(code, (int, str)) or not str(code).lstrip("-").isdigit():
        raise ParseError(f"result code {code!r} is not a number")
    return Answer(int(code), str(doc.get("message") or doc.get("msg") or ""), doc.get("data"))


def answer(code: int, message: str, data: Any = None) -> bytes:
    """What we answer a Meituan notice with."""
    doc: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        doc["data"] = data
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


# ---- ARI out --------------------------------------------------------------------------------


def item_problem(u: AriUpdate) -> tuple[str, str] | None:
    """Refuse here what no Meituan message can carry (code, text), before sending."""
    if u.end < u.start:
        return "CHANNELMGR_BAD_RANGE", f"end {u.end} is before start {u.start}"
    if u.currency is not None and u.currency.upper() != "CNY":
        return "CHANNELMGR_CURRENCY", f"Meituan sells in CNY only, not {u.currency}"
    for p in u.prices:
        if isinstance(p.amount_minor, bool) or not isinstance(p.amount_minor, int):
            return "CHANNELMGR_BAD_PRICE", "prices are integers in fen"
    return None


def ari_item(seq: int, u: AriUpdate) -> dict[str, Any]:
    """One push item. A rate plan's price is the one for its largest occupancy given
    (Meituan prices a plan per room night, not per guest: ``occupancy_pricing`` is False)."""
    item: dict[str, Any] = {"seq": seq, "roomId": u.room, "startDate": u.start.isoformat(),
                            "endDate": u.end.isoformat()}
    if u.rate is not None:
        item["ratePlanId"] = u.rate
    if u.rooms_to_sell is not None:
        item["inventory"] = int(u.rooms_to_sell)
    if u.rate is not None and u.prices:
        top = max(u.prices, key=lambda p: p.occupancy)
        item["price"] = top.amount_minor
        item["occupancy"] = top.occupancy
        item["currency"] = (u.currency or "CNY").upper()
    if u.rate is not None:
        if u.min_los is not None:
            item["minLos"] = u.min_los
        if u.max_los is not None:
            item["maxLos"] = u.max_los
    if u.stop_sell is not None:
        item["closed"] = bool(u.stop_sell)
    return item


def ari_push(hotel: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"hotelId": hotel, "items": items}


def fail_items(data: Any) -> dict[int, tuple[str, str]]:
    """``data.failItems`` -> {seq: (code, message)}."""
    out: dict[int, tuple[str, str]] = {}
    if not isinstance(data, dict):
        return out
    for f in data.get("failItems") or ():
        if isinstance(f, dict) and isinstance(f.get("seq"), int):
            out[f["seq"]] = (str(f.get("code", "")), str(f.get("message") or ""))
    return out


def retry_after(data: Any) -> float | None:
    if isinstance(data, dict):
        v = data.get("retryAfter")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
    return None


# ---- read-back ----------------------------------------------------------------------------


def ari_query(hotel: str, start: date, end: date) -> dict[str, Any]:
    return {"hotelId": hotel, "startDate": start.isoformat(), "endDate": end.isoformat()}


def _opt_int(v: Any, what: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ParseError(f"{what} {v!r} is not an integer")
    return v


def readback(data: Any, hotel: str) -> list[AriUpdate]:
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ParseError("the read-back answer has no items")
    out = []
    for it in data["items"]:
        if not isinstance(it, dict) or not it.get("roomId") or not it.get("date"):
            raise ParseError(f"read-back item {it!r} lacks roomId or date")
        d = _date(it["date"], "date")
        rate = it.get("ratePlanId") or None
        prices: tuple[Price, ...] = ()
        price = _opt_int(it.get("price"), "price")
        if rate is not None and price is not None:
            prices = (Price(_opt_int(it.get("occupancy"), "occupancy") or 2, price),)
        closed = it.get("closed")
        out.append(AriUpdate(
            hotel=hotel, room=str(it["roomId"]), rate=str(rate) if rate is not None else None, start=d, end=d,
            rooms_to_sell=_opt_int(it.get("inventory"), "inventory"), prices=prices,
            currency=it.get("currency") if prices else None,
            min_los=_opt_int(it.get("minLos"), "minLos"), max_los=_opt_int(it.get("maxLos"), "maxLos"),
            stop_sell=bool(closed) if closed is not None else None,
            key=f"{rate or '-'}:{d.isoformat()}"))
    return out


# ---- orders in ----------------------------------------------------------------------------


def _date(value: Any, what: str) -> date:
    if not isinstance(value, str):
        raise ParseError(f"{what} is missing or not text")
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise ParseError(f"{what} {value!r} is not a date") from None


def _millis(value: Any, what: str) -> datetime | None:
    """Meituan's timestamps: epoch milliseconds (a 10-digit value is read as seconds)."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(f"{what} {value!r} is not a timestamp in milliseconds")
    seconds = value / 1000 if value >= 10 ** 11 else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ParseError(f"{what} {value!r} is out of range") from None


def _fen(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParseError(f"{what} {value!r} is not an amount in fen")
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParseError(f"{value!r} is not text")
    return value if value.strip() else None


def notice_body(raw: bytes) -> tuple[str | None, dict[str, Any]]:
    """A notice's envelope -> (partnerId, order); ParseError when unreadable."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ParseError(f"the notice is not UTF-8 JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("body"), dict):
        raise ParseError("the notice has no body object")
    pid = doc.get("partnerId")
    return (str(pid) if pid is not None else None), doc["body"]


def order(o: dict[str, Any], *, action: str | None = None, raw: bytes = b"") -> BookingRevision:
    """One Meituan order (notice body or query result) -> BookingRevision.

    ``action`` comes from the notice path; without it (query results) ``orderStatus`` says.
    The revision is ``v<orderVersion>`` (Meituan raises it with every change, and a notice
    delivered again carries the same one); without a version, ``t<updateTime>``.
    """
    if not isinstance(o, dict):
        raise ParseError("the order is not an object")
    oid = o.get("orderId")
    if oid is None or str(oid).strip() == "":
        raise ParseError("orderId is missing")
    hotel, room = o.get("hotelId"), o.get("roomId")
    if action is None:
        status = str(o.get("orderStatus") or "").upper()
        if status not in ORDER_STATUS_ACTION:
            raise ParseError(f"orderStatus {o.get('orderStatus')!r} is unknown")
        action = ORDER_STATUS_ACTION[status]
    # the order id names the booking: a refund needs nothing else, a modification no hotel
    # (hotel "" is the hotel of the booking held under that id, found by the engine)
    if not room and action != "cancel":
        raise ParseError("roomId is missing")
    if not hotel and action == "new":
        raise ParseError("hotelId is missing")
    version = o.get("orderVersion")
    updated = _millis(o.get("updateTime"), "updateTime")
    if version is not None and str(version).strip():
        revision = f"v{version}"
    elif o.get("updateTime") is not None:
        revision = f"t{o['updateTime']}"
    else:
        raise ParseError("neither orderVersion nor updateTime: the revision cannot be told")
    if action == "cancel" and not (room and o.get("checkinDate") and o.get("checkoutDate")):
        return BookingRevision(
            channel=CHANNEL, hotel=str(hotel or ""), ota_booking_id=str(oid), revision=revision, action="cancel",
            amount_minor=_fen(o.get("totalPrice"), "totalPrice"), special_requests=_text(o.get("remark")),
            revised_at=updated, raw=raw, extra={"orderStatus": o.get("orderStatus")})
    checkin, checkout = _date(o.get("checkinDate"), "checkinDate"), _date(o.get("checkoutDate"), "checkoutDate")
    if checkout <= checkin:
        raise ParseError(f"checkoutDate {checkout} is not after checkinDate {checkin}")
    rooms = o.get("roomNum", 1)
    if isinstance(rooms, bool) or not isinstance(rooms, int) or rooms < 1:
        raise ParseError(f"roomNum {rooms!r} is not a positive integer")
    guests = o.get("personNum")
    if guests is not None and (isinstance(guests, bool) or not isinstance(guests, int)):
        raise ParseError(f"personNum {guests!r} is not an integer")
    nightly = []
    for n in o.get("dailyPrices") or ():
        if not isinstance(n, dict):
            raise ParseError("a dailyPrices entry is not an object")
        nightly.append(NightPrice(_date(n.get("date"), "dailyPrices.date"), _fen(n.get("price"), "dailyPrices.price")
                                  or 0))
    names = o.get("guestNames") or []
    if not isinstance(names, list):
        raise ParseError("guestNames is not a list")
    name = _text(o.get("contactName")) or (_text(names[0]) if names else None)
    rate = o.get("ratePlanId")
    stay = Stay(room=str(room), rate=str(rate) if rate not in (None, "") else None, checkin=checkin,
                checkout=checkout, rooms=rooms, guests=guests, nightly=tuple(nightly))
    currency = o.get("currency") or "CNY"
    return BookingRevision(
        channel=CHANNEL, hotel=str(hotel or ""), ota_booking_id=str(oid), revision=revision,
        action=action,  # type: ignore[arg-type]
        stays=(stay,), amount_minor=_fen(o.get("totalPrice"), "totalPrice"), currency=str(currency).upper(),
        guest=Guest(name=name, phone=_text(o.get("contactPhone")), email=_text(o.get("contactEmail"))),
        special_requests=_text(o.get("remark")),
        booked_at=_millis(o.get("bookTime"), "bookTime"), revised_at=updated,
        tonight=bool(o.get("midnightOrder", False)), raw=raw,
        extra={"orderStatus": o.get("orderStatus"), "guestNames": names})


def order_query(hotel: str, *, order_id: str | None = None, updated_since: datetime | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"hotelId": hotel}
    if order_id is not None:
        body["orderId"] = order_id
    if updated_since is not None:
        body["updatedSince"] = int(updated_since.timestamp() * 1000)
    return body


def orders(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("orders"), list):
        raise ParseError("the order query answer has no orders list")
    return [o for o in data["orders"] if isinstance(o, dict)]


def order_json(o: dict[str, Any]) -> bytes:
    return json.dumps(o, ensure_ascii=False).encode("utf-8")


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]
