"""A Booking.com sandbox on a free loopback port and adapters talking to it over real HTTP."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from aiohttp import ClientSession

from adapters.base import ChannelSettings, Exchange
from adapters.base.sandbox import SandboxCatalog
from adapters.booking import BookingAdapter
from adapters.booking.sandbox import BookingSandbox

HOTEL, ROOM, ROOM2, RATE, RATE2 = "100001", "10000101", "10000102", "501", "502"
JPY_HOTEL, JPY_ROOM, JPY_RATE = "200002", "20000201", "601"
CATALOG = {"hotels": {
    HOTEL: {"currency": "CNY", "timezone": "Asia/Shanghai", "rooms": {ROOM: [RATE], ROOM2: [RATE2]}},
    JPY_HOTEL: {"currency": "JPY", "timezone": "Asia/Tokyo", "rooms": {JPY_ROOM: [JPY_RATE]}},
}}


class Env:
    def __init__(self) -> None:
        self.creds = BookingAdapter.sandbox_credentials()
        self.sandbox = BookingSandbox(SandboxCatalog.from_dict(CATALOG), self.creds)
        self.exchanges: list[Exchange] = []
        self.adapters: list[BookingAdapter] = []
        self.base = ""

    async def start(self) -> Env:
        self.base = await self.sandbox.start("127.0.0.1", 0)
        self.adapter = self.make()
        return self

    def make(self, options: dict | None = None, creds: dict | None = None, timeout: float = 5.0) -> BookingAdapter:
        a = BookingAdapter(ChannelSettings("booking", self.base, dict(self.creds if creds is None else creds),
                                           dict(options or {}), timeout), self.exchanges.append)
        self.adapters.append(a)
        return a

    def day(self, offset: int) -> date:
        """A date ``offset`` days after the 1st of next month (CET), so ranges stay in one month."""
        today = self.sandbox.today()
        return (today.replace(day=1) + timedelta(days=32)).replace(day=1) + timedelta(days=offset)

    def protocol_requests(self) -> list[dict]:
        return [r for r in self.sandbox.requests if not r["path"].startswith("/_sandbox")]

    async def raw(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        async with ClientSession() as s, s.request(method, self.base + path, data=body, headers=headers) as r:
            return r.status, dict(r.headers), await r.read()

    async def stop(self) -> None:
        for a in self.adapters:
            await a.close()
        await self.sandbox.stop()


@pytest.fixture
async def env():
    e = await Env().start()
    yield e
    await e.stop()
