"""A Fliggy sandbox on a free loopback port and adapters talking to it over real HTTP."""

from __future__ import annotations

import json
from datetime import date, timedelta
from urllib.parse import parse_qs

import pytest

from adapters.base import ChannelSettings, Exchange
from adapters.base.sandbox import SandboxCatalog
from adapters.fliggy import FliggyAdapter
from adapters.fliggy.sandbox import FliggySandbox

HOTEL = "sha-bund-001"
ROOMS = {"SK": ["BAR_SK"], "ST": ["BAR_ST"], "DK": ["BAR_DK", "EB_DK"], "ES": []}
CATALOG = {"hotels": {HOTEL: {"currency": "CNY", "timezone": "Asia/Shanghai", "rooms": ROOMS}}}


class Env:
    def __init__(self) -> None:
        self.creds = FliggyAdapter.sandbox_credentials()
        self.sandbox = FliggySandbox(SandboxCatalog.from_dict(CATALOG), self.creds)
        self.exchanges: list[Exchange] = []
        self.adapters: list[FliggyAdapter] = []
        self.base = ""

    async def start(self) -> Env:
        self.base = await self.sandbox.start("127.0.0.1", 0)
        self.adapter = self.make()
        return self

    def make(self, options: dict | None = None, creds: dict | None = None, timeout: float = 5.0) -> FliggyAdapter:
        a = FliggyAdapter(ChannelSettings("fliggy", self.base, dict(self.creds if creds is None else creds),
                                          dict(options or {}), timeout), self.exchanges.append)
        self.adapters.append(a)
        return a

    def day(self, offset: int) -> date:
        """A date ``offset`` days from Fliggy's today (GMT+8)."""
        return self.sandbox.today() + timedelta(days=offset)

    def calls(self, method: str | None = None) -> list[dict[str, str]]:
        """The form parameters of every TOP call the sandbox received (optionally one method)."""
        out = []
        for r in self.sandbox.requests:
            if r["path"] != "/router/rest":
                continue
            params = {k: v[0] for k, v in parse_qs(r["body"], keep_blank_values=True).items()}
            if method is None or params.get("method") == method:
                out.append(params)
        return out

    def rate_maps(self, method: str) -> list[list[dict]]:
        return [json.loads(c["rate_inventory_price_map"]) for c in self.calls(method)]

    async def stop(self) -> None:
        for a in self.adapters:
            await a.close()
        await self.sandbox.stop()


@pytest.fixture
async def env():
    e = await Env().start()
    yield e
    await e.stop()
