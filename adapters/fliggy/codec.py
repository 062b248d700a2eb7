"""Fliggy's wire format: every TOP parameter we build and every answer we read.

Pure functions, no I/O. What ../shared/protocols/fliggy.md states is followed as stated;
where it is silent the choice is made here, once, and named a GUESS/CHOICE:

- CHOICE: ``stop_sell`` is carried by an entry's ``status`` (0 = closed, 1 = open), so the
  quota stays the real count; the sentinels 60000 (closed) / 61000 (open) are read by the
  sandbox but never sent by the adapter.
- CHOICE: Fliggy holds one price per rate plan and night: the price of the highest
  occupancy given (the rate plan's standard occupancy, 2 in the mappings) is sent.
- CHOICE: more than 999 rooms to sell is sent as 999 (the most Fliggy can show); a negative
  count as 0.
- Dates outside yesterday .. today + 180 (GMT+8) are never sent: such items are
  ``skipped`` with :data:`WINDOW_TEXT`; an item partly inside is sent for its inside dates.
- GUESS: at most :data:`MAX_RATEPLANS_PER_CALL` entries in ``rate_inventory_price_map``
  (the 30 of ``rooms.increment``).
- GUESS (modelled): the order fields. ``order.search`` answers ``total_results`` and
  ``hotel_orders`` (summaries: ``tid``, ``out_hid``, ``trade_status``, ``gmt_create``,
  ``gmt_modified``, ``order_version``, ``need_confirm``); ``order.detail.search`` (``tids``)
  answers full orders: ``out_rid``, ``rateplan_code``, ``checkin_date``, ``checkout_date``,
  ``room_number``, ``guest_count``, ``total_room_price`` (fen), ``daily_price_info``
  ([{date, price}]), ``contact_name``/``contact_phone``/``contact_email``, ``guests``,
  ``message`` (the guest's requests), ``late_night``. ``trade_status`` ``TRADE_CLOSED`` is
  a cancellation; ``order_version`` > 1 a modification. Both the ``simplify=true`` shape
  (no ``*_response`` wrapper, plain lists) and the classic one are read.
- The revision of an order is ``<gmt_modified>|<trade_status>|v<order_version>``: stable
  for one revision, different for the next.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any

from adapters.base.contract import (
    AriUpdate,
    BookingRevision,
    Delivery,
    Guest,
    ItemResult,
    NightPrice,
    Stay,
)
from adapters.base.errors import ParseError
from adapters.fliggy.auth import GMT8, SIGN_METHODS, TIMESTAMP_FORMAT

CHANNEL = "fliggy"
CURRENCY = "CNY"
ROUTER_PATH = "/router/rest"

M_RATES_INCREMENT = "taobao.xhotel.rates.increment"
M_RATES_UPDATE = "taobao.xhotel.rates.update"
M_ORDER_SEARCH = "taobao.xhotel.order.search"
M_ORDER_DETAIL = "taobao.xhotel.order.detail.search"
M_ORDER_UPDATE = "taobao.xhotel.order.update"

MAX_RATEPLANS_PER_CALL = 30
PAST_DAYS = 1
FUTURE_DAYS = 180
QUOTA_MAX = 999
QUOTA_CLOSED = 60000
QUOTA_OPEN = 61000
PRICE_MIN, PRICE_MAX = 1, 99_999_999
ORDER_PAGE_SIZE = 20
ORDER_WINDOW_DAYS = 30
ORDER_HISTORY_DAYS = 90
OPT_CANCEL, OPT_CONFIRM = 1, 2
CLOSED_STATUSES = frozenset({"TRADE_CLOSED", "TRADE_CLOSED_BY_TAOBAO", "CANCELLED"})
WINDOW_TEXT = "outside Fliggy's window yesterday..today+180"


@dataclass(frozen=True)
class Options:
    """Each field can be set in ``ChannelSettings.options``."""

    path: str = ROUTER_PATH
    sign_method: str = "hmac-sha256"
    simplify: bool = True
    lookback_days: int = 30  # created-time span searched for orders needing us (<= 90)
    cancel_opt_type: int = OPT_CANCEL  # how a guest's cancellation is acknowledged
    rate_limit_default_seconds: float = 1.0  # code 8 without a stated delay
    app_limit_default_seconds: float = 60.0  # code 7 without a stated delay

    @classmethod
    def from_settings(cls, options: dict[str, Any] | None) -> Options:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in dict(options or {}).items() if k in known}
        if values.get("sign_method", "hmac-sha256") not in SIGN_METHODS:
            raise ValueError(f"fliggy: options.sign_method must be one of {', '.join(SIGN_METHODS)}")
        if "simplify" in values:
            values["simplify"] = str(values["simplify"]).lower() in ("1", "true", "yes")
        for k in ("lookback_days", "cancel_opt_type"):
            if k in values:
                values[k] = int(values[k])
        for k in ("rate_limit_default_seconds", "app_limit_default_seconds"):
            if k in values:
                values[k] = float(values[k])
        if "lookback_days" in values:
            values["lookback_days"] = max(1, min(ORDER_HISTORY_DAYS, values["lookback_days"]))
        return cls(**values)


# ---- time -----------------------------------------------------------------------------


def fliggy_today(now: datetime | None = None) -> date:
    return (now or datetime.now(GMT8)).astimezone(GMT8).date()


def window(today: date) -> tuple[date, date]:
    return today - timedelta(days=PAST_DAYS), today + timedelta(days=FUTURE_DAYS)


def top_time(dt: datetime) -> str:
    return dt.astimezone(GMT8).strftime(TIMESTAMP_FORMAT)


def parse_top_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        dt = datetime.strptime(str(value).strip(), TIMESTAMP_FORMAT)
    except ValueError:
        try:
            dt = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ParseError(f"{value!r} is not a time") from None
    return dt.replace(tzinfo=GMT8) if dt.tzinfo is None else dt


# ---- prices and quota out -------------------------------------------------------------


@dataclass
class Built:
    """The ``rate_inventory_price_map`` entries of one call and what each item became."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)  # entry index -> item index
    results: dict[int, ItemResult] = field(default_factory=dict)  # items settled without sending
    notes: dict[int, str] = field(default_factory=dict)  # items sent in part


