"""Synthetic guests for the default config: so a newcomer sees the whole loop at once.

Guests book, change and cancel on the loopback sandboxes through their control API (real
HTTP, as a test would), each booking arriving the way that OTA delivers it. On a fresh
ledger the demo first sets 90 nights of prices, so there is something to sell.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import aiohttp
import structlog

from channelmgr import dates
from channelmgr.ledger.types import AriChange

if TYPE_CHECKING:  # pragma: no cover
    from channelmgr.daemon import Daemon

log = structlog.get_logger("channelmgr.demo")

NAMES = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄丽", "周杰", "吴敏", "Anna Schmidt",
         "James Wilson", "Yuki Tanaka", "Kim Min-jun", "Sophie Martin", "Carlos García"]
REQUESTS = [None, None, "高楼层，无烟房", "需要婴儿床", "晚到，约23:30入住", "Late arrival around 23:00",
            "安静房间，远离电梯", "Twin beds please", "纪念日，如有可能请升级"]


LATE_NIGHT_FLAG = {"meituan", "fliggy"}  # OTAs whose orders mark a late-night booking for "tonight"


class SyntheticGuests:
    def __init__(self, daemon: "Daemon", seed: int | None = None):
        self.d = daemon
        self.rng = random.Random(seed)
        self.made: list[tuple[str, str]] = []  # (channel, ota booking id)

    async def seed_ledger(self) -> None:
        """Prices for the next 90 nights where the ledger has none yet."""
        ms = self.d.mappings
        for pm in ms.properties.values():
            today = dates.business_date(datetime.now(timezone.utc), pm.timezone)
            snap = await self.d.rt.ledger.snapshot(pm.code, today, today)
            for code, plan in pm.rate_plans.items():
                if plan.derived_from or (code, today) in snap.rates:
                    continue
                base = {1: 498, 2: 598, 3: 1288}.get(plan.occupancy, 698) * 100
                base += self.rng.randrange(0, 5) * 5000
                # Friday and Saturday nights dearer; equal neighbours set as one range
                runs: list[list] = []
                for i in range(90):
                    night = today + timedelta(days=i)
                    price = base + (12000 if night.weekday() in (4, 5) else 0)
                    if runs and runs[-1][2] == price:
                        runs[-1][1] = night
                    else:
                        runs.append([night, night, price])
                for start, end, price in runs:
                    await self.d.rt.ledger.set_ari(
                        AriChange(pm.code, plan.room_type, start, end, rate_plan=code, price_minor=price,
                                  stop_sell=False), actor="demo", reason="demo prices")
        self.d.wake_all()
        log.info("demo prices set for 90 nights")

    async def tick(self) -> None:
        sandboxes = {n: c.sandbox for n, c in self.d.channels.items() if c.sandbox is not None and c.sandbox.catalog.hotels}
        if not sandboxes:
            return
        roll = self.rng.random()
        try:
            if self.made and roll < 0.12:
                await self._change("cancel")
            elif self.made and roll < 0.22:
                await self._change("modify")
            else:
                await self._book(sandboxes)
        except Exception as e:  # a demo guest must never bother the daemon
            log.debug("demo guest gave up", error=str(e))

    async def _post(self, channel: str, payload: dict) -> dict | None:
        sb = self.d.channels[channel].sandbox
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{sb.base_url}/_sandbox/bookings", json=payload) as r:
                body = await r.json()
                return body if r.status == 200 else None

    async def _book(self, sandboxes) -> None:
        channel = self.rng.choice(sorted(sandboxes))
        sb = sandboxes[channel]
        hotel = self.rng.choice(sorted(sb.catalog.hotels))
        h = sb.catalog.hotels[hotel]
        room = self.rng.choice(sorted(h.rooms))
        rate = self.rng.choice(h.rooms[room]) if h.rooms[room] else None
        checkin = sb.today(hotel) + timedelta(days=self.rng.choice([0, 1, 2, 3, 7, 14, 21, 30, 45]))
        nights = self.rng.choice([1, 1, 2, 2, 3, 4, 7])
        tonight = False
        if sb.late_night(hotel) and self.rng.random() < 0.4:
            # a late-night guest (凌晨房) books "tonight" at 02:30: the night that began yesterday
            # evening. Meituan and Fliggy mark it and give today's calendar date; the others give
            # yesterday's date as check-in. Either way it lands on yesterday's night.
            nights = 1
            tonight = channel in LATE_NIGHT_FLAG
            checkin = sb.local_now(hotel).date() - (timedelta(days=0) if tonight else timedelta(days=1))
        guest = self.rng.choice(NAMES)
        payload = {"hotel": hotel, "room": room, "rate": rate, "checkin": checkin.isoformat(),
                   "checkout": (checkin + timedelta(days=nights)).isoformat(), "rooms": 1,
                   "guest": {"name": guest, "phone": f"+86 1{self.rng.randrange(30, 90)} "
                                                     f"{self.rng.randrange(1000, 9999)} {self.rng.randrange(1000, 9999)}",
                             "email": f"guest{self.rng.randrange(10000)}@example.cn"},
                   "amount_minor": nights * self.rng.randrange(400, 1500) * 100, "currency": h.currency,
                   "special_requests": self.rng.choice(REQUESTS), "tonight": tonight}
        res = await self._post(channel, payload)
        if res:
            self.made.append((channel, res["ota_booking_id"]))
            self.made = self.made[-200:]

    async def _change(self, action: str) -> None:
        channel, oid = self.rng.choice(self.made)
        payload: dict = {"action": action, "ota_booking_id": oid}
        if action == "modify":
            sb = self.d.channels[channel].sandbox
            b = sb.bookings.get(oid)
            if b is None:
                return
            checkout = datetime.fromisoformat(b.data["checkout"]).date() + timedelta(days=1)
            payload["checkout"] = checkout.isoformat()
        if await self._post(channel, payload) and action == "cancel":
            self.made.remove((channel, oid))
