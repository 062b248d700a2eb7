"""Money: an integer in minor units with its ISO 4217 currency (DESIGN.md invariant 5).

No float ever touches a price. Text from people or OTAs ("123.45") is parsed with Decimal
and refused when it has more decimals than the currency has (CNY 2 = fen, JPY 0).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# ISO 4217 minor-unit exponents for the currencies hotels here price in
EXPONENT = {
    "CNY": 2, "HKD": 2, "MOP": 2, "TWD": 2, "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2,
    "SGD": 2, "MYR": 2, "THB": 2, "AUD": 2, "NZD": 2, "CAD": 2, "AED": 2, "SAR": 3,
    "JPY": 0, "KRW": 0, "VND": 0, "IDR": 2, "PHP": 2, "INR": 2, "RUB": 2,
    "KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2,
    "CZK": 2, "HUF": 2, "TRY": 2, "ZAR": 2, "BRL": 2, "MXN": 2,
}


class MoneyError(ValueError):
    pass


def exponent(currency: str) -> int:
    try:
        return EXPONENT[currency.upper()]
    except KeyError:
        raise MoneyError(f"'{currency}' is not a currency channelmgr knows (ISO 4217 code)") from None


def to_minor(amount: str | int | Decimal, currency: str) -> int:
    """'123.45' CNY -> 12345. More decimals than the currency allows is an error."""
    if isinstance(amount, float):  # pragma: no cover - guard against misuse
        raise MoneyError("amounts must not be floats")
    try:
        d = Decimal(str(amount).strip())
    except InvalidOperation:
        raise MoneyError(f"'{amount}' is not an amount of money") from None
    if not d.is_finite():
        raise MoneyError(f"'{amount}' is not an amount of money")
    exp = exponent(currency)
    scaled = d.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"'{amount}' has more than {exp} decimal places for {currency}")
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


def format_minor(minor: int, currency: str) -> str:
    """12345 CNY -> '123.45'."""
    exp = exponent(currency)
    return f"{from_minor(minor, currency):.{exp}f}"
