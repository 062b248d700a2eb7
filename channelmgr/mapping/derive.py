"""What each channel should hold, derived from the ledger through the mappings.

One function, used by the push worker, the nightly full sync and `mappings diff`, so what
revenue staff preview is exactly what gets pushed:

- rooms to sell = min(free, cap) - offset, never below 0; a closed channel sells 0
  (DESIGN.md invariant 4);
- a derived plan's price = its parent's price through the plan's steps (recursively), then
  the channel's price rule (currency conversion, markup, amount, rounding), all exact in
  minor units;
- restrictions: the plan's own, else its parent's where ``inherit`` says so; a plan's
  fixed min_los/max_los from the mapping; early-bird plans closed inside their
  ``min_days_in_advance``. A restriction the OTA cannot hold (its adapter's declared
  capabilities) is dropped, except min_los: a night that needs a minimum stay is closed
  (stop-sell) rather than sold for one night, because a long-stay price sold for one night
  loses money. The cell says so in ``notes``, and `mappings diff` shows the notes.
  A restriction the mapping switches off for a channel (``restrictions: {cta: false}``) is
  simply not sent: that is a choice, not a limit, so nothing is emulated;
- floors (channelmgr.mapping.floors): a price under its floor, or zero or below at any
  step, is never sent: the cell keeps its rooms and restrictions, carries no price, and
  says why in ``price_refused`` (and in ``notes``, which `mappings diff` shows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Iterable, Literal

from channelmgr.mapping.floors import Tracer
from channelmgr.mapping.model import PropertyMapping
from channelmgr.mapping.pricing import FLOOR, apply_steps_checked, convert
from channelmgr.mapping.schema import ChannelMapping

RESTRICTIONS = ("min_los", "max_los", "cta", "ctd", "stop_sell")


@dataclass(frozen=True)
class RateNight:
    """The ledger's values for one rate plan and night (None = not set)."""

    prices: dict[int, int] = field(default_factory=dict)  # occupancy -> minor units
    currency: str | None = None
    min_los: int | None = None
    max_los: int | None = None
    cta: bool | None = None
    ctd: bool | None = None
    stop_sell: bool | None = None


_NO_RATES = RateNight()  # a night with nothing set (frozen, so one is shared)


@dataclass(frozen=True)
class Snapshot:
    """The ledger for one property over some nights, by local codes."""

    property: str
    free: dict[tuple[str, date], int]  # (room type, night) -> free rooms
    rates: dict[tuple[str, date], RateNight]  # (rate plan, night) -> values


@dataclass(frozen=True)
class ChannelCell:
    """What one channel should hold for one room (and rate) on one night, in its codes."""

    channel: str
    hotel: str
    room: str
    rate: str | None
    night: date
    room_type: str  # local codes, for people reading a diff
    rate_plan: str | None
    rooms_to_sell: int | None = None
    prices: tuple[tuple[int, int], ...] = ()
    currency: str | None = None
    min_los: int | None = None
    max_los: int | None = None
    cta: bool | None = None
    ctd: bool | None = None
    stop_sell: bool | None = None
    notes: tuple[str, ...] = ()
    # why this cell's price is held back (under the floor, or zero or below): then ``prices``
    # is empty and no price is sent, while rooms and restrictions still are. None: not refused.
    price_refused: str | None = None

    @property
    def key(self) -> tuple[str, str, str | None, date]:
        return (self.hotel, self.room, self.rate, self.night)

    def values(self) -> dict[str, object]:
        return {"rooms_to_sell": self.rooms_to_sell, "prices": dict(self.prices), "currency": self.currency,
                **{r: getattr(self, r) for r in RESTRICTIONS}}


def rooms_to_sell(free: int, ch: ChannelMapping) -> int:
    rule = ch.availability
    if rule.closed:
        return 0
    cap = free if rule.cap is None else min(free, rule.cap)
    return max(0, cap - rule.offset)


