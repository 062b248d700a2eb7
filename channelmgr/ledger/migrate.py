"""Schema migrations (Alembic), run from inside the application or `channelmgr db upgrade`.

Migrations run inside one transaction of our own (transactional DDL on both SQLite and
PostgreSQL); on PostgreSQL an advisory lock makes concurrent starters wait for each other.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from channelmgr.ledger.db import Database

HERE = Path(__file__).resolve().parent
_LOCK_KEY = 0x63686D67  # "chmg"


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(db: Database) -> str | None:
    async with db.engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def upgrade(db: Database, target: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to ``target``; returns (revision before, revision after)."""
    before = await current_revision(db)

    def run(sync_conn) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, target)

    async with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        await conn.run_sync(run)
    return before, await current_revision(db)
