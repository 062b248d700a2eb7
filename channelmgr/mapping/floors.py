"""Price floors: no price under a hotel's floor is ever sent, and a rule that can take a
price there is refused before it goes into force.

The floor of a rate plan's price (in the hotel's currency, minor units):

- the plan's own ``min_price`` when it has one, else the property's ``min_price``;
- with neither, 1% of the parent's price that night for a derived plan (a step chain that
  leaves less than 1% of the price is a mistake, never a discount), and one minor unit for
  a plan whose price is set by hand (``ari set``);
- a price is never zero or below, whatever the floor.

A channel's price rule is held to the same floor, converted to the channel's currency at
the rule's ``rate`` (without the markup); with no ``min_price``, 1% of the plan's price.

Every price is traced stage by stage (each step of a derived plan, then the channel rule:
conversion and markup, amount, round, ending). A price that ends under its floor, or goes
to zero or below at any stage (a later ``round`` or ``ending`` would hide it), is refused
and the stage at fault is named, so a message can point at the line in the file.

Two kinds of check use this:

- static (``static_findings``, run by `mappings check` and every load, no ledger): from the
  lowest price a plan can have (its ``min_price``, else the property's; a derived plan: its
  parent's lowest through its steps), a rule that reaches zero or below is refused; a
  chain of percentages that leaves less than 1% is refused where no ``min_price`` applies;
  a rule that can cut a price by more than half is a warning; a fixed amount taken off
  where no ``min_price`` says how low the parent can go is a warning (only the ledger
  can tell).
- against the ledger (``ledger_findings``, run by `mappings diff` and the hot reload): the
  ledger's prices over the nights compared, through the edited mapping; a price the edit
  newly holds back under its floor refuses the edit; a price cut by more than half is a
  warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any, Callable, Iterable

from channelmgr.mapping.pricing import Step, apply_step, convert, half_up
from channelmgr.money import format_minor, to_minor

Loc = tuple  # a path into the file's tree, for yamlfile.position


@dataclass(frozen=True)
class Finding:
    """A refusal or a warning, with the place in the file it is about."""

    loc: Loc
    message: str
    key: bool = False  # point at the key, not its value


@dataclass(frozen=True)
class Priced:
    """A traced price: its value (None: no price in the ledger), why it is refused, if it
    is, and where a step cuts more than half of it."""

    value: int | None
    refused: Finding | None = None
    cuts: tuple[Finding, ...] = ()
    currency: str | None = None


@dataclass(frozen=True)
class _Stage:
    apply: Callable[[int], int]
    loc: Loc
    what: str  # 'amount: -900' as written


def _fmt(minor: int, currency: str) -> str:
    return f"{format_minor(minor, currency)} {currency}"


def explicit_floor(prop: Any, plan: Any) -> tuple[int | None, Loc | None, str]:
    """(the min_price that applies to a plan, in the hotel's minor units; where it is written;
    its name in a sentence). Nothing written: (None, None, default description)."""
    if plan is not None and plan.min_price is not None:
        return to_minor(plan.min_price, prop.currency), ("rate_plans", None, "min_price"), \
            f"rate plan {plan.code}'s min_price"
    if prop.min_price is not None:
        return to_minor(prop.min_price, prop.currency), ("property", "min_price"), "the hotel's min_price"
    return None, None, "1% of the parent's price, the floor where no min_price is set"


def default_floor(parent: int) -> int:
    """1% of the parent's price, half up, at least one minor unit."""
    return max(1, half_up(Fraction(parent, 100)))


def _run(start: int, stages: list[_Stage], floor: int) -> tuple[int, int | None, bool]:
    """(final value, index of the stage at fault or None, whether it went to zero or below)."""
    v = start
    under: int | None = None
    for i, st in enumerate(stages):
        v = st.apply(v)
        if v <= 0:
            return v, i, True
        if v < floor:
            under = i if under is None else under
        else:
            under = None
    return v, (under if v < floor else None), False