def plan_price_checked(pm: PropertyMapping, snap: Snapshot, rate_plan: str, night: date,
                       occupancy: int) -> tuple[int | None, bool]:
    """(the hotel's price for a plan, night and occupancy with derived plans resolved,
    whether a step hit the one-minor-unit floor on the way)."""
    plan = pm.rate_plans[rate_plan]
    if plan.derived_from:
        parent, floored = plan_price_checked(pm, snap, plan.derived_from, night, occupancy)
        if parent is None:
            return None, floored
        value, here = apply_steps_checked(parent, [s.step() for s in plan.steps], pm.currency)
        return value, floored or here
    rn = snap.rates.get((rate_plan, night))
    if rn is None or not rn.prices:
        return None, False
    if occupancy in rn.prices:
        return rn.prices[occupancy], False
    # no price for this many guests: the price of the plan's own occupancy stands
    return rn.prices.get(plan.occupancy, rn.prices[max(rn.prices)]), False


def plan_price(pm: PropertyMapping, snap: Snapshot, rate_plan: str, night: date, occupancy: int) -> int | None:
    """The hotel's price for a plan, night and occupancy, derived plans resolved."""
    return plan_price_checked(pm, snap, rate_plan, night, occupancy)[0]


def plan_restrictions(pm: PropertyMapping, snap: Snapshot, rate_plan: str, night: date,
                      today: date) -> dict[str, object]:
    plan = pm.rate_plans[rate_plan]
    rn = snap.rates.get((rate_plan, night)) or _NO_RATES
    out: dict[str, object] = {"min_los": rn.min_los, "max_los": rn.max_los, "cta": rn.cta, "ctd": rn.ctd,
                              "stop_sell": rn.stop_sell}  # RESTRICTIONS, spelt out (once per cell)
    if plan.derived_from:
        parent = plan_restrictions(pm, snap, plan.derived_from, night, today)
        for r in RESTRICTIONS:
            if out[r] is None and getattr(plan.inherit, r):
                out[r] = parent[r]
    if plan.min_los is not None:
        out["min_los"] = max(plan.min_los, out["min_los"] or 1)
    if plan.max_los is not None:
        out["max_los"] = min(plan.max_los, out["max_los"]) if out["max_los"] else plan.max_los
    if plan.min_days_in_advance and night < today + timedelta(days=plan.min_days_in_advance):
        out["stop_sell"] = True
    return out


def channel_price_checked(minor: int, pm: PropertyMapping, ch: ChannelMapping) -> tuple[int, str, bool]:
    """The channel's price from the hotel's (see PriceRule for the order), its currency, and
    whether the one-minor-unit floor was hit."""
    rule = ch.price
    currency = rule.currency or pm.currency
    value = convert(minor, pm.currency, currency, rule.rate if rule.rate is not None else Decimal(1),
                    rule.markup_percent)
    floored = value < FLOOR
    value, more = apply_steps_checked(value, rule.steps_after_conversion(), currency)
    return value, currency, floored or more


def channel_price(minor: int, pm: PropertyMapping, ch: ChannelMapping) -> tuple[int, str]:
    value, currency, _ = channel_price_checked(minor, pm, ch)
    return value, currency


