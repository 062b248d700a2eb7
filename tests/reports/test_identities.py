"""The reports' identities hold for any bookings (hypothesis, issue 14): channel shares add up to
100 %, ADR x room nights = room revenue (to the half minor unit ADR is rounded to), the nights of
a booking add up to its amount exactly, and the cancellation rate is within [0, 1]."""

from __future__ import annotations

import asyncio
import itertools
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channelmgr.ledger import migrate
from channelmgr.ledger.db import Database
from channelmgr.ledger.ledger import Ledger
from channelmgr.ledger.types import IncomingBooking, LocalStay, PropertySpec, RatePlanSpec, RoomTypeSpec
from channelmgr.reports.figures import ReportQuery, compute
from channelmgr.security import Cipher

START = date(2026, 5, 1)
END = date(2026, 5, 31)
CHANNELS = ["booking", "ctrip", "fliggy", "meituan", "website", "phone", "walk_in", "agency", "corporate"]
_codes = itertools.count()

booking = st.fixed_dictionaries({
    "channel": st.sampled_from(CHANNELS),
    "first": st.integers(0, 27),
    "prices": st.lists(st.one_of(st.none(), st.integers(1, 500_000)), min_size=1, max_size=4),
    "rooms": st.integers(1, 3),
    "amount": st.one_of(st.none(), st.integers(1, 3_000_000)),
    "currency": st.sampled_from(["CNY", "CNY", "USD"]),
    "cancelled": st.booleans(),
    "booked_days_before": st.integers(-1, 60),
    "hour": st.integers(0, 23),
    "room_type": st.sampled_from(["A", "B"]),
})


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('identities') / 'ledger.db'}"

    async def up():
        db = Database(url)
        await migrate.upgrade(db)
        await db.dispose()

    asyncio.run(up())
    return url


async def _scenario(url: str, books: list[dict], by: str | None, group: str, basis: str):
    db = Database(url)
    try:
        ledger = Ledger(db, Cipher(b"k" * 32))
        code = f"P{next(_codes)}"
        await ledger.sync_catalog([PropertySpec(
            code=code, name=code, timezone="Asia/Shanghai", currency="CNY",
            room_types=(RoomTypeSpec("A", "A", 5), RoomTypeSpec("B", "B", 3)),
            rate_plans=(RatePlanSpec("RA", "RA", "A", 2), RatePlanSpec("RB", "RB", "B", 2)))])
        for i, b in enumerate(books):
            first = START + timedelta(days=b["first"])
            booked = datetime.combine(first - timedelta(days=b["booked_days_before"]), datetime.min.time(),
                                      timezone.utc) + timedelta(hours=b["hour"])
            stay = LocalStay(b["room_type"], "R" + b["room_type"], b["room_type"], "R" + b["room_type"],
                             tuple((first + timedelta(days=k), p) for k, p in enumerate(b["prices"])), b["rooms"])
            await ledger.apply_booking(IncomingBooking(
                channel=b["channel"], hotel_code=code, property=code, ota_booking_id=f"{code}-{i}", revision="1",
                action="new", stays=(stay,), amount_minor=b["amount"], currency=b["currency"], booked_at=booked,
                revised_at=booked))
            if b["cancelled"]:
                await ledger.apply_booking(IncomingBooking(
                    channel=b["channel"], hotel_code=code, property=code, ota_booking_id=f"{code}-{i}", revision="2",
                    action="cancel", booked_at=booked, revised_at=booked + timedelta(hours=1)))
        q = ReportQuery(code, START, END, by, group, basis)
        return await db.read(lambda conn: compute(conn, "summary", q))
    finally:
        await db.dispose()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(books=st.lists(booking, min_size=1, max_size=12), by=st.sampled_from([None, "week", "day"]),
       group=st.sampled_from(["channel", "room_type", "rate_plan"]), basis=st.sampled_from(["stay", "booking"]))
def test_identities(sqlite_url, books, by, group, basis):
    r = asyncio.run(_scenario(sqlite_url, books, by, group, basis))
    periods: dict[str, list[dict]] = {}
    for row in r["rows"]:
        periods.setdefault(row["period"], []).append(row)
    for rows in periods.values():
        rn = sum(x["room_nights"] for x in rows)
        if rn:
            assert sum(x["room_nights_share"] for x in rows) == pytest.approx(1.0)
        for cur in {mo["currency"] for x in rows for mo in x["money"]}:
            shares = [mo["revenue_share"] for x in rows for mo in x["money"] if mo["currency"] == cur]
            if any(s is not None for s in shares):
                assert sum(s for s in shares if s is not None) == pytest.approx(1.0)
    if r["totals"] is None:  # nothing at all in the range (say, everything booked before it, by booking date)
        assert r["rows"] == [] and (basis == "booking" or all(b["cancelled"] for b in books))
        return
    for row in r["rows"] + [r["totals"]]:
        for mo in row["money"]:
            if mo["room_nights"]:
                # ADR is gross / room nights rounded half up: ADR x room nights is the revenue to within rn / 2
                assert abs(mo["adr_minor"] * mo["room_nights"] - mo["gross_minor"]) * 2 <= mo["room_nights"]
            assert mo["net_minor"] == mo["gross_minor"] - mo["commission_minor"]
        if row["cancellation_rate"] is not None:
            assert 0.0 <= row["cancellation_rate"] <= 1.0
        if row["occupancy"] is not None:
            assert row["occupancy"] >= 0
    t = r["totals"]
    assert t["room_nights"] == sum(x["room_nights"] for x in r["rows"] if x["group"] is not None) or by is not None
    if basis == "stay" and by is None:
        # every stay lies inside May: the revenue per currency is exactly the confirmed bookings' amounts
        want: dict[str, int] = {}
        for b in books:
            if b["cancelled"]:
                continue
            amount = b["amount"]
            if amount is None:
                amount = sum(b["prices"]) * b["rooms"] if None not in b["prices"] else 0
            want[b["currency"]] = want.get(b["currency"], 0) + amount
        got = {mo["currency"]: mo["gross_minor"] for mo in t["money"]}
        assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}
        assert t["room_nights"] == sum(len(b["prices"]) * b["rooms"] for b in books if not b["cancelled"])
        assert t["booked"] is not None and 0 <= t["cancelled"] <= t["booked"]
