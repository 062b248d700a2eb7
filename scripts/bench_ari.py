#!/usr/bin/env python3
"""Bulk-ARI benchmark (issue 13): a year of availability then prices, pushed through the four sandboxes.

Runs the real thing as bench_fanout.py does (`channelmgr run` and the four sandboxes as their
own processes), N generated properties, each OTA kept in step over --nights. After the first
full sync, a PMS (this process, writing the same ledger through the ledger's own API, one
transaction per room type as `channelmgr ari set` does) sets rooms for the 4 room types over
--nights, then the price of the 4 BAR plans (their derived plans follow), every property.
It prints, per run and then the median of the runs:

- cells/s overall (every channel cell the four OTAs were sent / the time from the first
  change to the last channel's queue being empty) and per channel;
- messages sent per channel / the minimum possible under that OTA's batching rule (the
  changed cells as they stand at the end, merged into ranges and batched by
  channelmgr.sync.batching: what one message per OTA limit would be). A run's closures (a
  fall in rooms to sell) are counted apart from its other changes: they go at once, never
  held for the prices behind them, so they cannot share those messages. Run 1 lowers the
  rooms (closures, then prices); runs 2 and 3 raise them (openings and prices, one bulk);
- the daemon's CPU;
- the limits, measured in the same run on the same machine: how many OTA cells a second
  lxml builds (Booking.com's OTA_HotelAvailNotifRQ and OTA_HotelRateAmountNotifRQ, one night
  an item, through the adapter's own codec, in this process), and how many requests a second
  bare aiohttp carries over loopback (16 in flight, each the body of a 31-cell message, to
  a bare aiohttp server in another process), with the project's cells/s as a share of the
  lower of the two.

    .venv/bin/python scripts/bench_ari.py                        # defaults, SQLite
    .venv/bin/python scripts/bench_ari.py --db postgres          # PostgreSQL
    .venv/bin/python scripts/bench_ari.py --properties 20 --nights 365 --runs 3 --db both

Goals (issue 13): 10,000 cells/s overall from one process; at least 30 % of what lxml and
loopback allow; at most 1.5x the minimum messages. It prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
_spec = importlib.util.spec_from_file_location("bench_fanout", HERE / "bench_fanout.py")
bf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bf)

ROOMS = ("SK", "ST", "DK", "ES")
PLANS = (("SK", "BAR-SK"), ("ST", "BAR-ST"), ("DK", "BAR-DK"), ("ES", "BAR-ES"))


def lxml_cells_per_s(seconds: float = 2.0) -> float:
    """OTA cells a second lxml builds through Booking.com's codec: 100 one-night items a
    message, rooms to sell on one, two occupancy prices on the other."""
    from datetime import date

    from adapters.base.contract import AriUpdate, Price
    from adapters.booking import codec

    day0 = date(2027, 1, 1)
    items = [AriUpdate("9000000", "DK", "BAR-DK", day0 + timedelta(days=i), day0 + timedelta(days=i), rooms_to_sell=5,
                       prices=(Price(1, 88800 + i), Price(2, 98800 + i)), currency="CNY", key=str(i))
             for i in range(100)]
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        codec.avail_notif("9000000", items)
        codec.rate_amount_notif("9000000", items)
        n += len(items)
    return n / (time.perf_counter() - t0)


LOOPBACK_SERVER = """
import sys
from aiohttp import web

async def ok(request):
    await request.read()
    return web.Response(body=b"<OK/>")

app = web.Application(client_max_size=8 * 1024 ** 2)
app.router.add_post("/", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


async def loopback_requests_per_s(seconds: float = 3.0, in_flight: int = 16, cells: int = 31) -> tuple[float, int]:
    """Requests a second bare aiohttp carries over loopback, each the body of a ``cells``-cell message."""
    import subprocess

    from adapters.base.contract import AriUpdate, Price
    from adapters.booking import codec

    day0 = datetime(2027, 1, 1).date()
    body = codec.rate_amount_notif("9000000", [
        AriUpdate("9000000", "DK", "BAR-DK", day0 + timedelta(days=i), day0 + timedelta(days=i),
                  prices=(Price(1, 88800), Price(2, 98800)), currency="CNY", key=str(i)) for i in range(cells)]).body
    port = bf.free_port()
    proc = subprocess.Popen([sys.executable, "-c", LOOPBACK_SERVER, str(port)])  # another process, as the sandboxes
    try:
        url = f"http://127.0.0.1:{port}/"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as s:
            for _ in range(300):
                try:
                    async with s.post(url, data=body) as r:
                        await r.read()
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            n = 0
            stop = time.perf_counter() + seconds

            async def client():
                nonlocal n
                while time.perf_counter() < stop:
                    async with s.post(url, data=body, headers={"Content-Type": "application/xml"}) as r:
                        await r.read()
                    n += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(in_flight)))
            return n / (time.perf_counter() - t0), cells
    finally:
        proc.terminate()
        proc.wait(10)