def _first_halving(start: int, stages: list[_Stage], reference: int | None = None) -> int | None:
    """The stage from which the price stays under half of ``reference`` (default: ``start``)."""
    ref = start if reference is None else reference
    v, at = start, None
    for i, st in enumerate(stages):
        v = st.apply(v)
        if v <= 0:  # nothing after this is a price (a later round or ending would hide it)
            return i if at is None else at
        if 2 * v < ref:
            at = i if at is None else at
        else:
            at = None
    return at


def _plan_stages(plan: Any, index: int, currency: str) -> list[_Stage]:
    out = []
    for j, ps in enumerate(plan.steps):
        s: Step = ps.step()
        written = ps.ending if s.kind == "ending" else s.value
        out.append(_Stage(lambda v, s=s: apply_step(v, s, currency), ("rate_plans", index, "steps", j, s.kind),
                          f"{s.kind}: {written}"))
    return out


def _channel_stages(name: str, ch: Any, hotel_currency: str) -> tuple[list[_Stage], str, Decimal]:
    rule = ch.price
    currency = rule.currency or hotel_currency
    rate = rule.rate if rule.rate is not None else Decimal(1)
    base = ("channels", name, "price")
    first_loc = base + (("markup_percent",) if rule.markup_percent else ("rate",) if rule.rate is not None else ())
    stages = [_Stage(lambda v: convert(v, hotel_currency, currency, rate, rule.markup_percent), first_loc,
                     f"markup_percent: {rule.markup_percent}" if rule.markup_percent else f"rate: {rate}")]
    for s in rule.steps_after_conversion():
        written = rule.ending if s.kind == "ending" else s.value
        stages.append(_Stage(lambda v, s=s: apply_step(v, s, currency), base + (s.kind,), f"{s.kind}: {written}"))
    return stages, currency, rate


def _index(pm: Any) -> dict[str, int]:
    return {rp.code: i for i, rp in enumerate(pm.file.rate_plans)}


def _fix_loc(loc: Loc | None, index: int) -> Loc | None:
    if loc is not None and loc[:2] == ("rate_plans", None):
        return ("rate_plans", index) + loc[2:]
    return loc


# ---- a price, traced -------------------------------------------------------------


