#!/usr/bin/env python3
"""Fan-out benchmark: how fast does a booking on one OTA close the room on the other three?

Runs the real thing: `channelmgr run` as its own process, the four OTA sandboxes as four more
processes, N generated properties, guests booking at R bookings a second on the push channels
(Ctrip, Meituan). For each booking it measures the time from the source OTA accepting it to
the last of the other three OTAs holding the new count (the time each sandbox says its count
changed, looked up one cell at a time every 50 ms, so the looking neither loads the sandboxes
nor enters the figure), and
prints p50/p95/p99 (a booking that does not arrive within --timeout counts as a miss at the
timeout value, never left out), each target channel's p50/p95 on its own, pushes sent per
booking, and the daemon's CPU and memory: per run, then the median of the runs; with --db
both, SQLite and PostgreSQL side by side with their ratio. Every generated property has its
own hotel ids and its own Fliggy room and rate codes.

    .venv/bin/python scripts/bench_fanout.py --properties 1000 --rate 5 --bookings 150 --runs 3
    .venv/bin/python scripts/bench_fanout.py --rate 5,20 --db both    # both goals, one start each

Goals (issue 13): p95 under 0.5 s at 5 bookings/s and under 1 s at 20 bookings/s, on both
databases, at 1,000 properties; the first full sync (30 nights) under 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ("booking", "ctrip", "fliggy", "meituan")
SOURCES = ("ctrip", "meituan")  # push channels: the booking reaches the daemon at once
CREDS = {
    "booking": {"username": "B_USER", "password": "B_PASS"},
    "ctrip": {"username": "C_USER", "password": "C_PASS"},
    "fliggy": {"key": "F_KEY", "secret": "F_SECRET", "session": "F_SESSION"},
    "meituan": {"username": "M_PARTNER", "key": "M_KEY", "secret": "M_SECRET"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def make_mappings(folder: Path, n: int) -> dict[str, dict]:
    """N copies of the shipped hotel, each with its own OTA hotel ids (no Ctrip cap, so every
    booking changes every channel's count)."""
    template = (ROOT / "mappings" / "sha-bund.yaml").read_text(encoding="utf-8")
    template = re.sub(r"    availability:\n      cap: 20.*\n", "", template)
    hotels = {}
    for i in range(n):
        ids = {"booking": str(9_000_000 + i), "ctrip": str(500_000 + i), "fliggy": f"bench-{i:05d}",
               "meituan": str(300_000 + i)}
        text = template.replace("code: SHA-BUND", f"code: BENCH-{i:05d}")
        text = text.replace('hotel_id: "2846731"', f'hotel_id: "{ids["booking"]}"')
        text = text.replace('hotel_id: "436512"', f'hotel_id: "{ids["ctrip"]}"')
        text = text.replace('hotel_id: "sha-bund-001"', f'hotel_id: "{ids["fliggy"]}"')
        text = text.replace('hotel_id: "158937"', f'hotel_id: "{ids["meituan"]}"')
        # Fliggy's room and rate-plan codes are its own ids, unique across hotels: each
        # generated property gets its own (the same codes everywhere put every cell on one hotel)
        head, rest = text.split("  fliggy:\n", 1)
        block, tail = rest.split("  meituan:\n", 1)
        block = re.sub(r'(\n      [A-Z-]+: )"([A-Z_]+)"', lambda mt: f'{mt.group(1)}"{mt.group(2)}-{i:05d}"', block)
        text = head + "  fliggy:\n" + block + "  meituan:\n" + tail
        (folder / f"bench-{i:05d}.yaml").write_text(text, encoding="utf-8")
        hotels[f"BENCH-{i:05d}"] = ids
    return hotels


class Bench:
    def __init__(self, args, db_url: str, tmp: Path):
        self.args = args
        self.tmp = tmp
        self.db_url = db_url
        self.port = free_port()
        self.ports = {ch: free_port() for ch in CHANNELS}
        self.env = dict(os.environ)
        self.env.pop("CHANNELMGR_DATABASE_URL", None)
        for ch in CHANNELS:
            for var in CREDS[ch].values():
                self.env[var] = secrets.token_hex(12)
        self.procs: list[subprocess.Popen] = []
        self.daemon: psutil.Process | None = None

    def write(self) -> None:
        (self.tmp / "mappings").mkdir()
        self.hotels = make_mappings(self.tmp / "mappings", self.args.properties)
        lines = [f"database: {{url: '{self.db_url}'}}", f"http: {{host: 127.0.0.1, port: {self.port}}}",
                 f"mappings_dir: {self.tmp / 'mappings'}", f"security: {{data_key_file: {self.tmp / 'key'}}}",
                 "log: {format: json, level: error}",
                 f"sync: {{horizon_days: {self.args.horizon}, flush_interval_seconds: 2}}",
                 "demo: {synthetic_guests: false}", "channels:"]
        for ch in CHANNELS:
            creds = ", ".join(f"{k}_env: {v}" for k, v in CREDS[ch].items())
            lines += [f"  {ch}:", "    sandbox: false", f"    endpoint: http://127.0.0.1:{self.ports[ch]}",
                      f"    credentials: {{{creds}}}", "    pull_interval_seconds: 20"]
        self.config = self.tmp / "config.yaml"
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def spawn(self, *args: str) -> subprocess.Popen:
        log = open(self.tmp / "processes.log", "ab")
        p = subprocess.Popen([sys.executable, "-m", "channelmgr", *args, "--config", str(self.config)],
                             env=self.env, cwd=self.tmp, stdout=log, stderr=log)
        self.procs.append(p)
        return p

    async def wait_http(self, url: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                try:
                    async with s.get(url) as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise SystemExit(f"{url} did not answer; see {self.tmp / 'processes.log'}")

    async def start(self) -> float:
        self.write()
        if self.db_url.startswith("postgresql"):
            subprocess.run([sys.executable, "-m", "channelmgr", "db", "upgrade", "--config", str(self.config)],
                           env=self.env, cwd=self.tmp, check=True, capture_output=True)
        for ch in CHANNELS:
            extra = ["--deliver-to", f"http://127.0.0.1:{self.port}/inbound/{ch}"] if ch in SOURCES else []
            self.spawn("sandbox", ch, "--port", str(self.ports[ch]), *extra)
        for ch in CHANNELS:
            await self.wait_http(f"http://127.0.0.1:{self.ports[ch]}/_sandbox/state?hotel=none")
        t0 = time.monotonic()
        self.daemon = psutil.Process(self.spawn("run").pid)
        await self.wait_http(f"http://127.0.0.1:{self.port}/health")
        # the first full sync of every property on every channel must be out before measuring
        # (`channelmgr status --json` reads what /api/status shows, without an operator login)
        while True:
            out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "channelmgr", "status", "--json",
                                                           "--config", str(self.config)],
                                          env=self.env, cwd=self.tmp, capture_output=True, text=True)
            if out.returncode == 0:
                st = json.loads(out.stdout)
                if all(c["outbox_depth"] == 0 for c in st["channels"]) and any(
                        c["last_success_at"] for c in st["channels"]):
                    break
            await asyncio.sleep(1)
        return time.monotonic() - t0

    async def cell(self, s: aiohttp.ClientSession, ch: str, hotel: str, room: str, rate: str | None,
                   night: str) -> tuple[int | None, float | None]:
        """The OTA's rooms to sell for one cell, and the Unix time they last changed there."""
        q = {"hotel": hotel, "room": room, "date": night, "times": "1"}
        if rate is not None:
            q["rate"] = rate
        async with s.get(f"http://127.0.0.1:{self.ports[ch]}/_sandbox/state", params=q) as r:
            cells = (await r.json())["cells"]
        for c in cells:
            if c["room"] == room and c["date"] == night and (c["rate"] == rate):
                return c["rooms_to_sell"], c.get("rooms_changed_at")
        return None, None

    async def health(self, s) -> dict:
        async with s.get(f"http://127.0.0.1:{self.port}/health") as r:
            return await r.json()

    async def run_once(self, rng: random.Random) -> dict:
        from adapters.base.registry import load
        from channelmgr.mapping import load_mappings

        pms: dict[str, object] = {}

        def pm_of(prop: str):  # each property's own codes (Fliggy's differ per property)
            if prop not in pms:
                pms[prop] = load_mappings(self.tmp / "mappings" / f"{prop.lower()}.yaml").get(prop)
            return pms[prop]

        caps = {ch: load(ch).capabilities for ch in CHANNELS}
        latencies: list[float] = []  # the last of the three; a timeout counts at the timeout value
        per_channel: dict[str, list[float]] = {ch: [] for ch in CHANNELS}
        timeouts = 0
        limit = self.args.timeout
        today = datetime.now(timezone(timedelta(hours=8))).date()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as s:
            h0 = await self.health(s)
            cpu0 = sum(self.daemon.cpu_times()[:2])
            t_start = time.monotonic()
            rss_peak = self.daemon.memory_info().rss

            async def one(i: int) -> None:
                nonlocal timeouts, rss_peak
                prop = f"BENCH-{rng.randrange(self.args.properties):05d}"
                source = SOURCES[i % 2]
                night = (today + timedelta(days=rng.randrange(3, min(25, self.args.horizon - 2)))).isoformat()
                checkout = (date.fromisoformat(night) + timedelta(days=1)).isoformat()
                targets = [ch for ch in CHANNELS if ch != source]
                pm_any = pm_of(prop)
                where = {}
                for ch in targets:
                    cm = pm_any.channel(ch)
                    rate = cm.rates["BAR-DK"] if caps[ch].inventory_level == "rate" else None
                    where[ch] = (self.hotels[prop][ch], cm.rooms["DK"], rate)
                before = {ch: (await self.cell(s, ch, *where[ch], night))[0] for ch in targets}
                cm = pm_any.channel(source)
                payload = {"hotel": self.hotels[prop][source], "room": cm.rooms["DK"], "rate": cm.rates["BAR-DK"],
                           "checkin": night, "checkout": checkout, "rooms": 1, "amount_minor": 88800,
                           "currency": "CNY", "guest": {"name": "测试客人"}}
                async with s.post(f"http://127.0.0.1:{self.ports[source]}/_sandbox/bookings", json=payload) as r:
                    if r.status != 200:
                        return
                t0, wall0 = time.monotonic(), time.time()
                got: dict[str, float] = {}
                pending = {ch for ch in targets if before[ch] is not None and before[ch] > 0}
                # the latency is when each OTA's count changed, by the OTA's own clock (the
                # sandboxes share this machine's), so how often this loop looks does not
                # enter the figure; it looks one cell at a time, 50 ms after the booking and
                # then less and less often (at most every 500 ms), so that with a hundred
                # bookings in flight the looking does not load the sandboxes and this machine
                # (at a fixed 50 ms it was 6,000 requests a second at 20 bookings/s)
                gap = 0.05
                while pending and time.monotonic() - t0 < limit:
                    await asyncio.sleep(gap)
                    gap = min(0.5, gap * 1.5)
                    for ch in list(pending):
                        now, changed_at = await self.cell(s, ch, *where[ch], night)
                        if now is not None and now < before[ch]:
                            pending.discard(ch)
                            seen = time.monotonic() - t0
                            took = min(seen, max(0.0, changed_at - wall0)) if changed_at else seen
                            got[ch] = took
                            per_channel[ch].append(took)
                if pending:
                    timeouts += 1
                    latencies.append(limit)  # a miss, at the timeout: never left out
                    for ch in pending:
                        per_channel[ch].append(limit)
                else:
                    latencies.append(max(got.values(), default=0.0))
                rss_peak = max(rss_peak, self.daemon.memory_info().rss)

            tasks = []
            for i in range(self.args.bookings):
                tasks.append(asyncio.create_task(one(i)))
                await asyncio.sleep(rng.expovariate(self.args.rate))
            await asyncio.gather(*tasks)
            wall = time.monotonic() - t_start
            cpu = sum(self.daemon.cpu_times()[:2]) - cpu0
            h1 = await self.health(s)
        calls = sum(h1["channels"][c]["push_calls"] - h0["channels"][c]["push_calls"] for c in CHANNELS)
        out = {"p50_ms": pct(latencies, 50) * 1000, "p95_ms": pct(latencies, 95) * 1000,
               "p99_ms": pct(latencies, 99) * 1000, "measured": len(latencies), "timeouts": timeouts}
        for ch in CHANNELS:
            out[f"{ch}_p50_ms"] = pct(per_channel[ch], 50) * 1000
            out[f"{ch}_p95_ms"] = pct(per_channel[ch], 95) * 1000
            out[f"{ch}_n"] = len(per_channel[ch])
        return {**out,
                "pushes_per_booking": calls / max(1, len(latencies) + timeouts),
                "cpu_percent": 100 * cpu / wall, "rss_mb": rss_peak / 2 ** 20}

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


