"""The mapping language: one YAML file per property, edited by revenue staff.

Read top to bottom, a file says: this is the hotel; these are its room types; these are
the rate plans it sells (some derived from others by a chain of steps); and for each OTA,
what the OTA calls the hotel, each room and each rate, and the rules for what that OTA is
shown (price markup or currency, rooms held back, restrictions it understands).
See docs/mappings.md for the language with examples.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from channelmgr.mapping.pricing import Step
from channelmgr.money import EXPONENT


def _float_text(v: float) -> str:
    """A YAML number as it was written: ruamel keeps the width of ``.00`` and ``12.50``."""
    width, prec = getattr(v, "_width", None), getattr(v, "_prec", None)
    if width is not None and prec is not None and getattr(v, "_exp", None) is None:
        return f"{v:.{max(width - prec - 1, 0)}f}"
    return repr(v)


def _to_text(v: Any) -> Any:
    """Codes typed as numbers (hotel_id: 1234567) are still codes."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _float_text(v)
    return v


def _to_decimal(v: Any) -> Any:
    """Numbers from YAML become exact decimals via their text, never via binary float."""
    if isinstance(v, bool):
        raise ValueError(f"expected a number, not {v}")
    if isinstance(v, (int, float, str)):
        text = _float_text(v) if isinstance(v, float) else str(v).strip()
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"'{v}' is not a number") from None
        if not d.is_finite():
            raise ValueError(f"'{v}' is not a number")
        return d
    return v


def _to_ending(v: Any) -> Any:
    """``.99``, ``0.99`` and ``".99"`` all mean: prices ending in .99."""
    text = _to_text(v)
    if isinstance(text, str) and text.startswith("0.") and text[2:].isdigit():
        return text[1:]
    return text


def ending_ok(e: str) -> bool:
    return e.startswith(".") and len(e) > 1 and e[1:].isdigit()


Code = Annotated[str, BeforeValidator(_to_text), Field(min_length=1, max_length=64, pattern=r"^[^\s]+$")]
Text = Annotated[str, BeforeValidator(_to_text)]
Num = Annotated[Decimal, BeforeValidator(_to_decimal)]
Ending = Annotated[str, BeforeValidator(_to_ending)]

MealPlan = Literal["room_only", "breakfast", "half_board", "full_board", "all_inclusive"]
RESTRICTIONS = ("min_los", "max_los", "cta", "ctd", "stop_sell")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PropertyInfo(_M):
    code: Code
    name: Text
    timezone: str = "Asia/Shanghai"
    currency: str = "CNY"
    # the lowest price this hotel ever sells a night at, in its currency: a price under it is
    # never sent, and a price rule that could go under it is refused (docs/mappings.md, Floors)
    min_price: Num | None = None

    @field_validator("min_price")
    @classmethod
    def _min_price(cls, v: Decimal | None) -> Decimal | None:
        if v is not None and v <= 0:
            raise ValueError(f"'min_price' is the lowest price ever sold, more than 0, not {v}")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{v}' is not a time zone; write it like Asia/Shanghai or Europe/Berlin") from None
        return v

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if v not in EXPONENT:
            raise ValueError(f"'{v}' is not a currency code channelmgr knows; write it like CNY, USD, EUR")
        return v


class OverbookingPolicy(_M):
    """Issue 12 (the desk): rooms that may be sold past physical (direct bookings within it need
    no override) and the room types that may absorb a guest of this one, best first."""

    allowed: int = Field(0, ge=0, le=1_000)
    upgrade_to: tuple[Code, ...] = ()


class PartnerHotel(_M):
    """A hotel nearby that takes our guests when we cannot (relocation)."""

    name: Text = Field(min_length=1, max_length=200)
    phone: Text = Field(min_length=3, max_length=40)


class RoomType(_M):
    code: Code
    name: Text
    physical_rooms: int = Field(ge=0, le=10_000)
    overbooking: OverbookingPolicy = OverbookingPolicy()


