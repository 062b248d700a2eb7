"""Each adapter's declared date window, and its sandbox enforcing the same window.

The engine clips every range to ``capabilities.window`` before it batches; each sandbox
checks dates with its own code. These tests run both at chosen instants (Shanghai late
night and its edges, month and year ends, the nights Europe/Amsterdam changes to and from
summer time) with time-machine, so a mismatch shows up here at any hour, not as a quiet
dead letter in the small hours.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine

from adapters.base import AriUpdate, Price
from adapters.base.registry import load
from tests.adapters.test_contract import ADAPTERS, HOTEL, RATE, ROOM, Harness

SHANGHAI = ZoneInfo("Asia/Shanghai")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")

# (label, an instant) - the instants the suite must be right at
INSTANTS = [
    ("shanghai-00:30", datetime(2026, 12, 3, 0, 30, tzinfo=SHANGHAI)),
    ("shanghai-05:59", datetime(2026, 12, 3, 5, 59, 30, tzinfo=SHANGHAI)),
    ("shanghai-06:00", datetime(2026, 12, 3, 6, 0, 0, tzinfo=SHANGHAI)),
    ("shanghai-23:59", datetime(2026, 12, 3, 23, 59, 30, tzinfo=SHANGHAI)),
    ("month-end-late-night", datetime(2027, 3, 1, 2, 30, tzinfo=SHANGHAI)),  # business date Feb 28
    ("year-end-23:59", datetime(2026, 12, 31, 23, 59, tzinfo=SHANGHAI)),
    ("new-year-02:30", datetime(2027, 1, 1, 2, 30, tzinfo=SHANGHAI)),  # business date Dec 31
    ("amsterdam-to-summer", datetime(2027, 3, 28, 1, 30, tzinfo=AMSTERDAM)),  # 02:00 CET -> 03:00 CEST
    ("amsterdam-from-summer", datetime(2026, 10, 25, 2, 30, tzinfo=AMSTERDAM, fold=1)),  # 2nd 02:30, CET
]


def _at(instant: datetime):
    return time_machine.travel(instant.astimezone(timezone.utc), tick=True)


@pytest.mark.parametrize("name", ADAPTERS)
@pytest.mark.parametrize("label,instant", INSTANTS, ids=[i[0] for i in INSTANTS])
def test_declared_windows_follow_the_late_night_rule(name, label, instant):
    w = load(name).capabilities.window
    assert w.known, f"{name} must say what of its window is known and what is modelled"
    lo, hi = w.bounds(instant, "Asia/Shanghai")
    ota_now = instant.astimezone(ZoneInfo(w.zone or "Asia/Shanghai"))
    ota_today = ota_now.date()
    assert hi == ota_today + timedelta(days=w.ahead_days)
    if w.late_night_until is not None and ota_now.time() < w.late_night_until:
        assert lo == ota_today - timedelta(days=max(1, w.past_days))  # 凌晨房: tonight is yesterday's date
    else:
        assert lo == ota_today - timedelta(days=w.past_days)


def test_windows_stated_per_ota():
    fliggy, meituan, ctrip, booking = (load(n).capabilities.window for n in ("fliggy", "meituan", "ctrip", "booking"))
    late = datetime(2026, 12, 3, 2, 30, tzinfo=SHANGHAI)
    day = datetime(2026, 12, 3, 12, 0, tzinfo=SHANGHAI)
    # Fliggy: yesterday .. today+180 at any hour (its note)
    assert fliggy.bounds(day, "Asia/Shanghai") == (date(2026, 12, 2), date(2026, 12, 3) + timedelta(days=180))
    # Meituan and Ctrip: today.., and yesterday until 06:00
    for w in (meituan, ctrip):
        assert w.bounds(day, "Asia/Shanghai")[0] == date(2026, 12, 3)
        assert w.bounds(late, "Asia/Shanghai")[0] == date(2026, 12, 2)
    # Booking.com counts the CET day: at 02:30 Shanghai it is still Dec 2 in Amsterdam
    assert booking.bounds(late, "Asia/Shanghai")[0] == date(2026, 12, 1)
    assert "yesterday" in fliggy.describe() and "06:00" in meituan.describe()


def _night_items(h: Harness, nights: dict[str, date]) -> list[AriUpdate]:
    out = []
    for label, night in nights.items():
        out.append(AriUpdate(HOTEL, ROOM, RATE, night, night, rooms_to_sell=3 if h.caps.inventory_level == "rate" else None,
                             prices=(Price(2, 45600),), currency="CNY", key=label))
    return out


@pytest.mark.parametrize("name", ADAPTERS)
@pytest.mark.parametrize("label,instant", INSTANTS, ids=[i[0] for i in INSTANTS])
async def test_each_sandbox_enforces_the_window_its_adapter_declares(name, label, instant):
    """At each instant: the first and last night of the declared window are accepted by the
    sandbox; the night before the first and after the last are not (refused by the sandbox,
    or settled ``skipped`` by the adapter without being sent)."""
    with _at(instant):
        h = await Harness(name).start()
        try:
            lo, hi = h.caps.window.bounds(datetime.now(timezone.utc), "Asia/Shanghai")
            nights = {"before": lo - timedelta(days=1), "first": lo, "last": hi, "after": hi + timedelta(days=1)}
            # one calendar month per message where the OTA wants it: one call per night
            results = {}
            for upd in _night_items(h, nights):
                outcome = await h.adapter.push_ari(h.shape([upd]))
                results[upd.key] = outcome.results[0]
            state = {(c["rate"], c["date"]) for c in h.sandbox.state(HOTEL)["cells"] if c.get("price_minor")}
            assert results["first"].status == "applied", (label, results["first"])
            assert results["last"].status == "applied", (label, results["last"])
            assert (RATE, lo.isoformat()) in state and (RATE, hi.isoformat()) in state
            for outside in ("before", "after"):
                assert results[outside].status in ("rejected", "skipped"), (label, outside, results[outside])
                assert (RATE, nights[outside].isoformat()) not in state
        finally:
            await h.stop()


def test_the_late_night_window_is_what_the_sandbox_itself_says():
    """Meituan's sandbox answers 2004 with its own window: yesterday .. while it is before 06:00."""
    from adapters.meituan.sandbox import LATE_NIGHT_END_HOUR

    assert time(LATE_NIGHT_END_HOUR) == load("meituan").capabilities.window.late_night_until
