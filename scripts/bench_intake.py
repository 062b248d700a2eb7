#!/usr/bin/env python3
"""Intake benchmark: how many booking revisions a second does the daemon take in?

Runs the real thing as bench_fanout.py does (`channelmgr run` and the four sandboxes as their
own processes, N generated properties), then posts K Ctrip bookings (OTA_HotelResRQ, written
by the Ctrip sandbox's own writer, each a new booking of one night on a random property) to
the daemon's /inbound/ctrip, C at a time, and prints revisions/s (from the first post to the
last answer), each answer's p50/p95, how many were applied (counted in the ledger), and the
daemon's CPU: per run, then the median of the runs. It prints figures; it is not a test.

    .venv/bin/python scripts/bench_intake.py --db both            # 3 runs of 600 each on both, about 3 minutes
    .venv/bin/python scripts/bench_intake.py --bookings 2000 --properties 100 --py-spy /tmp/spy --gil

Goal (issue 13): at least 200 revisions/s on SQLite, 500/s on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_fanout", HERE / "bench_fanout.py")
bf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bf)  # the shared harness: Bench, pct, _fresh_pg

GOALS = {"SQLite": 200, "PostgreSQL": 500}


def messages(b, k: int, rng: random.Random, tag: str) -> list[bytes]:
    from lxml import etree

    from adapters.base.sandbox import BookingEvent, SandboxBooking
    from adapters.ctrip.sandbox import CtripSandbox
    from channelmgr.mapping import load_mappings

    sb = CtripSandbox.__new__(CtripSandbox)  # only its message writer
    sb.credentials = {"username": b.env["C_USER"], "password": b.env["C_PASS"]}
    cm = load_mappings(b.tmp / "mappings" / "bench-00000.yaml").get("BENCH-00000").channel("ctrip")
    today = datetime.now(timezone(timedelta(hours=8))).date()
    out = []
    for i in range(k):
        prop = f"BENCH-{rng.randrange(b.args.properties):05d}"
        night = today + timedelta(days=rng.randrange(3, max(4, b.args.horizon - 2)))
        data = {"hotel": b.hotels[prop]["ctrip"], "room": cm.rooms["DK"], "rate": cm.rates["BAR-DK"],
                "checkin": night.isoformat(), "checkout": (night + timedelta(days=1)).isoformat(), "rooms": 1,
                "amount_minor": 88800, "currency": "CNY", "guest": {"name": "测试客人"}}
        booking = SandboxBooking(f"BI{tag}{i:07d}", data)
        event = BookingEvent(1, "new", data, datetime.now(timezone.utc))
        booking.events.append(event)
        out.append(etree.tostring(sb.booking_message(booking, event), xml_declaration=True, encoding="UTF-8"))
    return out


async def applied(b, prefix: str) -> int:
    from sqlalchemy import func, select

    from channelmgr.ledger import models as m
    from channelmgr.ledger.db import Database

    url = b.db_url if "://" in b.db_url and not b.db_url.startswith("sqlite:///var") else \
        "sqlite:///" + str(b.tmp / b.db_url.split("sqlite:///", 1)[1])
    db = Database(url)
    try:
        async def q(conn):
            return (await conn.execute(select(func.count()).select_from(m.bookings).where(
                m.bookings.c.channel == "ctrip", m.bookings.c.ota_booking_id.like(f"{prefix}%")))).scalar()

        return await db.read(q)
    finally:
        await db.dispose()


async def run_once(b, rng: random.Random, k: int, conc: int, tag: str) -> dict:
    bodies = messages(b, k, rng, tag)
    url = f"http://127.0.0.1:{b.port}/inbound/ctrip"
    answers: list[float] = []
    failed = 0
    sem = asyncio.Semaphore(conc)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as s:
        cpu0 = sum(b.daemon.cpu_times()[:2])
        t0 = time.monotonic()

        async def one(body: bytes) -> None:
            nonlocal failed
            async with sem:
                t = time.monotonic()
                try:
                    async with s.post(url, data=body, headers={"Content-Type": "text/xml; charset=utf-8"},
                                      timeout=aiohttp.ClientTimeout(total=120)) as r:
                        text = await r.read()
                        if r.status != 200 or b"<Success" not in text:
                            failed += 1
                except Exception:
                    failed += 1
                answers.append(time.monotonic() - t)

        await asyncio.gather(*(one(x) for x in bodies))
        wall = time.monotonic() - t0
        cpu = sum(b.daemon.cpu_times()[:2]) - cpu0
    n = await applied(b, f"BI{tag}")
    return {"revisions_per_s": k / wall, "p50_ms": bf.pct(answers, 50) * 1000, "p95_ms": bf.pct(answers, 95) * 1000,
            "applied": n, "failed": failed, "cpu_percent": 100 * cpu / wall, "wall_s": wall}


async def bench(args, name: str, db_url: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    b = bf.Bench(args, db_url, tmp)
    try:
        await b.start()
        rng = random.Random(args.seed)
        runs = []
        spy = None
        if args.py_spy:  # sample the daemon while it takes the bookings (raw: collapsed stacks)
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(b.daemon.pid),
                                    "-r", "200", "--format", "raw", "-o", f"{args.py_spy}.{name}.txt",
                                    *(["--gil"] if args.gil else [])],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1)
        for k in range(args.runs):
            r = await run_once(b, rng, args.bookings, args.concurrency, f"{k}x{rng.randrange(10**6):06d}")
            runs.append(r)
            print(f"  run {k + 1}: {r['revisions_per_s']:.1f} revisions/s  answer p50 {r['p50_ms']:.0f} ms  "
                  f"p95 {r['p95_ms']:.0f} ms  applied {r['applied']}/{args.bookings}  failed {r['failed']}  "
                  f"daemon CPU {r['cpu_percent']:.0f}%", flush=True)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            print(f"  py-spy profile: {args.py_spy}.{name}.txt", flush=True)
        return {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    finally:
        b.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--properties", type=int, default=20)
    ap.add_argument("--bookings", type=int, default=600, help="bookings posted per run (the issue measured 2,000)")
    ap.add_argument("--concurrency", type=int, default=32, help="posts in flight at once")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--horizon", type=int, default=30)
    bf.add_db_args(ap)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--py-spy", metavar="PREFIX", help="sample the daemon with py-spy during the runs "
                                                         "(pip install py-spy) into PREFIX.<db>.txt")
    ap.add_argument("--gil", action="store_true", help="py-spy: only samples that hold the GIL (Python CPU)")
    args = ap.parse_args()
    args.rate, args.timeout = 1.0, 30.0  # unused here; the shared harness reads them
    results = {}
    for name, url in bf.db_targets(args):
        print(f"{name}: {args.properties} properties, {args.bookings} Ctrip bookings x {args.runs} runs, "
              f"{args.concurrency} in flight", flush=True)
        results[name] = asyncio.run(bench(args, name, url))
    print()
    for name, r in results.items():
        goal = GOALS[name]
        print(f"{name}: median {r['revisions_per_s']:.1f} revisions/s (goal {goal}/s: {r['revisions_per_s'] / goal:.2f} "
              f"of it), answer p50 {r['p50_ms']:.0f} ms p95 {r['p95_ms']:.0f} ms, daemon CPU {r['cpu_percent']:.0f}%")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
