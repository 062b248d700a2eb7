"""Prices computed exactly in minor units: derived-plan steps and per-channel rules.

Every step works on integers of minor units through exact fractions; nothing is ever a
float and nothing is rounded twice where once will do. Halves go up (away from zero),
the way a hotel rounds a price on a rate card.

Steps, applied in the order written:
- ``percent: -15``      add (or take off) a percentage
- ``amount: -20``       add (or take off) an amount in the plan's currency
- ``round: 1``          round to the nearest multiple of that amount (whole yuan: 1, tens: 10)
- ``ending: ".99"``     the nearest price whose decimals are those (".99", ".00", ".90");
                        a price exactly half-way between two goes up
``apply_steps`` never leaves a price below one minor unit (one fen). What is sent to an OTA
is held to the hotel's floors instead (channelmgr.mapping.floors): a price under its floor,
or zero or below at any step, is not sent at all, and a rule that can go there is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal, Sequence

from channelmgr.money import exponent, to_minor

FLOOR = 1  # the smallest price ever sent: one minor unit


@dataclass(frozen=True)
class Step:
    kind: Literal["percent", "amount", "round", "ending"]
    value: Decimal

    def describe(self, currency: str) -> str:
        if self.kind == "percent":
            return f"{'+' if self.value >= 0 else ''}{self.value}%"
        if self.kind == "amount":
            return f"{'+' if self.value >= 0 else ''}{self.value} {currency}"
        if self.kind == "round":
            return f"round to {self.value}"
        return f"end in {self.value}"


def half_up(x: Fraction) -> int:
    """Nearest integer; an exact half goes away from zero."""
    if x >= 0:
        return int((x + Fraction(1, 2)).__floor__())
    return -int((-x + Fraction(1, 2)).__floor__())


def round_to_unit(minor: int, unit: int) -> int:
    """Nearest positive multiple of ``unit`` (half up); never 0, so never free."""
    return max(unit, half_up(Fraction(minor, unit)) * unit)


def nearest_ending(minor: int, end: int, whole: int) -> int:
    """Nearest positive price ``k * whole + end``; a tie goes to the higher price."""
    base = (minor // whole) * whole
    candidates = [c for c in (base - whole + end, base + end, base + whole + end) if c > 0]
    return min(candidates, key=lambda c: (abs(c - minor), -c))


def apply_step(minor: int, step: Step, currency: str) -> int:
    if step.kind == "percent":
        return half_up(Fraction(minor) * (100 + Fraction(step.value)) / 100)
    if step.kind == "amount":
        return minor + to_minor(step.value, currency)
    if step.kind == "round":
        return round_to_unit(minor, to_minor(step.value, currency))
    # ending: the loader refuses an ending for a currency without decimals
    whole = 10 ** exponent(currency)
    if whole == 1:
        return minor
    return nearest_ending(minor, to_minor(step.value, currency) % whole, whole)


def apply_steps_checked(minor: int, steps: Sequence[Step], currency: str, *,
                        floor: int = FLOOR) -> tuple[int, bool]:
    """(price, whether the floor was hit): each step starts from a price of at least ``floor``."""
    floored = False
    minor = max(minor, floor)
    for s in steps:
        minor = apply_step(minor, s, currency)
        if minor < floor:
            minor, floored = floor, True
    return minor, floored


def apply_steps(minor: int, steps: Sequence[Step], currency: str, *, floor: int = FLOOR) -> int:
    return apply_steps_checked(minor, steps, currency, floor=floor)[0]


def convert(minor: int, from_currency: str, to_currency: str, rate: Decimal,
            markup_percent: Decimal = Decimal(0)) -> int:
    """Minor units of one currency into another at a stated rate (1 from = ``rate`` to),
    with a markup taken in the same exact computation, so the price is rounded once."""
    if from_currency == to_currency and rate == 1 and not markup_percent:
        return minor
    scale = Fraction(10) ** (exponent(to_currency) - exponent(from_currency))
    return half_up(Fraction(minor) * Fraction(rate) * scale * (100 + Fraction(markup_percent)) / 100)
