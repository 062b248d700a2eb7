"""A Meituan sandbox, an adapter talking to it, and the adapter's inbound routes on a port."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from datetime import date, timedelta
from email.utils import formatdate

import pytest
from aiohttp import ClientSession, web

from adapters.base import BookingRevision, ChannelSettings, Confirmation, Exchange
from adapters.base.sandbox import SandboxCatalog
from adapters.meituan import MeituanAdapter
from adapters.meituan.sandbox import MeituanSandbox

HOTEL, ROOM, ROOM2, RATE, RATE2, RATE3 = "158937", "7730001", "7730003", "880101", "880102", "880103"
CATALOG = {"hotels": {HOTEL: {"currency": "CNY", "timezone": "Asia/Shanghai",
                              "rooms": {ROOM: [RATE, RATE2], ROOM2: [RATE3]}}}}


def mws(secret: str, method: str, path: str, date_header: str) -> str:
    """The note's algorithm, written out independently of the adapter's signer."""
    mac = hmac.new(secret.encode(), f"{method} {path}\n{date_header}".encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


class Receiver:
    """In-memory stand-in for the engine's receiver, idempotent by (channel, id, revision)."""

    def __init__(self) -> None:
        self.inbox: dict[int, tuple[str, bytes, str]] = {}
        self.rejected: dict[int, str] = {}
        self.applied: list[BookingRevision] = []
        self._seen: dict[tuple[str, str, str], Confirmation] = {}
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
        self.applied.append(rev)
        return conf

    async def lookup(self, channel, ota_booking_id):
        return None

    async def hotel_of(self, channel, ota_booking_id):
        held = [r.hotel for r in self.applied if (r.channel, r.ota_booking_id) == (channel, ota_booking_id)]
        return next((h for h in held if h), None)

    async def rooms_to_sell(self, channel, hotel, room, rate, checkin, checkout):
        return None


class Env:
    def __init__(self) -> None:
        self.creds = MeituanAdapter.sandbox_credentials()
        self.exchanges: list[Exchange] = []
        self.receiver = Receiver()
        self.adapters: list[MeituanAdapter] = []
        self.inbound_url = ""

    async def start(self) -> Env:
        self.adapter = self.make("http://127.0.0.1:9")
        app, sub = web.Application(), web.Application()
        sub.add_routes(self.adapter.inbound_routes(self.receiver))
        app.add_subapp("/inbound/meituan/", sub)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.inbound_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/inbound/meituan"
        self.sandbox = MeituanSandbox(SandboxCatalog.from_dict(CATALOG), self.creds, self.inbound_url)
        self.base = await self.sandbox.start()
        self.adapter.settings.endpoint = self.base
        return self

    def make(self, endpoint: str | None = None, creds: dict | None = None, options: dict | None = None,
             timeout: float = 5.0) -> MeituanAdapter:
        a = MeituanAdapter(ChannelSettings("meituan", endpoint or self.base, dict(creds or self.creds),
                                           dict(options or {}), timeout), self.exchanges.append)
        self.adapters.append(a)
        return a

    def day(self, offset: int) -> date:
        return self.sandbox.today(HOTEL) + timedelta(days=offset)

    def protocol_requests(self) -> list[dict]:
        return [r for r in self.sandbox.requests if not r["path"].startswith("/_sandbox")]

    def headers(self, path: str, *, secret: str | None = None, partner: str | None = None,
                key: str | None = None, at: float | None = None) -> dict[str, str]:
        date_header = formatdate(time.time() if at is None else at, usegmt=True)
        return {"Content-Type": "application/json; charset=utf-8", "Date": date_header,
                "PartnerId": self.creds["username"] if partner is None else partner,
                "Authorization": f"MWS {key or self.creds['key']}:"
                                 f"{mws(secret or self.creds['secret'], 'POST', path, date_header)}"}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        async with ClientSession() as s, s.post(url, data=body, headers=headers) as r:
            raw = await r.read()
            return r.status, json.loads(raw.decode("utf-8"))

    async def notice(self, suffix: str, order: dict, **kw) -> tuple[int, dict]:
        """POST a notice to our inbound route as Meituan would, signed independently."""
        body = json.dumps({"partnerId": self.creds["username"], "body": order}, ensure_ascii=False).encode()
        path = "/inbound/meituan" + suffix
        return await self.post(self.inbound_url + suffix, body, self.headers(path, **kw))

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