class Tracer:
    """Prices of one property, traced through plans and channel rules, with refusals."""

    def __init__(self, pm: Any):
        self.pm = pm
        self.prop = pm.file.property
        self.index = _index(pm)
        self._plans: dict[tuple[str, date, int], Priced] = {}
        self._stages: dict[str, tuple[list[_Stage], str, Decimal]] = {}
        self._channel_math: dict[tuple, tuple] = {}
        self._plan_math: dict[tuple, tuple] = {}
        self._floor_of: dict[str, tuple] = {}

    def plan(self, snap: Any, code: str, night: date, occupancy: int) -> Priced:
        key = (code, night, occupancy)
        hit = self._plans.get(key)
        if hit is None:
            hit = self._plans[key] = self._plan(snap, code, night, occupancy)
        return hit

    def _plan(self, snap: Any, code: str, night: date, occupancy: int) -> Priced:
        pm, cur = self.pm, self.prop.currency
        plan = pm.rate_plans[code]
        i = self.index[code]
        floor_of = self._floor_of.get(code)
        if floor_of is None:  # a plan's floor, once (issue 13: parsed again for every night)
            explicit, floc, fname = explicit_floor(self.prop, plan)
            floor_of = self._floor_of[code] = (explicit, _fix_loc(floc, i), fname)
        explicit, floc, fname = floor_of
        if not plan.derived_from:
            rn = snap.rates.get((code, night))
            if rn is None or not rn.prices:
                return Priced(None, currency=cur)
            if occupancy in rn.prices:
                value = rn.prices[occupancy]
            else:
                value = rn.prices.get(plan.occupancy, rn.prices[max(rn.prices)])
            if value <= 0 or (explicit is not None and value < explicit):
                return Priced(value, Finding(floc or ("rate_plans", i, "code"),
                                             f"rate plan '{code}' has {_fmt(value, cur)} in the ledger on {night}, "
                                             f"under its floor of {_fmt(explicit or 1, cur)} ({fname})"), currency=cur)
            return Priced(value, currency=cur)
        parent = self.plan(snap, plan.derived_from, night, occupancy)
        if parent.value is None or parent.refused is not None:
            return Priced(None if parent.value is None else parent.value, parent.refused, currency=cur)
        key = (code, parent.value)
        got = self._plan_math.get(key)
        if got is None:  # as for channel_of: the arithmetic depends on the parent's price alone
            stages = _plan_stages(plan, i, cur)
            floor = explicit if explicit is not None else default_floor(parent.value)
            got = self._plan_math[key] = (stages, floor, *_run(parent.value, stages, floor),
                                          _first_halving(parent.value, stages))
        stages, floor, value, at, zero, h = got
        cuts = parent.cuts
        if h is not None:
            cuts = cuts + (Finding(stages[h].loc,
                                   f"rate plan '{code}' cuts {plan.derived_from}'s {_fmt(parent.value, cur)} on "
                                   f"{night} by more than half, to {_fmt(value, cur)} (at '{stages[h].what}'); "
                                   "is that meant?"),)
        if zero or at is not None or value < floor:
            where = stages[at] if at is not None else None
            loc = where.loc if where else (floc or ("rate_plans", i, "derived_from"))
            step = f"the step '{where.what}'" if where else "its steps"
            if zero:
                msg = (f"rate plan '{code}': {step} takes {plan.derived_from}'s {_fmt(parent.value, cur)} on "
                       f"{night} to {_fmt(value, cur)}, zero or below; a price must stay above zero")
            else:
                msg = (f"rate plan '{code}': {step} takes {plan.derived_from}'s {_fmt(parent.value, cur)} on "
                       f"{night} to {_fmt(value, cur)}, under its floor of {_fmt(floor, cur)} ({fname})")
            return Priced(value, Finding(loc, msg), cuts, cur)
        return Priced(value, None, cuts, cur)

    def channel(self, snap: Any, name: str, code: str, night: date, occupancy: int) -> Priced:
        """The channel's price for a plan, night and occupancy, traced."""
        hotel = self.plan(snap, code, night, occupancy)
        ch = self.pm.file.channels[name]
        if name not in self._stages:
            self._stages[name] = _channel_stages(name, ch, self.prop.currency)
        stages, currency, rate = self._stages[name]
        if hotel.value is None or hotel.refused is not None:
            return Priced(hotel.value, hotel.refused, hotel.cuts, currency)
        return self.channel_of(hotel, name, ch, code, night, stages, currency, rate)

    def channel_of(self, hotel: Priced, name: str, ch: Any, code: str, night: date | None,
                   stages: list[_Stage], currency: str, rate: Decimal, *, static: bool = False) -> Priced:
        """The channel rule applied to a plan's price. ``static``: ``hotel`` is the lowest price
        the plan can have (no night); only zero and the 1% default floor can be judged then."""
        p = hotel.value
        assert p is not None
        # the arithmetic depends on the price alone (exact fractions: most of a bulk push's
        # derivation), so a year of nights at a few prices works it out a few times
        key = (name, code, p, static)
        got = self._channel_math.get(key)
        if got is None:
            plan = self.pm.rate_plans[code]
            explicit, _, fname = explicit_floor(self.prop, plan)
            plain = convert(p, self.prop.currency, currency, rate)
            if explicit is not None:
                floor = 1 if static else max(1, convert(explicit, self.prop.currency, currency, rate))
            else:
                floor = default_floor(plain)
                fname = "1% of the hotel's price, the floor where no min_price is set"
            got = self._channel_math[key] = (floor, fname, *_run(p, stages, floor),
                                             _first_halving(p, stages, plain))
        floor, fname, value, at, zero, h = got
        whose = f"{code}'s lowest price" if static else f"{code}'s"
        on = "" if night is None else f" on {night}"
        cuts = hotel.cuts
        if h is not None:
            cuts = cuts + (Finding(stages[h].loc,
                                   f"the {name} price rule ('{stages[h].what}') cuts {whose} "
                                   f"{_fmt(p, self.prop.currency)}{on} by more than half, to "
                                   f"{_fmt(value, currency)}; is that meant?"),)
        if zero or at is not None:
            where = stages[at if at is not None else len(stages) - 1]
            head = (f"the {name} price rule ('{where.what}') takes {whose} {_fmt(p, self.prop.currency)}{on} "
                    f"to {_fmt(value, currency)}")
            if zero:
                msg = f"{head}, zero or below; a price must stay above zero"
            else:
                msg = f"{head}, under its floor of {_fmt(floor, currency)} ({fname})"
            return Priced(value, Finding(where.loc, msg), cuts, currency)
        return Priced(value, None, cuts, currency)


