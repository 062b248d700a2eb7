"""The contract every adapter fulfils, run against each adapter and its sandbox over real HTTP.

One suite, every channel (the Singer SDK way): adding an OTA means adding its name to
ADAPTERS, nothing else. Push channels get an inbound server that mounts the adapter's own
routes, with an in-memory receiver standing in for the engine (the engine's real receiver
is exercised end to end in tests/sync).
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, timedelta

import pytest
from aiohttp import web

from adapters.base import (
    AriUpdate,
    AuthError,
    BookingRevision,
    ChannelSettings,
    Confirmation,
    Exchange,
    FatalError,
    Price,
    RateLimitedError,
    RetriableError,
)
from adapters.base.registry import available, load
from adapters.base.sandbox import Faults, SandboxCatalog

ADAPTERS = ["booking", "ctrip", "fliggy", "meituan"]

HOTEL = "100001"
ROOM, ROOM2 = "10000101", "10000102"
RATE, RATE2, RATE3 = "501", "502", "503"
CATALOG = {"hotels": {HOTEL: {"currency": "CNY", "timezone": "Asia/Shanghai",
                              "rooms": {ROOM: [RATE, RATE2], ROOM2: [RATE3]}}}}

GUEST_NAME = "张伟"
REQUESTS = "高楼层，无烟房；晚到 23:30 / late arrival"


class InMemoryReceiver:
    """Stands in for the engine's receiver: idempotent by (channel, id, revision)."""

    def __init__(self) -> None:
        self.inbox: dict[int, tuple[str, bytes, str]] = {}
        self.rejected: dict[int, str] = {}
        self.applied: list[BookingRevision] = []
        self._seen: dict[tuple[str, str, str], Confirmation] = {}
        self._status: dict[tuple[str, str], Confirmation] = {}

    async def store(self, channel: str, raw: bytes, kind: str) -> int:
        i = len(self.inbox) + 1
        self.inbox[i] = (channel, raw, kind)
        return i

    async def reject(self, inbox_id: int, reason: str) -> None:
        self.rejected[inbox_id] = reason

    async def apply(self, inbox_id: int, rev: BookingRevision) -> Confirmation:
        key = (rev.channel, rev.ota_booking_id, rev.revision)
        if key in self._seen:
            return dataclasses.replace(self._seen[key], duplicate=True)
        conf = Confirmation(f"CM{len(self._seen) + 1:06d}",
                            "cancelled" if rev.action == "cancel" else "confirmed")
        self._seen[key] = conf
        self._status[(rev.channel, rev.ota_booking_id)] = conf
        self.applied.append(rev)
        return conf

    async def lookup(self, channel: str, ota_booking_id: str) -> Confirmation | None:
        return self._status.get((channel, ota_booking_id))

    async def hotel_of(self, channel: str, ota_booking_id: str) -> str | None:
        held = [r.hotel for r in self.applied if (r.channel, r.ota_booking_id) == (channel, ota_booking_id)]
        return next((h for h in held if h), None)

    async def rooms_to_sell(self, channel, hotel, room, rate, checkin, checkout) -> int | None:
        return 5


