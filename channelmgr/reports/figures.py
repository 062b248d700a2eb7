"""The figures of a report, aggregated by the database (SQLite and PostgreSQL alike).

Nothing here loads bookings into Python: each query returns one row per (period, group,
currency) or per (period, group), and Python only puts those rows side by side, works out
the ratios and shares, and converts currencies where the mapping gives a rate.

Definitions (the words of the reports; docs in the CLI help say the same):

- *Stay date* (the default basis): the night's local date (booking_nights.night, already in
  the property's zone, late-night rule applied). A period's figures are the nights in it.
  *Booking date*: the local date, in the property's zone, of the moment the guest booked
  (``booked_at``; when an OTA gave none, when the booking reached the ledger).
- Periods: ``day``; ``week`` = ISO 8601 week, Monday to Sunday, labelled 2026-W49; ``month``;
  none = the whole range. Periods are clipped to the range asked for.
- *Bookings*: confirmed bookings with a night in the row (stay basis) or made in it (booking
  basis). *Room nights*: rooms x nights of confirmed bookings.
- *Room revenue*: a booking's amount (what the OTA or desk says the stay costs) spread over
  its nights in proportion to each night's price x rooms (by rooms when a night has no
  price), with cumulative integer division so the nights add up to the amount exactly. In
  minor units, per currency: money in two currencies is never added up unless the mapping
  gives an exchange rate (then a ``converted`` figure in the property's currency, labelled).
- *Commission*: the mapping's percent for the channel in force on the booking's arrival date,
  of the booking's room revenue in the row, rounded half up to the minor unit; *net* = gross
  - commission.
- *ADR* = room revenue / room nights; *occupancy* = room nights sold / room nights available
  (physical - out of order, per night and room type); *RevPAR* = room revenue / room nights
  available. ADR and RevPAR are rounded half up to the minor unit. For a channel or rate plan
  row, occupancy and RevPAR are that row's part of the whole hotel's (so they add up); for a
  room type row, of that room type's rooms. Occupancy and RevPAR are stay-date figures: on
  the booking basis they are not given (null).
- *Channel mix*: a row's share of its period's room nights and (per currency) revenue.
- *Cancellation rate* = cancelled / booked, always by booking date: of the bookings made in
  the period (confirmed, cancelled or no-show), the part cancelled. By room type or rate
  plan, a booking counts once, under the room type and rate plan of its first room line
  (``bookings.room_type_id`` / ``rate_plan_id``, kept when it is cancelled, as its nights are
  not; a booking cancelled before migration 0006 has none and counts under "(unmapped)").
- *No-shows*: bookings whose status the source set to ``no_show``; no source reports them
  yet, so this is 0 until one does.
- *Lead time*: days from the booking date to the arrival (a late-night booking for the night
  before counts 0): mean, median, and bookings in the buckets 0, 1-3, 4-7, 8-14, 15-30, 31+.
- *Average length of stay*: mean nights (checkout - checkin) of the row's bookings.
- *Late-night* (凌晨) *share*: the part of the row's bookings that arrived in the ledger
  (``received_at``, when the booking was first recorded) between 00:00 and 06:00 property
  time, the hours when the hotel's business date is still the day before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    String,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    or_,
    select,
    text,
    values,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from channelmgr.ledger import models as m
from channelmgr.ledger.types import LedgerError
from channelmgr.money import exponent
from channelmgr.reports.sqlparts import (
    days_between,
    local_date,
    local_hour,
    period_table,
    periods,
    tz_table,
)

KINDS = ("summary", "channels", "pace", "lead-time", "cancellations")
BY = ("day", "week", "month")
GROUPS = ("channel", "room_type", "rate_plan")
BASES = ("stay", "booking")
MAX_DAYS = 3 * 366
LEAD_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0", 0, 0), ("1-3", 1, 3), ("4-7", 4, 7), ("8-14", 8, 14), ("15-30", 15, 30), ("31+", 31, None))
PACE_LOOKBACK_DAYS = 366
UNKNOWN = "(unmapped)"


class ReportError(LedgerError):
    """A report asked for wrongly (unknown property, bad range); nothing was read."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ReportQuery:
    property: str
    start: date
    end: date
    by: Literal["day", "week", "month"] | None = None
    group: Literal["channel", "room_type", "rate_plan"] = "channel"
    basis: Literal["stay", "booking"] = "stay"

    def check(self) -> None:
        if self.end < self.start:
            raise ReportError(f"the range ends ({self.end}) before it starts ({self.start})", "to")
        if (self.end - self.start).days >= MAX_DAYS:
            raise ReportError(f"a report covers at most {MAX_DAYS} days", "to")
        if self.by is not None and self.by not in BY:
            raise ReportError(f"by is day, week or month, not {self.by!r}", "by")
        if self.group not in GROUPS:
            raise ReportError(f"group is channel, room_type or rate_plan, not {self.group!r}", "group")
        if self.basis not in BASES:
            raise ReportError(f"basis is stay or booking, not {self.basis!r}", "basis")


