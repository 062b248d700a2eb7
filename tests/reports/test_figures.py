"""Every figure of the reports against arithmetic done by hand, on SQLite and PostgreSQL (issue 14).

The hotel RPT (Asia/Shanghai, CNY): room types K (10 rooms) and T (5 rooms); 2 rooms of K out
of order on 2026-03-03. The range is 2026-03-02 (Monday) .. 2026-03-08 (Sunday), ISO week
2026-W10: 7 nights x 15 rooms = 105 room nights, less 2 out of order = 103 available.

Bookings, written through Ledger.apply_booking (the OTA intake's path), the clock pinned at
the moment each reaches the ledger (received_at). Local = UTC + 8.

  id   channel    stay (nights)            rooms  prices        amount      booked (local)     lead
  B1   booking    K 03-02, 03-03            1     500, 600      1,100.00    02-20 10:00        10
  B2   ctrip      T 03-02 (late-night)      2     400           800.00      03-03 01:30 (凌晨)  -1 -> 0
  B3   fliggy     K 03-05..07, then
                  modified to 03-05, 03-06  1     300, 300      900 -> 600  03-01 12:00        4
  B4   meituan    K 03-04, then cancelled   1     350           350.00      03-02 09:00        -
  B5   website    T 03-06, 03-07            1     450, 450      900.00      03-04 03:00 (凌晨)  2
  B6   phone      K 03-08                   1     500           500.00      03-08 10:00        0
  B7   walk_in    T 03-07                   1     400           400.00      03-07 20:00        0
  B8   agency     K 03-02..04 (3 nights)    1     EUR 60 x 3    EUR 180.00  01-10 09:00        51
  B9   corporate  K 03-06                   1     520           520.00      02-25 15:00        9
  B10  booking    K 03-09, then cancelled   1     700           700.00      03-05 11:00        -

Commission in the mapping: booking 15 % from 2026-01-01; ctrip 12 % from 2026-01-01 and 10 %
from 2026-03-03 (B2 arrives 03-02: 12 %); agency 10 %. EUR -> CNY at 7.8.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import time_machine

from channelmgr.ledger.types import AriChange, IncomingBooking, LocalStay, PropertySpec, RatePlanSpec, RoomTypeSpec
from channelmgr.reports.figures import Money, ReportError, ReportQuery, compute

UTC = timezone.utc
SH = timedelta(hours=8)
START, END = date(2026, 3, 2), date(2026, 3, 8)

RPT = PropertySpec(
    code="RPT", name="报表酒店 Report Hotel", timezone="Asia/Shanghai", currency="CNY",
    room_types=(RoomTypeSpec("K", "King", 10), RoomTypeSpec("T", "Twin", 5)),
    rate_plans=(RatePlanSpec("BAR-K", "BAR King", "K", 2), RatePlanSpec("BAR-T", "BAR Twin", "T", 2)),
    channels=("booking", "ctrip", "fliggy", "meituan"))

MONEY = Money(commission={"booking": [(date(2026, 1, 1), 1500)],
                          "ctrip": [(date(2026, 1, 1), 1200), (date(2026, 3, 3), 1000)],
                          "agency": [(date(2026, 1, 1), 1000)]},
              rates={"EUR": Decimal("7.8")})


def local(y, mo, d, h, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC) - SH  # a Shanghai wall-clock time as UTC


def stay(rt: str, first: date, prices: list[int], rooms: int = 1) -> LocalStay:
    return LocalStay(room_code=rt, rate_code=f"BAR-{rt}", room_type=rt, rate_plan=f"BAR-{rt}",
                     nights=tuple((first + timedelta(days=i), p) for i, p in enumerate(prices)), rooms=rooms)


async def book(ledger, channel, oid, st: LocalStay | None, amount, booked_at, *, action="new", rev="1",
               currency="CNY", received_at=None):
    b = IncomingBooking(channel=channel, hotel_code="RPT", property="RPT", ota_booking_id=oid, revision=rev,
                        action=action, stays=(st,) if st else (), amount_minor=amount, currency=currency,
                        booked_at=booked_at, revised_at=received_at or booked_at)
    with time_machine.travel(received_at or booked_at, tick=False):
        return await ledger.apply_booking(b)


@pytest.fixture
async def books(ledger):
    await ledger.sync_catalog([RPT])
    await ledger.set_ari(AriChange(property="RPT", room_type="K", start=date(2026, 3, 3), end=date(2026, 3, 3),
                                   out_of_order=2), actor="test")
    d = date
    await book(ledger, "booking", "B1", stay("K", d(2026, 3, 2), [50000, 60000]), 110000, local(2026, 2, 20, 10))
    await book(ledger, "ctrip", "B2", stay("T", d(2026, 3, 2), [40000], rooms=2), 80000, local(2026, 3, 3, 1, 30))
    await book(ledger, "fliggy", "B3", stay("K", d(2026, 3, 5), [30000] * 3), 90000, local(2026, 3, 1, 12))
    await book(ledger, "fliggy", "B3", stay("K", d(2026, 3, 5), [30000] * 2), 60000, local(2026, 3, 1, 12),
               action="modify", rev="2", received_at=local(2026, 3, 2, 14))
    await book(ledger, "meituan", "B4", stay("K", d(2026, 3, 4), [35000]), 35000, local(2026, 3, 2, 9))
    await book(ledger, "meituan", "B4", None, None, local(2026, 3, 2, 9), action="cancel", rev="2",
               received_at=local(2026, 3, 2, 18))
    await book(ledger, "website", "B5", stay("T", d(2026, 3, 6), [45000, 45000]), 90000, local(2026, 3, 4, 3))
    await book(ledger, "phone", "B6", stay("K", d(2026, 3, 8), [50000]), 50000, local(2026, 3, 8, 10))
    await book(ledger, "walk_in", "B7", stay("T", d(2026, 3, 7), [40000]), 40000, local(2026, 3, 7, 20))
    await book(ledger, "agency", "B8", stay("K", d(2026, 3, 2), [6000] * 3), 18000, local(2026, 1, 10, 9),
               currency="EUR")
    await book(ledger, "corporate", "B9", stay("K", d(2026, 3, 6), [52000]), 52000, local(2026, 2, 25, 15))
    await book(ledger, "booking", "B10", stay("K", d(2026, 3, 9), [70000]), 70000, local(2026, 3, 5, 11))
    await book(ledger, "booking", "B10", None, None, local(2026, 3, 5, 11), action="cancel", rev="2",
               received_at=local(2026, 3, 6, 11))
    return ledger


async def run(ledger, kind="summary", **kw):
    q = ReportQuery("RPT", kw.pop("start", START), kw.pop("end", END), **kw)
    return await ledger.db.read(lambda conn: compute(conn, kind, q, MONEY))


def money(row, cur):
    return next(mo for mo in row["money"] if mo["currency"] == cur)


async def test_the_totals_over_the_week(books):
    r = await run(books)
    t = r["totals"]
    # room nights: B1 2 + B2 2 + B3 2 (after the modification) + B5 2 + B6 1 + B7 1 + B8 3 + B9 1 = 14
    assert t["room_nights"] == 14
    assert t["bookings"] == 8  # B1 B2 B3 B5 B6 B7 B8 B9 (B4, B10 cancelled)
    assert t["available"] == 103  # 7 x (10 + 5) - 2 out of order
    assert t["occupancy"] == pytest.approx(14 / 103)
    cny, eur = money(t, "CNY"), money(t, "EUR")
    # CNY: 110000 + 80000 + 60000 + 90000 + 50000 + 40000 + 52000 = 482000 over 11 room nights
    assert cny["gross_minor"] == 482000 and cny["room_nights"] == 11
    # commission: B1 110000 x 15 % = 16500; B2 80000 x 12 % (arrival 03-02, before ctrip's 10 %) = 9600
    assert cny["commission_minor"] == 16500 + 9600
    assert cny["net_minor"] == 482000 - 26100
    assert cny["adr_minor"] == 43818  # 482000 / 11 = 43818.18
    assert cny["revpar_minor"] == 4680  # 482000 / 103 = 4679.6
    # EUR: B8 18000 over 3 nights, agency 10 % = 1800
    assert (eur["gross_minor"], eur["commission_minor"], eur["adr_minor"], eur["room_nights"]) == (18000, 1800, 6000, 3)
    conv = t["converted"]
    assert conv["currency"] == "CNY" and conv["rates"] == {"EUR": "7.8"}
    assert conv["gross_minor"] == 482000 + 140400  # 18000 x 7.8 = 140400
    assert conv["commission_minor"] == 26100 + 14040  # 1800 x 7.8
    assert "1 EUR = 7.8 CNY" in conv["label"]
    # lead times: 10, 0 (B2 booked at 01:30 for the night before: -1 counts 0), 4, 2, 0, 0, 51, 9 = 76 / 8
    lt = t["lead_time"]
    assert lt["mean_days"] == pytest.approx(9.5)
    assert lt["median_days"] == pytest.approx(3.0)  # 0 0 0 2 | 4 9 10 51 -> (2 + 4) / 2
    assert lt["buckets"] == {"0": 3, "1-3": 1, "4-7": 1, "8-14": 2, "15-30": 0, "31+": 1}
    assert t["average_length_of_stay"] == pytest.approx(13 / 8)  # 2 1 2 2 1 1 3 1
    assert t["late_night"] == 2 and t["late_night_share"] == pytest.approx(0.25)  # B2 01:30, B5 03:00
    # cancellations by booking date: made 03-02..03-08: B2 B4 B5 B6 B7 B10; cancelled B4 B10
    assert (t["booked"], t["cancelled"]) == (6, 2)
    assert t["cancellation_rate"] == pytest.approx(1 / 3)
    assert t["no_shows"] == 0


async def test_by_channel_every_source_and_the_mix(books):
    r = await run(books)
    rows = {row["group"]: row for row in r["rows"]}
    assert set(rows) == {"booking", "ctrip", "fliggy", "meituan", "website", "phone", "walk_in", "agency",
                         "corporate"}
    assert rows["booking"]["room_nights"] == 2 and money(rows["booking"], "CNY")["net_minor"] == 110000 - 16500
    assert rows["booking"]["room_nights_share"] == pytest.approx(2 / 14)
    assert money(rows["booking"], "CNY")["revenue_share"] == pytest.approx(110000 / 482000)
    assert rows["booking"]["occupancy"] == pytest.approx(2 / 103)
    assert (rows["booking"]["booked"], rows["booking"]["cancelled"]) == (1, 1)  # B10 (B1 booked in February)
    assert rows["booking"]["cancellation_rate"] == 1.0
    assert rows["meituan"]["room_nights"] == 0 and rows["meituan"]["cancellation_rate"] == 1.0
    assert rows["ctrip"]["cancellation_rate"] == 0.0 and rows["ctrip"]["late_night_share"] == 1.0
    assert rows["fliggy"]["room_nights"] == 2 and money(rows["fliggy"], "CNY")["gross_minor"] == 60000
    assert rows["agency"]["money"][0]["currency"] == "EUR"
    assert rows["agency"]["converted"]["gross_minor"] == 140400
    assert sum(row["room_nights_share"] for row in rows.values() if row["room_nights_share"]) == pytest.approx(1)


async def test_by_day_and_room_type(books):
    r = await run(books, by="day", group="room_type")
    cell = {(row["period"], row["group"]): row for row in r["rows"]}
    # 03-02 K: B1 night 1 (500.00) and B8 night 1 (EUR 60.00); 10 rooms available
    k2 = cell[("2026-03-02", "K")]
    assert k2["room_nights"] == 2 and k2["available"] == 10 and k2["occupancy"] == pytest.approx(0.2)
    assert money(k2, "CNY")["gross_minor"] == 50000 and money(k2, "EUR")["gross_minor"] == 6000
    # 03-03 K: B1 night 2 (600.00) + B8; 10 - 2 out of order = 8 available
    k3 = cell[("2026-03-03", "K")]
    assert k3["available"] == 8 and money(k3, "CNY")["gross_minor"] == 60000
    assert k3["occupancy"] == pytest.approx(2 / 8)
    # 03-02 T: B2, 2 rooms of the late-night stay
    assert cell[("2026-03-02", "T")]["room_nights"] == 2
    # the modification took 03-07 off B3: on 03-07 K has nobody
    assert ("2026-03-07", "K") not in cell
    # cancellations by booking date, by room type: made on 03-02 only B4 (K, cancelled)
    assert (k2["booked"], k2["cancelled"], k2["cancellation_rate"]) == (1, 1, 1.0)
    assert (cell[("2026-03-02", "T")]["booked"], cell[("2026-03-02", "T")]["cancellation_rate"]) == (0, None)


async def test_iso_week_and_month(books):
    w = await run(books, by="week", start=date(2026, 3, 1), end=date(2026, 3, 9))
    periods = [row["period"] for row in w["rows"]]
    # Sun 03-01 is in W09 (B3 was booked that day: a cancellation-rate row, no nights), Mon 03-02 .. Sun 03-08
    # is W10; Mon 03-09 (W11) has only B10's cancelled stay, and nothing booked: no row
    assert set(periods) == {"2026-W09", "2026-W10"}
    w09 = next(row for row in w["rows"] if row["period"] == "2026-W09")
    assert (w09["start"], w09["end"], w09["room_nights"], w09["booked"]) == ("2026-03-01", "2026-03-01", 0, 1)
    w10 = [row for row in w["rows"] if row["period"] == "2026-W10"]
    assert (w10[0]["start"], w10[0]["end"]) == ("2026-03-02", "2026-03-08")
    assert sum(row["room_nights"] for row in w10) == 14
    assert w["week"].startswith("ISO 8601")
    m = await run(books, by="month", group="rate_plan")
    assert {row["period"] for row in m["rows"]} == {"2026-03"}
    assert {row["group"] for row in m["rows"]} == {"BAR-K", "BAR-T"}


async def test_booking_date_basis(books):
    r = await run(books, basis="booking")
    t = r["totals"]
    # made 03-02..03-08 and still confirmed: B2 (2 rn, 800.00), B5 (2, 900.00), B6 (1, 500.00), B7 (1, 400.00)
    assert t["room_nights"] == 6 and t["bookings"] == 4
    assert money(t, "CNY")["gross_minor"] == 80000 + 90000 + 50000 + 40000
    assert t["occupancy"] is None and t["available"] is None
    assert t["late_night"] == 2  # B2 and B5


async def test_the_other_reports(books):
    lt = await run(books, "lead-time")
    assert lt["totals"]["lead_time"]["buckets"]["31+"] == 1
    c = await run(books, "cancellations")
    assert c["totals"]["cancellation_rate"] == pytest.approx(1 / 3)
    p = await run(books, "pace", by="month")
    cny = [row for row in p["rows"] if row["currency"] == "CNY"]
    assert sum(row["room_nights"] for row in cny) == 11
    last = {}
    for row in cny:
        last[row["group"]] = row
    assert sum(row["cumulative_gross_minor"] for row in last.values()) == 482000
    ch = await run(books, "channels")
    assert ch["totals"]["room_nights"] == 14


async def test_cancellations_by_room_type_and_rate_plan(books):
    # made 03-02..03-08, each under its room type as booked (kept when it was cancelled):
    #   K: B4 (03-02, cancelled), B6 (03-08), B10 (03-05, cancelled) -> 3 booked, 2 cancelled, 2/3
    #   T: B2 (03-03), B5 (03-04), B7 (03-07)                        -> 3 booked, 0 cancelled, 0
    # (B1, B3, B8, B9 were booked before 03-02); the rate plans are BAR-K and BAR-T alike
    for group, k, t in (("room_type", "K", "T"), ("rate_plan", "BAR-K", "BAR-T")):
        c = await run(books, "cancellations", group=group)
        rows = {row["group"]: row for row in c["rows"]}
        assert set(rows) == {k, t}
        assert (rows[k]["booked"], rows[k]["cancelled"], rows[k]["no_shows"]) == (3, 2, 0)
        assert rows[k]["cancellation_rate"] == pytest.approx(2 / 3)
        assert (rows[t]["booked"], rows[t]["cancelled"], rows[t]["cancellation_rate"]) == (3, 0, 0.0)
        assert (c["totals"]["booked"], c["totals"]["cancelled"]) == (6, 2)
        # summary's column is the same figure, beside the stay-date ones
        s = {row["group"]: row for row in (await run(books, group=group))["rows"]}
        assert s[k]["cancellation_rate"] == pytest.approx(2 / 3) and s[t]["cancellation_rate"] == 0.0
        assert s[k]["room_nights"] == 9 and s[t]["room_nights"] == 5  # K: B1 2, B3 2, B6 1, B8 3, B9 1
    # by week: the Sunday before (W09) has B3 (K, booked 03-01, not cancelled)
    w = await run(books, "cancellations", group="room_type", by="week", start=date(2026, 3, 1), end=date(2026, 3, 9))
    cell = {(row["period"], row["group"]): row for row in w["rows"]}
    assert (cell[("2026-W09", "K")]["booked"], cell[("2026-W09", "K")]["cancelled"]) == (1, 0)
    assert (cell[("2026-W10", "K")]["booked"], cell[("2026-W10", "K")]["cancelled"]) == (3, 2)
    assert ("2026-W09", "T") not in cell


async def test_a_cancelled_booking_keeps_its_first_room_line(books):
    # B3 was modified (K -> K) and B4 cancelled: the bookings row keeps K / BAR-K through both
    from sqlalchemy import select

    from channelmgr.ledger import models as m

    async def q(conn):
        return {r.ota_booking_id: (r.status, r.rt, r.rp) for r in (await conn.execute(
            select(m.bookings.c.ota_booking_id, m.bookings.c.status, m.room_types.c.code.label("rt"),
                   m.rate_plans.c.code.label("rp"))
            .join(m.room_types, m.room_types.c.id == m.bookings.c.room_type_id)
            .join(m.rate_plans, m.rate_plans.c.id == m.bookings.c.rate_plan_id)
            .where(m.bookings.c.ota_booking_id.in_(("B3", "B4", "B5"))))).all()}

    assert await books.db.read(q) == {"B3": ("confirmed", "K", "BAR-K"), "B4": ("cancelled", "K", "BAR-K"),
                                      "B5": ("confirmed", "T", "BAR-T")}


async def test_bad_queries(books):
    with pytest.raises(ReportError, match="no property"):
        await books.db.read(lambda conn: compute(conn, "summary", ReportQuery("NOPE", START, END)))
    with pytest.raises(ReportError, match="before it starts"):
        await run(books, start=END, end=START)
