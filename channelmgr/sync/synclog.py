"""The sync log: one row per call to or from an OTA, for operators' questions.

Adapters report every call as an Exchange (already redacted). Rows are written in small
batches by one background writer, so a burst of pushes costs one transaction, not one
each; the same call is also one structured log line ("canonical log line").
"""

from __future__ import annotations

import asyncio
import contextvars
from datetime import datetime, timezone
from typing import Any, Callable

import structlog
from sqlalchemy.dialects import postgresql, sqlite

from adapters.base.contract import Exchange
from channelmgr.ledger import models as m
from channelmgr.ledger.db import Database

log = structlog.get_logger("channelmgr.sync")

current_attempt: contextvars.ContextVar[int] = contextvars.ContextVar("attempt", default=1)
current_property: contextvars.ContextVar[str | None] = contextvars.ContextVar("property", default=None)


class SyncLog:
    def __init__(self, db: Database, run_id: str, hotel_to_property: Callable[[str, str], str | None] | None = None):
        self.db = db
        self.run_id = run_id
        self.hotel_to_property = hotel_to_property or (lambda channel, hotel: None)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # ---- recording ------------------------------------------------------------------
    def observer(self, channel: str) -> Callable[[Exchange], None]:
        def observe(ex: Exchange) -> None:
            prop = current_property.get() or (self.hotel_to_property(channel, ex.hotel) if ex.hotel else None)
            self.record(channel=ex.channel or channel, property=prop, direction=ex.direction,
                        operation=ex.operation, items=ex.items, result=ex.result, duration_ms=ex.duration_ms,
                        request_id=ex.request_id, error=ex.error, request=ex.request, response=ex.response,
                        status=ex.status)

        return observe

    def record(self, *, channel: str, operation: str, direction: str = "out", property: str | None = None,
               items: int = 0, result: str = "ok", duration_ms: float = 0.0, request_id: str | None = None,
               error: str | None = None, request: str | None = None, response: str | None = None,
               status: int | None = None) -> None:
        row = {"at": datetime.now(timezone.utc), "run_id": self.run_id, "channel": channel, "property": property,
               "direction": direction, "operation": operation, "items": items, "result": result,
               "duration_ms": round(duration_ms, 2), "request_id": request_id, "attempt": current_attempt.get(),
               "error": error, "request": request, "response": response}
        self._idle.clear()
        self._queue.put_nowait(row)
        level = "info" if result in ("ok", "skipped") else "warning"
        getattr(log, level)("ota call", channel=channel, property=property, direction=direction,
                            operation=operation, items=items, result=result, duration_ms=row["duration_ms"],
                            request_id=request_id, attempt=row["attempt"], http_status=status,
                            error=error)

    # ---- writing ----------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sync-log-writer")

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            rows = [first]
            try:
                await asyncio.sleep(0.05)
                while not self._queue.empty() and len(rows) < 500:
                    rows.append(self._queue.get_nowait())
                await self._write(rows)
            except asyncio.CancelledError:
                await self._write(rows)
                raise
            except Exception as e:  # the log must never take the daemon down
                log.error("sync log write failed", error=str(e), rows=len(rows))
            finally:
                if self._queue.empty():
                    self._idle.set()

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        async def tx(conn):
            await conn.execute(m.sync_log.insert(), rows)

        await self.db.write(tx)

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every recorded row is written."""
        if self._task is None:
            rows = []
            while not self._queue.empty():
                rows.append(self._queue.get_nowait())
            if rows:
                await self._write(rows)
            return
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def stop(self) -> None:
        await self.flush()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    # ---- channel status -----------------------------------------------------------------
    async def set_status(self, channel: str, *, breaker: str | None = None, success: bool = False,
                         error: str | None = None) -> None:
        now = datetime.now(timezone.utc)
        values: dict[str, Any] = {"updated_at": now}
        if breaker is not None:
            values["breaker"] = breaker
        if success:
            values["last_success_at"] = now
        if error is not None:
            values["last_error_at"] = now
            values["last_error"] = error[:2000]

        async def tx(conn):
            ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(m.channel_status)
            await conn.execute(ins.values(channel=channel, breaker=values.get("breaker", "closed"),
                                          **{k: v for k, v in values.items() if k != "breaker"})
                               .on_conflict_do_update(index_elements=["channel"], set_=values))

        await self.db.write(tx)
