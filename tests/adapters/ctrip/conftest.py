"""A Ctrip sandbox on a free loopback port, an inbound server with the adapter's routes,
and adapters talking to the sandbox over real HTTP."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest
from aiohttp import ClientSession, web

from adapters.base import BookingRevision, ChannelSettings, Confirmation, Exchange
from adapters.base.sandbox import SandboxCatalog
from adapters.ctrip import CtripAdapter
from adapters.ctrip.sandbox import CtripSandbox

HOTEL, ROOM, ROOM2, RATE, RATE2 = "436512", "1098201", "1098202", "51001", "51002"
CATALOG = {"hotels": {HOTEL: {"currency": "CNY", "timezone": "Asia/Shanghai",
                              "rooms": {ROOM: [RATE], ROOM2: [RATE2]}}}}


class Receiver:
    """The engine's receiver, in memory: idempotent by (channel, id, revision)."""

    def __init__(self) -> None:
        self.inbox: dict[int, tuple[str, bytes, str]] = {}
        self.rejected: dict[int, str] = {}
        self.applied: list[BookingRevision] = []
        self._seen: dict[tuple[str, str, str], Confirmation] = {}
        self.status: dict[tuple[str, str], Confirmation] = {}
        self.available: int | None = 5
        self.fail_apply = False

    async def store(self, channel: str, raw: bytes, kind: str) -> int:
        i = len(self.inbox) + 1
        self.inbox[i] = (channel, raw, kind)
        return i

    async def reject(self, inbox_id: int, reason: str) -> None:
        self.rejected[inbox_id] = reason

    async def apply(self, inbox_id: int, rev: BookingRevision) -> Confirmation:
        if self.fail_apply:
            raise RuntimeError("database is down")
        key = (rev.channel, rev.ota_booking_id, rev.revision)
        if key in self._seen:
            return dataclasses.replace(self._seen[key], duplicate=True)
        conf = Confirmation(f"CM{len(self._seen) + 1:06d}", "cancelled" if rev.action == "cancel" else "confirmed")
        self._seen[key] = conf
        self.status[(rev.channel, rev.ota_booking_id)] = conf
        self.applied.append(rev)
        return conf

    async def lookup(self, channel: str, ota_booking_id: str) -> Confirmation | None:
        return self.status.get((channel, ota_booking_id))

    async def hotel_of(self, channel: str, ota_booking_id: str) -> str | None:
        held = [r.hotel for r in self.applied if (r.channel, r.ota_booking_id) == (channel, ota_booking_id)]
        return next((h for h in held if h), None)

    async def rooms_to_sell(self, channel, hotel, room, rate, checkin, checkout) -> int | None:
        return self.available


class Env:
    def __init__(self) -> None:
        self.creds = CtripAdapter.sandbox_credentials()
        self.exchanges: list[Exchange] = []
        self.adapters: list[CtripAdapter] = []
        self.receiver = Receiver()
        self.base = ""
        self.inbound_url = ""

    async def start(self) -> Env:
        self.adapter = self.make()
        app, sub = web.Application(), web.Application()
        sub.add_routes(self.adapter.inbound_routes(self.receiver))
        app.add_subapp("/inbound/ctrip/", sub)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.inbound_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/inbound/ctrip"
        self.sandbox = CtripSandbox(SandboxCatalog.from_dict(CATALOG), self.creds, self.inbound_url)
        self.base = await self.sandbox.start("127.0.0.1", 0)
        self.adapter.settings.endpoint = self.base
        return self

    def make(self, options: dict | None = None, creds: dict | None = None, timeout: float = 5.0) -> CtripAdapter:
        a = CtripAdapter(ChannelSettings("ctrip", self.base or "http://127.0.0.1:9",
                                         dict(self.creds if creds is None else creds), dict(options or {}), timeout),
                         self.exchanges.append)
        self.adapters.append(a)
        return a

    def day(self, offset: int) -> date:
        return self.sandbox.today(HOTEL) + timedelta(days=offset)

    def protocol_requests(self) -> list[dict]:
        return [r for r in self.sandbox.requests if not r["path"].startswith("/_sandbox")]

    async def post_inbound(self, body: bytes, headers: dict | None = None) -> tuple[int, bytes]:
        async with ClientSession() as s, s.post(self.inbound_url, data=body,
                                                headers=headers or {"Content-Type": "text/xml"}) as r:
            return r.status, await r.read()

    async def stop(self) -> None:
        for a in self.adapters:
            await a.close()
        await self.sandbox.stop()
        await self._runner.cleanup()


@pytest.fixture
async def env():
    e = await Env().start()
    yield e
    await e.stop()