def ledger_url(b) -> str:
    if b.db_url.startswith("sqlite:///var"):
        return "sqlite:///" + str(b.tmp / b.db_url.split("sqlite:///", 1)[1])
    return b.db_url


async def health(s, b) -> dict:
    async with s.get(f"http://127.0.0.1:{b.port}/health") as r:
        return await r.json()


async def run_once(b, ledger, ms, k: int, rng: random.Random) -> dict:
    from sqlalchemy import func, select

    from adapters.base.registry import load
    from channelmgr import dates
    from channelmgr.ledger import models as m
    from channelmgr.ledger.types import AriChange
    from channelmgr.mapping.derive import derive
    from channelmgr.sync.batching import batches, to_items

    db = ledger.db
    o = m.outbox

    async def top(conn):
        return (await conn.execute(select(func.max(o.c.id)))).scalar() or 0

    mark = await db.read(top)
    today = datetime.now(timezone(timedelta(hours=8))).date()
    start, end = today, today + timedelta(days=b.args.nights - 1)
    async with aiohttp.ClientSession() as s:
        h0 = await health(s, b)
        cpu0 = sum(b.daemon.cpu_times()[:2])
        t0 = time.monotonic()
        props = sorted(b.hotels)
        rooms = 3 + k  # a different value each run, so every cell changes
        for p in props:
            for rt in ROOMS:
                await ledger.set_ari(AriChange(p, rt, start, end, rooms=rooms), actor="bench")
        t_avail = time.monotonic() - t0
        for p in props:
            for rt, plan in PLANS:
                await ledger.set_ari(AriChange(p, rt, start, end, rate_plan=plan,
                                               price_minor=80000 + 100 * k + rng.randrange(50) * 100), actor="bench")
        t_written = time.monotonic() - t0
        done_at: dict[str, float] = {}

        async def depth(conn):
            return dict((await conn.execute(select(o.c.channel, func.count()).where(
                o.c.status.in_(("pending", "claimed"))).group_by(o.c.channel))).all())

        deadline = t0 + b.args.timeout
        while len(done_at) < len(bf.CHANNELS) and time.monotonic() < deadline:
            d = await db.read(depth)
            for ch in bf.CHANNELS:
                if ch not in done_at and not d.get(ch):
                    done_at[ch] = time.monotonic() - t0
            await asyncio.sleep(0.1)
        wall = max(done_at.values()) if len(done_at) == len(bf.CHANNELS) else float("nan")
        cpu = sum(b.daemon.cpu_times()[:2]) - cpu0
        h1 = await health(s, b)

    # what was sent, and the fewest messages each OTA's rule allows for the same cells
    async def queued(conn):
        rt, rp = m.room_types, m.rate_plans
        return (await conn.execute(select(o.c.channel, m.properties.c.code, o.c.kind, rt.c.code, rp.c.code, o.c.night,
                                          o.c.priority)
                                   .select_from(o.join(m.properties, m.properties.c.id == o.c.property_id)
                                                .join(rt, rt.c.id == o.c.room_type_id)
                                                .outerjoin(rp, rp.c.id == o.c.rate_plan_id))
                                   .where(o.c.id > mark))).all()

    # closures (a fall in rooms to sell: priority 0) go at once, never held for company (issue
    # 13: a sold-out night is never stuck behind a year of prices), so the fewest messages
    # possible counts a run's closures apart from its other changes
    keys: dict[tuple[str, str, bool], set] = {}
    for ch, prop, kind, rtc, rpc, night, prio in await db.read(queued):
        keys.setdefault((ch, prop, prio == 0), set()).add((kind, rtc, rpc, night))
    out: dict = {"write_s": t_written, "avail_write_s": t_avail, "wall_s": wall,
                 "cpu_percent": 100 * cpu / (wall if wall == wall else 1)}
    total_cells = 0
    now = datetime.now(timezone.utc)
    for ch in bf.CHANNELS:
        caps = load(ch).capabilities
        least = cells_n = 0
        for (c, prop, _closures), ks in keys.items():
            if c != ch:
                continue
            pm = ms.get(prop)
            lo, hi = caps.window.bounds(now, pm.timezone)
            ks = sorted((k_ for k_ in ks if lo <= k_[3] <= hi), key=lambda x: (x[0], x[1], x[2] or "", x[3]))
            if not ks:
                continue
            snap = await ledger.snapshot(prop, ks[0][3] if False else min(x[3] for x in ks), max(x[3] for x in ks))
            cells = [x for x in derive(pm, ch, snap, ks, today=dates.business_date(now, pm.timezone),
                                       supported=caps.restrictions, inventory_level=caps.inventory_level)
                     if x.rooms_to_sell is not None or x.prices]
            cells_n += len(cells)
            least += len(batches(to_items([(x, set()) for x in cells], caps), caps))
        sent = h1["channels"][ch]["push_calls"] - h0["channels"][ch]["push_calls"]
        out[f"{ch}_cells"] = cells_n
        out[f"{ch}_cells_per_s"] = cells_n / done_at[ch] if ch in done_at else float("nan")
        out[f"{ch}_messages"] = sent
        out[f"{ch}_minimum"] = least
        out[f"{ch}_closure_cells"] = sum(1 for (c, _p, closing), ks in keys.items() if c == ch and closing for _ in ks)
        out[f"{ch}_ratio"] = sent / least if least else float("nan")
        total_cells += cells_n
    out["cells"] = total_cells
    out["cells_per_s"] = total_cells / wall if wall == wall else float("nan")
    return out