def derive(pm: PropertyMapping, channel: str, snap: Snapshot,
           keys: Iterable[tuple[Literal["rooms", "rate"], str, str | None, date]], *,
           today: date, supported: frozenset[str],
           inventory_level: Literal["room", "rate"] = "room") -> list[ChannelCell]:
    """Channel cells for local (kind, room type, rate plan, night) keys.

    ``supported`` = restrictions the OTA can hold; the mapping may switch more off.
    With rate-level inventory a room change reaches every mapped rate of that room.
    Keys the channel does not map yield nothing.
    """
    ch = pm.channel(channel)
    if ch is None:
        return []
    wanted_restrictions = ch.restrictions.enabled()
    allowed = supported & wanted_restrictions
    wanted: dict[tuple[str | None, str, date], None] = {}
    for kind, room_type, rate_plan, night in keys:
        if room_type not in ch.rooms:
            continue
        if kind == "rooms":
            if inventory_level == "room":
                wanted[(None, room_type, night)] = None
            else:
                for code, plan in pm.rate_plans.items():
                    if plan.room_type == room_type and code in ch.rates:
                        wanted[(code, room_type, night)] = None
        elif rate_plan is not None and rate_plan in ch.rates and rate_plan in pm.rate_plans:
            wanted[(rate_plan, room_type, night)] = None
    out: list[ChannelCell] = []
    tracer = Tracer(pm)
    # what depends on the rate plan alone, worked out once per plan, not once per night
    # (issue 13: the read-backs' and full syncs' derivations are most of an idle daemon's CPU)
    min_los_emulated = "min_los" in wanted_restrictions and "min_los" not in supported
    not_held = [name for name in RESTRICTIONS if name not in allowed]
    per_plan: dict[str, tuple] = {}
    # one dataclass built per cell (issue 13: building a base cell and replacing its fields
    # was a third of a full sync's derivation)
    for rate_plan, room_type, night in wanted:
        free = snap.free.get((room_type, night))
        sell = rooms_to_sell(free, ch) if free is not None else None
        if rate_plan is None:
            out.append(ChannelCell(channel, ch.hotel_id, ch.rooms[room_type], None, night, room_type, None,
                                   rooms_to_sell=sell))
            continue
        pp = per_plan.get(rate_plan)
        if pp is None:
            plan = pm.rate_plans[rate_plan]
            pp = per_plan[rate_plan] = (tuple(sorted(ch.occupancies or (plan.occupancy,))), ch.rates[rate_plan])
        occs, rate_code = pp
        notes: list[str] = []
        prices = []
        currency = None
        refused: str | None = None
        for occ in occs:
            tp = tracer.channel(snap, channel, rate_plan, night, occ)
            if tp.refused is not None:
                refused = tp.refused.message
                break
            if tp.value is not None:
                prices.append((occ, tp.value))
                currency = tp.currency
        if refused is not None:
            # never a price under the floor: none at all for this cell (the OTA keeps the last one)
            prices, currency = [], None
            notes.append(f"price held back: {refused}")
        r = plan_restrictions(pm, snap, rate_plan, night, today)
        if min_los_emulated and (r["min_los"] or 1) > 1:
            if "stop_sell" in allowed:
                notes.append(f"min_los {r['min_los']} emulated by stop-sell ({channel} has no minimum stay)")
                r["stop_sell"] = True
            else:
                notes.append(f"min_los {r['min_los']} not sent: {channel} cannot hold it")
        close_by_rooms = False
        for name in not_held:
            if r[name] and name != "min_los" and name in wanted_restrictions:
                if name == "stop_sell" and inventory_level == "rate":
                    notes.append(f"stop-sell emulated by 0 rooms ({channel} has no stop-sell)")
                    close_by_rooms = True
                else:
                    notes.append(f"{name} not sent: {channel} cannot hold it")
            r[name] = None
        out.append(ChannelCell(
            channel, ch.hotel_id, ch.rooms[room_type], rate_code, night, room_type, rate_plan,
            (0 if close_by_rooms else sell) if inventory_level == "rate" else None,
            tuple(prices), currency, r["min_los"], r["max_los"], r["cta"], r["ctd"], r["stop_sell"],
            tuple(notes), refused))
    return out


def all_keys(pm: PropertyMapping, channel: str, nights: Iterable[date]):
    """Every local key a channel maps, over the given nights (for full syncs and diffs)."""
    ch = pm.channel(channel)
    if ch is None:
        return []
    nights = list(nights)
    keys = []
    for rt in ch.rooms:
        keys.extend(("rooms", rt, None, n) for n in nights)
    for rp in ch.rates:
        plan = pm.rate_plans.get(rp)
        if plan is not None:
            keys.extend(("rate", plan.room_type, rp, n) for n in nights)
    return keys
