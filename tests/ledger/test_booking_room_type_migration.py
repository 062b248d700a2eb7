"""Migration 0006 (issue 14): bookings keep the room type and rate plan of their first room line,
backfilled from booking_nights; a booking already cancelled (no nights left) keeps NULL."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import select

from channelmgr.ledger import migrate
from channelmgr.ledger import models as m
from channelmgr.ledger.db import Database
from channelmgr.ledger.ledger import Ledger
from channelmgr.ledger.types import PropertySpec, RatePlanSpec, RoomTypeSpec
from tests.conftest import create_pg_database, drop_pg_database

HOTEL = PropertySpec(
    code="MIG", name="Migration Hotel", timezone="Asia/Shanghai", currency="CNY",
    room_types=(RoomTypeSpec("K", "King", 10), RoomTypeSpec("T", "Twin", 5)),
    rate_plans=(RatePlanSpec("BAR-K", "BAR King", "K", 2), RatePlanSpec("BAR-T", "BAR Twin", "T", 2)),
    channels=("booking",))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def old_db(request, tmp_path, cipher):
    """A ledger at migration 0005 with a catalog."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}" if request.param == "sqlite" else await create_pg_database()
    db = Database(url)
    try:
        await migrate.upgrade(db, "0005")
        await Ledger(db, cipher).sync_catalog([HOTEL])
        yield db
    finally:
        await db.dispose()
        if request.param == "postgresql":
            await drop_pg_database(url)


async def test_the_backfill_takes_the_first_room_line(old_db):
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)

    async def seed(conn):
        ids = {r.code: r.id for r in (await conn.execute(select(m.room_types.c.code, m.room_types.c.id))).all()}
        ids |= {r.code: r.id for r in (await conn.execute(select(m.rate_plans.c.code, m.rate_plans.c.id))).all()}
        pid = (await conn.execute(select(m.properties.c.id))).scalar_one()
        out = {}
        for oid, status in (("TWO", "confirmed"), ("ONE", "confirmed"), ("GONE", "cancelled")):
            out[oid] = (await conn.execute(m.bookings.insert().values(
                property_id=pid, hotel_code="MIG", channel="booking", ota_booking_id=oid, status=status,
                received_at=now, updated_at=now))).inserted_primary_key[0]
        nights = [("TWO", "T", "BAR-T", date(2026, 3, 5)), ("TWO", "K", "BAR-K", date(2026, 3, 4)),
                  ("ONE", "K", "BAR-K", date(2026, 3, 4))]
        for oid, rt, rp, night in nights:  # TWO: its first room line (lowest id) is T, on the later night
            await conn.execute(m.booking_nights.insert().values(
                booking_id=out[oid], room_type_id=ids[rt], rate_plan_id=ids[rp], room_code=rt, rate_code=rp,
                night=night, rooms=1, counted=True))

    await old_db.write(seed)
    assert (await migrate.upgrade(old_db))[1] == migrate.head_revision()

    async def read(conn):
        rt, rp, b = m.room_types, m.rate_plans, m.bookings
        return {r.ota_booking_id: (r.rt, r.rp) for r in (await conn.execute(
            select(b.c.ota_booking_id, rt.c.code.label("rt"), rp.c.code.label("rp"))
            .select_from(b.outerjoin(rt, rt.c.id == b.c.room_type_id).outerjoin(rp, rp.c.id == b.c.rate_plan_id))
        )).all()}

    assert await old_db.read(read) == {"TWO": ("T", "BAR-T"), "ONE": ("K", "BAR-K"), "GONE": (None, None)}