class Harness:
    def __init__(self, name: str):
        self.name = name
        self.cls = load(name)
        self.caps = self.cls.capabilities
        self.creds = self.cls.sandbox_credentials()
        self.exchanges: list[Exchange] = []
        self.receiver = InMemoryReceiver()
        self._inbound: web.AppRunner | None = None
        self.adapter = None
        self.sandbox = None

    async def start(self, timeout: float = 5.0) -> "Harness":
        deliver_to = None
        if self.caps.booking_delivery == "push":
            self.adapter = self._make_adapter("http://127.0.0.1:9", self.creds, timeout)
            app = web.Application()
            sub = web.Application()
            sub.add_routes(self.adapter.inbound_routes(self.receiver))
            app.add_subapp(f"/inbound/{self.name}/", sub)
            self._inbound = web.AppRunner(app, access_log=None)
            await self._inbound.setup()
            site = web.TCPSite(self._inbound, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]
            deliver_to = f"http://127.0.0.1:{port}/inbound/{self.name}"
        self.sandbox = self.cls.make_sandbox(SandboxCatalog.from_dict(CATALOG), self.creds, deliver_to)
        base = await self.sandbox.start()
        self.adapter = self._make_adapter(base, self.creds, timeout, reuse=self.adapter)
        return self

    def _make_adapter(self, endpoint, creds, timeout, reuse=None):
        settings = ChannelSettings(self.name, endpoint, dict(creds), {}, timeout)
        if reuse is not None:
            reuse.settings.endpoint = endpoint
            reuse.settings.timeout_seconds = timeout
            return reuse
        return self.cls(settings, self.exchanges.append)

    def other_adapter(self, creds: dict[str, str], timeout: float = 5.0):
        return self.cls(ChannelSettings(self.name, self.sandbox.base_url, creds, {}, timeout),
                        self.exchanges.append)

    async def stop(self) -> None:
        await self.adapter.close()
        await self.sandbox.stop()
        if self._inbound:
            await self._inbound.cleanup()

    # what the engine does before calling push_ari
    def shape(self, updates: list[AriUpdate]) -> list[AriUpdate]:
        out = []
        room_counts = {(u.room, u.start, u.end): u.rooms_to_sell for u in updates if u.rate is None}
        for u in updates:
            if self.caps.inventory_level == "rate":
                if u.rate is None:
                    continue
                u = dataclasses.replace(u, rooms_to_sell=room_counts.get((u.room, u.start, u.end)))
            drop = {r: None for r in ("min_los", "max_los", "cta", "ctd", "stop_sell")
                    if r not in self.caps.restrictions}
            out.append(dataclasses.replace(u, **drop))
        return out

    async def receive(self, oid: str, action: str, timeout: float = 10.0) -> BookingRevision:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if self.caps.booking_delivery == "pull":
                deliveries = await self.adapter.pull_bookings()
                found = [d for d in deliveries if d.revision is not None
                         and d.revision.ota_booking_id == oid and d.revision.action == action]
                if found:
                    conf = Confirmation(f"CM-{oid}", "cancelled" if action == "cancel" else "confirmed")
                    await self.adapter.acknowledge([(d, conf) for d in found])
                    return found[-1].revision
            else:
                for rev in self.receiver.applied:
                    if rev.ota_booking_id == oid and rev.action == action:
                        return rev
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name}: booking {oid} ({action}) never arrived")

    async def wait_acknowledged(self, oid: str, timeout: float = 10.0) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            st = self.sandbox.booking_state(oid)
            if st["state"] == "acknowledged" or asyncio.get_running_loop().time() > deadline:
                return st
            await asyncio.sleep(0.05)


@pytest.fixture(params=ADAPTERS)
async def h(request):
    harness = await Harness(request.param).start()
    yield harness
    await harness.stop()


def future(h: Harness, days: int) -> date:
    today = h.sandbox.today(HOTEL)
    if h.caps.max_months_per_message == 1:  # the engine never sends such a channel two months in
        today = (today.replace(day=1) + timedelta(days=32)).replace(day=1)  # one batch: count from a 1st
    return today + timedelta(days=days)


def test_every_adapter_is_registered_by_entry_point():
    assert set(ADAPTERS) <= set(available())
    for name in ADAPTERS:
        cls = load(name)
        assert cls.name == name
        assert cls.capabilities.booking_delivery in ("pull", "push")
        assert cls.capabilities.max_items_per_message >= 1


async def test_push_rooms_rates_and_restrictions_reach_the_ota(h: Harness):
    start, end = future(h, 10), future(h, 12)
    updates = h.shape([
        AriUpdate(HOTEL, ROOM, None, start, end, rooms_to_sell=5, key="rooms"),
        AriUpdate(HOTEL, ROOM, RATE, start, end, prices=(Price(1, 39900), Price(2, 45600)),
                  currency="CNY", min_los=2, max_los=7, cta=False, ctd=True, stop_sell=False, key="rate"),
    ])
    outcome = await h.adapter.push_ari(updates)
    assert {r.key: r.status for r in outcome.results} == {u.key: "applied" for u in updates}
    for d in (start, start + timedelta(days=1), end):
        rate_cell = h.sandbox.cell(HOTEL, ROOM, RATE, d)
        assert rate_cell is not None, f"{h.name}: nothing stored for {d}"
        assert rate_cell["price_minor"] == 45600
        assert rate_cell["currency"] == "CNY"
        rooms_cell = rate_cell if h.caps.inventory_level == "rate" else h.sandbox.cell(HOTEL, ROOM, None, d)
        assert rooms_cell["rooms_to_sell"] == 5
        if "min_los" in h.caps.restrictions:
            assert rate_cell["min_los"] == 2
        if "ctd" in h.caps.restrictions:
            assert rate_cell["ctd"] is True
        if "stop_sell" in h.caps.restrictions:
            assert rate_cell["stop_sell"] is False
    # the state endpoint speaks the same JSON for every channel
    state = h.sandbox.state(HOTEL)["cells"]
    assert {"hotel", "room", "rate", "date", "rooms_to_sell", "price_minor", "currency", "min_los",
            "max_los", "cta", "ctd", "stop_sell"} <= set(state[0])


