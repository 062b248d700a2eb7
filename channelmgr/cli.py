"""The `channelmgr` command: the operator's and revenue manager's way in.

Every command explains itself with --help. Mistakes in input (a bad date, an unknown room
type, a broken config or mapping file) end with a plain sentence on stderr and exit
status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from datetime import date
from typing import Any

from channelmgr import __version__

EXIT_OK, EXIT_ERROR = 0, 1


class CliError(Exception):
    """A problem the user can fix; printed as is, exit status 1."""


class UsageError(CliError):
    """The command was given wrongly (like argparse's own errors); exit status 2."""


EXIT_USAGE = 2


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date like 2026-03-31") from None


def _nonneg(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} is negative")
    return v


def _positive(text: str) -> int:
    v = _nonneg(text)
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return v


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


# ---- commands ---------------------------------------------------------------------


async def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from channelmgr.config import load_config
    from channelmgr.ledger import migrate
    from channelmgr.ledger.db import Database, redact_url

    cfg = load_config(args.config)
    db = Database(cfg.database_url(), busy_timeout_ms=cfg.database.busy_timeout_ms)
    try:
        before, after = await migrate.upgrade(db)
    finally:
        await db.dispose()
    where = redact_url(cfg.database_url())
    if before == after:
        print(f"the ledger at {where} is up to date (schema {after})")
    else:
        print(f"upgraded the ledger at {where} from schema {before or 'empty'} to {after}")
    return EXIT_OK


async def cmd_db_prune(args: argparse.Namespace) -> int:
    """Retention (issue 13): see channelmgr.retention."""
    from datetime import timedelta

    from channelmgr.config import load_config
    from channelmgr.ledger.db import Database
    from channelmgr.retention import RetentionError, parse_age, prune

    cfg = load_config(args.config)
    try:
        if args.older_than is not None:
            age = parse_age(args.older_than)
        elif cfg.retention.older_than_days is not None:
            age = timedelta(days=cfg.retention.older_than_days)
        else:
            raise UsageError("retention.older_than_days is null in the config (never prune): give --older-than")
    except RetentionError as e:
        raise UsageError(str(e)) from None
    journal = timedelta(days=cfg.retention.journal_days) if cfg.retention.journal_days else None
    db = Database(cfg.database_url(), busy_timeout_ms=cfg.database.busy_timeout_ms)
    try:
        r = await prune(db, age, journal_older_than=journal)
    finally:
        await db.dispose()
    print(f"pruned what is older than {r.cutoff:%Y-%m-%d %H:%M} UTC: {r.outbox_deleted} settled outbox rows "
          f"deleted, {r.sync_log_bodies_cleared} sync-log bodies cleared; "
          + (f"{r.journal_deleted} journal rows older than {r.journal_cutoff:%Y-%m-%d} deleted"
             if r.journal_cutoff else "the journal is kept (retention.journal_days is not set)"))
    return EXIT_OK


async def _runtime(args: argparse.Namespace):
    from channelmgr.runtime import Runtime

    rt = await Runtime.open(args.config)
    rt.warn_mapping_errors()
    return rt


async def cmd_ari_set(args: argparse.Namespace) -> int:
    from channelmgr.ledger.types import AriChange
    from channelmgr.money import to_minor

    rt = await _runtime(args)
    try:
        price_minor = None
        if args.price is not None:
            currency = await _property_currency(rt, args.property)
            price_minor = to_minor(args.price, currency)
        change = AriChange(
            property=args.property, room_type=args.room_type, rate_plan=args.rate_plan,
            start=args.date_from, end=args.date_to, rooms=args.rooms, price_minor=price_minor,
            min_los=args.min_los, max_los=args.max_los, cta=args.cta, ctd=args.ctd, stop_sell=args.stop_sell,
            out_of_order=args.out_of_order, held=args.held)
        summary = await rt.ledger.set_ari(change, actor=_actor(), reason=args.reason)
    finally:
        await rt.close()
    _warn_beyond_physical(rt, args)
    nights = (args.date_to - args.date_from).days + 1
    print(f"{summary.cells_changed} cell(s) changed over {nights} night(s); "
          f"{summary.journal_rows} journal row(s), {summary.outbox_rows} push(es) queued "
          f"(correlation id {summary.correlation_id})")
    return EXIT_OK


def _warn_beyond_physical(rt, args: argparse.Namespace) -> None:
    """--rooms above the room type's physical count is most often a typo (99 for 9); it is
    still what the operator asked for (rooms added for a while, a mapping not updated yet),
    so it is done, and said on stderr with the count the mapping gives."""
    if args.rooms is None or rt.mappings is None:
        return
    pm = rt.mappings.get(args.property)
    spec = pm.room_types.get(args.room_type) if pm else None
    if spec is not None and args.rooms > spec.physical_rooms:
        print(f"warning: {args.rooms} rooms is more than the {spec.physical_rooms} physical rooms of "
              f"{args.property} {args.room_type} in mappings/; set anyway: every OTA will be offered up to "
              f"{args.rooms} (check the number, or raise physical_rooms in the mapping)", file=sys.stderr)


async def _property_currency(rt, code: str) -> str:
    from sqlalchemy import select

    from channelmgr.ledger import models as m
    from channelmgr.ledger.types import LedgerError

    async def q(conn):
        return (await conn.execute(select(m.properties.c.currency).where(m.properties.c.code == code))).scalar()

    cur = await rt.db.read(q)
    if cur is None:
        raise LedgerError(f"there is no property '{code}' (declare it in mappings/)")
    return cur


async def cmd_ari_show(args: argparse.Namespace) -> int:
    from channelmgr.money import format_minor

    rt = await _runtime(args)
    try:
        data = await rt.ledger.show(args.property, args.date_from, args.date_to)
        await _derived_prices(rt, args, data["rates"])
    finally:
        await rt.close()
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"{args.property}: rooms per night")
    print(f"  {'room type':<12} {'night':<10} {'physical':>8} {'o/o':>4} {'sold':>5} {'held':>5} {'free':>5}")
    for r in data["rooms"]:
        flag = "  OVERSOLD" if r["free"] < 0 else ""
        print(f"  {r['room_type']:<12} {r['date']:<10} {r['physical']:>8} {r['out_of_order']:>4} "
              f"{r['sold']:>5} {r['held']:>5} {r['free']:>5}{flag}")
    print(f"{args.property}: prices and restrictions per night")
    print(f"  {'rate plan':<12} {'night':<10} {'guests':>6} {'price':>12}  {'min':>4} {'max':>4} "
          f"{'CTA':>4} {'CTD':>4} {'stop':>5}")
    any_derived = False
    for r in data["rates"]:
        price = f"{format_minor(r['price_minor'], r['currency'])} {r['currency']}" if r["price_minor"] is not None else "-"
        if r["derived"] and r["price_minor"] is not None:
            price, any_derived = price + "*", True
        else:
            price += " "

        def yn(v: Any) -> str:
            return "-" if v is None else ("yes" if v else "no")

        print(f"  {r['rate_plan']:<12} {r['date']:<10} {r['occupancy']:>6} {price:>13} "
              f"{r['min_los'] or '-':>4} {r['max_los'] or '-':>4} {yn(r['cta']):>4} {yn(r['ctd']):>4} "
              f"{yn(r['stop_sell']):>5}")
    if any_derived:
        print("  * derived from its parent plan by the rules in mappings/ (what the OTAs are sent)")
    return EXIT_OK


