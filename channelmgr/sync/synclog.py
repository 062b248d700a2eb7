"""The sync log: one row per call to or from an OTA, for operators' questions.

Adapters report every call as an Exchange (already redacted). Rows are written in small
batches by one background writer, so a burst of pushes costs one transaction, not one
each; the same call is also one structured log line ("canonical log line").
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
from datetime import datetime, timezone
from typing import Any, Callable

import structlog
from sqlalchemy.dialects import postgresql, sqlite

from adapters.base.contract import Exchange
from channelmgr.ledger import models as m
from channelmgr.ledger.db import Database
from channelmgr.tasks import cancel_and_wait

log = structlog.get_logger("channelmgr.sync")

current_attempt: contextvars.ContextVar[int] = contextvars.ContextVar("attempt", default=1)
current_property: contextvars.ContextVar[str | None] = contextvars.ContextVar("property", default=None)


def _transient(e: BaseException) -> bool:
    """A failure that goes away by itself (a lock, a lost connection), not a bad row."""
    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

    if isinstance(e, (OperationalError, OSError, ConnectionError, asyncio.TimeoutError)):
        return True
    if isinstance(e, IntegrityError):
        return False
    return isinstance(e, DBAPIError) and bool(getattr(e, "connection_invalidated", False) or
                                              "locked" in str(e).lower() or "connect" in str(e).lower())


class SyncLog:
    def __init__(self, db: Database, run_id: str, hotel_to_property: Callable[[str, str], str | None] | None = None,
                 max_buffered: int = 100_000):
        self.db = db
        self.run_id = run_id
        self.hotel_to_property = hotel_to_property or (lambda channel, hotel: None)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._pending: collections.deque[dict[str, Any]] = collections.deque()  # taken, not yet written
        self.max_buffered = max_buffered
        self.dropped = 0  # rows given up (buffer full, or refused for their content)
        self.retry_initial, self.retry_max = 0.2, 5.0
        # called with every row as it is recorded (the daemon's /metrics, issue 11); must be quick
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

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
        for listener in self.listeners:
            try:
                listener(row)
            except Exception:  # a metric never stops a call from being logged
                log.exception("sync-log listener failed")
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
        """Write recorded rows in batches. A failed write (the database locked or gone for a
        while) keeps its rows, in order, and is retried with backoff: nothing recorded is
        lost while the daemon runs. The buffer is bounded (``max_buffered``): past it the
        oldest rows are dropped, counted in ``dropped`` and logged."""
        delay = self.retry_initial
        while True:
            if not self._pending:
                self._pending.append(await self._queue.get())
                await asyncio.sleep(0.05)  # let a burst gather into one transaction
            self._take_queued()
            batch = [self._pending[i] for i in range(min(500, len(self._pending)))]
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                await self._write_all_now()
                raise
            except Exception as e:  # the log must never take the daemon down
                if not _transient(e):
                    await self._write_one_by_one(batch, e)
                    continue
                log.warning("sync log write failed; rows kept and retried", error=str(e)[:300],
                            rows=len(self._pending) + self._queue.qsize(), retry_in_s=round(delay, 2))
                try:
                    await asyncio.sleep(delay)
                except asyncio.CancelledError:
                    await self._write_all_now()
                    raise
                delay = min(self.retry_max, delay * 2)
                continue
            for _ in batch:
                self._pending.popleft()
            delay = self.retry_initial
            if not self._pending and self._queue.empty():
                self._idle.set()

    def _take_queued(self) -> None:
        while not self._queue.empty():
            self._pending.append(self._queue.get_nowait())
        over = len(self._pending) - self.max_buffered
        if over > 0:
            for _ in range(over):
                self._pending.popleft()
            self.dropped += over
            log.error("sync log buffer full while the database cannot be written; oldest rows dropped",
                      dropped=over, dropped_total=self.dropped, buffered=len(self._pending))

    async def _write_one_by_one(self, batch: list[dict[str, Any]], first_error: Exception) -> None:
        """A batch the database refuses for its content, not a lock: write row by row and
        drop (with a log line naming it) only a row that can never be written."""
        for row in batch:
            try:
                await self._write([row])
            except Exception as e:  # noqa: BLE001
                if _transient(e):
                    return  # the database went away meanwhile: the rest stays buffered
                log.error("sync log row cannot be written; dropped", channel=row.get("channel"),
                          operation=row.get("operation"), error=str(e)[:300], batch_error=str(first_error)[:120])
                self.dropped += 1
            self._pending.popleft()
        if not self._pending and self._queue.empty():
            self._idle.set()

    async def _write_all_now(self) -> None:
        """At cancellation: one last try for everything still buffered."""
        self._take_queued()
        rows = list(self._pending)
        if not rows:
            return
        try:
            await self._write(rows)
            self._pending.clear()
        except Exception as e:  # noqa: BLE001
            log.error("sync log rows not written at shutdown", rows=len(rows), error=str(e)[:300])

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        async def tx(conn):
            await conn.execute(m.sync_log.insert(), rows)

        await self.db.write(tx, durable=False)  # a power cut may lose the last rows, never a booking

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every recorded row is written."""
        if self._task is None:
            self._take_queued()
            rows = list(self._pending)
            if rows:
                await self._write(rows)
                self._pending.clear()
            return
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def stop(self) -> None:
        await self.flush()
        if self._task:
            await cancel_and_wait(self._task)
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

        await self.db.write(tx, durable=False)  # a power cut may lose the last update, never a booking
