"""The ledger on SQLite and PostgreSQL: changes, journal, outbox, bookings."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from adapters.base.contract import Guest
from channelmgr.ledger import models as m
from channelmgr.ledger.types import AriChange, IncomingBooking, LedgerError, LocalStay

D = date(2027, 2, 27)  # a month end two nights later (2027 is not a leap year)


def stay(room="DK", rate="BAR", start=D, nights=2, rooms=1, price=50000):
    return LocalStay(room_code=f"OTA-{room}", rate_code=f"OTA-{rate}", room_type=room, rate_plan=rate,
                     nights=tuple((start + timedelta(days=i), price) for i in range(nights)), rooms=rooms)


def booking(oid="B1", revision="1", action="new", stays=None, revised_at=None, channel="booking",
            guest=Guest(name="张伟", phone="+86 138 0013 8000", email="zhang.wei@example.cn")):
    return IncomingBooking(channel=channel, hotel_code="H1", property="SHA-TEST", ota_booking_id=oid,
                           revision=revision, action=action,
                           stays=tuple(stays if stays is not None else [stay()]),
                           amount_minor=100000, currency="CNY", guest=guest, special_requests="高楼层 high floor",
                           revised_at=revised_at)


def rooms_of(shown, room_type):
    return {r["date"]: r for r in shown["rooms"] if r["room_type"] == room_type}


async def test_set_then_show_round_trips_exactly(ledger, hotel):
    await ledger.set_ari(AriChange("SHA-TEST", "DK", D, D + timedelta(days=2), rate_plan="BAR", rooms=7,
                                   price_minor=88850, min_los=2, max_los=14, cta=True, ctd=False,
                                   stop_sell=False), actor="test")
    shown = await ledger.show("SHA-TEST", D, D + timedelta(days=2))
    nights = ["2027-02-27", "2027-02-28", "2027-03-01"]
    assert [r for r in shown["rooms"] if r["room_type"] == "DK"] == [
        {"room_type": "DK", "date": n, "physical": 7, "out_of_order": 0, "sold": 0, "held": 0, "free": 7}
        for n in nights]
    assert [r for r in shown["rates"] if r["rate_plan"] == "BAR"] == [
        {"rate_plan": "BAR", "date": n, "occupancy": 2, "price_minor": 88850, "currency": "CNY", "min_los": 2,
         "max_los": 14, "cta": True, "ctd": False, "stop_sell": False} for n in nights]
    # untouched room types keep the catalog's physical count
    assert rooms_of(shown, "ST")["2027-02-28"]["physical"] == 5


async def test_every_change_is_journaled_and_queued_per_channel(ledger, hotel, db):
    s = await ledger.set_ari(AriChange("SHA-TEST", "DK", D, D + timedelta(days=1), rate_plan="BAR",
                                       rooms=4, price_minor=60000), actor="cli:test", reason="fair")
    rows = await ledger.journal("SHA-TEST", limit=10)
    mine = [r for r in rows if r["correlation_id"] == s.correlation_id]
    assert {(r["entity"], r["key"]["night"]) for r in mine} == {
        ("inventory", "2027-02-27"), ("inventory", "2027-02-28"), ("rate", "2027-02-27"), ("rate", "2027-02-28")}
    inv = next(r for r in mine if r["entity"] == "inventory")
    assert inv["before"]["physical"] == 10 and inv["after"]["physical"] == 4
    assert inv["actor"] == "cli:test" and inv["reason"] == "fair"
    pending = await ledger.outbox_pending()
    cells = {(p["channel"], p["kind"], p["night"]) for p in pending if p["kind"] != "full"}
    # rooms for 2 nights, BAR and its derived plan EB for 2 nights, on both channels
    assert len([c for c in pending if c["kind"] == "rate" and c["channel"] == "booking"]) == 4
    assert {c[0] for c in cells} == {"booking", "ctrip"}
    assert ("ctrip", "rooms", D) in cells


async def test_an_unchanged_value_writes_nothing(ledger, hotel):
    ch = AriChange("SHA-TEST", "DK", D, D, rate_plan="BAR", price_minor=70000)
    await ledger.set_ari(ch, actor="t")
    before = len(await ledger.journal(limit=1000))
    s = await ledger.set_ari(ch, actor="t")
    assert s.cells_changed == 0 and s.outbox_rows == 0
    assert len(await ledger.journal(limit=1000)) == before


async def test_a_pending_push_is_reused_not_duplicated(ledger, hotel, db):
    for price in (70000, 71000, 72000):
        await ledger.set_ari(AriChange("SHA-TEST", "DK", D, D, rate_plan="BAR", price_minor=price), actor="t")

    async def q(conn):
        return (await conn.execute(select(func.count()).select_from(m.outbox).where(
            m.outbox.c.status == "pending", m.outbox.c.kind == "rate", m.outbox.c.channel == "booking",
            m.outbox.c.rate_plan_id.is_not(None)))).scalar()

    assert await db.read(q) == 2  # BAR and its derived EB, one row each, however many edits


async def test_bad_changes_are_refused_with_a_reason(ledger, hotel):
    with pytest.raises(LedgerError, match="no room type 'XX'"):
        await ledger.set_ari(AriChange("SHA-TEST", "XX", D, D, rooms=1), actor="t")
    with pytest.raises(LedgerError, match="ends"):
        await ledger.set_ari(AriChange("SHA-TEST", "DK", D, D - timedelta(days=1), rooms=1), actor="t")
    with pytest.raises(LedgerError, match="rate plan"):
        await ledger.set_ari(AriChange("SHA-TEST", "DK", D, D, price_minor=100), actor="t")
    with pytest.raises(LedgerError, match="another room type"):
        await ledger.set_ari(AriChange("SHA-TEST", "DK", D, D, rate_plan="BAR-ST", price_minor=100), actor="t")
    with pytest.raises(LedgerError, match="takes its price from BAR"):
        await ledger.set_ari(AriChange("SHA-TEST", "DK", D, D, rate_plan="EB", price_minor=100), actor="t")
    with pytest.raises(LedgerError, match="shorter than min_los"):
        await ledger.set_ari(AriChange("SHA-TEST", "DK", D, D, rate_plan="BAR", min_los=3, max_los=2), actor="t")
    assert await ledger.journal("SHA-TEST", limit=5) == [r for r in await ledger.journal("SHA-TEST", limit=5)
                                                         if r["entity"] != "inventory"]


async def test_a_booking_takes_rooms_and_its_cancellation_gives_them_back(ledger, hotel):
    r = await ledger.apply_booking(booking(stays=[stay(rooms=2)]))
    assert r.status == "confirmed" and not r.overbooked and r.confirmation.startswith("CM")
    shown = rooms_of(await ledger.show("SHA-TEST", D, D + timedelta(days=2)), "DK")
    assert [shown[n]["sold"] for n in ("2027-02-27", "2027-02-28", "2027-03-01")] == [2, 2, 0]
    assert r.outbox_rows == 4  # 2 nights x 2 channels
    c = await ledger.apply_booking(booking(revision="2", action="cancel", stays=[],
                                           revised_at=datetime(2027, 1, 2, tzinfo=timezone.utc)))
    assert c.status == "cancelled" and c.confirmation == r.confirmation
    shown = rooms_of(await ledger.show("SHA-TEST", D, D + timedelta(days=1)), "DK")
    assert [shown[n]["sold"] for n in ("2027-02-27", "2027-02-28")] == [0, 0]


async def test_a_modification_moves_the_nights(ledger, hotel):
    t0 = datetime(2027, 1, 1, 8, tzinfo=timezone.utc)
    await ledger.apply_booking(booking(revised_at=t0))
    await ledger.apply_booking(booking(revision="2", action="modify", revised_at=t0 + timedelta(hours=1),
                                       stays=[stay(start=D + timedelta(days=1), nights=3)]))
    shown = rooms_of(await ledger.show("SHA-TEST", D, D + timedelta(days=4)), "DK")
    assert [shown[(D + timedelta(days=i)).isoformat()]["sold"] for i in range(5)] == [0, 1, 1, 1, 0]


async def test_the_same_revision_twice_is_applied_once(ledger, hotel):
    first = await ledger.apply_booking(booking())
    again = await ledger.apply_booking(booking())
    assert again.duplicate and again.booking_id == first.booking_id and again.confirmation == first.confirmation
    assert rooms_of(await ledger.show("SHA-TEST", D, D), "DK")["2027-02-27"]["sold"] == 1


@pytest.mark.parametrize("order", [("new", "modify", "cancel"), ("cancel", "new", "modify"),
                                   ("modify", "new", "cancel"), ("modify", "cancel", "new")])
async def test_revisions_in_any_order_end_in_the_same_state(ledger, hotel, order):
    t0 = datetime(2027, 1, 1, 8, tzinfo=timezone.utc)
    revs = {
        "new": booking(revision="r1", action="new", revised_at=t0),
        "modify": booking(revision="r2", action="modify", revised_at=t0 + timedelta(minutes=5),
                          stays=[stay(nights=3)]),
        "cancel": booking(revision="r3", action="cancel", revised_at=t0 + timedelta(minutes=9), stays=[]),
    }
    for action in order:
        await ledger.apply_booking(revs[action])
    b = await ledger.booking("booking", "B1")
    assert b["status"] == "cancelled"
    shown = rooms_of(await ledger.show("SHA-TEST", D, D + timedelta(days=3)), "DK")
    assert all(r["sold"] == 0 for r in shown.values())
    assert {r["revision"] for r in b["revisions"]} == {"r1", "r2", "r3"}


async def test_a_modification_before_its_new_ends_modified(ledger, hotel):
    t0 = datetime(2027, 1, 1, 8, tzinfo=timezone.utc)
    await ledger.apply_booking(booking(revision="r2", action="modify", revised_at=t0 + timedelta(minutes=5),
                                       stays=[stay(nights=3)]))
    late = await ledger.apply_booking(booking(revision="r1", action="new", revised_at=t0))
    assert late.superseded
    shown = rooms_of(await ledger.show("SHA-TEST", D, D + timedelta(days=3)), "DK")
    assert [r["sold"] for r in shown.values()] == [1, 1, 1, 0]


async def test_an_unmapped_room_is_stored_and_raised_not_lost(ledger, hotel, db):
    odd = LocalStay("OTA-UNKNOWN", "OTA-BAR", None, None, ((D, 40000),), 1)
    r = await ledger.apply_booking(booking(oid="U1", stays=[odd]))
    assert r.status == "confirmed"
    b = await ledger.booking("booking", "U1")
    assert b["unmapped"] and b["nights"][0]["counted"] is False

    async def q(conn):
        return (await conn.execute(select(m.conflicts.c.kind, m.conflicts.c.summary))).all()

    (kind, summary), = await db.read(q)
    assert kind == "unmapped_code" and "OTA-UNKNOWN" in summary
    assert rooms_of(await ledger.show("SHA-TEST", D, D), "DK")["2027-02-27"]["sold"] == 0


async def test_guest_data_is_encrypted_at_rest_and_masked_by_default(ledger, hotel, db):
    await ledger.apply_booking(booking())

    async def q(conn):
        return (await conn.execute(select(m.bookings))).first()

    row = await db.read(q)
    for col in ("guest_name_ct", "guest_phone_ct", "guest_email_ct", "special_requests_ct"):
        assert getattr(row, col).startswith("v1:")
    raw = repr(tuple(row))
    for plain in ("张伟", "13800138000", "138 0013 8000", "zhang.wei", "高楼层"):
        assert plain not in raw
    shown = await ledger.booking("booking", "B1")
    assert shown["guest"]["name"] == "张*" and "8000" in shown["guest"]["phone"] and "138" not in shown["guest"]["phone"]
    assert (await ledger.booking("booking", "B1", reveal=True))["guest"]["name"] == "张伟"


async def test_catalog_changes_are_journaled_and_relisted(ledger, hotel, db):
    from dataclasses import replace

    from channelmgr.ledger.types import RoomTypeSpec

    bigger = replace(hotel, room_types=(RoomTypeSpec("DK", "豪华大床房 Deluxe King", 12),),
                     rate_plans=tuple(p for p in hotel.rate_plans if p.room_type == "DK"),
                     channels=("booking", "ctrip", "fliggy"))
    s = await ledger.sync_catalog([bigger])
    rows = [r for r in await ledger.journal("SHA-TEST", 20) if r["correlation_id"] == s.correlation_id]
    actions = {(r["entity"], r["action"]) for r in rows}
    assert {("room_type", "update"), ("room_type", "retire"), ("rate_plan", "retire"), ("listing", "update")} <= actions
    full = [p for p in await ledger.outbox_pending() if p["kind"] == "full"]
    assert {p["channel"] for p in full} == {"booking", "ctrip", "fliggy"}
    shown = await ledger.show("SHA-TEST", D, D)
    assert [r["room_type"] for r in shown["rooms"]] == ["DK"] and shown["rooms"][0]["physical"] == 12


async def test_revisions_stamped_in_gmt_plus_8_are_ordered_as_instants(ledger, hotel):
    """Fliggy stamps its orders in GMT+8, to the second: a cancellation in the same second as
    the booking still wins, and a UTC-stamped revision compares with it as the same instant."""
    from zoneinfo import ZoneInfo

    cst = ZoneInfo("Asia/Shanghai")
    t = datetime(2027, 1, 31, 23, 59, 59, tzinfo=cst)  # late at night, a month end, 15:59:59 UTC
    await ledger.apply_booking(booking(oid="F1", revised_at=t))
    r = await ledger.apply_booking(booking(oid="F1", revision="2", action="cancel", revised_at=t))
    assert not r.superseded
    assert (await ledger.booking("booking", "F1"))["status"] == "cancelled"
    # an older revision stamped in UTC (one second earlier) arrives late: kept, not applied
    late = await ledger.apply_booking(booking(oid="F1", revision="0", action="modify",
                                              revised_at=datetime(2027, 1, 31, 15, 59, 58, tzinfo=timezone.utc)))
    assert late.superseded
    assert (await ledger.booking("booking", "F1"))["status"] == "cancelled"