async def test_a_later_push_changes_only_its_own_dates(h: Harness):
    start, end = future(h, 20), future(h, 22)
    base = [AriUpdate(HOTEL, ROOM, None, start, end, rooms_to_sell=4, key="r"),
            AriUpdate(HOTEL, ROOM, RATE, start, end, prices=(Price(2, 50000),), currency="CNY",
                      stop_sell=False, key="p")]
    await h.adapter.push_ari(h.shape(base))
    mid = start + timedelta(days=1)
    await h.adapter.push_ari(h.shape([
        AriUpdate(HOTEL, ROOM, None, mid, mid, rooms_to_sell=1, key="r2"),
        AriUpdate(HOTEL, ROOM, RATE, mid, mid, prices=(Price(2, 52000),), currency="CNY",
                  stop_sell=False, key="p2")]))
    level_rate = RATE if h.caps.inventory_level == "rate" else None
    assert [h.sandbox.cell(HOTEL, ROOM, level_rate, d)["rooms_to_sell"] for d in (start, mid, end)] == [4, 1, 4]
    assert [h.sandbox.cell(HOTEL, ROOM, RATE, d)["price_minor"] for d in (start, mid, end)] == [50000, 52000, 50000]


async def test_a_full_batch_at_the_declared_limit_is_accepted(h: Harness):
    n = min(h.caps.max_items_per_message, 40)
    start = future(h, 30)
    if h.caps.max_months_per_message == 1:  # a batch within one calendar month
        start, n = start.replace(day=1), min(n, 28)
    updates = h.shape([AriUpdate(HOTEL, ROOM, RATE, start + timedelta(days=i), start + timedelta(days=i),
                                 prices=(Price(2, 40000 + i),), currency="CNY", key=f"k{i}",
                                 rooms_to_sell=3 if h.caps.inventory_level == "rate" else None)
                       for i in range(n)])
    outcome = await h.adapter.push_ari(updates)
    assert sum(r.status == "applied" for r in outcome.results) == n
    assert h.sandbox.cell(HOTEL, ROOM, RATE, start + timedelta(days=n - 1))["price_minor"] == 40000 + n - 1


async def test_an_unknown_room_is_refused_with_the_otas_own_code(h: Harness):
    d = future(h, 5)
    updates = h.shape([AriUpdate(HOTEL, "99999999", "999", d, d, prices=(Price(2, 10000),),
                                 currency="CNY", rooms_to_sell=2, key="bad")])
    try:
        outcome = await h.adapter.push_ari(updates)
    except FatalError as e:
        assert e.code, f"{h.name}: the fatal error carries no OTA code"
    else:
        (result,) = outcome.results
        assert result.status == "rejected" and result.code, result
    assert h.sandbox.cell(HOTEL, "99999999", "999", d) is None


async def test_a_new_booking_modify_and_cancel_arrive_with_guest_text_intact(h: Harness):
    ci, co = future(h, 3), future(h, 5)
    booking = h.sandbox.inject({
        "hotel": HOTEL, "room": ROOM, "rate": RATE, "checkin": ci.isoformat(), "checkout": co.isoformat(),
        "rooms": 1, "guest": {"name": GUEST_NAME, "phone": "+86 138 0013 8000", "email": "zhang.wei@example.cn"},
        "amount_minor": 91200, "currency": "CNY", "special_requests": REQUESTS})
    oid = booking.ota_booking_id
    rev = await h.receive(oid, "new")
    assert (rev.channel, rev.hotel, rev.ota_booking_id) == (h.name, HOTEL, oid)
    (stay,) = rev.stays
    assert (stay.room, stay.rate, stay.checkin, stay.checkout, stay.rooms) == (ROOM, RATE, ci, co, 1)
    assert (rev.amount_minor, rev.currency) == (91200, "CNY")
    assert rev.guest.name == GUEST_NAME
    assert rev.special_requests is not None and REQUESTS in rev.special_requests
    assert rev.raw, "the raw message is kept"
    assert (await h.wait_acknowledged(oid))["state"] == "acknowledged"

    h.sandbox.inject({"action": "modify", "ota_booking_id": oid, "checkout": (co + timedelta(days=1)).isoformat(),
                      "amount_minor": 136800})
    mod = await h.receive(oid, "modify")
    assert mod.stays[0].checkout == co + timedelta(days=1)
    assert mod.amount_minor == 136800
    assert mod.revision != rev.revision

    h.sandbox.inject({"action": "cancel", "ota_booking_id": oid})
    cancel = await h.receive(oid, "cancel")
    assert cancel.revision not in (rev.revision, mod.revision)
    if rev.revised_at and cancel.revised_at:
        assert cancel.revised_at >= rev.revised_at
    assert (await h.wait_acknowledged(oid))["state"] == "acknowledged"


