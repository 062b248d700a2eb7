"""From derived cells to messages within each OTA's declared limits."""

from __future__ import annotations

from datetime import date, timedelta

from adapters.base.contract import Capabilities
from channelmgr.mapping.derive import ChannelCell
from channelmgr.sync.batching import batches, to_items


def cell(night, rooms=5, rate=None, room="R1", hotel="H1", price=None):
    return ChannelCell("booking", hotel, room, rate, night, "DK", "BAR" if rate else None, rooms_to_sell=rooms,
                       prices=((2, price),) if price else ())


D = date(2027, 1, 29)


def test_equal_consecutive_nights_merge_into_one_range():
    cells = [(cell(D + timedelta(days=i), rooms=5), {i}) for i in range(4)]
    cells.append((cell(D + timedelta(days=4), rooms=4), {4}))
    items = to_items(cells, Capabilities())
    assert [(i.update.start, i.update.end, i.update.rooms_to_sell) for i in items] == [
        (D, D + timedelta(days=3), 5), (D + timedelta(days=4), D + timedelta(days=4), 4)]
    assert items[0].rows == {0, 1, 2, 3} and items[1].rows == {4}


def test_a_gap_or_no_range_support_keeps_nights_apart():
    cells = [(cell(D), {1}), (cell(D + timedelta(days=2)), {2})]
    assert len(to_items(cells, Capabilities())) == 2
    cells = [(cell(D + timedelta(days=i)), {i}) for i in range(3)]
    assert len(to_items(cells, Capabilities(supports_ranges=False))) == 3


def test_one_calendar_month_per_message_splits_ranges_at_month_end():
    cells = [(cell(D + timedelta(days=i)), {i}) for i in range(40)]  # Jan 29 .. Mar 9
    out = batches(to_items(cells, Capabilities()), Capabilities(max_months_per_message=1))
    spans = [(b[0].update.start, b[-1].update.end) for b in out]
    assert spans == [(date(2027, 1, 29), date(2027, 1, 31)), (date(2027, 2, 1), date(2027, 2, 28)),
                     (date(2027, 3, 1), date(2027, 3, 9))]
    assert all(it.rows for b in out for it in b)


def test_items_per_message_and_days_per_message_are_respected():
    cells = [(cell(D + timedelta(days=i), rooms=i), {i}) for i in range(100)]  # 100 distinct values
    out = batches(to_items(cells, Capabilities()), Capabilities(max_items_per_message=40))
    assert [len(b) for b in out] == [40, 40, 20]
    cells = [(cell(D + timedelta(days=i), rooms=1), {i}) for i in range(400)]
    out = batches(to_items(cells, Capabilities()), Capabilities(max_days_per_message=365))
    for b in out:
        assert (max(i.update.end for i in b) - min(i.update.start for i in b)).days + 1 <= 365
    assert sum((i.update.end - i.update.start).days + 1 for b in out for i in b) == 400


def test_one_hotel_per_message():
    cells = [(cell(D, hotel="H1"), {1}), (cell(D, hotel="H2"), {2})]
    out = batches(to_items(cells, Capabilities()), Capabilities(max_hotels_per_message=1))
    assert sorted(b[0].update.hotel for b in out) == ["H1", "H2"]
