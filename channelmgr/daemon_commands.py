"""`channelmgr run | sandbox | logs | status | conflicts`: running it and asking it questions."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from channelmgr.cli import CliError, UsageError


def register(sub, common) -> None:
    r = sub.add_parser("run", parents=[common], help="run the channel manager (the daemon)",
                       description="Run the channel manager: push every change of rooms, prices and "
                                   "restrictions to every OTA, and bring every booking in, until stopped "
                                   "(Ctrl-C or SIGTERM). With the default config.yaml it starts loopback "
                                   "sandboxes of the four OTAs with synthetic guests, so you see the loop work. "
                                   "On a terminal it shows a start-up summary, then one line per OTA every few "
                                   "seconds, and warnings in full; as a service (output not a terminal) it "
                                   "writes JSON lines. Every call to an OTA is in `channelmgr logs`, and on "
                                   "the terminal too with --log-level debug.")
    r.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                   help="how much to show (default: log.level in config.yaml, info)")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("sandbox", parents=[common], help="run a fake OTA on this machine for tests and demos",
                       description="Run a faithful fake of one OTA over HTTP (Booking.com, Ctrip, Fliggy or "
                                   "Meituan), knowing the hotels, rooms and rates in mappings/. Credentials come "
                                   "from the environment variables config.yaml names for that channel.")
    s.add_argument("ota", choices=["booking", "ctrip", "fliggy", "meituan"], help="which OTA to fake")
    s.add_argument("--port", type=int, required=True, help="port to listen on")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--deliver-to", metavar="URL",
                   help="where bookings are pushed (Ctrip, Meituan): the daemon's /inbound/<ota> URL")
    s.set_defaults(func=cmd_sandbox)

    lg = sub.add_parser("logs", parents=[common], help="what was sent to and received from each OTA",
                        description="The sync log: every call to or from an OTA, with its result, how long it "
                                    "took and the OTA's request id (support asks for it). Answers questions "
                                    "like 'did Ctrip get yesterday's stop-sell?'.")
    lg.add_argument("--channel", help="only this OTA (booking, ctrip, fliggy, meituan); "
                                      "another name is an error")
    lg.add_argument("--property", help="only this hotel")
    lg.add_argument("--since", default="1h", help="how far back: 10m, 2h, 1d or a time (default 1h)")
    lg.add_argument("--failed", action="store_true", help="only calls that did not succeed")
    lg.add_argument("--limit", type=int, default=200, help="at most this many lines (default 200)")
    lg.add_argument("--json", action="store_true", help="JSON lines for other programs")
    lg.add_argument("--follow", action="store_true", help="keep printing new calls as they happen")
    lg.add_argument("--full", action="store_true", help="include the (redacted) request and response")
    lg.set_defaults(func=cmd_logs)

    st = sub.add_parser("status", parents=[common], help="is every OTA in step? per channel health",
                        description="Per OTA: last successful call, last error, pushes waiting, pushes given "
                                    "up, and whether its circuit breaker is open; plus unreadable messages and "
                                    "open conflicts.")
    st.add_argument("--json", action="store_true", help="print JSON for other programs")
    st.set_defaults(func=cmd_status)

    cf = sub.add_parser("conflicts", parents=[common], help="overbookings, unmapped codes, refused pushes",
                        description="Problems that need a person: overbookings, bookings for rooms that are "
                                    "not mapped, unreadable messages, pushes an OTA refused, drift.")
    cf.add_argument("--all", action="store_true", help="include resolved ones")
    cf.add_argument("--limit", type=int, default=50)
    cf.add_argument("--json", action="store_true")
    cf.set_defaults(func=cmd_conflicts)


def startup_errors() -> tuple[type[BaseException], ...]:
    """Exceptions the daemon raises when it cannot start for a reason the operator fixes."""
    import sys

    daemon = sys.modules.get("channelmgr.daemon")  # only `run` can have raised one
    err = getattr(daemon, "StartupError", None)
    return (err,) if err else ()


async def cmd_run(args: argparse.Namespace) -> int:
    import os

    from channelmgr.config import load_config
    from channelmgr.daemon import run
    from channelmgr.mapping.loader import mapping_files

    if args.log_level:  # the documented override of log.level, read by the daemon's config
        os.environ["CHANNELMGR__LOG__LEVEL"] = args.log_level
    cfg = load_config(args.config)
    folder = cfg.resolve(cfg.mappings_dir)
    where = f"set mappings_dir in {args.config or 'config.yaml'}"
    if not folder.is_dir():
        raise CliError(f"the mappings folder {folder} does not exist: create it with one YAML file per hotel "
                       f"(mappings/sha-bund.yaml in the source is an example; docs/mappings.md explains them), "
                       f"or {where} to where yours are")
    if not mapping_files([folder]):
        raise CliError(f"the mappings folder {folder} has no mapping files (*.yaml): add one per hotel "
                       f"(mappings/sha-bund.yaml in the source is an example), or {where} to where yours are")
    return await run(args.config)


async def cmd_sandbox(args: argparse.Namespace) -> int:
    from adapters.base.registry import load
    from channelmgr.config import ChannelConfig, load_config
    from channelmgr.daemon import channel_credentials, sandbox_catalog
    from channelmgr.mapping import load_mappings

    cfg = load_config(args.config)
    ms = load_mappings(cfg.resolve(cfg.mappings_dir))
    cls = load(args.ota)
    ccfg = cfg.channels.get(args.ota) or ChannelConfig()
    creds = channel_credentials(args.ota, ccfg)
    # the credentials config.yaml names must be set (the daemon will use them); any other
    # credential the fake OTA knows of gets a random value nobody uses
    named = {f for f in cls.sandbox_credentials() if getattr(ccfg.credentials, f"{f}_env", None)}
    missing = sorted(named - set(creds))
    if missing:
        names = [getattr(ccfg.credentials, f"{f}_env") for f in missing]
        raise CliError(f"the {args.ota} sandbox needs {', '.join(missing)}: set the environment variable(s) "
                       f"{', '.join(names)} named in config.yaml, the same ones the daemon reads")
    creds = {**cls.sandbox_credentials(), **creds}
    if cls.capabilities.booking_delivery == "push" and not args.deliver_to:
        raise CliError(f"{args.ota} pushes bookings: give --deliver-to, e.g. http://127.0.0.1:8470/inbound/{args.ota}")
    sandbox = cls.make_sandbox(sandbox_catalog(ms, args.ota), creds, args.deliver_to)
    url = await sandbox.start(args.host, args.port)
    print(f"{args.ota} sandbox listening on {url} with {len(sandbox.catalog.hotels)} hotel(s)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sandbox.stop()
    return 0


async def _db(args):
    """The ledger's database for a command that only reads it; its tables must be there."""
    from channelmgr.config import load_config
    from channelmgr.ledger import migrate
    from channelmgr.ledger.db import Database, redact_url

    cfg = load_config(args.config)
    url = cfg.database_url()
    missing = _missing_sqlite_file(url)
    if missing:  # say so, rather than leave an empty database file behind
        raise CliError(f"there is no ledger at {missing} yet: run `channelmgr db upgrade` (or start "
                       "`channelmgr run`, which creates it), or give --config with the config.yaml "
                       "that names your database")
    db = Database(url, busy_timeout_ms=cfg.database.busy_timeout_ms)
    try:
        current, head = await migrate.current_revision(db), migrate.head_revision()
    except BaseException:
        await db.dispose()
        raise
    if current != head:
        await db.dispose()
        where = redact_url(cfg.database_url())
        if current is None:
            raise CliError(f"the database at {where} has no ledger tables yet: run `channelmgr db upgrade` "
                           "(or start `channelmgr run`, which creates them on SQLite)")
        raise CliError(f"the database at {where} is at schema {current}, this version reads {head}: "
                       "run `channelmgr db upgrade`")
    return cfg, db


