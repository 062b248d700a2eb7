#!/usr/bin/env python3
"""Idle benchmark: 10,000 properties, nothing happening. What does the daemon cost then?

Runs the real thing as bench_fanout.py does (`channelmgr run` and the four sandboxes as their
own processes), N generated properties (one mapping file each, in a temporary mappings
folder). Start-up and the first full sync are measured separately and printed, then left
out: by default (``--settle mark``) the full pushes queued at start are marked delivered in
the outbox right after the daemon answers /health (what an earlier run would have left), so
10,000 x 4 channels of first sync do not have to go over loopback first; with ``--settle
sync`` the daemon sends them all and the bench waits for the queues to empty.

Then, with the queues empty and nobody booking or editing, it measures the daemon process's
CPU (user + system, from /proc through psutil, as % of one core) over --window seconds,
--runs times in a row, and its RSS (the largest seen). The mapping watcher, the schedulers'
pulls, the flush wake-ups, the desk scan and the drift watchdog's read-backs (Booking.com
and Meituan, spread over the watchdog interval) all run as configured; the window sees the
read-backs that fall into it. It prints every run, the median of the runs and the ratio to
the goal (issue 13: under 2 % of a core and under 300 MB RSS at 10,000 properties).

    .venv/bin/python scripts/bench_idle.py                      # 10,000 properties, SQLite
    .venv/bin/python scripts/bench_idle.py --db postgres        # the same on PostgreSQL
    .venv/bin/python scripts/bench_idle.py --properties 1000 --window 60

It prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
_spec = importlib.util.spec_from_file_location("bench_fanout", HERE / "bench_fanout.py")
bf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bf)

GOAL_CPU_PERCENT = 2.0
GOAL_RSS_MB = 300.0


def ledger_url(b) -> str:
    if b.db_url.startswith("sqlite:///var"):
        return "sqlite:///" + str(b.tmp / b.db_url.split("sqlite:///", 1)[1])
    return b.db_url


async def outbox_depth(db) -> int:
    from sqlalchemy import func, select

    from channelmgr.ledger import models as m

    async def q(conn):
        return (await conn.execute(select(func.count()).select_from(m.outbox).where(
            m.outbox.c.status.in_(("pending", "claimed"))))).scalar() or 0

    return await db.read(q)


async def mark_delivered(db) -> int:
    """The first full sync as an earlier run would have left it: every pending row delivered."""
    from sqlalchemy import update

    from channelmgr.ledger import models as m

    async def tx(conn):
        r = await conn.execute(update(m.outbox).where(m.outbox.c.status == "pending").values(
            status="done", claimed_by=None, lease_until=None))
        return r.rowcount or 0

    return await db.write(tx)


async def settle(b, args) -> dict:
    from channelmgr.ledger.db import Database

    b.write()
    # the watchdog's first round starts within the settling time, not 5 minutes in; its
    # read-backs then run at sync.readbacks_per_second per channel, as they do at this size
    # in the field (a round of N properties takes longer than the interval)
    text = b.config.read_text(encoding="utf-8")
    b.config.write_text(text.replace("flush_interval_seconds: 2}",
                                     f"flush_interval_seconds: 2, watchdog_interval_seconds: {args.watchdog}}}"),
                        encoding="utf-8")
    if b.db_url.startswith("postgresql"):
        subprocess.run([sys.executable, "-m", "channelmgr", "db", "upgrade", "--config", str(b.config)],
                       env=b.env, cwd=b.tmp, check=True, capture_output=True)
    for ch in bf.CHANNELS:
        # `channelmgr sandbox` would parse all N mapping files again, four times over: the
        # sandboxes here know the same generated hotels from one parsed copy (serve_sandbox)
        deliver = f"http://127.0.0.1:{b.port}/inbound/{ch}" if ch in bf.SOURCES else ""
        log = open(b.tmp / "processes.log", "ab")
        b.procs.append(subprocess.Popen([sys.executable, __file__, "--serve-sandbox", ch, str(b.ports[ch]),
                                         str(args.properties), str(b.config), deliver],
                                        env=b.env, cwd=b.tmp, stdout=log, stderr=log))
    for ch in bf.CHANNELS:
        await b.wait_http(f"http://127.0.0.1:{b.ports[ch]}/_sandbox/state?hotel=none", timeout=900)
    t0 = time.monotonic()
    import psutil

    b.daemon = psutil.Process(b.spawn("run").pid)
    spy = None
    if args.profile_startup:  # py-spy on the daemon from its start until it answers /health
        spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(b.daemon.pid),
                                "--format", "raw", "-o", args.profile_startup, "--nonblocking", "--subprocesses"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await b.wait_http(f"http://127.0.0.1:{b.port}/health", timeout=900)
    started = time.monotonic() - t0
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes what it has and ends
        spy.wait(60)
    print(f"  daemon answered /health after {started:.1f} s (loading {args.properties} mapping files)", flush=True)
    db = Database(ledger_url(b))
    marked = 0
    try:
        t1 = time.monotonic()
        while True:
            if args.settle == "mark":
                marked += await mark_delivered(db)
            if await outbox_depth(db) == 0:
                break
            await asyncio.sleep(1.0)
        synced = time.monotonic() - t1
    finally:
        await db.dispose()
    how = f"{marked} queued full pushes marked delivered" if args.settle == "mark" else "sent to the sandboxes"
    print(f"  first full sync settled after {synced:.1f} s more ({how})", flush=True)
    return {"startup_s": started, "first_sync_s": synced, "marked": marked}


def catalog_for(channel: str, n: int):
    """The sandbox catalog of ``channel`` for bench_fanout's N generated hotels, from one parsed copy."""
    from dataclasses import replace

    from channelmgr.daemon import sandbox_catalog
    from channelmgr.mapping import load_mappings

    with tempfile.TemporaryDirectory() as tmp:
        bf.make_mappings(Path(tmp), 1)
        one = sandbox_catalog(load_mappings(tmp), channel)
    (h0,) = one.hotels.values()
    hotels = {}
    for i in range(n):
        ids = {"booking": str(9_000_000 + i), "ctrip": str(500_000 + i), "fliggy": f"bench-{i:05d}",
               "meituan": str(300_000 + i)}
        rooms = h0.rooms
        if channel == "fliggy":  # Fliggy's room and rate codes carry the property's number
            rooms = {r.replace("-00000", f"-{i:05d}"): [x.replace("-00000", f"-{i:05d}") for x in rates]
                     for r, rates in h0.rooms.items()}
        hotels[ids[channel]] = replace(h0, code=ids[channel], rooms=rooms)
    one.hotels = hotels
    return one


