"""Retention (issue 13): `channelmgr db prune --older-than 90d` on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update

from channelmgr.ledger import models as m
from channelmgr.ledger.types import AriChange
from channelmgr.retention import RetentionError, parse_age, prune

ROOT = Path(__file__).resolve().parents[2]
D = date(2027, 5, 1)


def test_ages():
    assert parse_age("90d") == timedelta(days=90)
    assert parse_age("12w") == timedelta(weeks=12)
    assert parse_age("36h") == timedelta(hours=36)
    assert parse_age("30") == timedelta(days=30)
    for bad in ("", "90 days", "-5d", "0h", "9" * 60):
        with pytest.raises(RetentionError):
            parse_age(bad)


async def _seed(ledger, db):
    """Old and new outbox rows in every state, old and new sync-log rows with bodies."""
    await ledger.set_ari(AriChange("SHA-TEST", "DK", D, D + timedelta(days=9), rooms=4), actor="t")
    old = datetime.now(timezone.utc) - timedelta(days=120)
    o, s = m.outbox, m.sync_log

    async def tx(conn):
        from sqlalchemy import delete

        await conn.execute(delete(o).where(o.c.kind == "full"))  # the catalog's first full push
        ids = (await conn.execute(select(o.c.id).order_by(o.c.id))).scalars().all()
        assert len(ids) == 20  # 10 nights x 2 channels
        states = ["done", "skipped", "dead", "pending", "claimed"]
        for i, rid in enumerate(ids):
            await conn.execute(update(o).where(o.c.id == rid).values(
                status=states[i % 5], created_at=old if i < 10 else datetime.now(timezone.utc)))
        for at in (old, old, datetime.now(timezone.utc)):
            await conn.execute(insert(s).values(at=at, channel="ctrip", direction="out", operation="push_ari",
                                                items=1, result="ok", duration_ms=3.0, request="<req/>",
                                                response="<ok/>"))

    await db.write(tx)
    return old


async def _counts(db):
    o, s = m.outbox, m.sync_log

    async def q(conn):
        rows = (await conn.execute(select(o.c.status, func.count()).group_by(o.c.status))).all()
        bodies = (await conn.execute(select(func.count()).where(s.c.request.is_not(None)))).scalar()
        logs = (await conn.execute(select(func.count()).select_from(s))).scalar()
        journal = (await conn.execute(select(func.count()).select_from(m.journal))).scalar()
        return dict(rows), bodies, logs, journal

    return await db.read(q)


async def test_prune_deletes_settled_rows_and_old_bodies_only(ledger, hotel, db):
    await _seed(ledger, db)
    before, bodies, logs, journal = await _counts(db)
    assert before == {"done": 4, "skipped": 4, "dead": 4, "pending": 4, "claimed": 4}
    # small batches: several short transactions, same result
    r = await prune(db, timedelta(days=90), batch=1)
    assert r.outbox_deleted == 4  # the old done and skipped rows (2 + 2 of the first ten)
    assert r.sync_log_bodies_cleared == 2
    assert r.journal_deleted == 0
    after, bodies2, logs2, journal2 = await _counts(db)
    assert after == {"done": 2, "skipped": 2, "dead": 4, "pending": 4, "claimed": 4}  # work and dead letters stay
    assert bodies2 == bodies - 2 and logs2 == logs  # rows stay, their old bodies go
    assert journal2 == journal  # the journal is kept
    again = await prune(db, timedelta(days=90))
    assert (again.outbox_deleted, again.sync_log_bodies_cleared) == (0, 0)
    # a journal retention, when configured, removes old journal rows
    async def age_journal(conn):
        await conn.execute(update(m.journal).values(at=datetime.now(timezone.utc) - timedelta(days=400)))

    await db.write(age_journal)
    r = await prune(db, timedelta(days=90), journal_older_than=timedelta(days=365))
    assert r.journal_deleted == journal
    # the ledger still works: a change after the prune is queued and one pending per cell holds
    await ledger.set_ari(AriChange("SHA-TEST", "DK", D, D, rooms=3), actor="t")


async def test_the_cli_prunes(ledger, hotel, db, db_url, tmp_path):
    await _seed(ledger, db)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"database:\n  url: '{db_url}'\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CHANNELMGR_DATABASE_URL"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "channelmgr", "db", "prune", *args, "--config", str(cfg)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    bad = run("--older-than", "ninety")
    assert bad.returncode == 2 and "is not an age" in bad.stderr
    out = run("--older-than", "90d")
    assert out.returncode == 0, out.stderr
    assert "4 settled outbox rows deleted, 2 sync-log bodies cleared" in out.stdout
    assert "journal is kept" in out.stdout
    counts, *_ = await _counts(db)
    assert counts == {"done": 2, "skipped": 2, "dead": 4, "pending": 4, "claimed": 4}