def _missing_sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return None
    path = Path(url[len("sqlite:///"):].split("?", 1)[0])
    return None if path.exists() else path


def _known_channels(cfg) -> list[str]:
    from adapters.base.registry import available
    from channelmgr.config import CHANNEL_NAMES

    return sorted(set(CHANNEL_NAMES) | set(available()) | set(cfg.channels))


async def cmd_logs(args: argparse.Namespace) -> int:
    from channelmgr.ops import logs, parse_since

    try:
        since = parse_since(args.since)
    except ValueError as e:
        raise CliError(str(e)) from None
    cfg, db = await _db(args)
    known = _known_channels(cfg)
    if args.channel is not None and args.channel not in known:
        await db.dispose()
        raise UsageError(f"there is no channel {args.channel!r}; the channels are {', '.join(known)}")
    try:
        rows = await logs(db, channel=args.channel, property=args.property, since=since, failed=args.failed,
                          limit=args.limit)
        last = _print_logs(rows, args)
        while args.follow:
            await asyncio.sleep(1.0)
            rows = await logs(db, channel=args.channel, property=args.property, failed=args.failed,
                              after_id=last, limit=1000)
            last = _print_logs(rows, args) or last
    finally:
        await db.dispose()
    return 0


def _print_logs(rows, args) -> int:
    last = 0
    for r in rows:
        last = r["id"]
        if not args.full:
            r = {k: v for k, v in r.items() if k not in ("request", "response")}
        if args.json:
            print(json.dumps(r, ensure_ascii=False), flush=True)
            continue
        err = f"  {r['error']}" if r.get("error") else ""
        rid = f"  id={r['request_id']}" if r.get("request_id") else ""
        att = f" (attempt {r['attempt']})" if r.get("attempt", 1) > 1 else ""
        print(f"{r['at'][:23].replace('T', ' ')}  {r['channel']:<8} {r['property'] or '-':<10} {r['direction']:<3} "
              f"{r['operation']:<28} {r['items']:>4} items  {r['result']:<12} {r['duration_ms']:>8.1f} ms"
              f"{att}{rid}{err}", flush=True)
        if args.full:
            for part in ("request", "response"):
                if r.get(part):
                    print(f"    {part}: {r[part]}", flush=True)
    return last