async def bench(args, db_url: str) -> dict:
    from channelmgr.ledger.db import Database
    from channelmgr.ledger.ledger import Ledger
    from channelmgr.mapping import load_mappings
    from channelmgr.security import Cipher

    tmp = Path(tempfile.mkdtemp(prefix="bench-ari-"))
    args.horizon = args.nights
    b = bf.Bench(args, db_url, tmp)
    try:
        startup = await b.start()
        print(f"  first full sync of {args.properties} properties x {args.nights} nights: {startup:.1f} s", flush=True)
        db = Database(ledger_url(b))
        ledger = Ledger(db, Cipher(os.urandom(32)))  # the bench writes no guest data
        ms = load_mappings(tmp / "mappings")
        rng = random.Random(args.seed)
        runs = []
        try:
            for k in range(args.runs):
                r = await run_once(b, ledger, ms, k, rng)
                runs.append(r)
                print(f"  run {k + 1}: {r['cells']} cells in {r['wall_s']:.1f} s = {r['cells_per_s']:.0f} cells/s "
                      f"(changes written in {r['write_s']:.1f} s), daemon CPU {r['cpu_percent']:.0f}%", flush=True)
                for ch in bf.CHANNELS:
                    print(f"         {ch:<8} {r[f'{ch}_cells']:>7} cells {r[f'{ch}_cells_per_s']:>8.0f} cells/s  "
                          f"messages {r[f'{ch}_messages']:>5} / minimum {r[f'{ch}_minimum']:>5} = "
                          f"{r[f'{ch}_ratio']:.2f}x", flush=True)
        finally:
            await db.dispose()
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        med["first_full_sync_s"] = startup
        return med
    finally:
        b.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--properties", type=int, default=20)
    ap.add_argument("--nights", type=int, default=365)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600, help="seconds a run may take")
    bf.add_db_args(ap)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    results = {}
    for name, url in bf.db_targets(args):
        print(f"{name}: {args.properties} properties x 4 room types x {args.nights} nights, {args.runs} runs",
              flush=True)
        r = asyncio.run(bench(args, url))
        # the limits, measured in the same run, right after it, on the same machine (median of 3)
        r["lxml_cells_per_s"] = statistics.median(lxml_cells_per_s() for _ in range(3))
        loop = [asyncio.run(loopback_requests_per_s()) for _ in range(3)]
        r["loopback_requests_per_s"] = statistics.median(x for x, _ in loop)
        r["loopback_cells_per_s"] = r["loopback_requests_per_s"] * loop[0][1]
        r["limit_cells_per_s"] = min(r["lxml_cells_per_s"], r["loopback_cells_per_s"])
        r["share_of_limit"] = r["cells_per_s"] / r["limit_cells_per_s"]
        print(f"  limits: lxml builds {r['lxml_cells_per_s']:.0f} cells/s; aiohttp over loopback carries "
              f"{r['loopback_requests_per_s']:.0f} requests/s = {r['loopback_cells_per_s']:.0f} cells/s in "
              f"{loop[0][1]}-cell messages", flush=True)
        results[name] = r
    print()
    for name, r in results.items():
        print(f"{name}: median {r['cells_per_s']:.0f} cells/s overall (goal 10,000: {r['cells_per_s'] / 10000:.2f} "
              f"of it); {100 * r['share_of_limit']:.1f} % of what lxml/loopback allow (goal 30 %: "
              f"{r['share_of_limit'] / 0.30:.2f} of it); first full sync {r['first_full_sync_s']:.0f} s")
        for ch in bf.CHANNELS:
            print(f"    {ch:<8} {r[f'{ch}_cells_per_s']:>8.0f} cells/s  messages {r[f'{ch}_messages']:.0f} / minimum "
                  f"{r[f'{ch}_minimum']:.0f} = {r[f'{ch}_ratio']:.2f}x (goal 1.5x: {r[f'{ch}_ratio'] / 1.5:.2f} of it)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
