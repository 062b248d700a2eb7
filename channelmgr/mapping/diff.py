"""What a mapping edit would change on each channel, cell by cell, before anything is pushed.

Both sides are computed by `derive()`, the same function the push worker uses, over the
same ledger snapshot: the only difference between "old" and "new" is the mapping, so
what the diff shows is exactly the edit's effect and nothing else. The hot reloader
enqueues exactly these cells; revenue staff see them with `channelmgr mappings diff`.

A cell that disappears (a code unmapped, a channel closed down in the file) is shown but
never pushed: the OTA keeps what it last received until someone closes it there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Awaitable, Callable, Literal

from channelmgr import dates, yamlfile
from channelmgr.mapping.derive import (
    RESTRICTIONS,
    ChannelCell,
    Snapshot,
    all_keys,
    derive,
)
from channelmgr.mapping.floors import Finding, ledger_findings
from channelmgr.mapping.model import MappingSet, PropertyMapping
from channelmgr.money import format_minor
from channelmgr.yamlfile import Problem, YamlFileError

SnapshotFor = Callable[[str, date, date], Awaitable[Snapshot | None]]
TodayFor = Callable[[str], date]
CapabilitiesFor = Callable[[str], Any]
LocalKey = tuple[str, str, str | None, date]


@dataclass(frozen=True)
class FieldChange:
    field: str  # rooms_to_sell | price | price(N) | currency | min_los | max_los | cta | ctd | stop_sell
    old: Any
    new: Any


@dataclass(frozen=True)
class CellChange:
    property: str
    channel: str
    old: ChannelCell | None  # None: the cell is new on this channel
    new: ChannelCell | None  # None: the cell is no longer sent
    fields: tuple[FieldChange, ...]

    @property
    def cell(self) -> ChannelCell:
        return self.new or self.old  # type: ignore[return-value]

    @property
    def status(self) -> Literal["changed", "new", "gone"]:
        return "new" if self.old is None else "gone" if self.new is None else "changed"

    @property
    def key(self) -> LocalKey:
        """The ledger's key for this cell (what enqueue_cells takes)."""
        c = self.cell
        return ("rooms" if c.rate_plan is None else "rate", c.room_type, c.rate_plan, c.night)


@dataclass
class ChannelDiff:
    property: str
    channel: str
    hotel: str
    listing: Literal["same", "added", "removed"] = "same"
    changes: list[CellChange] = field(default_factory=list)

    def push_keys(self) -> list[LocalKey]:
        """Cells to push: changed and new ones (a cell no longer sent cannot be pushed)."""
        return sorted({c.key for c in self.changes if c.new is not None},
                      key=lambda k: (k[0], k[1], k[2] or "", k[3]))

    def notes(self) -> list[tuple[str, int]]:
        """Distinct notes on the changed cells, with how many cells carry each."""
        counts: dict[str, int] = {}
        for c in self.changes:
            for n in (c.new.notes if c.new else ()):
                counts[n] = counts.get(n, 0) + 1
        return sorted(counts.items())


@dataclass
class PropertyDiff:
    property: str
    start: date
    end: date
    catalog: list[str] = field(default_factory=list)  # what changes in the catalog, in words
    channels: list[ChannelDiff] = field(default_factory=list)

    @property
    def catalog_changed(self) -> bool:
        return bool(self.catalog)


@dataclass
class MappingDiff:
    days: int
    properties: list[PropertyDiff] = field(default_factory=list)

    def cells_changed(self) -> int:
        return sum(len(c.changes) for p in self.properties for c in p.channels)

    def channel(self, property_code: str, channel: str) -> ChannelDiff | None:
        for p in self.properties:
            if p.property == property_code:
                for c in p.channels:
                    if c.channel == channel:
                        return c
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "cells_changed": self.cells_changed(),
            "properties": [{
                "property": p.property, "from": p.start.isoformat(), "to": p.end.isoformat(),
                "catalog": p.catalog,
                "channels": [{
                    "channel": c.channel, "hotel": c.hotel, "listing": c.listing, "cells_changed": len(c.changes),
                    "notes": [{"note": n, "cells": k} for n, k in c.notes()],
                    "changes": [_change_json(ch) for ch in c.changes],
                } for c in p.channels],
            } for p in self.properties],
        }