# ---- static: no ledger -----------------------------------------------------------


@dataclass
class Findings:
    problems: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    def add(self, kind: str, f: Finding) -> None:
        target = self.problems if kind == "problem" else self.warnings
        if all(x.loc != f.loc for x in target):  # one finding per place in the file
            target.append(f)


def _factor(steps: Iterable[Any]) -> list[Fraction]:
    """Running product of (100 + percent) / 100 over a plan's percent steps (amounts ignored)."""
    out, f = [], Fraction(1)
    for ps in steps:
        s = ps.step()
        if s.kind == "percent":
            f *= (100 + Fraction(s.value)) / 100
        out.append(f)
    return out


def static_findings(prop: Any, rate_plans: list[tuple[int, Any]], channels: dict[str, Any],
                    money_ok: Callable[[Any], bool] = lambda plan: True) -> Findings:
    """What can be told from the file alone (see the module's docstring).

    ``rate_plans`` are (index in the file, valid plan); plans whose money has other problems
    (``money_ok`` false) are left to those problems.
    """
    out = Findings()
    cur = prop.currency
    by_code = {rp.code: (i, rp) for i, rp in rate_plans}
    lowest: dict[str, int | None] = {}

    def low(code: str, seen: tuple[str, ...] = ()) -> int | None:
        """The lowest price a plan can be sent at (None: the file does not say)."""
        if code in lowest:
            return lowest[code]
        if code not in by_code or code in seen:
            return None
        i, plan = by_code[code]
        explicit, _, _ = explicit_floor(prop, plan)
        if not plan.derived_from:
            lowest[code] = explicit
            return explicit
        lowest[code] = None  # a guard while the chain is followed
        parent = low(plan.derived_from, seen + (code,))
        result = explicit
        if money_ok(plan) and plan.derived_from in by_code:
            result = _static_plan(i, plan, parent, explicit, cur, out)
            if explicit is not None:
                result = explicit if result is None else max(result, explicit)
        lowest[code] = result
        return result

    for code in by_code:
        low(code)

    for name, ch in channels.items():
        rule = ch.price
        currency = rule.currency or cur
        if rule.currency and rule.rate is None and currency != cur:
            continue  # another problem already says the rate is missing
        stages, currency, rate = _channel_stages(name, ch, cur)
        base = ("channels", name, "price")
        factor = (100 + Fraction(rule.markup_percent)) / 100
        no_floor_plans = [c for c in ch.rates if c in by_code and explicit_floor(prop, by_code[c][1])[0] is None]
        if factor < Fraction(1, 100) and no_floor_plans:
            out.add("problem", Finding(base + ("markup_percent",),
                                       f"a markup of {rule.markup_percent}% leaves less than 1% of every price on "
                                       f"{name}, under the floor of 1% of the hotel's price; a price rule is "
                                       "not a way to give rooms away"))
            continue
        if factor < Fraction(1, 2):
            out.add("warning", Finding(base + ("markup_percent",),
                                       f"a markup of {rule.markup_percent}% cuts every {name} price by more than "
                                       "half; is that meant?"))
        unknown = []
        worst: tuple[int, str, Priced] | None = None
        for code in ch.rates:
            if code not in by_code:
                continue
            lo = lowest.get(code)
            if lo is None:
                unknown.append(code)
                continue
            tr = _StaticTracer(prop, by_code)
            priced = tr.channel_of(Priced(lo), name, ch, code, None, stages, currency, rate, static=True)
            if priced.refused is not None and (worst is None or lo < worst[0]):
                worst = (lo, code, priced)
            if factor >= Fraction(1, 2):
                for c in priced.cuts:
                    out.add("warning", c)
        if worst is not None:
            lo, code, priced = worst
            assert priced.refused is not None
            out.add("problem", Finding(priced.refused.loc,
                                       priced.refused.message + _lowest_why(prop, by_code[code][1])))
        if rule.amount < 0 and unknown:
            out.add("warning", Finding(base + ("amount",),
                                       f"the {name} price rule takes a fixed {format_minor(-to_minor(rule.amount, currency), currency)} "
                                       f"{currency} off, and no min_price says how low the prices of "
                                       f"{', '.join(unknown)} can be, so check cannot tell whether this can reach "
                                       "zero; set property.min_price (diff and the daemon check the ledger's prices)"))
    out.warnings = [w for w in out.warnings if all(w.loc != p.loc for p in out.problems)]
    return out


