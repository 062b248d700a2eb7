"""The pricing chains, checked against an independent exact computation.

Every expected value here is computed with integer division (``divmod``) on exact
fractions, not with the code under test, so a rounding or ordering mistake shows up.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from channelmgr.mapping.derive import channel_price
from channelmgr.mapping.model import PropertyMapping
from channelmgr.mapping.pricing import Step, apply_step, apply_steps, convert
from channelmgr.mapping.schema import ChannelMapping, MappingFile

CURRENCY = "CNY"
prices = st.integers(min_value=1, max_value=10_000_000)  # 0.01 .. 100,000.00 CNY
percents = st.decimals(min_value=Decimal("-99.99"), max_value=Decimal("300"), places=2,
                       allow_nan=False, allow_infinity=False)
amounts = st.decimals(min_value=Decimal("-5000"), max_value=Decimal("5000"), places=2,
                      allow_nan=False, allow_infinity=False)
units = st.sampled_from([Decimal("0.01"), Decimal("0.05"), Decimal("0.10"), Decimal("0.50"), Decimal(1),
                         Decimal(5), Decimal(10), Decimal(50), Decimal(100)])
endings = st.integers(min_value=0, max_value=99).map(lambda n: Decimal(f"0.{n:02d}"))
rates = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("2000"), places=4,
                    allow_nan=False, allow_infinity=False)


def ref_half_up(x: Fraction) -> int:
    """Nearest integer, an exact half away from zero, by integer division."""
    sign = -1 if x < 0 else 1
    q, r = divmod(abs(x.numerator), x.denominator)
    return sign * (q + (1 if 2 * r >= x.denominator else 0))


steps = st.one_of(
    percents.map(lambda v: Step("percent", v)),
    amounts.map(lambda v: Step("amount", v)),
    units.map(lambda v: Step("round", v)),
    endings.map(lambda v: Step("ending", v)),
)


@given(prices, st.lists(steps, max_size=6))
def test_a_chain_never_gives_a_room_away(minor, chain):
    assert apply_steps(minor, chain, CURRENCY) >= 1


@given(prices, percents)
def test_percent_is_exact_and_rounded_half_up(minor, pct):
    expected = max(1, ref_half_up(Fraction(minor) * (100 + Fraction(pct)) / 100))
    assert apply_steps(minor, [Step("percent", pct)], CURRENCY) == expected


@given(prices, amounts)
def test_amount_adds_exactly(minor, amount):
    expected = max(1, minor + int(amount * 100))
    assert apply_steps(minor, [Step("amount", amount)], CURRENCY) == expected


@given(prices, units)
def test_round_gives_the_nearest_positive_multiple_of_the_unit(minor, unit):
    u = int(unit * 100)
    out = apply_step(minor, Step("round", unit), CURRENCY)
    assert out > 0 and out % u == 0
    # nearest: no other positive multiple is closer; a tie goes up
    for other in (out - u, out + u):
        if other > 0:
            assert abs(other - minor) > abs(out - minor) or (abs(other - minor) == abs(out - minor) and other < out)


@given(prices, endings)
def test_ending_gives_the_declared_decimals_and_the_nearest_such_price(minor, ending):
    end = int(ending * 100)
    out = apply_step(minor, Step("ending", ending), CURRENCY)
    assert out > 0 and out % 100 == end
    for other in (out - 100, out + 100):
        if other > 0:
            d_out, d_other = abs(out - minor), abs(other - minor)
            assert d_other > d_out or (d_other == d_out and other < out)


def test_ending_examples():
    def e(price: str, ending: str) -> str:
        out = apply_step(int(Decimal(price) * 100), Step("ending", Decimal("0" + ending)), CURRENCY)
        return f"{out // 100}.{out % 100:02d}"

    assert e("765.40", ".99") == "764.99"
    assert e("765.60", ".99") == "765.99"
    assert e("765.49", ".00") == "765.00"
    assert e("765.50", ".00") == "766.00"  # half-way goes up, as half-up rounding does
    assert e("0.30", ".99") == "0.99"  # never 0 or below


@given(prices, rates, percents)
def test_conversion_and_markup_are_one_exact_computation(minor, rate, markup):
    # CNY (2 decimals) -> JPY (0 decimals) and -> KWD (3 decimals)
    for to, exp in (("JPY", 0), ("USD", 2), ("KWD", 3)):
        exact = Fraction(minor) * Fraction(rate) * Fraction(10) ** (exp - 2) * (100 + Fraction(markup)) / 100
        out = convert(minor, "CNY", to, rate, markup)
        assert out == ref_half_up(exact)
        assert abs(out - exact) <= Fraction(1, 2)


def _pm(rule: dict, property_currency: str = "CNY") -> tuple[PropertyMapping, ChannelMapping]:
    mf = MappingFile.model_validate({
        "property": {"code": "P", "name": "P", "currency": property_currency},
        "room_types": [{"code": "R", "name": "R", "physical_rooms": 1}],
        "channels": {"booking": {"hotel_id": "1", "price": rule}},
    })
    pm = PropertyMapping("p.yaml", mf)
    return pm, pm.channel("booking")


@settings(max_examples=200)
@given(prices, rates, percents, amounts, units)
def test_channel_rule_order_is_convert_with_markup_then_amount_then_round(minor, rate, markup, amount, unit):
    pm, ch = _pm({"currency": "USD", "rate": str(rate), "markup_percent": str(markup), "amount": str(amount),
                  "round": str(unit)})
    value, currency = channel_price(minor, pm, ch)
    assert currency == "USD"
    converted = ref_half_up(Fraction(minor) * Fraction(rate) * (100 + Fraction(markup)) / 100)
    after_amount = max(1, max(1, converted) + int(amount * 100))
    u = int(unit * 100)
    expected = max(u, ref_half_up(Fraction(after_amount, u)) * u)
    assert value == expected
    assert value % u == 0 and value > 0


@given(prices, percents)
def test_markup_in_the_same_currency_is_exact(minor, markup):
    pm, ch = _pm({"markup_percent": str(markup)})
    value, currency = channel_price(minor, pm, ch)
    assert currency == "CNY"
    assert value == max(1, ref_half_up(Fraction(minor) * (100 + Fraction(markup)) / 100))


@given(prices, st.lists(steps, min_size=1, max_size=6))
def test_a_chain_is_its_steps_in_the_order_written(minor, chain):
    expected = minor
    for s in chain:
        expected = max(1, apply_step(expected, s, CURRENCY))
    assert apply_steps(minor, chain, CURRENCY) == expected
    last = chain[-1]
    out = apply_steps(minor, chain, CURRENCY)
    if last.kind == "round":
        assert out % int(last.value * 100) == 0
    if last.kind == "ending":
        assert out % 100 == int(last.value * 100)


def test_the_shipped_seeds():
    # early bird: -15% then whole yuan; long stay: -10% then round to 1 yuan
    eb = [Step("percent", Decimal(-15)), Step("ending", Decimal("0.00"))]
    assert apply_steps(99900, eb, CURRENCY) == 84900  # 849.15 -> 849.00
    ls = [Step("percent", Decimal(-10)), Step("round", Decimal(1))]
    assert apply_steps(69800, ls, CURRENCY) == 62800  # 628.20 -> 628.00
    # a discount that would take the price below zero stops at one fen
    assert apply_steps(5000, [Step("amount", Decimal(-80))], CURRENCY) == 1
    # JPY has no decimals: amounts are whole yen
    assert apply_steps(12000, [Step("percent", Decimal("-12.5"))], "JPY") == 10500
