"""What every OTA sandbox shares: its state, the control API, faults and booking delivery.

A sandbox is a fake OTA that behaves like the real one over real HTTP. Each OTA's sandbox
subclasses :class:`Sandbox`, adds its protocol routes, and reads requests with its *own*
parsing (never the adapter's codec, so a codec bug cannot hide behind its mirror image).

The control API is the same JSON for every channel:

- ``GET /_sandbox/state`` -> ``{"cells": [{"hotel", "room", "rate", "date", "rooms_to_sell",
  "price_minor", "currency", "min_los", "max_los", "cta", "ctd", "stop_sell"}]}``; with
  ``hotel``, ``room``, ``rate`` and ``date`` one hotel's cells or one cell, and with
  ``times=1`` each cell's ``rooms_changed_at`` (Unix time the OTA's rooms to sell last changed)
- ``POST /_sandbox/bookings`` -> ``{"ota_booking_id"}``; the sandbox then delivers it the
  way the real OTA does (queued for the pull feed, or pushed to ``deliver_to``)
- ``GET /_sandbox/bookings/<ota_booking_id>`` -> delivery state
- ``POST /_sandbox/faults`` ``{"error_rate", "latency_ms", "status", "retry_after", "malformed_rate", "fail_next"}``
- ``GET /_sandbox/requests`` -> raw requests received (``DELETE`` clears them)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from aiohttp import ClientSession, ClientTimeout, web

CELL_FIELDS = ("rooms_to_sell", "price_minor", "currency", "min_los", "max_los", "cta", "ctd", "stop_sell")


@dataclass
class SandboxHotel:
    code: str
    currency: str = "CNY"
    timezone: str = "Asia/Shanghai"
    rooms: dict[str, list[str]] = field(default_factory=dict)  # OTA room code -> OTA rate codes


@dataclass
class SandboxCatalog:
    """The hotels, rooms and rates the fake OTA knows; anything else gets the OTA's error."""

    hotels: dict[str, SandboxHotel] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SandboxCatalog":
        hotels = {}
        for code, h in data.get("hotels", data).items():
            hotels[code] = SandboxHotel(code=code, currency=h.get("currency", "CNY"),
                                        timezone=h.get("timezone", "Asia/Shanghai"),
                                        rooms={r: list(rates) for r, rates in h.get("rooms", {}).items()})
        return cls(hotels)

    def to_dict(self) -> dict[str, Any]:
        return {"hotels": {c: {"currency": h.currency, "timezone": h.timezone, "rooms": h.rooms}
                           for c, h in self.hotels.items()}}

    def hotel(self, code: str) -> SandboxHotel | None:
        return self.hotels.get(code)

    def has_room(self, hotel: str, room: str) -> bool:
        h = self.hotels.get(hotel)
        return bool(h and room in h.rooms)

    def has_rate(self, hotel: str, room: str, rate: str) -> bool:
        h = self.hotels.get(hotel)
        return bool(h and rate in h.rooms.get(room, ()))

    def room_of_rate(self, hotel: str, rate: str) -> str | None:
        h = self.hotels.get(hotel)
        for room, rates in (h.rooms.items() if h else ()):
            if rate in rates:
                return room
        return None


@dataclass
class Faults:
    error_rate: float = 0.0
    latency_ms: float = 0.0
    status: int = 500
    retry_after: float | None = None
    malformed_rate: float = 0.0
    # issue 14: deliberate differences in GET /_sandbox/statement (amount, commission, missing, nights, extra)
    statement_plant: tuple[str, ...] = ()
    # a share of booking acknowledgements answered with ``status`` (the OTA's ack endpoint failing;
    # pull OTAs only: the booking stays delivered-not-acknowledged on the OTA's side)
    ack_error_rate: float = 0.0
    # the next N protocol requests fail with ``status``, whatever error_rate draws (a test that
    # must see a retry does not depend on the dice)
    fail_next: int = 0


@dataclass
class BookingEvent:
    """One revision of a sandbox booking, as the OTA would deliver it."""

    revision: int
    action: Literal["new", "modify", "cancel"]
    snapshot: dict[str, Any]
    created_at: datetime
    state: Literal["queued", "delivered", "acknowledged"] = "queued"
    attempts: int = 0
    last_error: str | None = None


@dataclass
class SandboxBooking:
    ota_booking_id: str
    data: dict[str, Any]  # hotel, room, rate, checkin, checkout, rooms, guest, amount_minor, currency, ...
    status: Literal["booked", "modified", "cancelled"] = "booked"
    events: list[BookingEvent] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