async def test_server_errors_and_timeouts_are_retriable(h: Harness):
    d = future(h, 7)
    upd = h.shape([AriUpdate(HOTEL, ROOM, RATE, d, d, prices=(Price(2, 1000),), currency="CNY",
                             rooms_to_sell=1, key="x")])
    h.sandbox.faults = Faults(error_rate=1.0, status=503)
    with pytest.raises(RetriableError) as e:
        await h.adapter.push_ari(upd)
    assert not isinstance(e.value, RateLimitedError)
    h.sandbox.faults = Faults(latency_ms=2500)
    fast = h.other_adapter(dict(h.creds), timeout=0.4)
    try:
        with pytest.raises(RetriableError):
            await fast.push_ari(upd)
    finally:
        await fast.close()
    h.sandbox.faults = Faults()
    assert (await h.adapter.push_ari(upd)).results[0].status == "applied"


async def test_throttling_is_rate_limited_with_its_delay(h: Harness):
    d = future(h, 8)
    upd = h.shape([AriUpdate(HOTEL, ROOM, RATE, d, d, prices=(Price(2, 1000),), currency="CNY",
                             rooms_to_sell=1, key="x")])
    h.sandbox.faults = Faults(error_rate=1.0, status=429, retry_after=7)
    with pytest.raises(RateLimitedError) as e:
        await h.adapter.push_ari(upd)
    assert e.value.retry_after is not None and e.value.retry_after > 0


async def test_bad_credentials_are_fatal_and_never_logged(h: Harness):
    wrong = {k: v + "-wrong" for k, v in h.creds.items()}
    bad = h.other_adapter(wrong)
    d = future(h, 9)
    try:
        with pytest.raises(FatalError) as e:
            await bad.push_ari(h.shape([AriUpdate(HOTEL, ROOM, RATE, d, d, prices=(Price(2, 1000),),
                                                  currency="CNY", rooms_to_sell=1, key="x")]))
        assert isinstance(e.value, AuthError) and not e.value.retriable
    finally:
        await bad.close()
    assert h.exchanges, "every call is reported for the sync log"
    secrets = [v for v in list(h.creds.values()) + list(wrong.values()) if v and len(v) >= 4]
    for ex in h.exchanges:
        for text in (ex.request or "", ex.response or "", ex.error or ""):
            for s in secrets:
                assert s not in text, f"{h.name}: a credential appears in the sync log ({ex.operation})"


async def test_a_malformed_booking_message_is_reported_and_redelivered(h: Harness):
    ci, co = future(h, 4), future(h, 5)
    h.sandbox.faults = Faults(malformed_rate=1.0)
    oid = h.sandbox.inject({"hotel": HOTEL, "room": ROOM2, "rate": RATE3, "checkin": ci.isoformat(),
                            "checkout": co.isoformat(), "rooms": 1, "guest": {"name": "李娜"},
                            "amount_minor": 30000, "currency": "CNY"}).ota_booking_id
    if h.caps.booking_delivery == "pull":
        deliveries = await h.adapter.pull_bookings()
        assert any(d.error for d in deliveries), f"{h.name}: a corrupted message was not reported"
        assert all(d.raw for d in deliveries), "the raw message is kept for the inbox"
    else:
        # stored and rejected when it authenticates; refused before storing (counted) when it
        # is too broken to tell whose it is (Ctrip's credentials are inside the message)
        refused = h.adapter.http.refused
        for _ in range(100):
            if h.receiver.rejected or refused.total:
                break
            await asyncio.sleep(0.05)
        assert h.receiver.rejected or refused.total, f"{h.name}: a corrupted push was not rejected"
        assert h.sandbox.booking_state(oid)["state"] != "acknowledged"
    h.sandbox.faults = Faults()
    rev = await h.receive(oid, "new")
    assert rev.guest.name == "李娜"


async def test_read_back_returns_what_was_pushed_where_supported(h: Harness):
    if not h.caps.readback:
        pytest.skip(f"{h.name} declares no read-back in its capabilities")
    start, end = future(h, 40), future(h, 41)
    await h.adapter.push_ari(h.shape([
        AriUpdate(HOTEL, ROOM, None, start, end, rooms_to_sell=6, key="r"),
        AriUpdate(HOTEL, ROOM, RATE, start, end, prices=(Price(2, 61000),), currency="CNY",
                  stop_sell=False, key="p")]))
    held = await h.adapter.read_back(HOTEL, start, end)
    rooms = {u.start: u.rooms_to_sell for u in held if u.room == ROOM and u.rooms_to_sell is not None}
    assert rooms == {start: 6, end: 6}