def pick_price(u: AriUpdate) -> int | None:
    if not u.prices:
        return None
    return max(u.prices, key=lambda p: p.occupancy).amount_minor


def entry_for(u: AriUpdate, lo: date, hi: date) -> tuple[dict[str, Any] | None, ItemResult | None, str | None]:
    """One item as one map entry (a date range becomes one inventory_price per night)."""
    if u.rate is None:
        return None, ItemResult(u.key, "skipped", text="Fliggy holds inventory per rate plan; "
                                                      "room-level items are not sent"), None
    if u.currency not in (None, CURRENCY):
        return None, ItemResult(u.key, "rejected", "CHANNELMGR_CURRENCY",
                                f"Fliggy sells in {CURRENCY}, not {u.currency}"), None
    if u.end < u.start:
        return None, ItemResult(u.key, "rejected", "CHANNELMGR_DATES", "end is before start"), None
    price = pick_price(u)
    if price is not None and not PRICE_MIN <= price <= PRICE_MAX:
        return None, ItemResult(u.key, "rejected", "CHANNELMGR_PRICE_RANGE",
                                f"price {price} fen is outside Fliggy's {PRICE_MIN}..{PRICE_MAX}"), None
    values: dict[str, Any] = {}
    if u.rooms_to_sell is not None:
        values["quota"] = max(0, min(QUOTA_MAX, int(u.rooms_to_sell)))
    if price is not None:
        values["price"] = int(price)
    if u.stop_sell is not None:
        values["status"] = 0 if u.stop_sell else 1
    if not values:
        return None, ItemResult(u.key, "skipped", text="nothing Fliggy holds in this item "
                                                      "(no quota, price or stop-sell)"), None
    first, last = max(u.start, lo), min(u.end, hi)
    if first > last:
        return None, ItemResult(u.key, "skipped", text=WINDOW_TEXT), None
    note = None
    if (first, last) != (u.start, u.end):
        note = f"only {first}..{last} sent; the other dates are {WINDOW_TEXT}"
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    entry = {"out_rid": u.room, "rateplan_code": u.rate,
             "data": {"use_room_inventory": False,
                      "inventory_price": [{"date": d.isoformat(), **values} for d in days]}}
    return entry, None, note


