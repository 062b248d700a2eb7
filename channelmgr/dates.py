"""Dates and time zones, where channel managers break.

- A *night* is the property's local date on which the stay starts; a stay from checkin to
  checkout covers the nights checkin .. checkout - 1.
- The hotel's day does not end at midnight: a guest who books at 02:00 "for tonight" is
  staying the night that began the previous evening. Before 06:00 local time the
  property's *business date* is still the previous date (invariant 5).
- Ranges given by people are inclusive of both ends.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Iterator
from zoneinfo import ZoneInfo

LATE_NIGHT_END = time(6, 0)


def zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def local(at: datetime, tz: str) -> datetime:
    if at.tzinfo is None:
        raise ValueError("a naive datetime has no meaning here; give it a time zone")
    return at.astimezone(zone(tz))


def business_date(at: datetime, tz: str) -> date:
    """The hotel's current date at ``at``: before 06:00 local it is still yesterday."""
    lt = local(at, tz)
    d = lt.date()
    return d - timedelta(days=1) if lt.time() < LATE_NIGHT_END else d


def is_late_night(at: datetime, tz: str) -> bool:
    return local(at, tz).time() < LATE_NIGHT_END


def arrival_night(checkin: date, booked_at: datetime | None, tz: str, *, tonight: bool = False) -> date:
    """The first night of a stay, applying the late-night rule.

    An OTA that marks a booking as "tonight" (凌晨房) and gives the calendar date of the
    booking as check-in, when the booking was made between 00:00 and 06:00, means the night
    that started the previous evening.
    """
    if tonight and booked_at is not None and is_late_night(booked_at, tz):
        if checkin == local(booked_at, tz).date():
            return checkin - timedelta(days=1)
    return checkin


def nights(checkin: date, checkout: date) -> list[date]:
    """The nights of a stay: checkin .. checkout - 1."""
    if checkout <= checkin:
        raise ValueError(f"checkout {checkout} is not after checkin {checkin}")
    return [checkin + timedelta(days=i) for i in range((checkout - checkin).days)]


def days(start: date, end: date) -> Iterator[date]:
    """Every date from start to end, both included."""
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a date like 2026-03-31") from None


def month_spans(start: date, end: date) -> list[tuple[date, date]]:
    """Split an inclusive range at month ends: [(start, end)] per calendar month."""
    spans = []
    d = start
    while d <= end:
        nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        last = min(end, nxt - timedelta(days=1))
        spans.append((d, last))
        d = last + timedelta(days=1)
    return spans