def _change_json(ch: CellChange) -> dict[str, Any]:
    c = ch.cell
    return {"status": ch.status, "room": c.room, "room_type": c.room_type, "rate": c.rate,
            "rate_plan": c.rate_plan, "date": c.night.isoformat(),
            "currency": (ch.new or ch.old).currency,  # type: ignore[union-attr]
            "fields": [{"field": f.field, "old": f.old, "new": f.new} for f in ch.fields],
            "notes": list(ch.new.notes) if ch.new else []}


# ---- computing it ----------------------------------------------------------------


def _fields(c: ChannelCell | None) -> dict[str, Any]:
    if c is None:
        return {}
    out: dict[str, Any] = {}
    if c.rate_plan is None or c.rooms_to_sell is not None:
        out["rooms_to_sell"] = c.rooms_to_sell
    if c.rate_plan is not None:
        single = len(c.prices) == 1
        for occ, amount in c.prices:
            out["price" if single else f"price({occ})"] = amount
        for r in RESTRICTIONS:
            out[r] = getattr(c, r)
    return out


def compare_cells(old: ChannelCell | None, new: ChannelCell | None) -> tuple[FieldChange, ...]:
    a, b = _fields(old), _fields(new)
    if old is not None and new is not None and old.currency != new.currency and old.prices and new.prices:
        # another currency: every price changes, even where the digits happen to match
        return tuple(FieldChange(k, a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b])
                     if k.startswith("price") or a.get(k) != b.get(k))
    names = list(dict.fromkeys([*a, *b]))
    if old is None or new is None:
        return tuple(FieldChange(k, a.get(k), b.get(k)) for k in names if a.get(k, b.get(k)) is not None)
    return tuple(FieldChange(k, a.get(k), b.get(k)) for k in names if a.get(k) != b.get(k))


def catalog_changes(old: PropertyMapping | None, new: PropertyMapping | None) -> list[str]:
    """The catalog part of an edit (what sync_catalog will write), in words."""
    if old is None and new is None:
        return []
    if old is None:
        return [f"new property {new.code}"]  # type: ignore[union-attr]
    if new is None:
        return [f"property {old.code} is no longer in the mappings"]
    out = []
    a, b = old.spec(), new.spec()
    for f in ("name", "timezone", "currency"):
        if getattr(a, f) != getattr(b, f):
            out.append(f"property {f}: {getattr(a, f)} -> {getattr(b, f)}")
    rta, rtb = {r.code: r for r in a.room_types}, {r.code: r for r in b.room_types}
    for code in sorted(set(rta) | set(rtb)):
        x, y = rta.get(code), rtb.get(code)
        if x is None:
            out.append(f"new room type {code} ({y.physical_rooms} rooms)")  # type: ignore[union-attr]
        elif y is None:
            out.append(f"room type {code} removed")
        else:
            if x.physical_rooms != y.physical_rooms:
                out.append(f"room type {code}: physical rooms {x.physical_rooms} -> {y.physical_rooms}")
            if x.name != y.name:
                out.append(f"room type {code}: name changed")
    rpa, rpb = {r.code: r for r in a.rate_plans}, {r.code: r for r in b.rate_plans}
    for code in sorted(set(rpa) | set(rpb)):
        x, y = rpa.get(code), rpb.get(code)
        if x is None:
            out.append(f"new rate plan {code}")
        elif y is None:
            out.append(f"rate plan {code} removed")
        elif x != y:
            what = [f for f in ("name", "room_type", "occupancy", "meal_plan", "parent")
                    if getattr(x, f) != getattr(y, f)]
            out.append(f"rate plan {code}: {', '.join(what)} changed")
    if a.channels != b.channels:
        out.append(f"listed on: {', '.join(a.channels) or 'none'} -> {', '.join(b.channels) or 'none'}")
    return out


