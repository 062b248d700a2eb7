"""Benchmark of the console's reads (issue 11): 1,000 properties and 100,000 bookings on PostgreSQL.

    .venv/bin/python scripts/bench_console.py [--url postgresql://postgres@127.0.0.1:5432/bench_console]
                                              [--properties 1000] [--bookings 100000] [--runs 5] [--keep]

Creates the scratch database (dropped at the end unless --keep), migrates it and fills it with
scripts/bench_reports.py's generator (set-based, in the database), then times each read the
console's pages and the operator API make (channelmgr.web.queries, the same functions the
handlers call): the bookings list's first page and each of its searches, a deep page, a booking's
page, a property's 31-night calendar, the open conflicts. Prints the median of --runs for each,
beside the goal (every read under 200 ms, so a page answers at once however large the ledger).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_reports import generate, scratch_database  # noqa: E402

from channelmgr.ledger.db import Database  # noqa: E402
from channelmgr.ledger.ledger import Ledger  # noqa: E402
from channelmgr.security import Cipher  # noqa: E402
from channelmgr.web import queries  # noqa: E402

GOAL_MS = 200.0


async def bench(url: str, properties: int, runs: int) -> list[tuple[str, float]]:
    db = Database(url)
    cipher = Cipher(os.urandom(32))  # the generated bookings carry no guest data; the reads decrypt none
    ledger = Ledger(db, cipher)
    prop = f"P{properties // 2:05d}"

    async def one(conn, sql):
        return (await conn.exec_driver_sql(sql)).scalar()

    mid = await db.read(lambda c: one(c, "SELECT id FROM bookings ORDER BY id LIMIT 1 OFFSET "
                                         "(SELECT count(*) / 2 FROM bookings)"))
    ota = await db.read(lambda c: one(c, f"SELECT ota_booking_id FROM bookings WHERE id = {mid}"))
    conf = await db.read(lambda c: one(c, f"SELECT confirmation FROM bookings WHERE id = {mid}"))
    arrival = await db.read(lambda c: one(c, f"SELECT checkin FROM bookings WHERE id = {mid}"))
    cases = [
        ("bookings: newest 50", lambda: queries.bookings(db, cipher, reveal=False)),
        ("bookings: by OTA id", lambda: queries.bookings(db, cipher, reveal=False, ota_id=ota)),
        ("bookings: by confirmation", lambda: queries.bookings(db, cipher, reveal=False, confirmation=conf)),
        ("bookings: by arrival date", lambda: queries.bookings(db, cipher, reveal=False, arrival=arrival)),
        ("bookings: cancelled on ctrip", lambda: queries.bookings(db, cipher, reveal=False, status="cancelled",
                                                                  channel="ctrip")),
        ("bookings: one property", lambda: queries.bookings(db, cipher, reveal=False, property=prop)),
        ("bookings: a page deep in the list", lambda: queries.bookings(db, cipher, reveal=False, before_id=mid)),
        ("booking page", lambda: queries.booking(ledger, mid, reveal=False)),
        ("calendar: 31 nights of one property", lambda: queries.calendar(ledger, prop, date(2026, 7, 1),
                                                                         date(2026, 7, 31))),
        ("conflicts: open", lambda: queries.conflicts(db)),
    ]
    out = []
    try:
        for label, fn in cases:
            await fn()  # warm
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                await fn()
                times.append(time.perf_counter() - t0)
            med = statistics.median(times) * 1000
            out.append((label, med))
            print(f"{label:<40} median {med:7.1f} ms (of {runs}; max {max(times) * 1000:.1f})  "
                  f"{med / GOAL_MS:5.2f} x the {GOAL_MS:.0f} ms goal")
    finally:
        await db.dispose()
    return out


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/bench_console")
    ap.add_argument("--properties", type=int, default=1000)
    ap.add_argument("--bookings", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = ap.parse_args()
    async with scratch_database(args.url, args.keep):
        await generate(args.url, args.properties, args.bookings)
        results = await bench(args.url, args.properties, args.runs)
    worst = max(t for _, t in results)
    print(f"slowest read: {worst:.1f} ms (goal: under {GOAL_MS:.0f} ms) -> "
          f"{'OK' if worst < GOAL_MS else 'TOO SLOW'}")
    return 0 if worst < GOAL_MS else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
