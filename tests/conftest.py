"""Shared fixtures: a fresh ledger on SQLite and on PostgreSQL for every ledger test.

PostgreSQL is found at CHANNELMGR_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/test);
each test gets a database of its own, dropped afterwards. In CI (CI=true) a PostgreSQL test
that cannot connect fails; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

import pytest

from channelmgr.ledger import migrate
from channelmgr.ledger.db import Database
from channelmgr.ledger.ledger import Ledger
from channelmgr.ledger.types import PropertySpec, RatePlanSpec, RoomTypeSpec
from channelmgr.security import Cipher

PG_URL = os.environ.get("CHANNELMGR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def _end_leftover_tasks():
    yield
    from channelmgr.tasks import end_leftover_tasks

    await end_leftover_tasks(10)


@pytest.fixture(autouse=True)
def _no_task_left_hanging(request):
    """For a coroutine test, after every other fixture of it has ended: cancel what is still on
    its loop and let go of a task that will not end. pytest-asyncio's loop teardown cancels and
    waits for every task with no bound, and one that swallowed its cancel hung a CI run there
    for pytest-timeout's 10 minutes (after the daemon had logged "stopped"). Sync tests (the
    browser tests run Playwright's own loop) are left alone."""
    import inspect

    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        request.getfixturevalue("_end_leftover_tasks")


def pg_unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required in CI but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not reachable ({reason}); set CHANNELMGR_TEST_PG_URL to run these")


def _pg_url_for(dbname: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{dbname}"


async def create_pg_database() -> str:
    import asyncpg

    name = f"cm_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"), timeout=5)
    except Exception as e:  # noqa: BLE001 - any failure to connect means "not reachable"
        pg_unavailable(f"connecting to {PG_URL} failed: {e.__class__.__name__}: {e}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return _pg_url_for(name)


async def drop_pg_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_URL, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(request, tmp_path):
    """A fresh, migrated ledger database URL: SQLite file or PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        db = Database(url)
        await migrate.upgrade(db)
        await db.dispose()
        yield url
    else:
        url = await create_pg_database()
        db = Database(url)
        try:
            await migrate.upgrade(db)
        finally:
            await db.dispose()
        yield url
        await drop_pg_database(url)


@pytest.fixture
async def db(db_url):
    database = Database(db_url, pool_size=20)
    yield database
    await database.dispose()


@pytest.fixture
def cipher() -> Cipher:
    return Cipher(base64.b64decode(base64.b64encode(b"k" * 32)))


@pytest.fixture
async def ledger(db, cipher) -> Ledger:
    return Ledger(db, cipher)


HOTEL = PropertySpec(
    code="SHA-TEST", name="测试酒店 Test Hotel", timezone="Asia/Shanghai", currency="CNY",
    room_types=(RoomTypeSpec("DK", "豪华大床房 Deluxe King", 10), RoomTypeSpec("ST", "Standard Twin", 5)),
    rate_plans=(RatePlanSpec("BAR", "Best available", "DK", 2), RatePlanSpec("EB", "Early bird", "DK", 2, parent="BAR"),
                RatePlanSpec("BAR-ST", "Best available twin", "ST", 2)),
    channels=("booking", "ctrip"),
)


@pytest.fixture
async def hotel(ledger) -> PropertySpec:
    await ledger.sync_catalog([HOTEL])
    return HOTEL


# a folder as a newcomer has it: the shipped mapping and a config with a SQLite ledger in var/
@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "mappings").mkdir()
    text = (ROOT / "mappings" / "sha-bund.yaml").read_text(encoding="utf-8")
    (tmp_path / "mappings" / "sha-bund.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "config.yaml").write_text("database:\n  url: sqlite:///var/ledger.db\n", encoding="utf-8")
    return tmp_path