def _snapshot_for_new(snap: Snapshot | None, old: PropertyMapping | None, new: PropertyMapping,
                      nights: list[date]) -> Snapshot:
    """The ledger as it will be once the new catalog is synced: a room type's physical rooms
    from the new file (nights with no rooms set by hand use them), new room types fully free."""
    free = dict(snap.free) if snap is not None else {}
    for code, rt in new.room_types.items():
        before = old.room_types.get(code) if old is not None else None
        for n in nights:
            if (code, n) not in free or before is None:
                free[(code, n)] = rt.physical_rooms
            elif before.physical_rooms != rt.physical_rooms:
                free[(code, n)] += rt.physical_rooms - before.physical_rooms
    return Snapshot(new.code, free, dict(snap.rates) if snap is not None else {})


def _empty_snapshot(pm: PropertyMapping, nights: list[date]) -> Snapshot:
    return Snapshot(pm.code, {(code, n): rt.physical_rooms for code, rt in pm.room_types.items() for n in nights},
                    {})


def _cells(pm: PropertyMapping | None, channel: str, snap: Snapshot, nights: list[date], today: date,
           caps: Any) -> dict[tuple, ChannelCell]:
    if pm is None or pm.channel(channel) is None:
        return {}
    cells = derive(pm, channel, snap, all_keys(pm, channel, nights), today=today, supported=caps.restrictions,
                   inventory_level=caps.inventory_level)
    return {c.key: c for c in cells}


async def diff_mappings(old: MappingSet | None, new: MappingSet, snapshot_for: SnapshotFor, today_for: TodayFor,
                        days: int, capabilities_for: CapabilitiesFor) -> MappingDiff:
    """Per property and channel, the cells whose values change over the next ``days`` nights
    (from each property's business date), old value -> new value."""
    if days < 1:
        raise ValueError("a diff covers at least 1 night")
    result = MappingDiff(days)
    codes = sorted(set(new.properties) | set(old.properties if old else ()))
    for code in codes:
        opm = old.get(code) if old else None
        npm = new.get(code)
        tz = (npm or opm).timezone  # type: ignore[union-attr]
        today = today_for(tz)
        nights = [today + timedelta(days=i) for i in range(days)]
        pd = PropertyDiff(code, nights[0], nights[-1], catalog_changes(opm, npm))
        channels = sorted(set(opm.channels() if opm else ()) | set(npm.channels() if npm else ()))
        snaps: tuple[Snapshot | None, Snapshot | None] | None = None
        for name in channels:
            caps = capabilities_for(name)
            if caps is None:
                continue
            och = opm.channel(name) if opm else None
            nch = npm.channel(name) if npm else None
            cd = ChannelDiff(code, name, (nch or och).hotel_id,  # type: ignore[union-attr]
                             "added" if och is None else "removed" if nch is None else "same")
            pd.channels.append(cd)
            if _same_inputs(opm, npm, name):
                continue  # nothing this channel's cells are made from has changed
            if snaps is None:
                snap = await snapshot_for(code, nights[0], nights[-1])
                snaps = (snap if snap is not None else (_empty_snapshot(opm, nights) if opm else None),
                         _snapshot_for_new(snap if opm else None, opm, npm, nights) if npm else None)
            before = _cells(opm, name, snaps[0], nights, today, caps) if snaps[0] is not None else {}
            after = _cells(npm, name, snaps[1], nights, today, caps) if snaps[1] is not None else {}
            for key in sorted(set(before) | set(after), key=lambda k: (k[0], k[1], k[2] or "", k[3])):
                a, b = before.get(key), after.get(key)
                fields = compare_cells(a, b)
                if fields or (a is None) != (b is None):
                    cd.changes.append(CellChange(code, name, a, b, fields))
            await asyncio.sleep(0)  # a long diff must not hold up the daemon's other work
        result.properties.append(pd)
    return result