async def _derived_prices(rt, args: argparse.Namespace, rates: list[dict[str, Any]]) -> None:
    """A derived plan (``derived_from`` in mappings/) has no price of its own in the ledger:
    its price is its parent's through the plan's steps, as the mapping package derives it for
    every push. Each rate row gets ``derived``; a derived plan's row carries that price."""
    from channelmgr.mapping.derive import plan_price

    pm = rt.mappings.get(args.property) if rt.mappings else None
    derived = {code for code, plan in pm.rate_plans.items() if plan.derived_from} if pm else set()
    snap = await rt.ledger.snapshot(args.property, args.date_from, args.date_to) if derived else None
    for r in rates:
        r["derived"] = r["rate_plan"] in derived
        if r["derived"]:
            r["price_minor"] = plan_price(pm, snap, r["rate_plan"], date.fromisoformat(r["date"]), r["occupancy"])
            r["currency"] = pm.currency if r["price_minor"] is not None else None


async def cmd_journal(args: argparse.Namespace) -> int:
    rt = await _runtime(args)
    try:
        rows = await rt.ledger.journal(args.property, args.limit)
    finally:
        await rt.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return EXIT_OK
    if not rows:
        print("the journal is empty")
    for r in rows:  # newest first, as in --json (like `git log`)
        key = " ".join(f"{k}={v}" for k, v in (r["key"] or {}).items())
        change = _describe_change(r["before"], r["after"])
        why = f"  ({r['reason']})" if r["reason"] else ""
        print(f"{r['at'][:19].replace('T', ' ')}  #{r['id']:<6} {r['actor']:<18} {r['property'] or '-':<10} "
              f"{r['entity']} {r['action']} {key}: {change}{why}  [{r['correlation_id']}]")
    return EXIT_OK


