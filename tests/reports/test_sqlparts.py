"""The time-zone intervals and periods the report queries join on (issue 14)."""

from __future__ import annotations

from datetime import date, datetime, timezone

from channelmgr.reports.sqlparts import offsets, periods

UTC = timezone.utc


def test_summer_time_changes_to_the_second():
    amsterdam = offsets("Europe/Amsterdam")
    at = {a: o for a, _, o in amsterdam}
    assert at[datetime(2026, 3, 29, 1, 0, tzinfo=UTC)] == 7200  # CEST from 01:00 UTC on the last Sunday of March
    assert at[datetime(2026, 10, 25, 1, 0, tzinfo=UTC)] == 3600
    for (a, b, _), (c, _, _) in zip(amsterdam, amsterdam[1:]):
        assert b == c and a < b  # contiguous, no gap, no overlap
    shanghai = offsets("Asia/Shanghai")
    assert shanghai[-1][2] == 28800 and shanghai[-1][0].year == 1991  # no summer time since 1991


def test_iso_weeks_and_months_are_clipped_to_the_range():
    weeks = periods(date(2026, 12, 30), date(2027, 1, 5), "week")
    # 2026-12-28 (Mon) .. 2027-01-03 (Sun) is ISO week 53 of 2026
    assert weeks == [("2026-W53", date(2026, 12, 30), date(2027, 1, 3)), ("2027-W01", date(2027, 1, 4), date(2027, 1, 5))]
    months = periods(date(2026, 1, 15), date(2026, 3, 2), "month")
    assert [m[0] for m in months] == ["2026-01", "2026-02", "2026-03"]
    assert months[1][1:] == (date(2026, 2, 1), date(2026, 2, 28))
    assert periods(date(2026, 1, 1), date(2026, 1, 3), None) == [("2026-01-01..2026-01-03", date(2026, 1, 1),
                                                                  date(2026, 1, 3))]
