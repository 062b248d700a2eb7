"""Wiring shared by the CLI and the daemon: config -> database, key, ledger, mappings."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

from channelmgr.config import Config, load_config
from channelmgr.ledger import migrate
from channelmgr.ledger.db import Database, redact_url
from channelmgr.ledger.ledger import Ledger
from channelmgr.mapping import MappingSet
from channelmgr.security import Cipher


class SchemaNotReady(Exception):
    pass


@dataclass
class Runtime:
    config: Config
    db: Database
    cipher: Cipher
    ledger: Ledger
    mappings: MappingSet | None = None
    mapping_errors: list[str] = field(default_factory=list)

    @classmethod
    async def open(cls, config_path: str | None = None, *, config: Config | None = None,
                   schema: Literal["auto", "require"] = "auto", sync_mappings: bool = True) -> "Runtime":
        """``schema='auto'`` applies migrations on SQLite; PostgreSQL needs `db upgrade`."""
        cfg = config or load_config(config_path)
        db = Database(cfg.database_url(), busy_timeout_ms=cfg.database.busy_timeout_ms,
                      pool_size=cfg.database.pool_size)
        try:
            current = await migrate.current_revision(db)
            if current != migrate.head_revision():
                if schema == "auto" and db.dialect == "sqlite":
                    await migrate.upgrade(db)
                else:
                    raise SchemaNotReady(
                        f"the database at {redact_url(cfg.database.url)} is at schema "
                        f"{current or 'empty'}, not {migrate.head_revision()}: run `channelmgr db upgrade`")
            cipher = Cipher.from_settings(cfg.security.data_key_env, cfg.resolve(cfg.security.data_key_file))
        except BaseException:
            await db.dispose()
            raise
        rt = cls(cfg, db, cipher, Ledger(db, cipher))
        if sync_mappings:
            await rt.load_and_sync_mappings()
        return rt

    async def load_and_sync_mappings(self, reason: str = "start") -> MappingSet | None:
        """Load mappings/ and put it in force; a broken edit leaves the last good catalog in force.

        Goes through the same path as a hot reload: an edit made while nothing was running
        is compared with the version the ledger last had in force, and exactly the channel
        cells it changes are queued (durably, in the outbox) by whichever process loads it
        first, the daemon or a CLI command.
        """
        from channelmgr.mapping.reload import MappingReloader

        result = await MappingReloader(self).reload(reason)
        if not result.ok:
            self.mapping_errors = [str(p) for p in result.problems] or [str(result.error)]
            return None
        self.mapping_errors = []
        return self.mappings

    def warn_mapping_errors(self) -> None:
        if self.mapping_errors:
            print("warning: mappings/ has errors; the last good version stays in force:", file=sys.stderr)
            for line in self.mapping_errors:
                print(f"  {line}", file=sys.stderr)

    async def close(self) -> None:
        await self.db.dispose()
