"""A running daemon with the four sandboxes, over real HTTP, for end-to-end tests."""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
from tenacity import wait_exponential_jitter

from channelmgr import dates
from channelmgr.config import Config
from channelmgr.daemon import Daemon
from channelmgr.mapping.derive import all_keys, derive
from channelmgr.sync.push import PushSettings

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = ("booking", "ctrip", "fliggy", "meituan")


def make_config(tmp: Path, db_url: str | None = None, **sync: Any) -> Config:
    (tmp / "mappings").mkdir(exist_ok=True)
    shutil.copy(ROOT / "mappings" / "sha-bund.yaml", tmp / "mappings" / "sha-bund.yaml")
    return Config.model_validate({
        "database": {"url": db_url or f"sqlite:///{tmp / 'ledger.db'}"},
        "http": {"host": "127.0.0.1", "port": 0},
        "mappings_dir": str(tmp / "mappings"),
        "security": {"data_key_file": str(tmp / "data.key")},
        "log": {"format": "json", "level": "warning"},
        "sync": {"flush_interval_seconds": 0.5, "watchdog_interval_seconds": 3600, "breaker_failures": 50,
                 "breaker_reset_seconds": 0.5, "shutdown_grace_seconds": 2, "max_attempts": 50, **sync},
        "demo": {"synthetic_guests": False},
        "channels": {name: {"sandbox": True, "pull_interval_seconds": 0.3, "timeout_seconds": 5}
                     for name in CHANNELS},
    })


def fast_push_settings(horizon_days: int = 365) -> PushSettings:
    return PushSettings(flush_interval=0.5, backoff_base=0.05, backoff_max=0.5, max_attempts=50, horizon_days=horizon_days,
                        wait=wait_exponential_jitter(initial=0.01, max=0.1, jitter=0.02), lease_seconds=30)