async def serve_sandbox(channel: str, port: int, n: int, config: str, deliver_to: str) -> None:
    import signal

    from adapters.base.registry import load
    from channelmgr.config import load_config
    from channelmgr.daemon import channel_credentials

    cfg = load_config(config)
    cls = load(channel)
    creds = {**cls.sandbox_credentials(), **channel_credentials(channel, cfg.channels[channel])}
    sandbox = cls.make_sandbox(catalog_for(channel, n), creds, deliver_to or None)
    await sandbox.start("127.0.0.1", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sandbox.stop()


def measure(b, window: float) -> dict:
    p = b.daemon
    rss = p.memory_info().rss
    c0 = p.cpu_times()
    t0 = time.monotonic()
    while (left := window - (time.monotonic() - t0)) > 0:
        time.sleep(min(1.0, left))
        rss = max(rss, p.memory_info().rss)
    c1 = p.cpu_times()
    wall = time.monotonic() - t0
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {"cpu_percent": 100 * cpu / wall, "rss_mb": rss / 2 ** 20, "window_s": wall,
            "load1": os.getloadavg()[0]}


async def bench(args, db_url: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    b = bf.Bench(args, db_url, tmp)
    try:
        s = await settle(b, args)
        if args.quiet_before:
            time.sleep(args.quiet_before)  # let the start-up's own work (catalog, first scans) finish
        runs = []
        for k in range(args.runs):
            spy = None
            if args.profile and k == 0:  # py-spy (pip install py-spy) on the daemon during the first run
                spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                                        str(b.daemon.pid), "--duration", str(int(args.window)), "--format", "raw",
                                        "-o", args.profile, "--nonblocking"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            r = await asyncio.to_thread(measure, b, args.window)
            if spy is not None:
                spy.wait(60)
            runs.append(r)
            print(f"  run {k + 1}: daemon CPU {r['cpu_percent']:.2f} % of a core over {r['window_s']:.0f} s, "
                  f"RSS {r['rss_mb']:.0f} MB (load average {r['load1']:.2f})", flush=True)
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        med.update(s)
        return med
    finally:
        b.stop()
        if args.keep:
            print(f"  kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-sandbox":  # a sandbox process of this bench
        ch, port, n, config, deliver = sys.argv[2:7]
        asyncio.run(serve_sandbox(ch, int(port), int(n), config, deliver))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--properties", type=int, default=10000)
    ap.add_argument("--window", type=float, default=40.0, help="seconds each run measures")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--horizon", type=int, default=31, help="days each OTA is kept in step (sync.horizon_days)")
    ap.add_argument("--watchdog", type=float, default=20.0, help="sync.watchdog_interval_seconds")
    ap.add_argument("--settle", choices=("mark", "sync"), default="mark",
                    help="mark: the first full sync's rows marked delivered; sync: sent to the sandboxes")
    ap.add_argument("--quiet-before", type=float, default=10.0,
                    help="seconds to wait after the first sync settled, before measuring")
    bf.add_db_args(ap)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    ap.add_argument("--profile", help="write a py-spy profile (raw, collapsed stacks) of the first run here")
    ap.add_argument("--profile-startup", help="write a py-spy profile of the daemon's start-up (until /health) here")
    args = ap.parse_args()
    results = {}
    for name, url in bf.db_targets(args):
        print(f"{name}: {args.properties} properties, idle, {args.runs} runs of {args.window:g} s", flush=True)
        results[name] = asyncio.run(bench(args, url))
    print()
    for name, r in results.items():
        print(f"{name}: median daemon CPU {r['cpu_percent']:.2f} % of a core (goal under {GOAL_CPU_PERCENT:g} %: "
              f"{r['cpu_percent'] / GOAL_CPU_PERCENT:.2f} of it), RSS {r['rss_mb']:.0f} MB (goal under "
              f"{GOAL_RSS_MB:g} MB: {r['rss_mb'] / GOAL_RSS_MB:.2f} of it); start-up {r['startup_s']:.0f} s, "
              f"first sync settled {r['first_sync_s']:.0f} s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