def _same_inputs(old: PropertyMapping | None, new: PropertyMapping | None, channel: str) -> bool:
    """Whether everything one channel's cells are derived from is unchanged."""
    if old is None or new is None:
        return False
    a, b = old.file, new.file
    return (a.property == b.property and a.room_types == b.room_types and a.rate_plans == b.rate_plans
            and old.channel(channel) == new.channel(channel))


def ledger_snapshots(ledger: Any) -> SnapshotFor:
    """snapshot_for over a Ledger: a property the ledger does not know yet has no snapshot."""
    from channelmgr.ledger.types import LedgerError

    async def snapshot_for(code: str, start: date, end: date) -> Snapshot | None:
        try:
            return await ledger.snapshot(code, start, end)
        except LedgerError:
            return None

    return snapshot_for


def today_in(timezone: str) -> date:
    """The property's business date now (before 06:00 local it is still yesterday)."""
    return dates.business_date(dates.utcnow(), timezone)


# ---- showing it ------------------------------------------------------------------


def _value(name: str, v: Any, currency: str | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if name.startswith("price") and currency:
        return format_minor(v, currency)
    return str(v)


def change_line(ch: CellChange, f: FieldChange) -> str:
    """`booking 284673103 (DK) 11890025 (EB-DK) 2026-12-01 price 765.00 -> 748.00 CNY`"""
    c = ch.cell
    rate = f"{c.rate} ({c.rate_plan})" if c.rate is not None else "-"
    head = f"{ch.channel} {c.room} ({c.room_type}) {rate} {c.night.isoformat()} {f.field}"
    oc = ch.old.currency if ch.old else None
    nc = ch.new.currency if ch.new else None
    if ch.status == "new":
        body = f"(not sent before) -> {_value(f.field, f.new, nc)}"
    elif ch.status == "gone":
        body = f"{_value(f.field, f.old, oc)} -> (no longer sent)"
    else:
        body = f"{_value(f.field, f.old, oc)} -> {_value(f.field, f.new, nc)}"
    if f.field.startswith("price"):
        if ch.status == "changed" and oc != nc:
            body = f"{_value(f.field, f.old, oc)} {oc} -> {_value(f.field, f.new, nc)} {nc}"
        else:
            body += f" {nc or oc}"
    return f"{head} {body}"


def _samples(changes: list[CellChange], limit: int) -> list[tuple[CellChange, FieldChange]]:
    """Up to ``limit`` lines, taken in turn from each room/rate/field group, so a diff that
    touches several plans shows each of them, not 10 nights of the first one."""
    groups: dict[tuple, list[tuple[CellChange, FieldChange]]] = {}
    for ch in changes:
        fields = ch.fields or (FieldChange("cell", None, None),)
        for f in fields:
            groups.setdefault((ch.cell.room_type, ch.cell.rate_plan or "", f.field, ch.status), []).append((ch, f))
    out: list[tuple[CellChange, FieldChange]] = []
    i = 0
    while len(out) < limit and any(i < len(g) for g in groups.values()):
        for g in groups.values():
            if i < len(g) and len(out) < limit:
                out.append(g[i])
        i += 1
    return sorted(out, key=lambda x: (x[0].cell.room_type, x[0].cell.rate_plan or "", x[0].cell.night, x[1].field))


def format_diff(diff: MappingDiff, *, samples: int = 10) -> str:
    lines: list[str] = []
    for p in diff.properties:
        lines.append(f"{p.property}: the next {diff.days} night{'s' if diff.days != 1 else ''} "
                     f"({p.start.isoformat()} .. {p.end.isoformat()})")
        for what in p.catalog:
            lines.append(f"  catalog: {what} (every channel the property is listed on is re-sent in full)")
        for cd in p.channels:
            head = f"  {cd.channel} (hotel {cd.hotel})"
            if cd.listing == "added":
                head += ", newly listed"
            elif cd.listing == "removed":
                head += ", no longer listed"
            n = len(cd.changes)
            if not n:
                lines.append(f"{head}: no change")
                continue
            gone = sum(1 for c in cd.changes if c.status == "gone")
            lines.append(f"{head}: {n} cell{'s' if n != 1 else ''} change"
                         + (f" ({gone} no longer sent)" if gone else ""))
            for ch, f in _samples(cd.changes, samples):
                lines.append(f"    {change_line(ch, f)}" if f.field != "cell" else
                             f"    {ch.channel} {ch.cell.room} ({ch.cell.room_type}) {ch.cell.night} {ch.status}")
            shown = len(_samples(cd.changes, samples))
            total_lines = sum(max(1, len(c.fields)) for c in cd.changes)
            if total_lines > shown:
                lines.append(f"    ... and {total_lines - shown} more line{'s' if total_lines - shown != 1 else ''}")
            for note, k in cd.notes():
                lines.append(f"    note ({k} cell{'s' if k != 1 else ''}): {note}")
            if gone:
                lines.append(f"    note: {cd.channel} keeps what it last received for cells no longer sent; "
                             "close them in its extranet if they should not sell")
    total = diff.cells_changed()
    chans = sum(1 for p in diff.properties for c in p.channels if c.changes)
    if total:
        lines.append(f"{total} cell{'s' if total != 1 else ''} would change on {chans} "
                     f"channel{'s' if chans != 1 else ''}; nothing has been pushed.")
    else:
        lines.append(f"no channel would change over the next {diff.days} night{'s' if diff.days != 1 else ''}; "
                     "nothing has been pushed.")
    return "\n".join(lines)




# ---- floors against the ledger -----------------------------------------------------


@dataclass
class FloorCheck:
    """What the ledger's prices say of an edit's price rules (channelmgr.mapping.floors):
    problems refuse the edit (in the daemon; `diff` says it would), warnings do not."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def floor_check(old: MappingSet | None, new: MappingSet, snapshot_for: SnapshotFor, today_for: TodayFor,
                      days: int, capabilities_for: CapabilitiesFor,
                      enabled: Callable[[str], bool] = lambda channel: True) -> FloorCheck:
    """Every price the edited mapping would send over the next ``days`` nights, from the
    ledger's prices: one it holds back under its floor (that the mapping in force did not)
    is a problem at the rule that takes it there; a cut of more than half is a warning."""
    out = FloorCheck()
    for code, pm in sorted(new.properties.items()):
        opm = old.get(code) if old else None
        today = today_for(pm.timezone)
        nights = [today + timedelta(days=i) for i in range(days)]
        snap = await snapshot_for(code, nights[0], nights[-1])
        if snap is None or not snap.rates:
            continue  # no prices in the ledger yet: only the static checks can be made
        channels = [c for c in sorted(pm.channels()) if enabled(c) and capabilities_for(c) is not None]
        refused, warnings = await asyncio.to_thread(ledger_findings, pm, opm, snap, nights, channels)
        if not refused and not warnings:
            continue
        text = new.files.get(Path(pm.source).name)
        try:
            tree = yamlfile.load(pm.source, text)
        except YamlFileError:
            tree = None

        def problem(f: Finding, prefix: str = "", tree: Any = tree, source: str = pm.source) -> Problem:
            line, col = yamlfile.position(tree, f.loc) if tree is not None else (1, 1)
            return Problem(source, line, col, prefix + f.message)

        for f, n in refused:
            more = f" ({n} prices over the next {days} nights)" if n > 1 else ""
            out.problems.append(problem(Finding(f.loc, f"{f.message}{more}; such a price is never sent")))
        out.warnings.extend(problem(w, "warning: ") for w in warnings)
    out.problems.sort(key=lambda p: (p.file, p.line, p.col))
    out.warnings.sort(key=lambda p: (p.file, p.line, p.col))
    return out