@dataclass(frozen=True)
class Money:
    """What the mapping says about money: commission rates and exchange rates."""

    # channel -> [(from date, basis points)]
    commission: dict[str, list[tuple[date, int]]] = field(default_factory=dict)
    # currency -> units of the property's currency per unit
    rates: dict[str, Decimal] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, pm: Any) -> "Money":
        if pm is None:
            return cls()
        f = pm.file
        com = {ch: sorted((r.from_, r.basis_points) for r in rates) for ch, rates in (getattr(f, "commission", None)
                                                                                      or {}).items()}
        return cls(com, dict(getattr(f, "exchange_rates", None) or {}))


# ---- the populations ---------------------------------------------------------------------


class _Ctx:
    def __init__(self, q: ReportQuery, prop: Any, money: Money):
        self.q, self.prop, self.money = q, prop, money
        self.tz = tz_table(prop.timezone).cte("tz")
        self.tzr = tz_table(prop.timezone).cte("tzr")

    def bookings(self, *, statuses: tuple[str, ...], stay_range: bool, booked_range: bool,
                 lookback_days: int = 0):
        """One row per booking of the property: its local booking date and arrival hour."""
        b, tz, tzr, q = m.bookings, self.tz, self.tzr, self.q
        booked_ts = func.coalesce(b.c.booked_at, b.c.received_at)
        booked_on = local_date(booked_ts, tz.c.off_s).label("booked_on")
        stmt = (select(b.c.id, b.c.channel, b.c.status, b.c.checkin, b.c.checkout,
                       b.c.room_type_id, b.c.rate_plan_id,
                       func.coalesce(b.c.currency, literal(self.prop.currency, String)).label("currency"),
                       b.c.amount_minor, booked_on,
                       local_hour(b.c.received_at, tzr.c.off_s).label("recv_hour"))
                .select_from(b.join(tz, and_(booked_ts >= tz.c.utc_from, booked_ts < tz.c.utc_to))
                             .join(tzr, and_(b.c.received_at >= tzr.c.utc_from, b.c.received_at < tzr.c.utc_to)))
                .where(b.c.property_id == self.prop.id, b.c.status.in_(statuses)))
        if stay_range:
            stmt = stmt.where(b.c.checkin <= q.end, b.c.checkout > q.start)
        if booked_range:
            # the booking's local date is within a day of its UTC date: a cheap indexable bound first
            lo = q.start - timedelta(days=2 + lookback_days)
            stmt = stmt.where(booked_ts >= lo, booked_ts < q.end + timedelta(days=2))
        return stmt.cte("bk")

    def nights(self, bk):
        """Every night of those bookings with its share of the booking's amount (see module doc)."""
        bn = m.booking_nights
        part = bn.c.booking_id
        n0 = (select(bn.c.booking_id, bn.c.id.label("nid"), bn.c.night, bn.c.rooms, bn.c.room_type_id,
                     bn.c.rate_plan_id, bn.c.price_minor,
                     func.count(bn.c.price_minor).over(partition_by=part).label("priced"),
                     func.count().over(partition_by=part).label("all_n"))
              .select_from(bn.join(bk, bk.c.id == bn.c.booking_id))).subquery("n0")
        weight = case((n0.c.priced == n0.c.all_n, cast(n0.c.price_minor, BigInteger) * n0.c.rooms),
                      else_=cast(n0.c.rooms, BigInteger))
        n1 = select(n0, weight.label("w")).subquery("n1")
        n2 = select(n1,
                    cast(func.sum(n1.c.w).over(partition_by=n1.c.booking_id), BigInteger).label("w_all"),
                    cast(func.sum(n1.c.w).over(partition_by=n1.c.booking_id,
                                               order_by=(n1.c.night, n1.c.nid), rows=(None, 0)),
                         BigInteger).label("w_cum")).subquery("n2")
        amount = func.coalesce(bk.c.amount_minor, case((n2.c.priced == n2.c.all_n, n2.c.w_all), else_=0))
        rev = case((n2.c.w_all > 0, amount * n2.c.w_cum // n2.c.w_all - amount * (n2.c.w_cum - n2.c.w) // n2.c.w_all),
                   else_=0)
        return (select(n2.c.booking_id, n2.c.night, n2.c.rooms, n2.c.room_type_id, n2.c.rate_plan_id,
                       cast(rev, BigInteger).label("rev"))
                .select_from(n2.join(bk, bk.c.id == n2.c.booking_id))).cte("nt").prefix_with("MATERIALIZED", dialect="postgresql")

    def group_key(self, nt=None, bk=None):
        """The row's group: the night's room type or rate plan (``nt`` may be the bookings' CTE:
        the booking's first room line's, for the cancellations)."""
        g = self.q.group
        if g == "channel":
            return bk.c.channel
        if g == "room_type":
            sub = select(m.room_types.c.code).where(m.room_types.c.id == nt.c.room_type_id).scalar_subquery()
        else:
            sub = select(m.rate_plans.c.code).where(m.rate_plans.c.id == nt.c.rate_plan_id).scalar_subquery()
        return func.coalesce(sub, literal(UNKNOWN, String))

    def commission_rate(self, channel_col, arrival_col):
        rows = [(ch, d, bp) for ch, rates in self.money.commission.items() for d, bp in rates]
        if not rows:
            return literal(0, BigInteger)
        cm = values(column("ch", String), column("c_from", m.bookings.c.checkin.type), column("bp", BigInteger),
                    name="cm").data(rows).cte("cm")
        return func.coalesce(
            select(cm.c.bp).where(cm.c.ch == channel_col, cm.c.c_from <= arrival_col)
            .order_by(cm.c.c_from.desc()).limit(1).scalar_subquery(), 0)


# ---- the queries --------------------------------------------------------------------------


async def _booking_rows(conn: AsyncConnection, c: _Ctx, per, *, pace: bool = False):
    """(period, group, booking) rows of the basis population: room nights, revenue and what
    each booking is (lead time, length, arrival hour). ``pace``: stays in the range, periods
    by booking date."""
    q = c.q
    stay = q.basis == "stay" or pace
    bk = c.bookings(statuses=("confirmed",), stay_range=stay, booked_range=not stay)
    nt = c.nights(bk)
    key_date = bk.c.booked_on if (pace or not stay) else nt.c.night
    gkey = c.group_key(nt, bk).label("gkey")
    lead = days_between(bk.c.checkin, bk.c.booked_on)
    conds = [key_date >= per.c.p_first, key_date <= per.c.p_last]
    if stay:
        conds.append(nt.c.night.between(q.start, q.end))
    bg = (select(per.c.label.label("period"), gkey, nt.c.booking_id, bk.c.channel, bk.c.currency, bk.c.checkin,
                 case((lead < 0, 0), else_=lead).label("lead"),
                 days_between(bk.c.checkout, bk.c.checkin).label("los"),
                 case((bk.c.recv_hour < 6, 1), else_=0).label("late"),
                 cast(func.sum(nt.c.rooms), BigInteger).label("rn"),
                 cast(func.sum(nt.c.rev), BigInteger).label("rev"))
          .select_from(nt.join(bk, bk.c.id == nt.c.booking_id).join(per, and_(*conds)))
          .group_by(per.c.label, gkey, nt.c.booking_id, bk.c.channel, bk.c.currency, bk.c.checkin,
                    bk.c.checkout, bk.c.booked_on, bk.c.recv_hour)).cte("bg")
    return bg


async def _money_rows(conn, c: _Ctx, bg) -> list[Any]:
    bp = c.commission_rate(bg.c.channel, bg.c.checkin)
    com = (bg.c.rev * bp + 5000) // 10000
    stmt = (select(bg.c.period, bg.c.gkey, bg.c.currency,
                   cast(func.sum(bg.c.rn), BigInteger).label("rn"),
                   cast(func.sum(bg.c.rev), BigInteger).label("rev"),
                   cast(func.sum(cast(com, BigInteger)), BigInteger).label("com"),
                   func.count().label("bookings"))
            .group_by(bg.c.period, bg.c.gkey, bg.c.currency))
    return (await conn.execute(stmt)).all()


async def _stay_rows(conn, c: _Ctx, bg) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (period, group): bookings, lead time (mean, buckets, median), length of stay, late-night."""
    cols = [func.count().label("bookings"), func.sum(bg.c.lead).label("lead_sum"),
            func.sum(bg.c.los).label("los_sum"), func.sum(bg.c.late).label("late")]
    for name, lo, hi in LEAD_BUCKETS:
        cond = bg.c.lead >= lo if hi is None else bg.c.lead.between(lo, hi)
        cols.append(func.sum(case((cond, 1), else_=0)).label(f"lb_{name}"))
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in (await conn.execute(select(bg.c.period, bg.c.gkey, *cols).group_by(bg.c.period, bg.c.gkey))).all():
        n = int(r.bookings)
        out[(r.period, r.gkey)] = {
            "bookings": n,
            "lead_time": {"mean_days": float(r.lead_sum) / n if n else None, "median_days": None,
                          "buckets": {name: int(getattr(r, f"lb_{name}") or 0) for name, _, _ in LEAD_BUCKETS}},
            "average_length_of_stay": float(r.los_sum) / n if n else None,
            "late_night": int(r.late or 0), "late_night_share": int(r.late or 0) / n if n else None}
    # the median: the middle one or two bookings of each row, ordered by lead time
    ranked = select(bg.c.period, bg.c.gkey, bg.c.lead,
                    func.row_number().over(partition_by=(bg.c.period, bg.c.gkey), order_by=bg.c.lead).label("rk"),
                    func.count().over(partition_by=(bg.c.period, bg.c.gkey)).label("cnt")).subquery("rk")
    med = (select(ranked.c.period, ranked.c.gkey, func.sum(ranked.c.lead).label("s"), func.count().label("k"))
           .where(or_(ranked.c.rk == (ranked.c.cnt + 1) // 2, ranked.c.rk == (ranked.c.cnt + 2) // 2))
           .group_by(ranked.c.period, ranked.c.gkey))
    for r in (await conn.execute(med)).all():
        if (r.period, r.gkey) in out:
            out[(r.period, r.gkey)]["lead_time"]["median_days"] = float(r.s) / int(r.k)
    return out


async def _cancel_rows(conn, c: _Ctx, per, grouped: bool) -> dict[tuple[str, str], dict[str, int]]:
    """Per (booking-date period, group): bookings made, cancelled, no-shows."""
    bk = c.bookings(statuses=("confirmed", "cancelled", "no_show"), stay_range=False, booked_range=True)
    gkey = (c.group_key(bk, bk) if grouped else literal("all", String)).label("gkey")
    stmt = (select(per.c.label.label("period"), gkey, func.count().label("booked"),
                   func.sum(case((bk.c.status == "cancelled", 1), else_=0)).label("cancelled"),
                   func.sum(case((bk.c.status == "no_show", 1), else_=0)).label("no_shows"))
            .select_from(bk.join(per, and_(bk.c.booked_on >= per.c.p_first, bk.c.booked_on <= per.c.p_last)))
            .where(bk.c.booked_on.between(c.q.start, c.q.end))
            .group_by(per.c.label, gkey))
    return {(r.period, r.gkey): {"booked": int(r.booked), "cancelled": int(r.cancelled or 0),
                                 "no_shows": int(r.no_shows or 0)} for r in (await conn.execute(stmt)).all()}


async def _available(conn, c: _Ctx, per, by_room_type: bool) -> dict[tuple[str, str | None], int]:
    """Room nights available per period (and room type): physical - out of order, every night."""
    rt, inv = m.room_types, m.inventory
    where = [rt.c.property_id == c.prop.id, rt.c.active.is_(True)]
    keys = [per.c.label] + ([rt.c.code] if by_room_type else [])
    base = (select(*keys, cast(func.sum(rt.c.physical_rooms * per.c.p_nights), BigInteger).label("n"))
            .select_from(rt.join(per, literal(True))).where(*where).group_by(*keys))
    adj = (select(*keys, cast(func.sum(func.coalesce(inv.c.physical, rt.c.physical_rooms) - rt.c.physical_rooms
                                       - inv.c.out_of_order), BigInteger).label("n"))
           .select_from(inv.join(rt, rt.c.id == inv.c.room_type_id)
                        .join(per, and_(inv.c.night >= per.c.p_first, inv.c.night <= per.c.p_last)))
           .where(*where, inv.c.property_id == c.prop.id).group_by(*keys))
    out: dict[tuple[str, str | None], int] = {}
    for stmt in (base, adj):
        for r in (await conn.execute(stmt)).all():
            k = (r[0], r[1] if by_room_type else None)
            out[k] = out.get(k, 0) + int(r.n or 0)
    return out


# ---- putting them together ------------------------------------------------------------------


def _half_up(num: int, den: int) -> int | None:
    if not den:
        return None
    return int((Decimal(num) / Decimal(den)).to_integral_value(ROUND_HALF_UP))


def _convert(minor: int, cur: str, to: str, rate: Decimal) -> int:
    v = Decimal(minor) * rate * (Decimal(10) ** (exponent(to) - exponent(cur)))
    return int(v.to_integral_value(ROUND_HALF_UP))


async def _property(conn: AsyncConnection, code: str):
    prop = (await conn.execute(select(m.properties).where(m.properties.c.code == code))).first()
    if prop is None:
        raise ReportError(f"there is no property '{code}' (declare it in mappings/)", "property")
    return prop


async def compute(conn: AsyncConnection, kind: str, q: ReportQuery, money: Money | None = None) -> dict[str, Any]:
    """A report, as a dict ready for JSON (the CLI, the API and the page all print this)."""
    if kind not in KINDS:
        raise ReportError(f"the reports are {', '.join(KINDS)}, not {kind!r}", "report")
    q.check()
    money = money or Money()
    if conn.dialect.name == "postgresql":
        # The planner over-estimates the rows of these CTE chains a hundredfold and JIT-compiles
        # each query: 1.5 s of compiling for 20 ms of work (EXPLAIN ANALYZE of summary --by week
        # --group room_type, scripts/bench_reports.py). LOCAL: for this read transaction only.
        await conn.execute(text("SET LOCAL jit = off"))
    prop = await _property(conn, q.property)
    if kind == "pace":
        return await _pace(conn, q, prop, money)
    out = _head(kind, q, prop)
    body = await _table(conn, q, prop, money, grouped=True)
    totals = await _table(conn, q, prop, money, grouped=False)
    out["rows"] = body
    out["totals"] = totals[0] if totals else None
    return out


def _head(kind: str, q: ReportQuery, prop: Any) -> dict[str, Any]:
    return {"report": kind, "property": prop.code, "timezone": prop.timezone, "currency": prop.currency,
            "from": q.start.isoformat(), "to": q.end.isoformat(), "basis": q.basis, "by": q.by, "group": q.group,
            "week": "ISO 8601 (Monday to Sunday)" if q.by == "week" else None}


async def _table(conn, q: ReportQuery, prop, money: Money, *, grouped: bool) -> list[dict[str, Any]]:
    sub = q if grouped else ReportQuery(q.property, q.start, q.end, None, q.group, q.basis)
    c = _Ctx(sub, prop, money)
    plist = periods(sub.start, sub.end, sub.by)
    per = period_table(plist).cte("periods")
    if not grouped:
        c.group_key = lambda nt=None, bk=None: literal("all", String)  # type: ignore[method-assign]
    bg = await _booking_rows(conn, c, per)
    money_rows = await _money_rows(conn, c, bg)
    stay = await _stay_rows(conn, c, bg)
    cancels = await _cancel_rows(conn, c, per, grouped)
    by_rt = grouped and q.group == "room_type"
    avail = await _available(conn, c, per, by_rt) if q.basis == "stay" else {}

    rows: dict[tuple[str, str], dict[str, Any]] = {}
    bounds = {label: (a, b) for label, a, b in plist}
    for r in money_rows:
        row = rows.setdefault((r.period, r.gkey), {"period": r.period, "group": r.gkey, "room_nights": 0, "money": {}})
        row["room_nights"] += int(r.rn)
        row["money"][r.currency] = {"currency": r.currency, "gross_minor": int(r.rev), "commission_minor": int(r.com),
                                    "net_minor": int(r.rev) - int(r.com), "room_nights": int(r.rn)}
    for key in list(cancels):
        rows.setdefault(key, {"period": key[0], "group": key[1], "room_nights": 0, "money": {}})
    # period totals, for the shares
    p_rn: dict[str, int] = {}
    p_rev: dict[tuple[str, str], int] = {}
    for row in rows.values():
        p_rn[row["period"]] = p_rn.get(row["period"], 0) + row["room_nights"]
        for cur, mo in row["money"].items():
            p_rev[(row["period"], cur)] = p_rev.get((row["period"], cur), 0) + mo["gross_minor"]
    out = []
    for (period, gkey), row in sorted(rows.items(), key=lambda kv: (bounds[kv[0][0]][0], kv[0][1])):
        a, b = bounds[period]
        s = stay.get((period, gkey), {"bookings": 0, "lead_time": {"mean_days": None, "median_days": None,
                                                                   "buckets": {n: 0 for n, _, _ in LEAD_BUCKETS}},
                                      "average_length_of_stay": None, "late_night": 0, "late_night_share": None})
        available = None
        if q.basis == "stay":
            available = avail.get((period, gkey if by_rt else None), 0)
        rn = row["room_nights"]
        money_list = []
        for cur in sorted(row["money"]):
            mo = row["money"][cur]
            mo["adr_minor"] = _half_up(mo["gross_minor"], mo["room_nights"])
            mo["revpar_minor"] = _half_up(mo["gross_minor"], available) if available else None
            tot = p_rev.get((period, cur), 0)
            mo["revenue_share"] = mo["gross_minor"] / tot if tot else None
            money_list.append(mo)
        canc = cancels.get((period, gkey)) if grouped else cancels.get((period, "all"))
        item = {"period": period, "start": a.isoformat(), "end": b.isoformat(), "group": gkey if grouped else None,
                "bookings": s["bookings"], "room_nights": rn,
                "room_nights_share": rn / p_rn[period] if p_rn.get(period) else None,
                "available": available,
                "occupancy": (rn / available if available else None) if q.basis == "stay" else None,
                "money": money_list, "converted": _converted(money_list, prop.currency, money.rates, available),
                "booked": canc["booked"] if canc else 0,
                "cancelled": canc["cancelled"] if canc else 0,
                "cancellation_rate": (canc["cancelled"] / canc["booked"] if canc and canc["booked"] else None),
                "no_shows": canc["no_shows"] if canc else 0,
                "lead_time": s["lead_time"], "average_length_of_stay": s["average_length_of_stay"],
                "late_night": s["late_night"], "late_night_share": s["late_night_share"]}
        out.append(item)
    return out


def _converted(money_list: list[dict[str, Any]], to: str, rates: dict[str, Decimal],
               available: int | None) -> dict[str, Any] | None:
    """All of a row's money in the property's currency, when the mapping gives every rate needed."""
    if not money_list or all(mo["currency"] == to for mo in money_list):
        return None
    used = {}
    gross = com = rn = 0
    for mo in money_list:
        cur = mo["currency"]
        if cur == to:
            g, k = mo["gross_minor"], mo["commission_minor"]
        elif cur in rates:
            g, k = _convert(mo["gross_minor"], cur, to, rates[cur]), _convert(mo["commission_minor"], cur, to, rates[cur])
            used[cur] = str(rates[cur])
        else:
            return None
        gross, com, rn = gross + g, com + k, rn + mo["room_nights"]
    return {"currency": to, "gross_minor": gross, "commission_minor": com, "net_minor": gross - com,
            "adr_minor": _half_up(gross, rn), "revpar_minor": _half_up(gross, available) if available else None,
            "rates": used,
            "label": "converted to " + to + " at the mapping's rates: "
                     + ", ".join(f"1 {k} = {v} {to}" for k, v in sorted(used.items()))}


async def _pace(conn, q: ReportQuery, prop, money: Money) -> dict[str, Any]:
    """Stays in the range, by the period in which they were booked, with running totals: how
    the range filled up. Periods run from a year before the range's first night to its last;
    what was booked earlier is in the first period."""
    out = _head("pace", q, prop)
    out["basis"] = "stay"
    first = q.start - timedelta(days=PACE_LOOKBACK_DAYS)
    plist = periods(first, q.end + timedelta(days=1), q.by or "month")
    plist[0] = (plist[0][0], date(1900, 1, 1), plist[0][2])
    per = period_table(plist).cte("periods")
    c = _Ctx(ReportQuery(q.property, q.start, q.end, q.by or "month", q.group, "stay"), prop, money)
    bg = await _booking_rows(conn, c, per, pace=True)
    rows = await _money_rows(conn, c, bg)
    order = {label: i for i, (label, _, _) in enumerate(plist)}
    bounds = {label: (a, b) for label, a, b in plist}
    cum: dict[tuple[str, str], dict[str, int]] = {}
    table = []
    for r in sorted(rows, key=lambda r: (order[r.period], r.gkey, r.currency)):
        k = (r.gkey, r.currency)
        acc = cum.setdefault(k, {"rn": 0, "rev": 0, "bookings": 0})
        acc["rn"] += int(r.rn)
        acc["rev"] += int(r.rev)
        acc["bookings"] += int(r.bookings)
        a, b = bounds[r.period]
        table.append({"period": r.period, "start": None if a.year == 1900 else a.isoformat(), "end": b.isoformat(),
                      "group": r.gkey, "currency": r.currency, "bookings": int(r.bookings),
                      "room_nights": int(r.rn), "gross_minor": int(r.rev),
                      "cumulative_bookings": acc["bookings"], "cumulative_room_nights": acc["rn"],
                      "cumulative_gross_minor": acc["rev"]})
    out["by"] = q.by or "month"
    out["rows"] = table
    out["totals"] = None
    return out