class PriceStep(_M):
    """Exactly one of: percent, amount, round, ending."""

    percent: Num | None = None
    amount: Num | None = None
    round: Num | None = None
    ending: Ending | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PriceStep:
        given = [k for k in ("percent", "amount", "round", "ending") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("each step is exactly one of 'percent: -15', 'amount: -20', 'round: 1' or "
                             f"'ending: .99' (this one has {', '.join(given) or 'none'})")
        if self.percent is not None and self.percent <= -100:
            raise ValueError(f"a step of {self.percent}% would make the price zero or negative")
        if self.round is not None and self.round <= 0:
            raise ValueError("'round' must be a positive amount such as 1 or 10 or 0.10")
        if self.ending is not None and not ending_ok(self.ending):
            raise ValueError(f"'ending' is written like \".99\" or \".00\", not {self.ending!r}")
        return self

    def step(self) -> Step:
        if self.percent is not None:
            return Step("percent", self.percent)
        if self.amount is not None:
            return Step("amount", self.amount)
        if self.round is not None:
            return Step("round", self.round)
        return Step("ending", Decimal("0" + str(self.ending)))


class Inherit(_M):
    """Which restrictions a derived plan takes from its parent when it has none of its own."""

    min_los: bool = True
    max_los: bool = True
    cta: bool = True
    ctd: bool = True
    stop_sell: bool = True


class RatePlan(_M):
    code: Code
    name: Text | None = None
    room_type: Code
    occupancy: int = Field(2, ge=1, le=20)
    meal_plan: MealPlan = "room_only"
    derived_from: Code | None = None
    steps: tuple[PriceStep, ...] = ()
    inherit: Inherit = Inherit()
    min_days_in_advance: int | None = Field(None, ge=0, le=730)
    min_los: int | None = Field(None, ge=1, le=365)
    max_los: int | None = Field(None, ge=1, le=365)
    min_price: Num | None = None  # this plan's floor, instead of the property's (docs/mappings.md)

    @model_validator(mode="after")
    def _coherent(self) -> RatePlan:
        if self.min_price is not None and self.min_price <= 0:
            raise ValueError(f"rate plan {self.code}: 'min_price' is the lowest price ever sold, more than 0, "
                             f"not {self.min_price}")
        if self.steps and not self.derived_from:
            raise ValueError(f"rate plan {self.code} has price steps but no 'derived_from': steps change "
                             "the price of the plan it is derived from")
        if self.min_los and self.max_los and self.max_los < self.min_los:
            raise ValueError(f"rate plan {self.code}: max_los {self.max_los} is shorter than min_los {self.min_los}")
        return self


class PriceRule(_M):
    """How this channel's prices are made from the hotel's, always in this order, whatever
    the order of the keys in the file:

    1. convert to ``currency`` at ``rate`` and add ``markup_percent``: one exact computation,
       rounded once to the channel currency's minor unit (half up);
    2. add ``amount`` (in the channel's currency);
    3. ``round`` to a multiple of that amount;
    4. ``ending``: the nearest price with those decimals.
    """

    currency: str | None = None  # default: the property's currency
    rate: Num | None = None  # 1 unit of the property's currency = rate units of ``currency``
    markup_percent: Num = Decimal(0)
    amount: Num = Decimal(0)
    round: Num | None = None
    ending: Ending | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str | None) -> str | None:
        if v is not None and v not in EXPONENT:
            raise ValueError(f"'{v}' is not a currency code channelmgr knows; write it like CNY, USD, EUR")
        return v

    @model_validator(mode="after")
    def _sane(self) -> PriceRule:
        if self.rate is not None and self.rate <= 0:
            raise ValueError("the conversion 'rate' must be more than 0")
        if self.markup_percent <= -100:
            raise ValueError(f"a markup of {self.markup_percent}% would make prices zero or negative")
        if self.ending is not None and not ending_ok(self.ending):
            raise ValueError(f"'ending' is written like \".99\" or \".00\", not {self.ending!r}")
        if self.round is not None and self.round <= 0:
            raise ValueError("'round' must be a positive amount such as 1 or 10")
        return self

    def steps_after_conversion(self) -> list[Step]:
        steps = []
        if self.amount:
            steps.append(Step("amount", self.amount))
        if self.round is not None:
            steps.append(Step("round", self.round))
        if self.ending is not None:
            steps.append(Step("ending", Decimal("0" + self.ending)))
        return steps