class Running:
    def __init__(self, daemon: Daemon):
        self.d = daemon
        self.http = aiohttp.ClientSession()

    @property
    def ledger(self):
        return self.d.rt.ledger

    def sandbox_url(self, channel: str) -> str:
        return self.d.channels[channel].sandbox.base_url

    def hotel(self, channel: str) -> str:
        return self.d.mappings.get("SHA-BUND").channel(channel).hotel_id

    def codes(self, channel: str, room_type: str, rate_plan: str | None = None) -> tuple[str, str | None]:
        ch = self.d.mappings.get("SHA-BUND").channel(channel)
        return ch.rooms[room_type], (ch.rates[rate_plan] if rate_plan else None)

    def today(self) -> date:
        return dates.business_date(datetime.now(timezone.utc), "Asia/Shanghai")

    async def state(self, channel: str) -> dict[tuple, dict]:
        async with self.http.get(f"{self.sandbox_url(channel)}/_sandbox/state") as r:
            data = await r.json()
        return {(c["hotel"], c["room"], c["rate"], c["date"]): c for c in data["cells"]}

    async def book(self, channel: str, **payload: Any) -> dict:
        async with self.http.post(f"{self.sandbox_url(channel)}/_sandbox/bookings", json=payload) as r:
            body = await r.json()
            assert r.status == 200, body
            return body

    async def faults(self, channel: str, **faults: Any) -> None:
        async with self.http.post(f"{self.sandbox_url(channel)}/_sandbox/faults", json=faults) as r:
            assert r.status == 200, await r.text()

    async def expected(self, channel: str, nights: list[date]) -> list:
        pm = self.d.mappings.get("SHA-BUND")
        caps = self.d.channels[channel].adapter.capabilities
        snap = await self.ledger.snapshot("SHA-BUND", min(nights), max(nights))
        return derive(pm, channel, snap, all_keys(pm, channel, nights), today=self.today(),
                      supported=caps.restrictions, inventory_level=caps.inventory_level)

    async def mismatches(self, channel: str, nights: list[date]) -> list[str]:
        """Where the sandbox differs from what the ledger says this channel should hold."""
        held = await self.state(channel)
        out = []
        for c in await self.expected(channel, nights):
            if c.rooms_to_sell is None and not c.prices and c.stop_sell is None and c.min_los is None:
                continue  # nothing for the OTA to hold
            got = held.get((c.hotel, c.room, c.rate, c.night.isoformat()))
            if got is None:
                out.append(f"{channel} {c.room}/{c.rate} {c.night}: missing")
                continue
            if c.rooms_to_sell is not None and got["rooms_to_sell"] != c.rooms_to_sell:
                out.append(f"{channel} {c.room}/{c.rate} {c.night}: rooms {got['rooms_to_sell']} != {c.rooms_to_sell}")
            if c.prices:
                want = max(c.prices)[1]
                if got["price_minor"] != want:
                    out.append(f"{channel} {c.room}/{c.rate} {c.night}: price {got['price_minor']} != {want}")
            if c.stop_sell is not None and got.get("stop_sell") not in (None, c.stop_sell):
                out.append(f"{channel} {c.room}/{c.rate} {c.night}: stop_sell {got['stop_sell']} != {c.stop_sell}")
        return out

    async def converge(self, nights: list[date], timeout: float = 30.0, channels=CHANNELS) -> None:
        deadline = time.monotonic() + timeout
        while True:
            problems = [p for ch in channels for p in await self.mismatches(ch, nights)]
            if not problems:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not converged after {timeout}s: {len(problems)} cells, e.g. "
                                     + "; ".join(problems[:6]))
            self.d.wake_all()
            await asyncio.sleep(0.2)

    async def rooms(self, channel: str, room_type: str, night: date, rate_plan: str = "BAR-DK") -> int | None:
        """rooms_to_sell this sandbox holds for a local room type (room- or rate-level)."""
        caps = self.d.channels[channel].adapter.capabilities
        room, rate = self.codes(channel, room_type, rate_plan)
        held = await self.state(channel)
        key = (self.hotel(channel), room, rate if caps.inventory_level == "rate" else None, night.isoformat())
        return held.get(key, {}).get("rooms_to_sell")

    async def settled(self, channels=CHANNELS, timeout: float = 60.0) -> None:
        """Until no push waits or is in flight for these channels (the first full sync included)."""
        from sqlalchemy import func, select

        from channelmgr.ledger import models as m

        async def waiting(conn):
            return (await conn.execute(select(func.count()).select_from(m.outbox).where(
                m.outbox.c.channel.in_(list(channels)), m.outbox.c.status.in_(("pending", "claimed"))))).scalar()

        deadline = time.monotonic() + timeout
        while await self.ledger.db.read(waiting):
            if time.monotonic() > deadline:
                raise AssertionError(f"{', '.join(channels)}: pushes still waiting after {timeout}s")
            self.d.wake_all()
            await asyncio.sleep(0.2)

    async def wait_for(self, predicate, timeout: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not await predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)

    def clock_back(self) -> None:
        """After a time_machine travel forward ends: the scheduler planned its interval jobs
        (the pulls, the desk scan) on the moved clock, so with the clock back they would not
        run again until real time caught up; plan them for now."""
        now = datetime.now(timezone.utc)
        for job in self.d.scheduler.get_jobs():
            job.modify(next_run_time=now)
        self.d.wake_all()

    async def close(self) -> None:
        from channelmgr.tasks import bounded

        await self.http.close()
        # a stop that hangs fails the test at once, naming itself, instead of at pytest-timeout's
        # 10 minutes (the daemon bounds each step of its stop and logs the one that overran)
        if not await bounded(self.d.stop("test done"), 120, "daemon stop"):
            raise AssertionError("the daemon's stop did not end within 120 s")


async def start(tmp: Path, db_url: str | None = None, **sync: Any) -> Running:
    d = Daemon(make_config(tmp, db_url, **sync), push_settings=fast_push_settings(sync.get("horizon_days", 365)))
    await d.start()
    return Running(d)
