"""The console's Reports page (issue 14): how each channel sells, drawn and tabled.

The figures are channelmgr.reports' own, asked for exactly as GET /api/v1/reports/... asks
(channelmgr.reports.api.run_report): this module only picks the form's values, lays the
report's rows out for the tables and the charts, and links the same report as CSV and XLSX
from the API (the session cookie is enough for a GET there). Two reports are asked for:

- the one the form describes (summary, by the period and group chosen): the table and the
  occupancy / ADR over time chart;
- the same range per channel as a whole (no period): the channel mix, the lead-time buckets
  and the cancellation rate by channel (cancellations are only ever per channel).

The charts' data goes into the page as JSON in a ``<script type="application/json">``
(Jinja's ``tojson``, which escapes ``<``, ``>``, ``&`` and ``'``), with the words already
translated; channelmgr/web/static/reports.js draws it with the vendored echarts.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from channelmgr import dates
from channelmgr.money import exponent
from channelmgr.reports.api import run_report
from channelmgr.reports.figures import BASES, BY, GROUPS, LEAD_BUCKETS, MAX_DAYS, UNKNOWN, ReportError, ReportQuery
from channelmgr.web.pages import BRANDS, Refused, brand, i18n, page, reads, render
from channelmgr.web.pages import date_arg as _date_arg

if TYPE_CHECKING:  # pragma: no cover
    from channelmgr.daemon import Daemon


def _(s: str) -> str:
    return s


BY_WORDS = {"day": _("by day"), "week": _("by week"), "month": _("by month")}
GROUP_WORDS = {"channel": _("channel"), "room_type": _("room type"), "rate_plan": _("rate plan")}
GROUP_HEADS = {"channel": _("Channel"), "room_type": _("Room type"), "rate_plan": _("Rate plan")}
BASIS_WORDS = {"stay": _("stay date"), "booking": _("booking date")}
CHART_WORDS = {
    "room_nights_share": _("Share of room nights"), "revenue_share": _("Share of revenue"),
    "occupancy": _("Occupancy"), "adr": _("ADR"), "bookings": _("Bookings"),
    "cancellation_rate": _("Cancellation rate"), "booked": _("Booked"), "cancelled": _("Cancelled"),
    "lead_days": _("Days from booking to arrival"), "empty": _("Nothing in this range"),
    "total": _("All"),
}


def _choice(request: web.Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    v = (request.query.get(name) or "").strip() or default
    if v not in allowed:
        raise Refused(400, i18n.gettext("The request was refused."), f"{name}={v[:40]}")
    return v


def group_label(group: str, key: str | None, names: dict[str, str]) -> str:
    """What a row's group is called on the page: the OTA's brand, a direct source's word,
    or a room type's / rate plan's code (its name from the mapping beside it)."""
    if key is None:
        return i18n.gettext(CHART_WORDS["total"])
    if key == UNKNOWN:
        return i18n.gettext("(not mapped)")
    if group == "channel":
        return brand(key) if key in BRANDS else i18n.gettext(key)
    return key


def _money_for_chart(row: dict[str, Any], currency: str) -> dict[str, Any] | None:
    """The row's money in the property's currency: its own entry, or the converted one."""
    if row.get("converted"):
        return row["converted"]
    return next((mo for mo in row["money"] if mo["currency"] == currency), None)


def chart_data(table: dict[str, Any], mix: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The four charts' series, straight from the two reports' rows (no figure worked out here)."""
    cur = table["currency"]
    group = table["group"]
    periods: list[str] = []
    for r in table["rows"]:
        if r["period"] not in periods:
            periods.append(r["period"])
    keys = sorted({r["group"] for r in table["rows"]})
    series = []
    for k in keys:
        by_period = {r["period"]: r for r in table["rows"] if r["group"] == k}
        occ, adr = [], []
        for p in periods:
            r = by_period.get(p)
            occ.append(r["occupancy"] if r else None)
            mo = _money_for_chart(r, cur) if r else None
            adr.append(mo["adr_minor"] if mo else None)
        series.append({"key": k, "name": group_label(group, k, names), "occupancy": occ, "adr_minor": adr})
    mrows = mix["rows"]
    chans = [{"key": r["group"], "name": group_label("channel", r["group"], names)} for r in mrows]
    revenue: dict[str, list[float | None]] = {}
    for i, r in enumerate(mrows):
        for mo in r["money"]:
            revenue.setdefault(mo["currency"], [None] * len(mrows))[i] = mo["revenue_share"]
    return {
        "currency": cur, "scale": 10 ** exponent(cur), "lang": i18n.HTML_LANG[i18n.CURRENT.get()],
        "words": {k: i18n.gettext(v) for k, v in CHART_WORDS.items()},
        "over_time": {"periods": periods, "series": series,
                      # a channel's or rate plan's occupancy is its part of the hotel's: they stack
                      "stacked": group != "room_type", "has_occupancy": table["basis"] == "stay"},
        "mix": {"channels": chans, "room_nights": [r["room_nights"] for r in mrows],
                "room_nights_share": [r["room_nights_share"] for r in mrows],
                "revenue_share": [{"currency": c, "shares": v} for c, v in sorted(revenue.items())]},
        "lead_time": {"buckets": [b for b, _, _ in LEAD_BUCKETS],
                      "series": [{"name": c["name"], "counts": [r["lead_time"]["buckets"][b] for b, _, _ in
                                                                LEAD_BUCKETS]} for c, r in zip(chans, mrows)]},
        "cancellations": {"channels": [c["name"] for c, r in zip(chans, mrows) if r["booked"]],
                          "rate": [r["cancellation_rate"] for r in mrows if r["booked"]],
                          "booked": [r["booked"] for r in mrows if r["booked"]],
                          "cancelled": [r["cancelled"] for r in mrows if r["booked"]]},
    }