def _lowest_why(prop: Any, plan: Any) -> str:
    if plan.derived_from:
        return " (its lowest price is the lowest its parent's min_price and its steps allow)"
    return f" (the lowest price {'its own' if plan.min_price is not None else 'the hotel' + chr(39) + 's'} min_price allows)"


class _StaticTracer(Tracer):
    """A Tracer without a PropertyMapping: only ``channel_of`` is used."""

    def __init__(self, prop: Any, by_code: dict[str, tuple[int, Any]]):
        class _PM:
            rate_plans = {c: p for c, (_, p) in by_code.items()}

        self.pm = _PM()
        self.prop = prop
        self.index = {c: i for c, (i, _) in by_code.items()}
        self._plans = {}
        self._stages = {}
        self._channel_math = {}
        self._plan_math = {}


def _static_plan(i: int, plan: Any, parent_low: int | None, explicit: int | None, cur: str,
                 out: Findings) -> int | None:
    """Check one derived plan's steps; the lowest price it can be sent at (None: unknown)."""
    stages = _plan_stages(plan, i, cur)
    factors = _factor(plan.steps)
    if explicit is None and parent_low is None:
        # only the percentages can be judged: they hold for every price
        for j, f in enumerate(factors):
            if f < Fraction(1, 100):
                out.add("problem", Finding(stages[j].loc,
                                           f"rate plan '{plan.code}': with the step '{stages[j].what}' its steps "
                                           f"leave {_pct(f)} of {plan.derived_from}'s price, under the floor of 1% "
                                           "of the parent's price (set min_price if such a price is meant)"))
                return None
    for j, f in enumerate(factors):
        if f < Fraction(1, 2):
            out.add("warning", Finding(stages[j].loc,
                                       f"rate plan '{plan.code}': with the step '{stages[j].what}' its steps cut "
                                       f"{plan.derived_from}'s price by more than half (to {_pct(f)}); is that "
                                       "meant?"))
            break
    if parent_low is None:
        if any(ps.step().kind == "amount" and ps.step().value < 0 for ps in plan.steps):
            j = next(j for j, ps in enumerate(plan.steps) if ps.step().kind == "amount" and ps.step().value < 0)
            out.add("warning", Finding(stages[j].loc,
                                       f"rate plan '{plan.code}' takes a fixed amount off ('{stages[j].what}') and no "
                                       f"min_price says how low {plan.derived_from}'s price can be, so check cannot "
                                       "tell whether this can reach zero; set property.min_price (diff and the "
                                       "daemon check the ledger's prices)"))
        return None
    floor = explicit if explicit is not None else default_floor(parent_low)
    value, at, zero = _run(parent_low, stages, 1 if explicit is not None else floor)
    src = f"{plan.derived_from}'s lowest price {_fmt(parent_low, cur)}"
    if zero:
        out.add("problem", Finding(stages[at].loc,  # type: ignore[index]
                                   f"rate plan '{plan.code}': the step '{stages[at].what}' takes {src} "  # type: ignore[index]
                                   f"to {_fmt(value, cur)}, zero or below; a price must stay above zero "
                                   "(the lowest price comes from min_price; the ledger's prices are never lower)"))
        return None
    if at is not None:
        out.add("problem", Finding(stages[at].loc,
                                   f"rate plan '{plan.code}': the step '{stages[at].what}' takes {src} to "
                                   f"{_fmt(value, cur)}, under the floor of 1% of the parent's price "
                                   "(set min_price if such a price is meant)"))
        return None
    h = _first_halving(parent_low, stages)
    if h is not None and all(f >= Fraction(1, 2) for f in factors):
        out.add("warning", Finding(stages[h].loc,
                                   f"rate plan '{plan.code}': the step '{stages[h].what}' cuts {src} by more than "
                                   f"half, to {_fmt(value, cur)}; is that meant?"))
    return value