class AvailabilityRule(_M):
    """What a channel may sell = min(free rooms, cap) - offset, never below 0; closed sells 0."""

    cap: int | None = Field(None, ge=0)
    offset: int = Field(0, ge=0)
    closed: bool = False


class RestrictionSupport(_M):
    """Restrictions to send to this channel (also limited by what the OTA can hold)."""

    min_los: bool = True
    max_los: bool = True
    cta: bool = True
    ctd: bool = True
    stop_sell: bool = True

    def enabled(self) -> frozenset[str]:
        return frozenset(r for r in RESTRICTIONS if getattr(self, r))


class ChannelMapping(_M):
    enabled: bool = True
    hotel_id: Code
    rooms: dict[Code, Code] = Field(default_factory=dict)  # local room type -> OTA room code
    rates: dict[Code, Code] = Field(default_factory=dict)  # local rate plan -> OTA rate code
    price: PriceRule = PriceRule()
    availability: AvailabilityRule = AvailabilityRule()
    occupancies: tuple[int, ...] | None = None
    restrictions: RestrictionSupport = RestrictionSupport()

    @field_validator("occupancies")
    @classmethod
    def _occ(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None:
            if not v or any(o < 1 or o > 20 for o in v):
                raise ValueError("occupancies are numbers of guests from 1 to 20, like [1, 2]")
            if len(set(v)) != len(v):
                raise ValueError("an occupancy is listed twice")
        return v


class CommissionRate(_M):
    """Issue 14 (reports): what a channel keeps, a percent of room revenue, for bookings arriving
    on or after ``from`` (until the next rate's ``from``)."""

    from_: date = Field(alias="from")
    percent: Num

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("percent")
    @classmethod
    def _percent(cls, v: Decimal) -> Decimal:
        if v < 0 or v > 100:
            raise ValueError(f"a commission is a percent from 0 to 100, not {v}")
        if v != v.quantize(Decimal("0.01")):
            raise ValueError(f"a commission has at most two decimals (like 15 or 12.5), not {v}")
        return v

    @property
    def basis_points(self) -> int:
        return int(self.percent * 100)


def _commission_dates(v: dict[str, tuple[CommissionRate, ...]]) -> dict[str, tuple[CommissionRate, ...]]:
    for channel, rates in v.items():
        seen = [r.from_ for r in rates]
        if len(set(seen)) != len(seen):
            raise ValueError(f"commission of {channel}: two rates from the same date")
    return v


class MappingFile(_M):
    property: PropertyInfo
    room_types: tuple[RoomType, ...] = Field(min_length=1)
    rate_plans: tuple[RatePlan, ...] = ()
    channels: dict[str, ChannelMapping] = Field(default_factory=dict)
    partner_hotels: tuple[PartnerHotel, ...] = ()  # issue 12: where a guest is relocated to
    # issue 14 (reports): commission per channel or direct source, and exchange rates to the
    # property's currency (1 unit of the key = that many units of the property's currency)
    commission: Annotated[dict[Code, tuple[CommissionRate, ...]], AfterValidator(_commission_dates)] = Field(
        default_factory=dict)
    exchange_rates: dict[str, Num] = Field(default_factory=dict)

    @field_validator("exchange_rates")
    @classmethod
    def _rates(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for cur, rate in v.items():
            if cur not in EXPONENT:
                raise ValueError(f"'{cur}' is not a currency code channelmgr knows; write it like CNY, USD, EUR")
            if rate <= 0:
                raise ValueError(f"the exchange rate of {cur} must be more than 0, not {rate}")
        return v
