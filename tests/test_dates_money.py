"""Dates, money and time zones: the edges where channel managers break."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from channelmgr import dates
from channelmgr.money import MoneyError, format_minor, to_minor

SH = "Asia/Shanghai"


def at(s: str, tz: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=ZoneInfo(tz))


def test_late_night_booking_belongs_to_the_previous_date():
    assert dates.business_date(at("2027-03-15 02:30", SH), SH) == date(2027, 3, 14)
    assert dates.business_date(at("2027-03-15 05:59:59", SH), SH) == date(2027, 3, 14)
    assert dates.business_date(at("2027-03-15 06:00", SH), SH) == date(2027, 3, 15)
    # 18:30 UTC is 02:30 the next morning in Shanghai
    assert dates.business_date(datetime(2027, 3, 14, 18, 30, tzinfo=timezone.utc), SH) == date(2027, 3, 14)
    # "tonight" at 02:30 on the 15th, given as the 15th, is the night of the 14th
    assert dates.arrival_night(date(2027, 3, 15), at("2027-03-15 02:30", SH), SH, tonight=True) == date(2027, 3, 14)
    # not marked tonight, or booked in the day: the date stands
    assert dates.arrival_night(date(2027, 3, 15), at("2027-03-15 02:30", SH), SH) == date(2027, 3, 15)
    assert dates.arrival_night(date(2027, 3, 15), at("2027-03-15 14:00", SH), SH, tonight=True) == date(2027, 3, 15)


def test_late_night_across_a_month_and_year_end():
    assert dates.business_date(at("2027-03-01 01:00", SH), SH) == date(2027, 2, 28)
    assert dates.business_date(at("2028-03-01 01:00", SH), SH) == date(2028, 2, 29)
    assert dates.business_date(at("2027-01-01 00:10", SH), SH) == date(2026, 12, 31)


def test_dst_zones_keep_local_dates():
    berlin = "Europe/Berlin"
    # the night the clocks go forward (2027-03-28 02:00 -> 03:00) and back (2027-10-31)
    assert dates.business_date(datetime(2027, 3, 28, 1, 30, tzinfo=timezone.utc), berlin) == date(2027, 3, 27)
    assert dates.business_date(datetime(2027, 3, 28, 4, 30, tzinfo=timezone.utc), berlin) == date(2027, 3, 28)
    assert dates.business_date(datetime(2027, 10, 31, 4, 30, tzinfo=timezone.utc), berlin) == date(2027, 10, 30)
    assert dates.business_date(datetime(2027, 10, 31, 5, 30, tzinfo=timezone.utc), berlin) == date(2027, 10, 31)
    assert len(dates.nights(date(2027, 3, 27), date(2027, 3, 29))) == 2  # a 23-hour day is still one night


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        dates.business_date(datetime(2027, 1, 1, 3), SH)


def test_month_spans_split_at_month_ends():
    assert dates.month_spans(date(2027, 1, 30), date(2027, 3, 2)) == [
        (date(2027, 1, 30), date(2027, 1, 31)), (date(2027, 2, 1), date(2027, 2, 28)),
        (date(2027, 3, 1), date(2027, 3, 2))]
    assert dates.month_spans(date(2027, 12, 31), date(2028, 1, 1)) == [
        (date(2027, 12, 31), date(2027, 12, 31)), (date(2028, 1, 1), date(2028, 1, 1))]


def test_nights_of_a_stay():
    assert dates.nights(date(2028, 2, 28), date(2028, 3, 1)) == [date(2028, 2, 28), date(2028, 2, 29)]
    with pytest.raises(ValueError):
        dates.nights(date(2028, 3, 1), date(2028, 3, 1))


@pytest.mark.parametrize("text, cur, minor", [
    ("123.45", "CNY", 12345), ("0.01", "CNY", 1), ("99999.99", "CNY", 9999999), ("1288", "CNY", 128800),
    ("15000", "JPY", 15000), ("1.234", "KWD", 1234), (Decimal("0.10"), "USD", 10)])
def test_amounts_become_exact_minor_units(text, cur, minor):
    assert to_minor(text, cur) == minor
    assert to_minor(format_minor(minor, cur), cur) == minor


@pytest.mark.parametrize("text, cur", [("12.345", "CNY"), ("1.5", "JPY"), ("abc", "CNY"), ("NaN", "CNY"),
                                       ("1", "XXX")])
def test_impossible_amounts_are_refused(text, cur):
    with pytest.raises(MoneyError):
        to_minor(text, cur)
