"""SQL pieces the reports share, written once for SQLite and PostgreSQL.

Time zones are not done per row by the database's own zone tables (SQLite has none): the
property's zone is turned, in Python, into the few intervals of UTC time with one offset
each (one interval for Asia/Shanghai; two a year for a zone with summer time), passed as a
VALUES table, and each instant is shifted by the offset of the interval it falls in. The
periods (day, ISO week, month) are a VALUES table too, so the database only compares dates.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Date, DateTime, Integer, String, column, values
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

UTC = timezone.utc
FAR_PAST = datetime(1900, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2300, 1, 1, tzinfo=UTC)


class local_date(FunctionElement):
    """The local calendar date of a UTC instant shifted by an offset in seconds."""

    type = Date()
    inherit_cache = True


@compiles(local_date, "sqlite")
def _ld_sqlite(el, compiler, **kw):
    ts, off = list(el.clauses)
    return f"date({compiler.process(ts, **kw)}, ({compiler.process(off, **kw)}) || ' seconds')"


@compiles(local_date, "postgresql")
def _ld_pg(el, compiler, **kw):
    ts, off = list(el.clauses)
    return (f"CAST(({compiler.process(ts, **kw)} AT TIME ZONE 'UTC') + "
            f"make_interval(secs => {compiler.process(off, **kw)}) AS DATE)")


class local_hour(FunctionElement):
    """The local hour (0-23) of a UTC instant shifted by an offset in seconds."""

    type = Integer()
    inherit_cache = True


@compiles(local_hour, "sqlite")
def _lh_sqlite(el, compiler, **kw):
    ts, off = list(el.clauses)
    return (f"CAST(strftime('%H', {compiler.process(ts, **kw)}, ({compiler.process(off, **kw)}) || ' seconds') "
            "AS INTEGER)")


@compiles(local_hour, "postgresql")
def _lh_pg(el, compiler, **kw):
    ts, off = list(el.clauses)
    return (f"CAST(EXTRACT(HOUR FROM ({compiler.process(ts, **kw)} AT TIME ZONE 'UTC') + "
            f"make_interval(secs => {compiler.process(off, **kw)})) AS INTEGER)")


class days_between(FunctionElement):
    """Whole days from the second date to the first (a - b)."""

    type = Integer()
    inherit_cache = True


@compiles(days_between, "sqlite")
def _db_sqlite(el, compiler, **kw):
    a, b = list(el.clauses)
    return f"CAST(julianday({compiler.process(a, **kw)}) - julianday({compiler.process(b, **kw)}) AS INTEGER)"


@compiles(days_between, "postgresql")
def _db_pg(el, compiler, **kw):
    a, b = list(el.clauses)
    return f"({compiler.process(a, **kw)} - {compiler.process(b, **kw)})"


@lru_cache(maxsize=64)
def offsets(tz: str, first: datetime = FAR_PAST, last: datetime = FAR_FUTURE) -> tuple[tuple[datetime, datetime, int], ...]:
    """[(utc_from, utc_to, offset seconds)] covering first .. last: the zone's offset changes, found
    by stepping a day at a time over the years asked for and bisecting each change to the second.
    Outside 1970 .. 2100 the nearest known offset is used."""
    z = ZoneInfo(tz)
    lo = max(first, datetime(1970, 1, 1, tzinfo=UTC))
    hi = min(last, datetime(2100, 1, 1, tzinfo=UTC))

    def off(t: datetime) -> int:
        return int(t.astimezone(z).utcoffset().total_seconds())

    out: list[tuple[datetime, datetime, int]] = []
    start, cur = FAR_PAST, off(lo)
    t = lo
    step = timedelta(days=1)
    while t < hi:
        nxt = min(t + step, hi)
        if off(nxt) != cur:
            a, b = t, nxt  # the change is in (a, b]
            while (b - a) > timedelta(seconds=1):
                mid = a + (b - a) / 2
                if off(mid) == cur:
                    a = mid
                else:
                    b = mid
            b = b.replace(microsecond=0)
            out.append((start, b, cur))
            start, cur = b, off(b)
        t = nxt
    out.append((start, FAR_FUTURE, cur))
    return tuple(out)


def tz_table(tz: str, first: datetime = FAR_PAST, last: datetime = FAR_FUTURE):
    rows = [(a.replace(tzinfo=None), b.replace(tzinfo=None), o) for a, b, o in offsets(tz, first, last)]
    return values(column("utc_from", DateTime(timezone=True)), column("utc_to", DateTime(timezone=True)),
                  column("off_s", Integer), name="tz").data(rows)


def periods(start: date, end: date, by: str | None) -> list[tuple[str, date, date]]:
    """[(label, first, last)] over start .. end, each clipped to the range. ``week`` is the ISO
    8601 week (Monday to Sunday), labelled like 2026-W49; ``month`` like 2026-12; ``None`` is
    the whole range as one period."""
    if by is None:
        return [(f"{start.isoformat()}..{end.isoformat()}", start, end)]
    out = []
    d = start
    while d <= end:
        if by == "day":
            first, last, label = d, d, d.isoformat()
        elif by == "week":
            monday = d - timedelta(days=d.weekday())
            y, w, _ = monday.isocalendar()
            first, last, label = d, min(end, monday + timedelta(days=6)), f"{y}-W{w:02d}"
        elif by == "month":
            nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
            first, last, label = d, min(end, nxt - timedelta(days=1)), f"{d.year}-{d.month:02d}"
        else:
            raise ValueError(f"by is day, week or month, not {by!r}")
        out.append((label, first, last))
        d = last + timedelta(days=1)
    return out


def period_table(rows: list[tuple[str, date, date]], name: str = "periods"):
    return values(column("label", String), column("p_first", Date), column("p_last", Date),
                  column("p_nights", BigInteger), name=name).data(
        [(label, a, b, (b - a).days + 1) for label, a, b in rows])


__all__ = ["local_date", "local_hour", "days_between", "tz_table", "periods", "period_table",
           "offsets"]