def api_link(kind: str, params: dict[str, Any], fmt: str) -> str:
    q = {k: v for k, v in params.items() if v is not None}
    q["format"] = fmt
    return f"/api/v1/reports/{kind}?" + urlencode(q)


def pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def num(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def default_range(today: date) -> tuple[date, date]:
    """This month and the next, by stay date: what the hotel has on its books."""
    start = today.replace(day=1)
    nxt = (start + timedelta(days=32)).replace(day=1)
    return start, nxt.replace(day=calendar.monthrange(nxt.year, nxt.month)[1])


async def reports_page(request: web.Request, d: "Daemon", user) -> web.Response:
    props = await reads.properties(d.rt.db)
    ctx: dict[str, Any] = {"props": props, "BY": BY, "GROUPS": GROUPS, "BASES": BASES, "BY_WORDS": BY_WORDS,
                           "GROUP_WORDS": GROUP_WORDS, "GROUP_HEADS": GROUP_HEADS, "BASIS_WORDS": BASIS_WORDS, "pct": pct, "num": num,
                           "LEAD_BUCKETS": [b for b, _, _ in LEAD_BUCKETS], "report": None, "mix": None}
    if not props:
        return render(request, "reports/page.html", ctx, nav="reports")
    code = (request.query.get("property") or "").strip() or props[0]["code"]
    prop = next((p for p in props if p["code"] == code), None)
    if prop is None:
        raise Refused(404, i18n.gettext("There is no such property."), code[:64])
    start0, end0 = default_range(dates.business_date(datetime.now(timezone.utc), prop["timezone"]))
    start = _date_arg(request, "from") or start0
    end = _date_arg(request, "to") or end0
    by = _choice(request, "by", BY, "week")
    group = _choice(request, "group", GROUPS, "channel")
    basis = _choice(request, "basis", BASES, "stay")
    pm = d.mappings.get(code) if d.mappings else None
    names = {}
    if pm is not None:
        names = {**{k: v.name for k, v in pm.room_types.items()}, **{k: v.name for k, v in pm.rate_plans.items()}}
    params = {"property": code, "from": start.isoformat(), "to": end.isoformat(), "by": by, "group": group,
              "basis": basis}
    mix_params = {**params, "by": None, "group": "channel"}
    ctx.update({"prop": prop, "params": params, "names": names, "max_days": MAX_DAYS,
                "label": lambda g, k: group_label(g, k, names)})
    try:
        report = await run_report(d, "summary", ReportQuery(code, start, end, by, group, basis))
        mix = await run_report(d, "summary", ReportQuery(code, start, end, None, "channel", basis))
    except ReportError as e:
        ctx["refused"] = str(e)
        return render(request, "reports/page.html", ctx, nav="reports", status=400)
    ctx.update({"report": report, "mix": mix, "charts": chart_data(report, mix, names),
                "downloads": {"table": {f: api_link("summary", params, f) for f in ("csv", "xlsx", "json")},
                              "channels": {f: api_link("summary", mix_params, f) for f in ("csv", "xlsx", "json")}}})
    return render(request, "reports/page.html", ctx, nav="reports")


def add_routes(app: web.Application, daemon: "Daemon") -> None:
    app.router.add_get("/reports", page(daemon, reports_page))
