"""Benchmark of the reports (issue 14): a year of 1,000 properties with 500,000 bookings on PostgreSQL.

    .venv/bin/python scripts/bench_reports.py [--url postgresql://postgres@127.0.0.1:5432/bench_reports]
                                              [--properties 1000] [--bookings 500000] [--runs 5] [--keep]

Creates the scratch database (dropped at the end unless --keep), migrates it, and generates the
data set-based in the database (INSERT ... SELECT over generate_series): per property three room
types (20, 15 and 5 rooms) with a rate plan each, a year (2026) of inventory rows with a few rooms
out of order, bookings from the nine sources over the year (1-4 nights, 0-90 days of lead time,
one in ten cancelled; a cancelled booking keeps no nights, as in the ledger), their nights. Then
each report of one property over the year is timed (median of --runs), and its totals printed.
The goal: every report under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from datetime import date

import asyncpg

from channelmgr.ledger import migrate
from channelmgr.ledger.db import Database
from channelmgr.reports.figures import Money, ReportQuery, compute

CHANNELS = ["booking", "ctrip", "fliggy", "meituan", "website", "phone", "walk_in", "agency", "corporate"]


@contextlib.asynccontextmanager
async def scratch_database(url: str, keep: bool = False):
    """A PostgreSQL database of the benchmark's own at ``url``: made anew and migrated, dropped
    afterwards unless ``keep``."""
    base, _, name = url.rpartition("/")

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"{base}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{name}"')
    try:
        db = Database(url)
        await migrate.upgrade(db)
        await db.dispose()
        yield
    finally:
        if not keep:
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def generate(url: str, properties: int, bookings: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        t0 = time.perf_counter()
        await conn.execute(f"""
            INSERT INTO properties (code, name, timezone, currency, active)
            SELECT 'P' || lpad(i::text, 5, '0'), 'Hotel ' || i, 'Asia/Shanghai', 'CNY', true
            FROM generate_series(1, {properties}) i;
            INSERT INTO room_types (property_id, code, name, physical_rooms, active)
            SELECT p.id, v.code, v.code, v.n, true FROM properties p
            CROSS JOIN (VALUES ('K', 20), ('T', 15), ('S', 5)) v(code, n);
            INSERT INTO rate_plans (property_id, room_type_id, code, name, occupancy, active)
            SELECT rt.property_id, rt.id, 'BAR-' || rt.code, 'BAR', 2, true FROM room_types rt;
            INSERT INTO inventory (room_type_id, night, property_id, physical, out_of_order, sold, held)
            SELECT rt.id, d::date, rt.property_id, NULL, CASE WHEN random() < 0.02 THEN 1 ELSE 0 END, 0, 0
            FROM room_types rt CROSS JOIN generate_series(date '2026-01-01', date '2026-12-31', interval '1 day') d;
        """)
        await conn.execute(f"""
            INSERT INTO bookings (property_id, hotel_code, channel, ota_booking_id, confirmation, status, revision,
                                  revised_at, checkin, checkout, rooms, amount_minor, currency, booked_at,
                                  received_at, updated_at, overbooked, unmapped)
            SELECT 1 + (g % {properties}), 'H', (ARRAY{CHANNELS!r})[1 + ((g::bigint * 7919) % 9)::int], 'B' || g, 'CM' || g,
                   CASE WHEN random() < 0.1 THEN 'cancelled' ELSE 'confirmed' END, '1', booked,
                   ci, ci + los, 1, price * los, 'CNY', booked, booked, booked, false, false
            FROM (SELECT g, ci, los, price,
                         (ci - lead)::timestamp AT TIME ZONE 'Asia/Shanghai' + (random() * interval '24 hours') AS booked
                  FROM (SELECT g, date '2026-01-01' + (random() * 364)::int AS ci, 1 + (random() * 3)::int AS los,
                               30000 + (random() * 50000)::int AS price, (random() * 90)::int AS lead
                        FROM generate_series(1, {bookings}) g) s) s2;
        """)
        await conn.execute("""
            INSERT INTO booking_nights (booking_id, room_type_id, rate_plan_id, room_code, rate_code, night, rooms,
                                        price_minor, counted)
            SELECT b.id, rt.id, rp.id, rt.code, rp.code, b.checkin + k, 1, b.amount_minor / (b.checkout - b.checkin),
                   true
            FROM bookings b
            JOIN room_types rt ON rt.property_id = b.property_id AND rt.code = (ARRAY['K', 'T', 'S'])[1 + b.id % 3]
            JOIN rate_plans rp ON rp.room_type_id = rt.id
            CROSS JOIN LATERAL generate_series(0, (b.checkout - b.checkin) - 1) k
            WHERE b.status = 'confirmed';
            ANALYZE;
        """)
        n_nights = await conn.fetchval("SELECT count(*) FROM booking_nights")
        n_book = await conn.fetchval("SELECT count(*) FROM bookings")
        print(f"generated {properties} properties, {n_book} bookings, {n_nights} booking nights, "
              f"{await conn.fetchval('SELECT count(*) FROM inventory')} inventory rows "
              f"in {time.perf_counter() - t0:.1f} s")
    finally:
        await conn.close()


CASES = [
    ("summary", None, "channel", "stay"),
    ("summary", "month", "channel", "stay"),
    ("summary", "day", "channel", "stay"),
    ("summary", "week", "room_type", "stay"),
    ("summary", "month", "rate_plan", "booking"),
    ("channels", "month", "channel", "stay"),
    ("pace", "month", "channel", "stay"),
    ("lead-time", "month", "channel", "stay"),
    ("cancellations", "month", "channel", "stay"),
]


async def bench(url: str, prop: str, runs: int) -> list[tuple[str, float]]:
    db = Database(url)
    money = Money(commission={"booking": [(date(2026, 1, 1), 1500)], "ctrip": [(date(2026, 1, 1), 1200)]})
    out = []
    try:
        for kind, by, group, basis in CASES:
            q = ReportQuery(prop, date(2026, 1, 1), date(2026, 12, 31), by, group, basis)
            times, report = [], None
            for _ in range(runs):
                t0 = time.perf_counter()
                report = await db.read(lambda conn, q=q, kind=kind: compute(conn, kind, q, money))
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            label = f"{kind} --by {by or '-'} --group {group} --basis {basis}"
            out.append((label, med))
            t = report.get("totals") or {}
            figures = (f"bookings {t.get('bookings')}, room nights {t.get('room_nights')}, occupancy "
                       f"{(t.get('occupancy') or 0) * 100:.1f} %, gross "
                       f"{sum(mo['gross_minor'] for mo in t.get('money', [])) / 100:.2f}, cancellation rate "
                       f"{(t.get('cancellation_rate') or 0) * 100:.1f} %, rows {len(report['rows'])}") if t else (
                f"rows {len(report['rows'])}")
            print(f"{label:<60} median {med * 1000:8.1f} ms (of {runs}; min {min(times) * 1000:.1f}, "
                  f"max {max(times) * 1000:.1f})  {figures}")
    finally:
        await db.dispose()
    return out


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/bench_reports")
    ap.add_argument("--properties", type=int, default=1000)
    ap.add_argument("--bookings", type=int, default=500_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = ap.parse_args()
    async with scratch_database(args.url, args.keep):
        await generate(args.url, args.properties, args.bookings)
        results = await bench(args.url, f"P{args.properties // 2:05d}", args.runs)
    worst = max(t for _, t in results)
    print(f"slowest report: {worst * 1000:.1f} ms (goal: under 2000 ms) -> {'OK' if worst < 2 else 'TOO SLOW'}")
    return 0 if worst < 2 else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