def _pct(f: Fraction) -> str:
    d = Decimal(f.numerator * 100) / Decimal(f.denominator)
    return f"{d.normalize():f}%"


# ---- against the ledger ----------------------------------------------------------


def refused_cells(pm: Any, snap: Any, nights: Iterable[date], channels: Iterable[str]
                  ) -> tuple[dict[tuple, Finding], list[Finding]]:
    """{(channel, rate plan, night, occupancy): why its price is refused}, and the warnings
    (cuts of more than half), one per place in the file, over the given nights."""
    tr = Tracer(pm)
    refused: dict[tuple, Finding] = {}
    cuts: dict[Loc, Finding] = {}
    nights = list(nights)
    for name in channels:
        ch = pm.channel(name)
        if ch is None:
            continue
        for code in ch.rates:
            plan = pm.rate_plans.get(code)
            if plan is None:
                continue
            for occ in sorted(ch.occupancies or (plan.occupancy,)):
                for night in nights:
                    p = tr.channel(snap, name, code, night, occ)
                    if p.refused is not None:
                        refused[(name, code, night, occ)] = p.refused
                    for c in p.cuts:
                        cuts.setdefault(c.loc, c)
    return refused, list(cuts.values())


def ledger_findings(new_pm: Any, old_pm: Any | None, snap: Any, nights: Iterable[date], channels: Iterable[str]
                    ) -> tuple[list[tuple[Finding, int]], list[Finding]]:
    """Against the ledger's prices over ``nights``: (refusals, each with how many channel
    cells it holds back that the mapping in force (``old_pm``) did not, one per place in the
    file; warnings of the edited mapping). A price already held back before the edit (a low
    price set in the ledger) is the ledger's matter, not the edit's: it does not refuse it."""
    nights = list(nights)
    channels = list(channels)
    refused, warnings = refused_cells(new_pm, snap, nights, channels)
    before: dict[tuple, Finding] = {}
    if old_pm is not None and refused:
        before, _ = refused_cells(old_pm, snap, nights, [c for c in channels if old_pm.channel(c) is not None])
    grouped: dict[Loc, tuple[Finding, int]] = {}
    for key in sorted(refused, key=lambda k: (k[0], k[1], k[2], k[3])):
        if key in before:
            continue
        f = refused[key]
        first, n = grouped.get(f.loc, (f, 0))
        grouped[f.loc] = (first, n + 1)
    refused_at = {f.loc for f in refused.values()}
    return list(grouped.values()), [w for w in warnings if w.loc not in refused_at]
