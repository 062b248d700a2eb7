"""SIGKILL the daemon at random moments during a booking storm: nothing lost, nothing twice.

The four sandboxes run as their own processes (`channelmgr sandbox ...`), so, like real
OTAs, they outlive the daemon; the daemon (`channelmgr run`) is killed with SIGKILL and
started again, over and over, while guests book and cancel.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from channelmgr import dates
from channelmgr.config import load_config
from channelmgr.ledger import models as m
from channelmgr.mapping import load_mappings
from channelmgr.mapping.derive import all_keys, derive
from channelmgr.runtime import Runtime
from tests.sync.harness import CHANNELS, ROOT

pytestmark = pytest.mark.slow

ENV_NAMES = {
    "booking": {"username": "T_BOOKING_USER", "password": "T_BOOKING_PASSWORD"},
    "ctrip": {"username": "T_CTRIP_ID", "password": "T_CTRIP_PASSWORD"},
    "fliggy": {"key": "T_FLIGGY_KEY", "secret": "T_FLIGGY_SECRET", "session": "T_FLIGGY_SESSION"},
    "meituan": {"username": "T_MEITUAN_PARTNER", "key": "T_MEITUAN_KEY", "secret": "T_MEITUAN_SECRET"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp: Path, db_url: str, daemon_port: int, sandbox_ports: dict[str, int]) -> Path:
    import shutil

    (tmp / "mappings").mkdir()
    shutil.copy(ROOT / "mappings" / "sha-bund.yaml", tmp / "mappings" / "sha-bund.yaml")
    lines = [
        f"database: {{url: '{db_url}'}}",
        f"http: {{host: 127.0.0.1, port: {daemon_port}}}",
        f"mappings_dir: {tmp / 'mappings'}",
        f"security: {{data_key_file: {tmp / 'data.key'}}}",
        "log: {format: json, level: warning}",
        "sync: {flush_interval_seconds: 0.3, claim_lease_seconds: 3, breaker_reset_seconds: 0.5, "
        "shutdown_grace_seconds: 1, max_attempts: 100, watchdog_interval_seconds: 2}",
        "demo: {synthetic_guests: false}",
        "channels:",
    ]
    for ch in CHANNELS:
        creds = ", ".join(f"{k}_env: {v}" for k, v in ENV_NAMES[ch].items())
        lines += [f"  {ch}:", "    sandbox: false", f"    endpoint: http://127.0.0.1:{sandbox_ports[ch]}",
                  f"    credentials: {{{creds}}}", "    pull_interval_seconds: 0.3", "    timeout_seconds: 3"]
    path = tmp / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Storm:
    def __init__(self, tmp: Path, db_url: str):
        self.tmp = tmp
        self.daemon_port = free_port()
        self.ports = {ch: free_port() for ch in CHANNELS}
        self.config = write_config(tmp, db_url, self.daemon_port, self.ports)
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        self.env.pop("CHANNELMGR_DATABASE_URL", None)
        for ch in CHANNELS:
            for var in ENV_NAMES[ch].values():
                self.env[var] = secrets.token_hex(12)
        self.sandboxes: list[subprocess.Popen] = []
        self.daemon: subprocess.Popen | None = None
        self.kills = 0
        self.log = open(tmp / "daemon.log", "ab")

    def cli(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "channelmgr", *args, "--config", str(self.config)],
                                env=self.env, cwd=self.tmp, stdout=self.log, stderr=self.log, **kw)

    async def start_sandboxes(self) -> None:
        for ch in CHANNELS:
            extra = []
            if ch in ("ctrip", "meituan"):
                extra = ["--deliver-to", f"http://127.0.0.1:{self.daemon_port}/inbound/{ch}"]
            self.sandboxes.append(self.cli("sandbox", ch, "--port", str(self.ports[ch]), *extra))
        for ch in CHANNELS:
            await self._wait_http(f"http://127.0.0.1:{self.ports[ch]}/_sandbox/state")

    async def start_daemon(self) -> None:
        self.daemon = self.cli("run")
        await self._wait_http(f"http://127.0.0.1:{self.daemon_port}/health")

    def kill_daemon(self) -> None:
        if self.daemon and self.daemon.poll() is None:
            os.kill(self.daemon.pid, signal.SIGKILL)
            self.daemon.wait(10)
            self.kills += 1

    async def _wait_http(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while True:
                try:
                    async with s.get(url) as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{url} never answered; see {self.tmp / 'daemon.log'}")
                await asyncio.sleep(0.1)

    def stop_all(self) -> None:
        procs = self.sandboxes + ([self.daemon] if self.daemon else [])
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.log.close()


@pytest.fixture
async def storm(tmp_path, db_url):
    s = Storm(tmp_path, db_url)
    try:
        yield s
    finally:
        s.stop_all()


async def test_sigkill_during_a_booking_storm_loses_nothing_and_applies_nothing_twice(storm):
    rng = random.Random(7)
    await storm.start_sandboxes()
    await storm.start_daemon()
    # the hotel's rooms and prices, set from another process while the daemon runs
    today = dates.business_date(datetime.now(timezone.utc), "Asia/Shanghai")
    nights = [today + timedelta(days=5 + i) for i in range(5)]
    ari = storm.cli("ari", "set", "--property", "SHA-BUND", "--room-type", "DK", "--rate-plan", "BAR-DK",
                    "--from", nights[0].isoformat(), "--to", nights[-1].isoformat(), "--rooms", "30",
                    "--price", "888.00", "--no-stop-sell")
    assert ari.wait(60) == 0

    ms = load_mappings(storm.tmp / "mappings")
    pm = ms.get("SHA-BUND")
    made: list[tuple[str, str, date, date]] = []
    cancelled: set[tuple[str, str]] = set()

    async def guests() -> None:
        async with aiohttp.ClientSession() as s:
            for i in range(36):
                ch = CHANNELS[i % 4]
                cm = pm.channel(ch)
                start = rng.randrange(0, 4)
                ci, co = nights[start], nights[min(4, start + rng.randrange(1, 3))]
                payload = {"hotel": cm.hotel_id, "room": cm.rooms["DK"], "rate": cm.rates["BAR-DK"],
                           "checkin": ci.isoformat(), "checkout": co.isoformat(), "rooms": 1,
                           "amount_minor": 88800 * (co - ci).days, "currency": "CNY",
                           "guest": {"name": f"客人{i}", "phone": "+86 138 0000 0000"}}
                async with s.post(f"http://127.0.0.1:{storm.ports[ch]}/_sandbox/bookings", json=payload) as r:
                    body = await r.json()
                    assert r.status == 200, body
                made.append((ch, body["ota_booking_id"], ci, co))
                if i % 5 == 4:
                    cch, coid, _, _ = made[rng.randrange(len(made))]
                    if (cch, coid) not in cancelled:
                        async with s.post(f"http://127.0.0.1:{storm.ports[cch]}/_sandbox/bookings",
                                          json={"action": "cancel", "ota_booking_id": coid}) as r:
                            assert r.status == 200, await r.text()
                        cancelled.add((cch, coid))
                await asyncio.sleep(rng.uniform(0.05, 0.25))

    async def killer() -> None:
        for _ in range(6):
            await asyncio.sleep(rng.uniform(0.4, 1.5))
            storm.kill_daemon()
            await storm.start_daemon()

    await asyncio.gather(guests(), killer())
    assert storm.kills == 6

    # let the last daemon finish: every booking delivered and acknowledged, every OTA equal to the ledger
    cfg = load_config(storm.config, env={})
    rt = await Runtime.open(config=cfg, sync_mappings=False)
    try:
        async def all_acknowledged() -> bool:
            async with aiohttp.ClientSession() as s:
                for ch in CHANNELS:
                    async with s.get(f"http://127.0.0.1:{storm.ports[ch]}/_sandbox/bookings") as r:
                        for b in (await r.json())["bookings"]:
                            if any(rev["state"] != "acknowledged" for rev in b["revisions"]):
                                return False
            return True

        deadline = time.monotonic() + 120
        while not await all_acknowledged():
            assert time.monotonic() < deadline, "bookings left unacknowledged after the storm"
            await asyncio.sleep(0.3)

        async def counts(conn):
            rows = (await conn.execute(select(m.bookings.c.channel, m.bookings.c.ota_booking_id,
                                              m.bookings.c.status))).all()
            revs = (await conn.execute(select(m.booking_revisions.c.channel, m.booking_revisions.c.ota_booking_id,
                                              m.booking_revisions.c.revision))).all()
            return rows, revs

        rows, revs = await rt.db.read(counts)
        held = Counter((r.channel, r.ota_booking_id) for r in rows)
        assert set(held) == {(ch, oid) for ch, oid, _, _ in made}, "a booking was lost"
        assert max(held.values()) == 1
        assert len(set(revs)) == len(revs)
        status = {(r.channel, r.ota_booking_id): r.status for r in rows}
        for key in cancelled:
            assert status[key] == "cancelled"
        # sold per night is exactly the bookings still standing: nothing applied twice
        expect = Counter()
        for ch, oid, ci, co in made:
            if (ch, oid) not in cancelled:
                for n in dates.nights(ci, co):
                    expect[n] += 1
        shown = {x["date"]: x["sold"] for x in (await rt.ledger.show("SHA-BUND", nights[0], nights[-1]))["rooms"]
                 if x["room_type"] == "DK"}
        assert shown == {n.isoformat(): expect[n] for n in nights}

        # and every OTA holds what the ledger says it should
        async def converged() -> list[str]:
            snap = await rt.ledger.snapshot("SHA-BUND", nights[0], nights[-1])
            problems = []
            async with aiohttp.ClientSession() as s:
                for ch in CHANNELS:
                    from adapters.base.registry import load

                    caps = load(ch).capabilities
                    want = derive(pm, ch, snap, all_keys(pm, ch, nights), today=today, supported=caps.restrictions,
                                  inventory_level=caps.inventory_level)
                    async with s.get(f"http://127.0.0.1:{storm.ports[ch]}/_sandbox/state") as r:
                        cells = {(c["hotel"], c["room"], c["rate"], c["date"]): c for c in (await r.json())["cells"]}
                    for c in want:
                        got = cells.get((c.hotel, c.room, c.rate, c.night.isoformat()), {})
                        if c.rooms_to_sell is not None and got.get("rooms_to_sell") != c.rooms_to_sell:
                            problems.append(f"{ch} {c.room}/{c.rate} {c.night}: {got.get('rooms_to_sell')} "
                                            f"!= {c.rooms_to_sell}")
            return problems

        deadline = time.monotonic() + 120
        while problems := await converged():
            assert time.monotonic() < deadline, f"not converged: {problems[:5]}"
            await asyncio.sleep(0.5)
    finally:
        await rt.close()
