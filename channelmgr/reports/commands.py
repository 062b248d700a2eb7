"""`channelmgr report ...` and `channelmgr settlement import` (issue 14): wiring only."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from channelmgr.reports.figures import BASES, BY, GROUPS, KINDS

HELP = {
    "summary": "every figure per period and group: bookings, room nights, revenue gross and net of "
               "commission, ADR, occupancy, RevPAR, channel mix, cancellation rate, lead time, length of "
               "stay, late-night share",
    "channels": "the channel mix: room nights and revenue per channel, their shares, commission and net",
    "pace": "how the stays of the range were booked: room nights and revenue by the period they were booked "
            "in, with running totals",
    "lead-time": "days from booking to arrival: mean, median and the buckets 0, 1-3, 4-7, 8-14, 15-30, 31+",
    "cancellations": "bookings made, cancelled and no-shows per channel, room type or rate plan (a booking "
                     "counts under its first room line's), by booking date (no-shows are 0 unless a source "
                     "marks a booking as a no-show; none does yet)",
}


async def cmd_report(args: argparse.Namespace) -> int:
    from channelmgr.cli import _runtime
    from channelmgr.reports import render
    from channelmgr.reports.figures import Money, ReportQuery, compute

    q = ReportQuery(args.property, args.from_, args.to, args.by, args.group, args.basis)
    rt = await _runtime(args)
    try:
        pm = rt.mappings.get(args.property) if rt.mappings else None
        report = await rt.db.read(lambda conn: compute(conn, args.report, q, Money.from_mapping(pm)))
    finally:
        await rt.close()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    elif args.csv:
        sys.stdout.write(render.to_csv(report))
    elif args.xlsx:
        render.to_xlsx(report, args.xlsx)
        print(f"wrote {args.xlsx} ({len(render.flat_rows(report))} rows)")
    else:
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        print(render.table(report, colour=colour))
    return 0


async def cmd_settlement_import(args: argparse.Namespace) -> int:
    from channelmgr.cli import CliError, _actor, _runtime
    from channelmgr.reports.settlement import SettlementError, import_statement

    try:
        raw = open(args.file, "rb").read(MAX_FILE + 1)
    except OSError as e:
        raise CliError(f"cannot read {args.file}: {e.strerror}") from None
    if len(raw) > MAX_FILE:
        raise CliError(f"{args.file} is larger than {MAX_FILE // (1024 * 1024)} MB")
    rt = await _runtime(args)
    try:
        try:
            result = await import_statement(rt, args.channel, os.path.basename(args.file), raw, actor=_actor())
        except SettlementError as e:
            raise CliError(str(e)) from None
    finally:
        await rt.close()
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    else:
        print(describe(result))
    return 0


MAX_FILE = 20 * 1024 * 1024


def describe(r: dict[str, Any]) -> str:
    from channelmgr.money import format_minor

    lines = [(f"statement {r['file']} of {r['channel']}: " +
              ("already imported (the same file) by " + r["imported_by"] + ", nothing changed"
               if r["already_imported"] else f"imported, {r['lines']} lines"))]
    for mo in r["months"]:
        flag = "  OVER 0.5 %" if mo["flagged"] else ""
        lines.append(f"  {mo['month']} {mo['currency']}: statement total {format_minor(mo['statement_total_minor'], mo['currency'])}, "
                     f"differences {format_minor(mo['differences_minor'], mo['currency'])}, "
                     f"error rate {mo['error_rate'] * 100:.2f} %{flag}")
    for d in r["differences"]:
        lines.append(f"  - {d['kind']}: {d['ota_booking_id']} {d['detail']}")
    if not r["differences"]:
        lines.append("  no differences")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from channelmgr.cli import _date

    rep = sub.add_parser("report", parents=[common], help="how each channel sells: volume, mix, ADR, cancellations",
                         description="Reports on the ledger's bookings per property and range, figured by the "
                                     "database. Stay dates and booking dates are the property's local dates; "
                                     "weeks are ISO 8601 weeks (Monday to Sunday). Money is per currency, in "
                                     "exact decimals; converted only where the mapping gives an exchange rate, "
                                     "and marked so.")
    rep.set_defaults(help_parser=rep)
    reps = rep.add_subparsers(dest="report", metavar="REPORT")
    for kind in KINDS:
        p = reps.add_parser(kind, parents=[common], help=HELP[kind], description=HELP[kind] + ".")
        p.add_argument("--property", required=True, metavar="P", help="the hotel's code")
        p.add_argument("--from", dest="from_", required=True, type=_date, metavar="D", help="first date (included)")
        p.add_argument("--to", required=True, type=_date, metavar="D", help="last date (included)")
        p.add_argument("--by", choices=BY, default=None,
                       help="one row per day, ISO week or month (default: the whole range)")
        p.add_argument("--group", choices=GROUPS, default="channel", help="rows per channel (every source: the "
                       "OTAs and the direct ones), room type or rate plan (default channel)")
        p.add_argument("--basis", choices=BASES, default="stay",
                       help="count nights by stay date (default) or bookings by the date they were made")
        out = p.add_mutually_exclusive_group()
        out.add_argument("--json", action="store_true", help="print JSON (money in minor units)")
        out.add_argument("--csv", action="store_true", help="print CSV")
        out.add_argument("--xlsx", metavar="FILE", help="write an Excel workbook to FILE")
        p.set_defaults(func=cmd_report)

    st = sub.add_parser("settlement", parents=[common], help="check an OTA's commission statement against the ledger",
                        description="Import an OTA's monthly statement and check it against the ledger's bookings.")
    st.set_defaults(help_parser=st)
    sts = st.add_subparsers(dest="settlement_command", metavar="ACTION")
    imp = sts.add_parser("import", parents=[common], help="import a statement (CSV) and report the differences",
                         description="Read an OTA's statement (CSV; its columns per channel in config.yaml "
                                     "settlement.columns, by default what the sandbox exports), match its lines "
                                     "to the ledger's bookings by the OTA's booking id, and report bookings "
                                     "missing on either side, amount and commission differences, stays with "
                                     "other nights, and the error rate per month (flagged over 0.5 %). The same "
                                     "file imported again changes nothing.")
    imp.add_argument("--channel", required=True, choices=("booking", "ctrip", "fliggy", "meituan"), metavar="C",
                     help="the OTA: booking, ctrip, fliggy or meituan")
    imp.add_argument("--file", required=True, metavar="FILE", help="the statement, CSV")
    imp.add_argument("--json", action="store_true", help="print JSON")
    imp.set_defaults(func=cmd_settlement_import)