class SandboxError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Sandbox:
    """Base class of the four OTA sandboxes."""

    name: ClassVar[str] = "sandbox"
    delivery: ClassVar[Literal["pull", "push"]] = "pull"
    id_prefix: ClassVar[str] = ""
    inventory_level: ClassVar[Literal["room", "rate"]] = "room"
    max_logged_requests: ClassVar[int] = 20_000
    delivery_concurrency: ClassVar[int] = 16  # push channels: bookings delivered at once

    def __init__(self, catalog: SandboxCatalog, credentials: dict[str, str],
                 deliver_to: str | None = None, *, seed: int | None = None):
        self.catalog = catalog
        self.credentials = dict(credentials)
        self.deliver_to = deliver_to
        self.cells: dict[tuple[str, str, str | None, date], dict[str, Any]] = {}
        self._hotel_keys: dict[str, set[tuple[str, str, str | None, date]]] = {}  # state(hotel) index
        self._rooms_changed_at: dict[tuple[str, str, str | None, date], float] = {}  # for benchmarks
        self.bookings: dict[str, SandboxBooking] = {}
        self.requests: list[dict[str, Any]] = []
        self.faults = Faults()
        self.rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._delivery_task: asyncio.Task | None = None
        self._stopping = False
        self._delivery_wakeup = asyncio.Event()
        self._client: ClientSession | None = None
        self.base_url: str | None = None

    # ---- subclass hooks -------------------------------------------------------------
    def protocol_routes(self) -> list[web.RouteDef]:
        """The OTA's own endpoints."""
        return []

    def fault_response(self, status: int, retry_after: float | None) -> web.Response:
        """An injected failure, in the OTA's own error format."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        return web.Response(status=status, text=f"injected fault {status}", headers=headers)

    async def deliver(self, booking: SandboxBooking, event: BookingEvent) -> bool:
        """Push channels: send one event to ``deliver_to``; True when the receiver accepted it."""
        raise NotImplementedError

    def new_booking_id(self) -> str:
        return f"{self.id_prefix}{int(time.time()) % 100000:05d}{next(self._ids):05d}"

    def today(self, hotel: str | None = None) -> date:
        """The OTA's idea of today (subclasses pick the zone the OTA uses)."""
        return self.local_now(hotel).date()

    def local_now(self, hotel: str | None = None) -> datetime:
        """The hotel's wall-clock time now (Asia/Shanghai when the hotel is unknown)."""
        h = self.catalog.hotel(hotel) if hotel else None
        return datetime.now(ZoneInfo(h.timezone if h else "Asia/Shanghai"))

    def late_night(self, hotel: str | None = None) -> bool:
        """Before 06:00 in the hotel's zone: Chinese OTAs still sell the previous date (凌晨房)."""
        return self.local_now(hotel).hour < 6

    # ---- state ----------------------------------------------------------------------
    def set_cell(self, hotel: str, room: str, rate: str | None, day: date, **values: Any) -> None:
        key = (hotel, room, rate, day)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = {f: None for f in CELL_FIELDS}
            self._hotel_keys.setdefault(hotel, set()).add(key)
        for k, v in values.items():
            if k not in CELL_FIELDS and k != "prices":
                raise KeyError(k)
            if k == "rooms_to_sell" and cell[k] != v:
                self._rooms_changed_at[key] = time.time()
            cell[k] = v

    def cell(self, hotel: str, room: str, rate: str | None, day: date) -> dict[str, Any] | None:
        return self.cells.get((hotel, room, rate, day))

    def state(self, hotel: str | None = None, *, room: str | None = None, rate: str | None = None,
              day: date | None = None, times: bool = False) -> dict[str, Any]:
        """What the OTA holds: every cell, one hotel's, or (``room``, ``rate``, ``day``) fewer."""
        out = []
        keys = (self._hotel_keys.get(hotel, set()) & self.cells.keys()) if hotel else self.cells.keys()
        if room is not None or rate is not None or day is not None:
            keys = [k for k in keys if (room is None or k[1] == room) and (rate is None or k[2] == rate)
                    and (day is None or k[3] == day)]
        for (h, room_, rate_, d) in sorted(keys, key=lambda k: (k[0], k[1], k[2] or "", k[3])):
            values = self.cells[(h, room_, rate_, d)]
            row = {"hotel": h, "room": room_, "rate": rate_, "date": d.isoformat()}
            row.update({f: values.get(f) for f in CELL_FIELDS})
            if values.get("prices"):
                row["prices"] = {str(k): v for k, v in sorted(values["prices"].items())}
            if times:
                row["rooms_changed_at"] = self._rooms_changed_at.get((h, room_, rate_, d))
            out.append(row)
        return {"cells": out}

    def _inventory_cells(self, hotel: str, room: str, rate: str | None, day: date) -> list[dict[str, Any]]:
        if self.inventory_level == "room":
            c = self.cells.get((hotel, room, None, day))
            return [c] if c is not None else []
        found = [v for (h, r, rt, d), v in self.cells.items()
                 if h == hotel and r == room and d == day and rt is not None]
        return found

    def _take(self, data: dict[str, Any], sign: int, *, check: bool) -> None:
        """Sell (sign=-1) or give back (sign=+1) the nights of a booking on our own counts."""
        checkin, checkout = date.fromisoformat(data["checkin"]), date.fromisoformat(data["checkout"])
        rooms = int(data.get("rooms", 1))
        day = checkin
        days = []
        while day < checkout:
            days.append(day)
            day += timedelta(days=1)
        cells = [c for d in days for c in self._inventory_cells(data["hotel"], data["room"], data.get("rate"), d)]
        if check and sign < 0:
            # what the guest books must be on sale; other rates of the room (an early-bird
            # closed this close to arrival, say) do not matter
            rate = data.get("rate")
            if self.inventory_level == "rate" and rate is not None:
                booked = [c for d in days if (c := self.cells.get((data["hotel"], data["room"], rate, d)))]
            else:
                booked = cells
            for c in booked:
                if c.get("rooms_to_sell") is not None and (c["rooms_to_sell"] < rooms or c.get("stop_sell")):
                    raise SandboxError(409, "no availability for these dates on this OTA")
        for c in cells:
            if c.get("rooms_to_sell") is not None:
                c["rooms_to_sell"] = max(0, c["rooms_to_sell"] + sign * rooms)

    # ---- bookings -------------------------------------------------------------------
    def inject(self, payload: dict[str, Any]) -> SandboxBooking:
        """A guest books, changes or cancels on this OTA (the control API's POST /bookings)."""
        action = payload.get("action", "new")
        if action not in ("new", "modify", "cancel"):
            raise SandboxError(400, f"action must be new, modify or cancel, not {action!r}")
        now = datetime.now(timezone.utc)
        if action == "new":
            data = self._validated_booking(payload)
            self._take(data, -1, check=not payload.get("force", False))
            booking = SandboxBooking(payload.get("ota_booking_id") or self.new_booking_id(), data)
            if booking.ota_booking_id in self.bookings:
                raise SandboxError(409, f"booking {booking.ota_booking_id} exists already")
            self.bookings[booking.ota_booking_id] = booking
        else:
            oid = payload.get("ota_booking_id")
            booking = self.bookings.get(oid or "")
            if booking is None:
                raise SandboxError(404, f"no booking {oid!r} on this sandbox")
            if booking.status == "cancelled":
                raise SandboxError(409, f"booking {oid} is cancelled already")
            if action == "modify":
                merged = {**booking.data, **{k: v for k, v in payload.items()
                                             if k not in ("action", "ota_booking_id", "force")}}
                data = self._validated_booking(merged)
                self._take(booking.data, +1, check=False)
                try:
                    self._take(data, -1, check=not payload.get("force", False))
                except SandboxError:
                    self._take(booking.data, -1, check=False)
                    raise
                booking.data = data
                booking.status = "modified"
            else:
                self._take(booking.data, +1, check=False)  # the OTA re-opens the room itself
                booking.status = "cancelled"
        revision = len(booking.events) + 1
        booking.events.append(BookingEvent(revision, action, dict(booking.data), now))
        self._delivery_wakeup.set()
        return booking

    def _validated_booking(self, p: dict[str, Any]) -> dict[str, Any]:
        for k in ("hotel", "room", "checkin", "checkout"):
            if not p.get(k):
                raise SandboxError(400, f"'{k}' is required")
        if not self.catalog.has_room(p["hotel"], p["room"]):
            raise SandboxError(400, f"hotel {p['hotel']!r} has no room {p['room']!r} on this OTA")
        if p.get("rate") and not self.catalog.has_rate(p["hotel"], p["room"], p["rate"]):
            raise SandboxError(400, f"room {p['room']!r} has no rate {p['rate']!r} on this OTA")
        try:
            ci, co = date.fromisoformat(p["checkin"]), date.fromisoformat(p["checkout"])
        except ValueError:
            raise SandboxError(400, "checkin and checkout must be dates like 2026-03-31") from None
        if co <= ci:
            raise SandboxError(400, "checkout must be after checkin")
        hotel = self.catalog.hotel(p["hotel"])
        guest = p.get("guest") or {}
        return {
            "hotel": p["hotel"], "room": p["room"], "rate": p.get("rate"),
            "checkin": ci.isoformat(), "checkout": co.isoformat(),
            "rooms": int(p.get("rooms", 1)),
            "guests": int(p.get("guests", 2)),
            "guest": {"name": guest.get("name"), "phone": guest.get("phone"), "email": guest.get("email")},
            "amount_minor": int(p.get("amount_minor", 0)),
            "currency": p.get("currency") or (hotel.currency if hotel else "CNY"),
            "special_requests": p.get("special_requests"),
            "tonight": bool(p.get("tonight", False)),
            "booked_at": p.get("booked_at"),
        }

    def pending_events(self) -> list[tuple[SandboxBooking, BookingEvent]]:
        """Events not yet acknowledged, oldest first (what a pull feed serves)."""
        out = [(b, e) for b in self.bookings.values() for e in b.events if e.state != "acknowledged"]
        out.sort(key=lambda be: (be[1].created_at, be[0].ota_booking_id, be[1].revision))
        return out

    def booking_state(self, oid: str) -> dict[str, Any]:
        b = self.bookings.get(oid)
        if b is None:
            raise SandboxError(404, f"no booking {oid!r}")
        last = b.events[-1]
        return {
            "ota_booking_id": oid, "status": b.status, "state": last.state, "action": last.action,
            "revisions": [{"revision": e.revision, "action": e.action, "state": e.state,
                           "attempts": e.attempts, "last_error": e.last_error} for e in b.events],
        }

    # ---- push delivery --------------------------------------------------------------
    @property
    def client(self) -> ClientSession:
        if self._client is None or self._client.closed:
            self._client = ClientSession(timeout=ClientTimeout(total=10))
        return self._client

    async def _delivery_loop(self) -> None:
        """Push every due event to ``deliver_to``, as the OTA's servers do: each booking's
        events one at a time and in order, different bookings at once (at most
        ``delivery_concurrency`` requests in flight), each failure retried with backoff."""
        backoff: dict[tuple[str, int], float] = {}
        inflight: dict[str, asyncio.Task] = {}

        async def one(b: SandboxBooking, e: BookingEvent) -> None:
            e.attempts += 1
            try:
                ok = await self.deliver(b, e)
                e.last_error = None if ok else "the receiver did not accept it"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # network errors: retry later
                ok = False
                e.last_error = f"{exc.__class__.__name__}: {exc}"
            if ok:
                e.state = "acknowledged"
                backoff.pop((b.ota_booking_id, e.revision), None)
            else:
                delay = min(0.2 * 2 ** min(e.attempts, 6), 10.0)
                backoff[(b.ota_booking_id, e.revision)] = time.monotonic() + delay

        def ended(oid: str):
            def cb(_t: asyncio.Task) -> None:
                inflight.pop(oid, None)
                self._delivery_wakeup.set()  # its next event, or another booking's, may go
            return cb

        try:
            while not self._stopping:
                self._delivery_wakeup.clear()
                now = time.monotonic()
                due = 0
                seen_booking: set[str] = set()
                for b, e in self.pending_events():
                    oid = b.ota_booking_id
                    if oid in seen_booking or oid in inflight:
                        continue  # one event of a booking at a time, in order
                    seen_booking.add(oid)
                    if backoff.get((oid, e.revision), 0) > now:
                        continue
                    if len(inflight) >= self.delivery_concurrency:
                        break
                    t = asyncio.create_task(one(b, e), name=f"{self.name}-deliver-{oid}")
                    inflight[oid] = t
                    t.add_done_callback(ended(oid))
                    due += 1
                try:
                    await asyncio.wait_for(self._delivery_wakeup.wait(), timeout=0.05 if due else 0.5)
                except asyncio.TimeoutError:
                    pass
        finally:
            for t in list(inflight.values()):
                t.cancel()
            if inflight:
                await asyncio.wait(set(inflight.values()), timeout=5)

    # ---- faults ---------------------------------------------------------------------
    def malformed(self) -> bool:
        """Whether the next booking message should go out corrupted (faults.malformed_rate)."""
        return self.faults.malformed_rate > 0 and self.rng.random() < self.faults.malformed_rate

    @staticmethod
    def corrupt(body: bytes) -> bytes:
        return body[: max(1, len(body) // 2)]

    # ---- the HTTP application --------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=32 * 1024 ** 2)
        app.add_routes([
            web.get("/_sandbox/state", self._h_state),
            web.post("/_sandbox/bookings", self._h_inject),
            web.get("/_sandbox/bookings/{oid}", self._h_booking),
            web.get("/_sandbox/bookings", self._h_bookings),
            web.post("/_sandbox/faults", self._h_faults),
            web.get("/_sandbox/faults", self._h_get_faults),
            web.get("/_sandbox/requests", self._h_requests),
            web.delete("/_sandbox/requests", self._h_clear_requests),
            web.get("/_sandbox/catalog", self._h_catalog),
            web.get("/_sandbox/statement", self._h_statement),
        ])
        app.add_routes(self.protocol_routes())
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        if request.path.startswith("/_sandbox/"):
            try:
                return await handler(request)
            except SandboxError as e:
                return web.json_response({"error": e.message}, status=e.status)
        body = await request.read()
        if len(self.requests) >= self.max_logged_requests:
            del self.requests[: self.max_logged_requests // 10]
        self.requests.append({
            "at": datetime.now(timezone.utc).isoformat(), "method": request.method,
            "path": request.path, "query": request.query_string,
            "headers": dict(request.headers), "body": body.decode("utf-8", errors="replace"),
        })
        f = self.faults
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000 * (0.5 + self.rng.random()))
        if f.fail_next > 0:
            f.fail_next -= 1
            return self.fault_response(f.status, f.retry_after)
        if f.error_rate and self.rng.random() < f.error_rate:
            return self.fault_response(f.status, f.retry_after)
        return await handler(request)

    async def _h_state(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            day = date.fromisoformat(q["date"]) if q.get("date") else None
        except ValueError:
            return web.json_response({"error": f"date {q['date'][:40]!r} is not YYYY-MM-DD"}, status=400)
        return web.json_response(self.state(q.get("hotel"), room=q.get("room"), rate=q.get("rate"), day=day,
                                            times=q.get("times") == "1"))

    async def _h_inject(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except json.JSONDecodeError:
            raise SandboxError(400, "the body must be JSON") from None
        booking = self.inject(payload)
        return web.json_response({"ota_booking_id": booking.ota_booking_id,
                                  "revision": booking.events[-1].revision})

    async def _h_booking(self, request: web.Request) -> web.Response:
        return web.json_response(self.booking_state(request.match_info["oid"]))

    async def _h_bookings(self, request: web.Request) -> web.Response:
        return web.json_response({"bookings": [self.booking_state(o) for o in self.bookings]})

    async def _h_faults(self, request: web.Request) -> web.Response:
        payload = await request.json()
        unknown = set(payload) - set(asdict(Faults()))
        if unknown:
            raise SandboxError(400, f"unknown fault settings: {', '.join(sorted(unknown))}")
        merged = {**asdict(Faults()), **payload}
        self.faults = Faults(**merged)
        return web.json_response(asdict(self.faults))

    async def _h_get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.faults))

    async def _h_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests})

    async def _h_clear_requests(self, request: web.Request) -> web.Response:
        self.requests.clear()
        return web.json_response({"cleared": True})

    async def _h_catalog(self, request: web.Request) -> web.Response:
        return web.json_response(self.catalog.to_dict())

    # ---- the monthly commission statement (issue 14) ---------------------------------
    async def _h_statement(self, request: web.Request) -> web.Response:
        """``GET /_sandbox/statement?month=YYYY-MM[&commission=15][&plant=amount,commission,...]``: the
        OTA's statement of the month's stays (by arrival), CSV with this OTA's own headers. ``plant``
        (or the fault ``statement_plant``) puts deliberate differences in: ``amount`` (the first line
        100.00 more), ``commission`` (the second line's commission 10.00 more), ``missing`` (the third
        line left out), ``nights`` (the fourth line a night longer), ``extra`` (a booking we never had)."""
        import csv
        import io
        import re
        from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

        month = request.query.get("month", "")
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
            raise SandboxError(400, "month is required, like 2026-12")
        try:
            pct = Decimal(request.query.get("commission", STATEMENT_COMMISSION.get(self.name, "15")))
        except InvalidOperation:
            raise SandboxError(400, "commission is a percent, like 15") from None
        if not (0 <= pct <= 100):
            raise SandboxError(400, "commission is a percent from 0 to 100")
        plant = set(self.faults.statement_plant) | {p for p in request.query.get("plant", "").split(",") if p}
        unknown = plant - {"amount", "commission", "missing", "nights", "extra"}
        if unknown:
            raise SandboxError(400, f"unknown differences to plant: {', '.join(sorted(unknown))}")
        heads = STATEMENT_COLUMNS[self.name]
        lines = []
        for oid in sorted(self.bookings):
            b = self.bookings[oid]
            if b.status == "cancelled" or not b.data["checkin"].startswith(month):
                continue
            lines.append({"ota_id": oid, "hotel": b.data["hotel"], "checkin": b.data["checkin"],
                          "checkout": b.data["checkout"], "amount": int(b.data["amount_minor"]),
                          "currency": b.data["currency"]})
        if "amount" in plant and lines:
            lines[0]["amount"] += 10000  # billed on a larger amount (its commission follows)
        for ln in lines:
            ln["commission"] = int((Decimal(ln["amount"]) * pct / 100).to_integral_value(ROUND_HALF_UP))
        if "commission" in plant and len(lines) > 1:
            lines[1]["commission"] += 1000
        if "nights" in plant and len(lines) > 3:
            lines[3]["checkout"] = (date.fromisoformat(lines[3]["checkout"]) + timedelta(days=1)).isoformat()
        if "missing" in plant and len(lines) > 2:
            del lines[2]
        if "extra" in plant:
            lines.append({"ota_id": f"{self.id_prefix}X9999999", "hotel": lines[0]["hotel"] if lines else "",
                          "checkin": f"{month}-01", "checkout": f"{month}-02", "amount": 50000, "commission": 7500,
                          "currency": lines[0]["currency"] if lines else "CNY"})
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([heads[k] for k in STATEMENT_FIELDS])
        for ln in lines:
            w.writerow([ln["ota_id"], ln["hotel"], ln["checkin"], ln["checkout"],
                        f"{Decimal(ln['amount']).scaleb(-2):.2f}", f"{Decimal(ln['commission']).scaleb(-2):.2f}",
                        ln["currency"]])
        return web.Response(text=buf.getvalue(), content_type="text/csv", charset="utf-8")

    # ---- running --------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = any free port); returns the base URL."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{sock.getsockname()[1]}"
        if self.delivery == "push":
            self._stopping = False
            self._delivery_task = asyncio.create_task(self._delivery_loop(), name=f"{self.name}-delivery")
        return self.base_url

    async def stop(self) -> None:
        if self._delivery_task:
            # the flag as well as the cancel: Python 3.11's wait_for can swallow a cancel that
            # arrives as its inner wait ends, and the loop must end all the same
            self._stopping = True
            self._delivery_wakeup.set()
            self._delivery_task.cancel()
            done, _ = await asyncio.wait({self._delivery_task}, timeout=5)
            if done:
                try:
                    self._delivery_task.result()
                except (asyncio.CancelledError, Exception):
                    pass
        if self._client and not self._client.closed:
            await self._client.close()
        if self._runner:
            await self._runner.cleanup()