def _describe_change(before: Any, after: Any) -> str:
    if isinstance(before, dict) and isinstance(after, dict):
        parts = [f"{k} {before.get(k)} -> {after.get(k)}" for k in after if before.get(k) != after.get(k)]
        return ", ".join(parts) or "no change"
    if before is None:
        return f"new {json.dumps(after, ensure_ascii=False, default=str)}"
    return f"{json.dumps(before, ensure_ascii=False, default=str)} -> {json.dumps(after, ensure_ascii=False, default=str)}"


# ---- the parser ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    config_help = "the daemon's settings (default: ./config.yaml if present)"
    # `channelmgr --config FILE CMD` and `channelmgr CMD --config FILE` both work: the
    # commands' copy of the option sets nothing unless given, so it never hides the first
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=config_help)

    p = argparse.ArgumentParser(
        prog="channelmgr",
        description="Keep what your hotel can sell (rooms, prices, minimum stays, closures) the same on "
                    "Booking.com, Ctrip/Trip.com, Fliggy and Meituan, and bring every booking from them "
                    "into one ledger at once, so the last room is never sold twice.")
    p.add_argument("--config", metavar="FILE", default=None, help=config_help)
    p.add_argument("--version", action="version", version=f"channelmgr {__version__}")
    p.set_defaults(help_parser=p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    # db
    db = sub.add_parser("db", parents=[common], help="look after the ledger's database",
                        description="Look after the ledger's database (SQLite file or PostgreSQL).")
    db.set_defaults(help_parser=db)
    dbs = db.add_subparsers(dest="db_command", metavar="ACTION")
    up = dbs.add_parser("upgrade", parents=[common], help="create or update the ledger's tables",
                        description="Create the ledger's tables, or bring them up to this version's schema. "
                                    "Safe to run more than once; nothing is lost.")
    up.set_defaults(func=cmd_db_upgrade)
    pr = dbs.add_parser("prune", parents=[common], help="delete settled pushes and old sync-log bodies",
                        description="Delete settled outbox rows (pushed, superseded or outside an OTA's window; "
                                    "dead letters stay) and clear the request/response bodies of sync-log rows "
                                    "older than the age given (default: retention.older_than_days, 90). The "
                                    "journal is kept unless retention.journal_days says otherwise. The daemon "
                                    "runs this daily at retention.prune_at.")
    pr.add_argument("--older-than", metavar="AGE", default=None, help="like 90d, 12w or 36h")
    pr.set_defaults(func=cmd_db_prune)

    # ari
    ari = sub.add_parser("ari", parents=[common], help="set or look at rooms, prices and restrictions",
                         description="Availability, rates and restrictions (ARI): what each room type "
                                     "and rate plan can sell, night by night.")
    ari.set_defaults(help_parser=ari)
    aris = ari.add_subparsers(dest="ari_command", metavar="ACTION")
    s = aris.add_parser(
        "set", parents=[common], help="change rooms, price or restrictions for a range of nights",
        description="Change what can be sold for a range of nights (both dates included). Every change "
                    "is written to the journal and queued for every OTA the hotel is listed on.")
    s.add_argument("--property", required=True, help="the hotel's code, as in mappings/")
    s.add_argument("--room-type", required=True, help="room type code, e.g. DK")
    s.add_argument("--rate-plan", help="rate plan code, for prices and restrictions")
    s.add_argument("--from", dest="date_from", required=True, type=_date, metavar="YYYY-MM-DD",
                   help="first night")
    s.add_argument("--to", dest="date_to", required=True, type=_date, metavar="YYYY-MM-DD",
                   help="last night (included)")
    s.add_argument("--rooms", type=_nonneg, metavar="N",
                   help="rooms the hotel has for sale on those nights; more than the room type's physical "
                        "rooms in mappings/ is done, with a warning")
    s.add_argument("--out-of-order", type=_nonneg, metavar="N", help="rooms that cannot be sold (repairs)")
    s.add_argument("--held", type=_nonneg, metavar="N", help="rooms held back (groups, front desk)")
    s.add_argument("--price", metavar="123.45", help="price per night in the hotel's currency")
    s.add_argument("--min-los", type=_positive, metavar="N", help="minimum nights a guest must stay")
    s.add_argument("--max-los", type=_positive, metavar="N", help="maximum nights a guest may stay")
    s.add_argument("--cta", action=argparse.BooleanOptionalAction, default=None,
                   help="closed to arrival: no check-in on these nights (--no-cta reopens)")
    s.add_argument("--ctd", action=argparse.BooleanOptionalAction, default=None,
                   help="closed to departure: no check-out on these days (--no-ctd reopens)")
    s.add_argument("--stop-sell", action=argparse.BooleanOptionalAction, default=None,
                   help="stop selling this rate on these nights (--no-stop-sell reopens)")
    s.add_argument("--reason", help="why, for the journal (e.g. 'F1 race weekend')")
    s.set_defaults(func=cmd_ari_set)

    sh = aris.add_parser(
        "show", parents=[common], help="show rooms, prices and restrictions for a range of nights",
        description="Show, per room type and night, the rooms the hotel has, has sold and has free; and per "
                    "rate plan and night, the price and restrictions. A derived plan's price (marked *, "
                    "\"derived\": true in --json) is worked out from its parent by the rules in mappings/, "
                    "exactly as it is pushed.")
    sh.add_argument("--property", required=True, help="the hotel's code, as in mappings/")
    sh.add_argument("--from", dest="date_from", required=True, type=_date, metavar="YYYY-MM-DD")
    sh.add_argument("--to", dest="date_to", required=True, type=_date, metavar="YYYY-MM-DD")
    sh.add_argument("--json", action="store_true", help="print JSON for other programs")
    sh.set_defaults(func=cmd_ari_show)

    # journal
    j = sub.add_parser("journal", parents=[common], help="who changed what, when and why",
                       description="The ledger's journal: every change, with who or which OTA made it, the "
                                   "value before and after, and why. Newest first (text and --json alike); --limit N "
                                   "gives the newest N.")
    j.add_argument("--property", help="only this hotel")
    j.add_argument("--limit", type=_positive, default=50, metavar="N", help="the newest N changes (default 50)")
    j.add_argument("--json", action="store_true", help="print JSON for other programs")
    j.set_defaults(func=cmd_journal)

    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub, common)
    return p


