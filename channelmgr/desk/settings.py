"""The desk's settings: ``desk:`` in config.yaml (every key optional)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

OTA_NAMES = ("booking", "ctrip", "fliggy", "meituan")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuspiciousConfig(_Strict):
    """Thresholds of the suspicious-booking flags (a flag never refuses or delays a booking)."""

    # one phone or e-mail booking more than this many rooms across channels within an hour
    rooms_per_contact_hour: int = Field(4, ge=1, le=10_000)
    # more than this many cancellations from one contact within 7 days
    cancellations_per_contact_week: int = Field(3, ge=1, le=10_000)
    # arrival tonight, at least this many nights, at least this amount (minor units), first-time guest
    tonight_min_nights: int = Field(5, ge=1, le=365)
    tonight_min_amount_minor: int = Field(1_000_000, ge=1)
    # the country of a phone number written without +country (CN: 11-digit mobiles 1[3-9]x)
    default_country: str = Field("CN", pattern=r"^[A-Z]{2}$")


class DeskConfig(_Strict):
    # direct booking sources beside the OTAs: code -> the name people see
    sources: dict[str, str] = Field(default_factory=lambda: {
        "website": "website", "phone": "phone", "walk_in": "walk-in", "agency": "travel agency",
        "corporate": "corporate"})  # (the console translates these five names: 官网, 电话, 散客, 旅行社, 协议公司)
    # hours to answer a special request, from the booking's arrival in the ledger
    request_answer_hours: float = Field(2.0, gt=0, le=24 * 14)
    request_answer_hours_by_property: dict[str, float] = Field(default_factory=dict)
    # an ack_deadline conflict is raised this many minutes before an OTA's fallback lapses
    ack_warn_minutes: float = Field(10.0, ge=0, le=24 * 60)
    # how often the daemon reads new booking revisions (requests, flags, deadlines)
    scan_interval_seconds: float = Field(5.0, gt=0, le=3600)
    # the daily overbooking check (server local time) and how far ahead it looks
    overbooking_check_at: str = "07:00"
    overbooking_check_days: int = Field(7, ge=1, le=90)
    max_stay_nights: int = Field(90, ge=1, le=365)
    suspicious: SuspiciousConfig = SuspiciousConfig()

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: dict[str, str]) -> dict[str, str]:
        for code in v:
            if code in OTA_NAMES:
                raise ValueError(f"'{code}' is an OTA, not a direct booking source")
            ok = 1 <= len(code) <= 32 and code[0].isascii() and code[0].isalpha() and all(
                ch.isascii() and (ch.isalnum() or ch == "_") for ch in code)
            if not ok or code != code.lower():
                raise ValueError(f"a source code is lower-case letters, digits and _, like walk_in, not {code!r}")
        if not v:
            raise ValueError("give at least one direct booking source")
        return v

    @field_validator("request_answer_hours_by_property")
    @classmethod
    def _hours(cls, v: dict[str, float]) -> dict[str, float]:
        for code, h in v.items():
            if not 0 < h <= 24 * 14:
                raise ValueError(f"hours to answer a request at {code} must be more than 0 and at most 336, not {h}")
        return v

    @field_validator("overbooking_check_at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        try:
            hh, mm = v.split(":")
            assert 0 <= int(hh) < 24 and 0 <= int(mm) < 60
        except Exception:
            raise ValueError(f"overbooking_check_at must be a time like 07:00, not {v!r}") from None
        return v

    def answer_hours(self, property_code: str | None) -> float:
        return self.request_answer_hours_by_property.get(property_code or "", self.request_answer_hours)
