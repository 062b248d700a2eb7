"""Who claims outbox rows: one row per daemon process, with a heartbeat.

A push worker's claim names its process (``claimed_by = "<process id>/<channel>"``). When a
daemon is SIGKILLed its claimed rows would otherwise wait for their lease (60 s) before
anyone pushes them again. The next process (a restart, or another daemon on PostgreSQL)
takes them over at once when it knows their process is gone:

- on PostgreSQL each process holds a session advisory lock for its lifetime; the kernel
  closes a killed process's socket, the server ends its session and frees the lock, so
  ``pg_try_advisory_xact_lock_shared`` succeeding is proof the owner is gone (any host);
- on SQLite (one host) a process whose pid no longer runs here is gone;
- anywhere, a process that stopped cleanly, or whose heartbeat is older than
  ``STALE_AFTER_SECONDS``, is gone.

A claim that names no known process (written by older code, or by a worker made outside a
daemon) is left to its lease, which stays the backstop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from datetime import datetime, timedelta, timezone
from typing import Any

import structlog
from sqlalchemy import select, text, update

from channelmgr.ledger import models as m
from channelmgr.ledger.db import Database
from channelmgr.tasks import cancel_and_wait

log = structlog.get_logger("channelmgr.processes")

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 30.0


def worker_id(process_id: str, channel: str) -> str:
    """The claim name of a channel's push worker in a process."""
    return f"{process_id}/{channel}"


def process_of(claimed_by: str | None) -> str | None:
    if not claimed_by or "/" not in claimed_by:
        return None
    return claimed_by.rsplit("/", 1)[0]


def lock_key(process_id: str) -> int:
    """The process's PostgreSQL advisory lock key (a signed 64-bit integer)."""
    return int.from_bytes(hashlib.sha256(f"channelmgr-process:{process_id}".encode()).digest()[:8], "big",
                          signed=True)


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it runs, as another user
        return False
    return False


async def gone(conn: Any, process_ids: list[str], *, exclude: str | None = None) -> list[str]:
    """Of ``process_ids``, those known to be gone (in the caller's write transaction)."""
    ids = sorted({p for p in process_ids if p and p != exclude})
    if not ids:
        return []
    rows = (await conn.execute(select(m.processes).where(m.processes.c.id.in_(ids)))).all()
    now = datetime.now(timezone.utc)
    here = socket.gethostname()
    out = []
    for r in rows:
        hb = r.heartbeat_at if r.heartbeat_at.tzinfo else r.heartbeat_at.replace(tzinfo=timezone.utc)
        if r.stopped_at is not None or now - hb > timedelta(seconds=STALE_AFTER_SECONDS):
            out.append(r.id)
        elif conn.dialect.name == "postgresql":
            # free lock = its session is over. Taken shared, for this transaction only: checkers
            # in other workers at the same moment do not mistake each other for the owner
            if (await conn.execute(text("SELECT pg_try_advisory_xact_lock_shared(:k)"),
                                   {"k": lock_key(r.id)})).scalar():
                out.append(r.id)
        elif r.host == here and _pid_gone(r.pid):
            out.append(r.id)
    return out


class ProcessRegistry:
    """This process's row: registered at start, a heartbeat while it runs, marked stopped."""

    def __init__(self, db: Database, process_id: str, heartbeat_seconds: float = HEARTBEAT_SECONDS):
        self.db = db
        self.id = process_id
        self.heartbeat_seconds = heartbeat_seconds
        self._task: asyncio.Task | None = None
        self._lock_conn: Any = None

    async def start(self) -> None:
        now = datetime.now(timezone.utc)
        if self.db.dialect == "postgresql":
            # held by a connection of its own for as long as this process lives
            self._lock_conn = await self.db.engine.connect()
            await self._lock_conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(self.id)})
            await self._lock_conn.commit()

        async def tx(conn):
            await conn.execute(m.processes.insert().values(id=self.id, host=socket.gethostname()[:255],
                                                           pid=os.getpid(), started_at=now, heartbeat_at=now))

            # rows of processes stopped long ago are of no use to anyone
            await conn.execute(m.processes.delete().where(m.processes.c.stopped_at < now - timedelta(days=7)))

        await self.db.write(tx)
        self._task = asyncio.create_task(self._beat(), name="process-heartbeat")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.db.write(self._touch)
                if self._lock_conn is not None:
                    await self._check_lock()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a missed beat is not fatal: the next one comes
                log.warning("process heartbeat not written", error=str(e)[:200])

    async def _check_lock(self) -> None:
        """The advisory lock lives as long as its connection: if the server dropped it (a
        restart), take it again at once, before another process mistakes us for gone."""
        try:
            await self._lock_conn.execute(text("SELECT 1"))
            await self._lock_conn.commit()
            return
        except Exception as e:  # noqa: BLE001
            log.warning("process lock connection lost; taking the lock again", error=str(e)[:200])
        try:
            await self._lock_conn.invalidate()
        except Exception:  # noqa: BLE001
            pass
        self._lock_conn = await self.db.engine.connect()
        await self._lock_conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(self.id)})
        await self._lock_conn.commit()

    async def _touch(self, conn) -> None:
        await conn.execute(update(m.processes).where(m.processes.c.id == self.id).values(
            heartbeat_at=datetime.now(timezone.utc)))

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

        async def tx(conn):
            await conn.execute(update(m.processes).where(m.processes.c.id == self.id).values(
                stopped_at=datetime.now(timezone.utc)))

        try:
            await self.db.write(tx)
        except Exception as e:  # noqa: BLE001 - stopping goes on; the lock and pid tell the rest
            log.warning("process stop not recorded", error=str(e)[:200])
        if self._lock_conn is not None:
            try:  # a pooled connection outlives close(): give the session lock back first
                await self._lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(self.id)})
                await self._lock_conn.commit()
                await self._lock_conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._lock_conn = None