async def bench(args, db_url: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    b = Bench(args, db_url, tmp)
    try:
        startup = await b.start()
        rng = random.Random(args.seed)
        out = {}
        for rate in args.rates:
            b.args.rate = rate
            print(f"  {rate:g} bookings/s:", flush=True)
            out[rate] = await _runs(b, args, rng)
            out[rate]["startup_s"] = startup
        return out
    finally:
        b.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


async def _runs(b: "Bench", args, rng: random.Random) -> dict:
    """args.runs runs at b.args.rate; the median of each figure."""
    runs = []
    for k in range(args.runs):
        r = await b.run_once(rng)
        runs.append(r)
        print(f"  run {k + 1}: p50 {r['p50_ms']:.0f} ms  p95 {r['p95_ms']:.0f} ms  p99 {r['p99_ms']:.0f} ms  "
              f"({r['measured']} bookings, {r['timeouts']} timed out)  pushes/booking {r['pushes_per_booking']:.2f}  "
              f"daemon CPU {r['cpu_percent']:.0f}%  RSS {r['rss_mb']:.0f} MB", flush=True)
        print("         per channel p50/p95 ms: " + "  ".join(
            f"{ch} {r[f'{ch}_p50_ms']:.0f}/{r[f'{ch}_p95_ms']:.0f} (n={r[f'{ch}_n']})" for ch in CHANNELS),
            flush=True)
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def add_db_args(ap: argparse.ArgumentParser) -> None:
    """--db and --pg-url, the same in every benchmark that runs the daemon."""
    ap.add_argument("--db", default="sqlite", help="sqlite, postgres, both, or a database URL")
    ap.add_argument("--pg-url", default=os.environ.get("CHANNELMGR_TEST_PG_URL",
                                                       "postgresql://postgres@127.0.0.1:5432/test"))


def db_targets(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(label, database URL) for each database --db names; PostgreSQL gets a fresh database."""
    targets = []
    if args.db in ("sqlite", "both"):
        targets.append(("SQLite", "sqlite:///var/bench.db"))
    if args.db in ("postgres", "both"):
        targets.append(("PostgreSQL", _fresh_pg(args.pg_url)))
    if not targets:
        targets.append((args.db.split(":", 1)[0], args.db))
    return targets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--properties", type=int, default=1000)
    ap.add_argument("--rate", default="5", help="bookings a second; several, comma-separated, run one after "
                                                "the other on the same daemon (e.g. 5,20)")
    ap.add_argument("--bookings", type=int, default=150, help="bookings per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--horizon", type=int, default=30, help="days each OTA is kept in step (sync.horizon_days)")
    add_db_args(ap)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds a booking may take to reach the others; a miss counts at this value")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = ap.parse_args()

    args.rates = [float(x) for x in str(args.rate).split(",") if x.strip()]
    results = {}
    for name, url in db_targets(args):
        print(f"{name}: {args.properties} properties, {','.join(f'{r:g}' for r in args.rates)} bookings/s, "
              f"{args.bookings} bookings x {args.runs} runs, horizon {args.horizon} days", flush=True)
        for rate, med in asyncio.run(bench(args, url)).items():
            results[f"{name} {rate:g}/s"] = med
    print()
    names = list(results)
    width = max(14, *(len(n) + 2 for n in names))
    by_rate = {}
    for n in names:
        by_rate.setdefault(n.rsplit(" ", 1)[1], []).append(n)
    pairs = [ns for ns in by_rate.values() if len(ns) == 2]  # SQLite and PostgreSQL at one rate
    print(f"{'median of runs':<22}" + "".join(f"{n:>{width}}" for n in names)
          + "".join(f"{'PG/SQLite ' + ns[0].rsplit(' ', 1)[1]:>18}" for ns in pairs))
    rows = [("p50_ms", "p50 latency (ms)"), ("p95_ms", "p95 latency (ms)"), ("p99_ms", "p99 latency (ms)"),
            ("timeouts", "timed out (misses)")]
    rows += [(f"{ch}_p95_ms", f"{ch} p95 (ms)") for ch in CHANNELS]
    for key, label in (*rows,
                       ("pushes_per_booking", "pushes per booking"), ("cpu_percent", "daemon CPU (%)"),
                       ("rss_mb", "daemon RSS (MB)"), ("startup_s", "first full sync (s)")):
        vals = [results[n][key] for n in names]
        ratios = "".join(f"{results[b][key] / results[a][key]:>18.2f}" if results[a][key] else f"{'-':>18}"
                         for a, b in pairs)
        print(f"{label:<22}" + "".join(f"{v:>{width}.1f}" for v in vals) + ratios)
    print()
    for n in names:
        rate = float(n.rsplit(" ", 1)[1][:-2])
        budget = 500.0 if rate <= 5 else 1000.0
        p95 = results[n]["p95_ms"]
        print(f"goal at {rate:g}/s: p95 under {budget:.0f} ms -> {n}: {p95:.0f} ms ({p95 / budget:.2f} of the "
              f"budget); first full sync {results[n]['startup_s']:.0f} s (goal 30 s)")
    print(json.dumps(results))


def _fresh_pg(base: str) -> str:
    import asyncpg

    name = f"bench_{secrets.token_hex(4)}"

    async def create():
        c = await asyncpg.connect(base)
        await c.execute(f'CREATE DATABASE "{name}"')
        await c.close()

    asyncio.run(create())
    return base.rsplit("/", 1)[0] + "/" + name


if __name__ == "__main__":
    main()