# issue 14: what each OTA's statement export calls its columns (channelmgr.reports.settlement's
# defaults match these), and the commission its sandbox charges unless told otherwise
STATEMENT_FIELDS = ("ota_id", "hotel", "checkin", "checkout", "amount", "commission", "currency")
STATEMENT_COLUMNS = {
    "booking": {"ota_id": "Reservation number", "hotel": "Property ID", "checkin": "Arrival",
                "checkout": "Departure", "amount": "Room revenue", "commission": "Commission", "currency": "Currency"},
    "ctrip": {"ota_id": "订单号", "hotel": "酒店ID", "checkin": "入住日期", "checkout": "离店日期", "amount": "房费",
              "commission": "佣金", "currency": "币种"},
    "fliggy": {"ota_id": "订单编号", "hotel": "酒店编码", "checkin": "入住日期", "checkout": "离店日期",
               "amount": "订单金额", "commission": "佣金", "currency": "币种"},
    "meituan": {"ota_id": "订单号", "hotel": "门店ID", "checkin": "入住日期", "checkout": "离店日期",
                "amount": "房费金额", "commission": "佣金金额", "currency": "币种"},
}
STATEMENT_COMMISSION = {"booking": "15", "ctrip": "12", "fliggy": "10", "meituan": "8"}
