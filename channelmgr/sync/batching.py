"""From channel cells to the messages an OTA accepts.

Equal consecutive nights merge into one date range (where the OTA takes ranges); ranges are
split at month ends where the OTA wants one calendar month a message; items are grouped so
no message spans more days or carries more items than the adapter declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Iterable

from adapters.base.contract import AriUpdate, Capabilities, Price
from channelmgr.dates import month_spans
from channelmgr.mapping.derive import ChannelCell


@dataclass
class Item:
    update: AriUpdate
    rows: set[int] = field(default_factory=set)  # outbox row ids this item answers for
    by_night: dict[date, set[int]] = field(default_factory=dict)  # the rows of each night of the range

    @property
    def nights(self) -> int:
        return (self.update.end - self.update.start).days + 1

    def piece(self, start: date, end: date) -> "Item":
        """The same item over start..end, answering only for the rows of those nights."""
        u = replace(self.update, start=start, end=end, key=item_key(self.update.hotel, self.update.room,
                                                                    self.update.rate, start, end))
        if not self.by_night:  # built without nights: every row goes with every piece
            return Item(u, set(self.rows))
        by_night = {d: r for d, r in self.by_night.items() if start <= d <= end}
        return Item(u, set().union(*by_night.values()) if by_night else set(), by_night)


def item_key(hotel: str, room: str, rate: str | None, start: date, end: date) -> str:
    return f"{hotel}|{room}|{rate or '-'}|{start.isoformat()}|{end.isoformat()}"


def probe_nights(item: Item) -> list[date]:
    """The first, middle and last night of a range (fewer when it is shorter)."""
    u = item.update
    return sorted({u.start, u.start + timedelta(days=(item.nights - 1) // 2), u.end})


def _values(c: ChannelCell) -> tuple:
    return (c.rooms_to_sell, c.prices, c.currency, c.min_los, c.max_los, c.cta, c.ctd, c.stop_sell)


def _item(run: list[tuple[ChannelCell, set[int]]]) -> Item:
    """One item for a run of equal consecutive nights of one (hotel, room, rate)."""
    first = run[0][0]
    start, end = first.night, run[-1][0].night
    rows: set[int] = set()
    by_night: dict[date, set[int]] = {}
    for c, r in run:
        rows |= r
        by_night.setdefault(c.night, set()).update(r)
    upd = AriUpdate(
        hotel=first.hotel, room=first.room, rate=first.rate, start=start, end=end,
        rooms_to_sell=first.rooms_to_sell, prices=tuple(Price(o, a) for o, a in first.prices),
        currency=first.currency, min_los=first.min_los, max_los=first.max_los, cta=first.cta,
        ctd=first.ctd, stop_sell=first.stop_sell,
        key=item_key(first.hotel, first.room, first.rate, start, end))
    return Item(upd, rows, by_night)


def to_items(cells: Iterable[tuple[ChannelCell, set[int]]], caps: Capabilities) -> list[Item]:
    """Merge equal consecutive nights into ranges; each item remembers its outbox rows."""
    by_series: dict[tuple[str, str, str | None], list[tuple[ChannelCell, set[int]]]] = {}
    for cell, rows in cells:
        by_series.setdefault((cell.hotel, cell.room, cell.rate), []).append((cell, rows))
    items: list[Item] = []
    for key in sorted(by_series, key=lambda k: (k[0], k[1], k[2] or "")):
        series = sorted(by_series[key], key=lambda cr: cr[0].night)
        run: list[tuple[ChannelCell, set[int]]] = []
        for cell, rows in series:
            if run and (not caps.supports_ranges or cell.night != run[-1][0].night + timedelta(days=1)
                        or _values(cell) != _values(run[-1][0])):
                items.append(_item(run))
                run = []
            run.append((cell, rows))
        if run:
            items.append(_item(run))
    return items


def _split(item: Item, caps: Capabilities) -> list[Item]:
    u = item.update
    pieces = [(u.start, u.end)]
    if caps.max_months_per_message == 1:
        pieces = month_spans(u.start, u.end)
    if caps.max_days_per_message:
        out = []
        for s, e in pieces:
            while (e - s).days + 1 > caps.max_days_per_message:
                cut = s + timedelta(days=caps.max_days_per_message - 1)
                out.append((s, cut))
                s = cut + timedelta(days=1)
            out.append((s, e))
        pieces = out
    if len(pieces) == 1:
        return [item]
    return [item.piece(s, e) for s, e in pieces]


def batches(items: list[Item], caps: Capabilities) -> list[list[Item]]:
    """Group items into messages within the adapter's declared limits."""
    pieces = [p for it in items for p in _split(it, caps)]
    # one hotel a message, one calendar month a message where asked
    groups: dict[tuple, list[Item]] = {}
    for it in pieces:
        u = it.update
        key: tuple = (u.hotel,) if caps.max_hotels_per_message == 1 else ()
        if caps.max_months_per_message == 1:
            key += (u.start.year, u.start.month)
        groups.setdefault(key, []).append(it)
    out: list[list[Item]] = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        group = sorted(groups[key], key=lambda it: (it.update.start, it.update.room, it.update.rate or ""))
        cur: list[Item] = []
        lo: date | None = None
        for it in group:
            u = it.update
            too_many = len(cur) >= caps.max_items_per_message
            too_wide = (caps.max_days_per_message is not None and lo is not None
                        and (max(u.end, max(c.update.end for c in cur)) - min(lo, u.start)).days + 1
                        > caps.max_days_per_message)
            if cur and (too_many or too_wide):
                out.append(cur)
                cur, lo = [], None
            cur.append(it)
            lo = u.start if lo is None else min(lo, u.start)
        if cur:
            out.append(cur)
    return out
