"""A report as a person reads it: a terminal table, CSV for scripts, XLSX for Excel users.

The three carry the same flat rows (:func:`flat_rows`): one line per period, group and
currency, money in major units as exact decimal text next to its currency (minor units in
JSON only), shares and rates as percents with two decimals.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

from channelmgr.money import format_minor

_BOLD, _CYAN, _DIM, _RESET = "\033[1m", "\033[36m", "\033[2m", "\033[0m"

COLUMNS = {
    "summary": ["period", "group", "bookings", "room_nights", "currency", "gross", "commission", "net", "adr",
                "occupancy", "revpar", "room_nights_share", "revenue_share", "cancellation_rate", "lead_mean",
                "lead_median", "alos", "late_night_share"],
    "channels": ["period", "group", "bookings", "room_nights", "room_nights_share", "currency", "gross",
                 "revenue_share", "commission", "net", "adr"],
    "lead-time": ["period", "group", "bookings", "lead_mean", "lead_median", "lead_0", "lead_1-3", "lead_4-7",
                  "lead_8-14", "lead_15-30", "lead_31+"],
    "cancellations": ["period", "group", "booked", "cancelled", "cancellation_rate", "no_shows"],
    "pace": ["period", "group", "currency", "bookings", "room_nights", "gross", "cumulative_room_nights",
             "cumulative_gross"],
}


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v * 100:.2f}%"


def _num(v: float | None, digits: int = 1) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _money(minor: int | None, cur: str) -> str:
    return "" if minor is None else format_minor(minor, cur)


def flat_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    kind = report["report"]
    src = list(report["rows"])
    if report.get("totals"):
        src.append({**report["totals"], "period": "total", "group": "all"})
    out: list[dict[str, str]] = []
    for r in src:
        if kind == "pace":
            cur = r["currency"]
            out.append({"period": r["period"], "group": r["group"], "currency": cur, "bookings": str(r["bookings"]),
                        "room_nights": str(r["room_nights"]), "gross": _money(r["gross_minor"], cur),
                        "cumulative_room_nights": str(r["cumulative_room_nights"]),
                        "cumulative_gross": _money(r["cumulative_gross_minor"], cur)})
            continue
        lt = r["lead_time"]
        base = {"period": r["period"], "group": r["group"] or "all", "bookings": str(r["bookings"]),
                "room_nights": str(r["room_nights"]), "occupancy": _pct(r["occupancy"]),
                "room_nights_share": _pct(r["room_nights_share"]),
                "cancellation_rate": _pct(r["cancellation_rate"]),
                "booked": "" if r["booked"] is None else str(r["booked"]),
                "cancelled": "" if r["cancelled"] is None else str(r["cancelled"]),
                "no_shows": "" if r["no_shows"] is None else str(r["no_shows"]),
                "lead_mean": _num(lt["mean_days"]), "lead_median": _num(lt["median_days"]),
                "alos": _num(r["average_length_of_stay"], 2), "late_night_share": _pct(r["late_night_share"]),
                **{f"lead_{k}": str(v) for k, v in lt["buckets"].items()}}
        moneys = list(r["money"]) or [None]
        if r.get("converted"):
            moneys.append({**r["converted"], "converted": True})
        for mo in moneys:
            row = dict(base)
            if mo is not None:
                cur = mo["currency"]
                row.update({"currency": cur + (" (converted)" if mo.get("converted") else ""),
                            "gross": _money(mo["gross_minor"], cur),
                            "commission": _money(mo["commission_minor"], cur), "net": _money(mo["net_minor"], cur),
                            "adr": _money(mo["adr_minor"], cur), "revpar": _money(mo.get("revpar_minor"), cur),
                            "revenue_share": _pct(mo.get("revenue_share"))})
            out.append(row)
    return out


def to_csv(report: dict[str, Any]) -> str:
    cols = COLUMNS[report["report"]]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in flat_rows(report):
        w.writerow({c: r.get(c, "") for c in cols})
    return buf.getvalue()


def to_xlsx(report: dict[str, Any], path: str | os.PathLike | io.BytesIO) -> None:
    """One sheet of the rows (numbers as numbers), and one that says what the report is."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    cols = COLUMNS[report["report"]]
    wb = Workbook()
    ws = wb.active
    ws.title = report["report"][:31]
    ws.append(cols)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for r in flat_rows(report):
        line: list[Any] = []
        for c in cols:
            v = r.get(c, "")
            if v.endswith("%"):
                line.append(float(v[:-1]) / 100)
            else:
                try:
                    line.append(int(v) if v.lstrip("-").isdigit() else float(v) if v and c not in (
                        "period", "group", "currency") else v)
                except ValueError:
                    line.append(v)
        ws.append(line)
    for col_cells in ws.iter_cols(min_row=2):
        for cell in col_cells:
            if isinstance(cell.value, float) and ws.cell(1, cell.column).value in (
                    "occupancy", "room_nights_share", "revenue_share", "cancellation_rate", "late_night_share"):
                cell.number_format = "0.00%"
    about = wb.create_sheet("about")
    for k in ("report", "property", "timezone", "currency", "from", "to", "basis", "by", "group", "week"):
        about.append([k, "" if report.get(k) is None else str(report.get(k))])
    about.append(["money", "major units of the currency named on the row; a row marked (converted) is in the "
                           "property's currency at the mapping's exchange rates"])
    wb.save(path)


def table(report: dict[str, Any], colour: bool = False) -> str:
    """The readable terminal view: a heading line, then aligned columns (numbers right)."""
    def c(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if colour else text

    cols = COLUMNS[report["report"]]
    rows = flat_rows(report)
    head = (f"{report['report']} of {report['property']}  {report['from']} .. {report['to']}  "
            f"(by {report['basis']} date{', ' + report['by'] if report.get('by') else ''}"
            f"{', per ' + report['group'] if report.get('group') else ''}; {report['timezone']})")
    if not rows:
        return c(_BOLD, head) + "\n" + c(_DIM, "  nothing in this range")
    widths = {k: max(len(k), *(len(r.get(k, "")) for r in rows)) for k in cols}
    text_cols = {"period", "group", "currency"}

    def fmt(k: str, v: str) -> str:
        return v.ljust(widths[k]) if k in text_cols else v.rjust(widths[k])

    lines = [c(_BOLD, head), "  " + c(_BOLD, "  ".join(fmt(k, k) for k in cols))]
    for r in rows:
        line = "  ".join(fmt(k, r.get(k, "")) for k in cols)
        lines.append("  " + (c(_CYAN, line) if r["period"] == "total" else line))
    if report.get("week"):
        lines.append(c(_DIM, f"  weeks: {report['week']}"))
    if "no_shows" in cols:
        lines.append(c(_DIM, "  no-shows: only bookings a source marked as no-show; no channel reports them yet, so 0"))
    return "\n".join(lines)
