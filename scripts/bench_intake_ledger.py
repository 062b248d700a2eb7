#!/usr/bin/env python3
"""The intake path alone: how many booking revisions a second the ledger takes in, with no
HTTP, no XML and no push worker sharing the event loop (bench_intake.py measures the whole
daemon, where the push worker's fan-out takes most of the CPU).

Each booking is what the receiver does for a Ctrip push: the raw message stored in the inbox
and the revision applied (one night, 2 OTA channels listed, so outbox rows are written):
``Ledger.store_and_apply`` (one grouped transaction) when the ledger has it, else
``store_inbox`` then ``apply_booking`` (two). Prints revisions/s at C in flight and, one at a
time, each intake's p50/p95.

    .venv/bin/python scripts/bench_intake_ledger.py --db both
    PYTHONPATH=/path/to/older/checkout .venv/bin/python scripts/bench_intake_ledger.py   # before
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_fanout", HERE / "bench_fanout.py")
bf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bf)


async def bench(url: str, args) -> dict:
    from adapters.base.contract import Guest
    from channelmgr.ledger import migrate
    from channelmgr.ledger.db import Database
    from channelmgr.ledger.ledger import Ledger
    from channelmgr.ledger.types import IncomingBooking, LocalStay, PropertySpec, RatePlanSpec, RoomTypeSpec
    from channelmgr.security import Cipher

    db = Database(url, **({"group_lanes": args.group_lanes} if args.group_lanes is not None else {}))
    await migrate.upgrade(db)
    ledger = Ledger(db, Cipher(b"k" * 32))
    specs = [PropertySpec(code=f"P{i:04d}", name=f"P{i}", timezone="Asia/Shanghai", currency="CNY",
                          room_types=(RoomTypeSpec("DK", "King", 20),),
                          rate_plans=(RatePlanSpec("BAR", "Best", "DK", 2),),
                          channels=("booking", "ctrip", "meituan")) for i in range(args.properties)]
    await ledger.sync_catalog(specs)
    rng = random.Random(13)
    start = date.today() + timedelta(days=3)
    one_step = hasattr(ledger, "store_and_apply")

    def booking(tag: str, i: int) -> tuple[bytes, IncomingBooking]:
        night = start + timedelta(days=rng.randrange(27))
        raw = (f"<OTA_HotelResRQ><Id>{tag}{i}</Id><Guest>测试客人</Guest>" + "x" * 1500 + "</OTA_HotelResRQ>").encode()
        return raw, IncomingBooking(
            channel="ctrip", hotel_code="H", property=f"P{rng.randrange(args.properties):04d}",
            ota_booking_id=f"{tag}{i:07d}", revision="1", action="new",
            stays=(LocalStay(room_code="R", rate_code="T", room_type="DK", rate_plan="BAR",
                             nights=((night, 88800),), rooms=1),),
            amount_minor=88800, currency="CNY", guest=Guest(name="测试客人"), fingerprint=f"fp{tag}{i}")

    async def intake(raw: bytes, b: IncomingBooking) -> None:
        if one_step:
            await ledger.store_and_apply("ctrip", raw, "reservation", b)
        else:
            inbox_id, _ = await ledger.store_inbox("ctrip", raw, "reservation")
            import dataclasses
            await ledger.apply_booking(dataclasses.replace(b, inbox_id=inbox_id))

    out = {}
    try:
        items = [booking("C", i) for i in range(args.bookings)]
        sem = asyncio.Semaphore(args.concurrency)

        async def one(x):
            async with sem:
                await intake(*x)

        t0 = time.monotonic()
        await asyncio.gather(*(one(x) for x in items))
        out["revisions_per_s"] = args.bookings / (time.monotonic() - t0)
        lat = []
        for x in (booking("S", i) for i in range(args.single)):
            t = time.monotonic()
            await intake(*x)
            lat.append((time.monotonic() - t) * 1000)
        out["single_p50_ms"] = statistics.median(lat)
        out["single_p95_ms"] = bf.pct(lat, 95)
        out["path"] = "store_and_apply" if one_step else "store_inbox + apply_booking"
    finally:
        await db.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--properties", type=int, default=20)
    ap.add_argument("--bookings", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--single", type=int, default=100, help="bookings sent one at a time after the burst")
    ap.add_argument("--group-lanes", type=int, help="Database(group_lanes=...): group commit lanes (PostgreSQL "
                                                     "has none by default)")
    bf.add_db_args(ap)
    args = ap.parse_args()
    for name, url in bf.db_targets(args):
        tmp = None
        if url.startswith("sqlite:///var"):
            tmp = tempfile.mkdtemp(prefix="bench-intake-ledger-")
            url = f"sqlite:///{tmp}/ledger.db"
        r = asyncio.run(bench(url, args))
        print(f"{name}: {r['path']}: {r['revisions_per_s']:.0f} revisions/s at {args.concurrency} in flight; "
              f"one at a time p50 {r['single_p50_ms']:.1f} ms p95 {r['single_p95_ms']:.1f} ms", flush=True)


if __name__ == "__main__":
    sys.exit(main())
