"""Sync-log bodies written before names were masked are masked by migration 0002 (issue 10)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import text

from channelmgr.ledger import migrate
from channelmgr.ledger.db import Database

MEITUAN = ('{"partnerId": "P1", "body": {"orderId": "MT1", "contactName": "欧阳娜娜", "guestNames": ["欧阳娜娜"], '
           '"remark": "需要婴儿床", "contactPhone": "13800138000"}}')
CTRIP = ('<OTA_HotelResRQ><PersonName><GivenName>Weiming</GivenName><Surname>Zhang</Surname></PersonName>'
         '<SpecialRequests><SpecialRequest><Text>crib by the window</Text></SpecialRequest></SpecialRequests>'
         '<RoomType RoomTypeCode="DK"/></OTA_HotelResRQ>')


async def test_upgrading_masks_names_and_requests_in_old_sync_log_bodies(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        await migrate.upgrade(db, "0001")

        async def insert(conn):
            for channel, body in (("meituan", MEITUAN), ("ctrip", CTRIP)):
                await conn.execute(text(
                    "INSERT INTO sync_log (at, channel, direction, operation, items, result, duration_ms, attempt, "
                    "request, response) VALUES (:at, :ch, 'in', 'inbound', 0, 'ok', 1.0, 1, :body, :body)"),
                    {"at": datetime.now(timezone.utc), "ch": channel, "body": body})

        await db.write(insert)
        await migrate.upgrade(db)

        async def read(conn):
            return (await conn.execute(text("SELECT channel, request, response FROM sync_log ORDER BY id"))).all()

        rows = await db.read(read)
    finally:
        await db.dispose()
    assert len(rows) == 2
    for _, request, response in rows:
        for body in (request, response):
            for secret in ("娜娜", "婴儿床", "Weiming", "Zhang", "crib", "00138000"):
                assert secret not in body, (secret, body)
    assert '"orderId": "MT1"' in rows[0].request and 'RoomTypeCode="DK"' in rows[1].request
