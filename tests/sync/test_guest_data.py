"""Guest data in stored bodies and files, and messages a crash left behind (issue 10).

- every sync-log body (request, response, error) of all four channels has the guest's name,
  special requests, phone and e-mail masked, not only the phone and e-mail;
- the SQLite ledger is private: var/ 0700, the database and its -wal/-shm files 0600;
- a message stored just before a crash (left ``received``) is counted by ``status`` and
  applied when the daemon starts again.
"""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from channelmgr.config import Credentials
from channelmgr.daemon import Daemon
from channelmgr.ledger import models as m
from channelmgr.ops import status
from tests.sync import harness
from tests.sync.test_hostile import ctrip_message, inbox_rows, meituan_notice

NAME = "欧阳娜娜"
LATIN = "Zhang Weiming"
REQUEST = "需要婴儿床 crib next to the window"
PHONE = "13912345678"
EMAIL = "weiming.private@example.com"


async def test_stored_sync_log_bodies_carry_no_guest_data(tmp_path):
    run = await harness.start(tmp_path)
    try:
        day = run.today() + timedelta(days=4)
        ids = {}
        for i, channel in enumerate(harness.CHANNELS):
            room, rate = run.codes(channel, "DK", "BAR-DK")
            name = NAME if i % 2 else LATIN
            b = await run.book(channel, hotel=run.hotel(channel), room=room, rate=rate,
                               checkin=(day + timedelta(days=i)).isoformat(),
                               checkout=(day + timedelta(days=i + 1)).isoformat(),
                               guest={"name": name, "phone": PHONE, "email": EMAIL}, special_requests=REQUEST,
                               amount_minor=60000)
            ids[channel] = b["ota_booking_id"]

        async def all_in():
            return all([await run.ledger.booking(ch, oid) for ch, oid in ids.items()])

        await run.wait_for(all_in, timeout=30, what="the four bookings")
        b = await run.ledger.booking("meituan", ids["meituan"], reveal=True)
        assert NAME in str(b) or LATIN in str(b)  # the ledger keeps them (encrypted), the log must not
        await run.d.synclog.flush()

        async def q(conn):
            return (await conn.execute(select(m.sync_log.c.channel, m.sync_log.c.operation, m.sync_log.c.request,
                                              m.sync_log.c.response, m.sync_log.c.error))).all()

        rows = await run.d.rt.db.read(q)
    finally:
        await run.close()
    bodies = [(r.channel, r.operation, t) for r in rows for t in (r.request, r.response, r.error) if t]
    assert {c for c, _, _ in bodies} == set(harness.CHANNELS)
    leaks = [(c, op, secret) for c, op, t in bodies
             for secret in ("娜娜", "Weiming", "婴儿床", "crib", "12345678", "weiming.private")
             if secret in t]
    assert not leaks, f"{len(leaks)} sync-log bodies carry guest data, e.g. {leaks[:5]}"


async def test_the_sqlite_ledger_is_private(tmp_path):
    old = os.umask(0o022)
    try:
        url = f"sqlite:///{tmp_path / 'var' / 'ledger.db'}"
        run = await harness.start(tmp_path, db_url=url)
        try:
            var = tmp_path / "var"
            assert stat.S_IMODE(var.stat().st_mode) == 0o700
            files = [p for p in var.iterdir() if p.name.startswith("ledger.db")]
            assert {p.name for p in files} >= {"ledger.db", "ledger.db-wal"}
            for p in files:
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p.name, oct(p.stat().st_mode))
        finally:
            await run.close()
    finally:
        os.umask(old)


def _config(tmp_path):
    cfg = harness.make_config(tmp_path)
    (tmp_path / "ctrip.creds").write_text("username=ct-fixed\npassword=ct-fixed-password-123\n")
    (tmp_path / "meituan.creds").write_text("username=mt-fixed\nkey=mtkey-fixed\nsecret=mt-fixed-secret-456\n")
    cfg.channels["ctrip"].credentials = Credentials(file=str(tmp_path / "ctrip.creds"))
    cfg.channels["meituan"].credentials = Credentials(file=str(tmp_path / "meituan.creds"))
    return cfg


async def test_messages_left_received_by_a_crash_are_counted_and_applied_at_start(tmp_path):
    d = Daemon(_config(tmp_path), push_settings=harness.fast_push_settings())
    await d.start()
    run = harness.Running(d)
    try:
        ctrip_raw = ctrip_message(run, "CT-CRASH-1").encode()
        import json

        meituan_raw = json.dumps(meituan_notice(run, "MT-CRASH-1", days=7), ensure_ascii=False).encode()
        # what a crash between "stored" and "applied" leaves behind
        await run.ledger.store_inbox("ctrip", ctrip_raw, "reservation")
        await run.ledger.store_inbox("meituan", meituan_raw, "reservation")

        async def age(conn):
            await conn.execute(update(m.inbox).where(m.inbox.c.status == "received")
                               .values(received_at=datetime.now(timezone.utc) - timedelta(minutes=10)))

        await d.rt.db.write(age)
        assert (await status(d.rt.db, list(d.channels)))["inbox_stuck"] == 2
    finally:
        await run.close()

    d = Daemon(_config(tmp_path), push_settings=harness.fast_push_settings())
    await d.start()
    run = harness.Running(d)
    try:
        assert [(r.channel, r.status) for r in await inbox_rows(run)] == [("ctrip", "applied"), ("meituan", "applied")]
        assert await run.ledger.booking("ctrip", "CT-CRASH-1") is not None
        assert await run.ledger.booking("meituan", "MT-CRASH-1") is not None
        assert (await status(d.rt.db, list(d.channels)))["inbox_stuck"] == 0
    finally:
        await run.close()


@pytest.mark.parametrize("channel", ["ctrip", "meituan"])
async def test_a_stored_message_that_cannot_be_read_again_is_failed_at_start(tmp_path, channel):
    d = Daemon(_config(tmp_path), push_settings=harness.fast_push_settings())
    await d.start()
    try:
        await d.rt.ledger.store_inbox(channel, b"\x00 not a message", "reservation")
    finally:
        await d.stop("test")
    d = Daemon(_config(tmp_path), push_settings=harness.fast_push_settings())
    await d.start()
    run = harness.Running(d)
    try:
        rows = await inbox_rows(run)
        assert [(r.channel, r.status) for r in rows] == [(channel, "failed")] and rows[0].error
    finally:
        await run.close()