# each of these has register(subparsers, common_parent) adding its commands
COMMAND_MODULES = [
    "channelmgr.mapping.commands",  # mappings check / diff
    "channelmgr.daemon_commands",  # run, sandbox, logs, status
    "channelmgr.web.commands",  # users; conflicts show / resolve (after daemon_commands: extends conflicts)
    "channelmgr.desk.commands",  # bookings, requests, audit, overbooking; conflicts resolve --upgrade-to (after web)
    "channelmgr.reports.commands",  # report summary|channels|pace|lead-time|cancellations; settlement import
]


def main(argv: list[str] | None = None) -> int:
    try:
        status = _main(argv)
        sys.stdout.flush()  # output still buffered would otherwise meet a closed pipe at exit
        return status
    except BrokenPipeError:
        # `channelmgr journal | head`: the reader has what it wanted. As the Python docs
        # recommend, point stdout at devnull so the interpreter's last flush stays quiet,
        # and end like a program the shell stopped with SIGPIPE (128 + 13), without a word
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13


def _is_startup_error(e: BaseException) -> bool:
    from channelmgr import daemon_commands

    return isinstance(e, daemon_commands.startup_errors())


def _missing_tables(e: BaseException) -> str | None:
    """A database without the ledger's tables (or with an older schema) read by a command."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    if not isinstance(e, (OperationalError, ProgrammingError)):
        return None
    text = str(getattr(e, "orig", e))
    if "no such table" in text or "no such column" in text or "does not exist" in text:
        return (f"the database does not have this version's ledger tables ({text.splitlines()[0]}): "
                "run `channelmgr db upgrade`")
    return None


def _main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    from channelmgr.ledger.types import LedgerError
    from channelmgr.money import MoneyError
    from channelmgr.yamlfile import YamlFileError

    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # no command, or a group without its action: show what it can do; that is a usage
        # error (status 2, like argparse's own), so a script that forgot its command fails
        getattr(args, "help_parser", parser).print_help(sys.stderr)
        return EXIT_USAGE
    # a command speaks in its own sentences on stdout/stderr; the library's log lines (the
    # daemon configures its own) would only repeat them, and must never mix into --json output
    from channelmgr.logsetup import configure as configure_logging

    configure_logging("console", "critical", stream=sys.stderr)
    try:
        result = func(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except YamlFileError as e:
        print(str(e), file=sys.stderr)
        return EXIT_ERROR
    except UsageError as e:
        print(f"channelmgr {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (LedgerError, MoneyError, CliError, ValidationError) as e:
        print(f"channelmgr: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise  # the reader went away (`| head`): main() ends quietly
    except Exception as e:  # the last line of defence: a sentence, not a traceback
        from channelmgr.runtime import SchemaNotReady
        from channelmgr.security import DataKeyError

        if isinstance(e, (SchemaNotReady, DataKeyError, OSError)) or _is_startup_error(e):
            print(f"channelmgr: {e}", file=sys.stderr)
            return EXIT_ERROR
        missing = _missing_tables(e)
        if missing:
            print(f"channelmgr: {missing}", file=sys.stderr)
            return EXIT_ERROR
        import os

        if os.environ.get("CHANNELMGR_DEBUG"):
            raise
        print(f"channelmgr: unexpected error: {e.__class__.__name__}: {e} "
              "(set CHANNELMGR_DEBUG=1 for the full traceback)", file=sys.stderr)
        return EXIT_ERROR