def build_rates(updates: Sequence[AriUpdate], today: date) -> Built:
    lo, hi = window(today)
    built = Built()
    for i, u in enumerate(updates):
        entry, result, note = entry_for(u, lo, hi)
        if result is not None:
            built.results[i] = result
            continue
        built.entries.append(entry)  # type: ignore[arg-type]
        built.owners.append(i)
        if note:
            built.notes[i] = note
    return built


def rate_map_json(entries: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(entries), ensure_ascii=False, separators=(",", ":"))


# ---- answers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TopError:
    code: str
    msg: str = ""
    sub_code: str | None = None
    sub_msg: str | None = None
    request_id: str | None = None

    @property
    def text(self) -> str:
        parts = [f"Fliggy error {self.code}: {self.msg}".rstrip(": ")]
        if self.sub_code or self.sub_msg:
            parts.append(f"{self.sub_code or ''} {self.sub_msg or ''}".strip())
        return " | ".join(parts)

    @property
    def item_index(self) -> int | None:
        """The map entry an error names (``rate_inventory_price_map[3]: ...``), if any."""
        m = re.search(r"rate_inventory_price_map\[(\d+)\]", f"{self.sub_msg or ''} {self.msg or ''}")
        return int(m.group(1)) if m else None

    def retry_after(self, default: float) -> float:
        m = re.search(r"(\d+(?:\.\d+)?)\s*(?:more\s+)?seconds?", f"{self.sub_msg or ''} {self.msg or ''}")
        value = float(m.group(1)) if m else default
        return value if value > 0 else default