async def cmd_status(args: argparse.Namespace) -> int:
    from channelmgr.ops import status

    cfg, db = await _db(args)
    try:
        data = await status(db, [n for n, c in cfg.channels.items() if c.enabled],
                            [n for n, c in cfg.channels.items() if not c.enabled])
    finally:
        await db.dispose()
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    print(f"{'channel':<9} {'breaker':<10} {'last success':<20} {'waiting':>8} {'given up':>8}  last error")
    for c in data["channels"]:
        ok = (c["last_success_at"] or ("-" if not c.get("enabled", True) else "never"))[:19].replace("T", " ")
        err = ""
        if c["last_error"]:
            err = f"{(c['last_error_at'] or '')[:19].replace('T', ' ')}  {c['last_error'][:100]}"
        print(f"{c['channel']:<9} {c['breaker']:<10} {ok:<20} {c['outbox_depth']:>8} {c['dead_letters']:>8}  {err}")
    if data["inbox_failed"]:
        print(f"{data['inbox_failed']} unreadable message(s) kept in the inbox (see `channelmgr conflicts`)")
    if data.get("inbox_stuck"):
        print(f"{data['inbox_stuck']} message(s) stored but never processed (left `received`, a crash?): "
              "the daemon re-processes them when it starts")
    if data["conflicts_open"]:
        print("open conflicts: " + ", ".join(f"{k} {v}" for k, v in sorted(data["conflicts_open"].items())))
    for ch, u in sorted((data.get("unacknowledged") or {}).items()):  # issue 12: the OTAs' ack deadlines
        o = u["oldest"]
        left = o["seconds_left"]
        print(f"{ch}: {u['count']} booking(s) not acknowledged; the oldest, {o['ota_booking_id']} "
              f"(revision {o['revision']}), " + (f"has {left // 60} min {left % 60} s before {ch}'s fallback"
                                                  if left > 0 else f"passed {ch}'s fallback {-left // 60} min ago"))
    return 0


async def cmd_conflicts(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from channelmgr.ledger import models as m

    _, db = await _db(args)

    async def q(conn):
        stmt = (select(m.conflicts, m.properties.c.code.label("property"))
                .outerjoin(m.properties, m.properties.c.id == m.conflicts.c.property_id)
                .order_by(m.conflicts.c.id.desc()).limit(args.limit))
        if not args.all:
            stmt = stmt.where(m.conflicts.c.status == "open")
        return (await conn.execute(stmt)).all()

    try:
        rows = await db.read(q)
    finally:
        await db.dispose()
    out = [{"id": r.id, "at": str(r.at), "kind": r.kind, "property": r.property, "channel": r.channel,
            "summary": r.summary, "status": r.status, "detail": r.detail,
            "resolved_at": str(r.resolved_at) if r.resolved_at else None, "resolved_by": r.resolved_by,
            "resolution": r.resolution} for r in reversed(rows)]
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2, default=str))
    else:
        if not out:
            print("no open conflicts")
        for c in out:
            print(f"#{c['id']:<5} {c['at'][:19]}  {c['kind']:<18} {c['property'] or '-':<10} "
                  f"{c['channel'] or '-':<8} {c['summary']}"
                  + (f"  [{c['status']} by {c['resolved_by'] or '?'}: {c['resolution']}]" if c["status"] != "open" else ""))
    return 0