def read_json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ParseError(f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ParseError("the answer is not a JSON object")
    return doc


def error_of(doc: dict[str, Any]) -> TopError | None:
    err = doc.get("error_response")
    if not isinstance(err, dict):
        return None
    return TopError(code=str(err.get("code", "")), msg=str(err.get("msg") or ""),
                    sub_code=err.get("sub_code"), sub_msg=err.get("sub_msg"),
                    request_id=err.get("request_id"))


def unwrap(doc: dict[str, Any]) -> dict[str, Any]:
    """The result object, with or without TOP's ``<method>_response`` wrapper."""
    wrapped = [v for k, v in doc.items() if k.endswith("_response") and isinstance(v, dict)]
    return wrapped[0] if len(wrapped) == 1 else doc


def request_id(doc: dict[str, Any]) -> str | None:
    err = error_of(doc)
    if err is not None:
        return err.request_id
    rid = unwrap(doc).get("request_id")
    return str(rid) if rid else None


def _list(value: Any) -> list[Any]:
    """A TOP list: plain (simplify) or wrapped in a one-key object (classic)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and len(value) == 1:
        inner = next(iter(value.values()))
        return inner if isinstance(inner, list) else [inner]
    raise ParseError(f"expected a list, got {type(value).__name__}")


def order_page(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    body = unwrap(doc)
    orders = [o for o in _list(body.get("hotel_orders")) if isinstance(o, dict)]
    try:
        total = int(body.get("total_results", len(orders)))
    except (TypeError, ValueError):
        raise ParseError("total_results is not a number") from None
    return orders, total


def tid_of(order: dict[str, Any]) -> str:
    tid = order.get("tid")
    if tid in (None, ""):
        raise ParseError("an order without tid")
    return str(tid)


def revision_of(order: dict[str, Any]) -> str:
    return f"{order.get('gmt_modified')}|{order.get('trade_status')}|v{order.get('order_version', 1)}"


def action_of(order: dict[str, Any]) -> str:
    if str(order.get("trade_status") or "") in CLOSED_STATUSES:
        return "cancel"
    try:
        version = int(order.get("order_version") or 1)
    except (TypeError, ValueError):
        raise ParseError("order_version is not a number") from None
    return "modify" if version > 1 else "new"


KIND = {"new": "reservation", "modify": "modification", "cancel": "cancellation"}


@dataclass(frozen=True)
class AckRef:
    tid: str
    revision: str
    action: str
    hotel: str


def _date(value: Any, what: str) -> date:
    try:
        return date.fromisoformat(str(value)[:10])
    except (TypeError, ValueError):
        raise ParseError(f"{what} {value!r} is not a date") from None


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ParseError(f"{what} is not a number")
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise ParseError(f"{what} {value!r} is not a whole number of fen") from None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def revision_from_order(o: dict[str, Any], raw: bytes) -> BookingRevision:
    tid = tid_of(o)
    action = action_of(o)
    hotel = _text(o.get("out_hid"))
    room, rate = _text(o.get("out_rid")), _text(o.get("rateplan_code"))
    # the tid names the booking: a closed order needs nothing else, a change no hotel
    # (hotel "" is the hotel of the booking held under that tid, found by the engine)
    if action == "cancel" and not (room and o.get("checkin_date") and o.get("checkout_date")):
        return BookingRevision(
            channel=CHANNEL, hotel=hotel or "", ota_booking_id=tid, revision=revision_of(o), action="cancel",
            special_requests=_text(o.get("message")), revised_at=parse_top_time(o.get("gmt_modified")),
            raw=raw, extra={"trade_status": o.get("trade_status")})
    if not room or (not hotel and action == "new"):
        raise ParseError(f"order {tid} names no out_hid/out_rid")
    checkin, checkout = _date(o.get("checkin_date"), "checkin_date"), _date(o.get("checkout_date"), "checkout_date")
    if checkout <= checkin:
        raise ParseError(f"order {tid}: checkout is not after checkin")
    nightly = []
    for n in _list(o.get("daily_price_info")):
        if not isinstance(n, dict):
            raise ParseError(f"order {tid}: daily_price_info holds {type(n).__name__}")
        nightly.append(NightPrice(_date(n.get("date"), "daily price date"), _int(n.get("price"), "daily price")))
    currency = str(o.get("currency") or CURRENCY)
    total = o.get("total_room_price")
    amount = _int(total, "total_room_price") if total not in (None, "") else (
        sum(n.amount_minor for n in nightly) if nightly else None)
    guests_n = o.get("guest_count")
    guest_names = [g.get("name") for g in _list(o.get("guests")) if isinstance(g, dict) and g.get("name")]
    guest = Guest(name=_text(o.get("contact_name")) or (guest_names[0] if guest_names else None),
                  phone=_text(o.get("contact_phone")), email=_text(o.get("contact_email")))
    stay = Stay(room=room, rate=rate, checkin=checkin, checkout=checkout,
                rooms=_int(o.get("room_number") or 1, "room_number"),
                guests=_int(guests_n, "guest_count") if guests_n not in (None, "") else None,
                nightly=tuple(nightly))
    return BookingRevision(
        channel=CHANNEL, hotel=hotel or "", ota_booking_id=tid, revision=revision_of(o), action=action,  # type: ignore[arg-type]
        stays=(stay,), amount_minor=amount, currency=currency, guest=guest,
        special_requests=_text(o.get("message")), booked_at=parse_top_time(o.get("gmt_create")),
        revised_at=parse_top_time(o.get("gmt_modified")), tonight=bool(o.get("late_night", False)),
        raw=raw, extra={"trade_status": o.get("trade_status"), "guest_names": guest_names})


def deliveries_from_detail(body: bytes, tid: str, action_hint: str = "new") -> list[Delivery]:
    """The answer of ``order.detail.search``: one Delivery per order, or one with the error."""
    kind = KIND.get(action_hint, "reservation")
    try:
        doc = read_json(body)
        if error_of(doc) is not None:
            raise ParseError(error_of(doc).text)  # type: ignore[union-attr]
        orders = [o for o in _list(unwrap(doc).get("hotel_orders")) if isinstance(o, dict)]
        if not orders:
            raise ParseError(f"the detail of order {tid} is empty")
        out = []
        for o in orders:
            raw = body if len(orders) == 1 else json.dumps(o, ensure_ascii=False).encode("utf-8")
            rev = revision_from_order(o, raw)
            out.append(Delivery(raw=raw, kind=KIND[rev.action], revision=rev,
                                ack_ref=AckRef(rev.ota_booking_id, rev.revision, rev.action, rev.hotel)))
        return out
    except ParseError as e:
        return [Delivery(raw=body or b"(empty answer)", kind=kind, error=f"order {tid}: {e}")]
