"""Connections to the ledger's database: SQLite by default, PostgreSQL by URL.

Every write is one transaction run through :meth:`Database.write`, which on SQLite starts
with ``BEGIN IMMEDIATE`` (the write lock is taken at once, so two writers never both read
a stale count and then both sell the last room) and on PostgreSQL retries the whole
transaction function on serialization failure or deadlock. A transaction function may run
more than once, so it must only touch the database.

No write transaction may hold the lock for long (on SQLite every other writer, the sync log
and every booking wait behind it): each is measured, and one over ``write_bound_seconds``
(1 s) is logged as a warning with its name. Work whose size comes from outside (a stay's
nights, a range of dates) is bounded before it reaches a transaction.

Group commit (:meth:`Database.write_grouped`, issue 13): many small concurrent transactions
(booking intake: the inbox row and the revision applied) share one write transaction,
so that one that fails is rolled back alone and the others commit (run first without
savepoints; when one fails, the batch runs again with each in its own SAVEPOINT). Every caller hears its result only after the shared COMMIT: what is acknowledged
is durable. On SQLite this is one writer at a time with one commit (and one fsync) for a
whole burst instead of one each, with no busy-timeout sleeps between them; on PostgreSQL
lanes only when asked for (``group_lanes``; keyed by property, so one property's rows are
only locked in one lane), as many concurrent transactions measured faster there.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import time
import zlib
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import structlog
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

T = TypeVar("T")
log = structlog.get_logger("channelmgr.db")

# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available
_PG_RETRY = {"40001", "40P01", "55P03"}


def async_url(url: str) -> str:
    """The SQLAlchemy async URL for a config URL (sqlite:///..., postgresql://...)."""
    if url.startswith("sqlite+aiosqlite:") or url.startswith("postgresql+asyncpg:"):
        return url
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:"):]
    for prefix in ("postgresql+psycopg:", "postgresql+psycopg2:", "postgresql:", "postgres:"):
        if url.startswith(prefix):
            return "postgresql+asyncpg:" + url[len(prefix):]
    raise ValueError(f"unsupported database url: {redact_url(url)}")


def redact_url(url: str) -> str:
    """The URL with any password replaced, for logs and errors."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
    return url


def _retriable(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if code in _PG_RETRY:
        return True
    text = str(exc).lower()
    return "database is locked" in text or "deadlock detected" in text or "could not serialize" in text


def private_sqlite_file(path: Path, *, create: bool = True) -> None:
    """The ledger holds guest data: its directory is created 0700 and the database file
    (with its -wal and -shm files) is 0600, whatever the umask. An existing directory is
    left as it is (it may be shared, /tmp say); the files are tightened."""
    import os

    if create:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
            os.chmod(path.parent, 0o700)  # mkdir's mode is filtered by the umask
        if not path.exists():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"),
              path.with_name(path.name + "-journal")):
        try:
            if p.exists() and p.stat().st_mode & 0o077:
                os.chmod(p, 0o600)
        except OSError:
            pass


class _Job:
    __slots__ = ("fn", "fut", "attempts")

    def __init__(self, fn: Callable[[AsyncConnection], Awaitable[Any]], fut: asyncio.Future, attempts: int):
        self.fn, self.fut, self.attempts = fn, fut, attempts


class _JobFailed(Exception):
    """A job of an unguarded group transaction raised (see Database._run_lane)."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


class _Lane:
    def __init__(self, durable: bool = True) -> None:
        self.durable = durable
        self.queue: collections.deque[_Job] = collections.deque()
        self.task: asyncio.Task | None = None
        self.busy = False


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn)).replace(".<locals>.tx", "")


class Database:
    def __init__(self, url: str, *, busy_timeout_ms: int = 10_000, pool_size: int = 10, echo: bool = False,
                 write_bound_seconds: float = 1.0, group_lanes: int | None = None, group_max: int = 64):
        self.url = url
        self.sa_url = async_url(url)
        self.dialect = "sqlite" if self.sa_url.startswith("sqlite") else "postgresql"
        self.sqlite_path: Path | None = None
        # the write-transaction guard (see _held): no transaction should hold the lock longer
        self.write_bound_seconds = write_bound_seconds
        self.writes = 0
        self.slow_writes = 0
        self.slowest_write: tuple[float, str] = (0.0, "")
        # called with (seconds held, transaction name, rolled back) after each (the daemon's /metrics)
        self.write_listeners: list[Callable[[float, str, bool], None]] = []
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            path = self.sa_url.split(":///", 1)[1] if ":///" in self.sa_url else ""
            self.sqlite_path = Path(path.split("?", 1)[0]) if path and path != ":memory:" else None
            if self.sqlite_path is not None:
                private_sqlite_file(self.sqlite_path)
            kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000}
            if self.sqlite_path is not None and os.environ.get("CHANNELMGR_SQLITE_INLINE", "1") != "0":
                # short statements on the loop's thread, waits and long ones on aiosqlite's
                # (channelmgr.ledger.sqlite_inline): most of a statement's cost was the hand-over;
                # CHANNELMGR_SQLITE_INLINE=0 hands every call over, as plain aiosqlite does
                from channelmgr.ledger.sqlite_inline import connector_for

                kwargs["async_creator"] = connector_for(str(self.sqlite_path), timeout=busy_timeout_ms / 1000)
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.sa_url, **kwargs)
        if self.dialect == "sqlite":
            self._wire_sqlite(busy_timeout_ms)
        # SQLite has one writer: this process's writers queue here (first come, first served)
        # and never sleep in SQLite's busy handler waiting for each other (it polls with sleeps
        # of up to 100 ms: a measured 278 ms a transaction under load, issue 13); the busy
        # timeout is left for other processes (the CLI)
        self._writer_locks: dict[int, asyncio.Lock] = {}  # per event loop (tests run several)
        # group commit: SQLite has one writer, so one lane. PostgreSQL takes many writers at
        # once: lanes there serialised each lane's round trips and halved the intake
        # benchmark (31 -> 16 revisions/s with 4 lanes), so it is off unless asked for (0)
        self.group_lanes = (1 if self.dialect == "sqlite" else 0) if group_lanes is None else group_lanes
        self.group_max = group_max
        self._lanes = [_Lane() for _ in range(self.group_lanes)]
        # writes that need not survive a power cut (push claims and settles, see write) share
        # transactions of their own: they commit without an fsync, bookings' with one. On
        # PostgreSQL too, one lane (unless lanes are asked for): the four channels' claims of a
        # booking then end together and share one ledger read (sync.snapshots); measured at 20
        # bookings/s, fan-out p95 1.6 s without it, 0.9 s with it
        self._light_lanes = [_Lane(durable=False) for _ in range(
            self.group_lanes if group_lanes is not None else 1)]
        self.group_commits = 0  # shared transactions committed (tests: fewer than the callers)
        self.grouped = 0  # callers whose work went through one

    def _wire_sqlite(self, busy_timeout_ms: int) -> None:
        sync_engine = self.engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
            # let SQLAlchemy, not the driver, decide when transactions begin
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            # FULL: a committed booking survives a power cut, not only a crash
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()
            if self.sqlite_path is not None:  # -wal and -shm exist now: guest data, owner only
                private_sqlite_file(self.sqlite_path, create=False)

        @event.listens_for(sync_engine, "begin")
        def _on_begin(conn):  # pragma: no cover
            opts = conn.get_execution_options()
            if opts.get("channelmgr_readonly"):
                conn.exec_driver_sql("BEGIN")
                return
            # a write that need not survive a power cut (a claim, a settle, the sync log)
            # commits without its own fsync; the next durable commit's fsync of the WAL
            # covers it, so nothing durable ever depends on a lost one (see Database.write)
            want = "NORMAL" if opts.get("channelmgr_durable") is False else "FULL"
            info = conn.connection.info
            if info.get("channelmgr_synchronous") != want:
                conn.exec_driver_sql(f"PRAGMA synchronous={want}")
                info["channelmgr_synchronous"] = want
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    async def write(self, fn: Callable[[AsyncConnection], Awaitable[T]], *, attempts: int = 8,
                    durable: bool = True) -> T:
        """Run ``fn`` in one write transaction, retrying it on a lock conflict.

        ``durable=False`` (SQLite): the commit survives a crash of the process but not
        necessarily a power cut (``synchronous=NORMAL``: no fsync of its own), for writes that
        are redone or harmless when lost: push claims and settles (a lost one is pushed
        again), the sync log and channel status. Bookings, ARI, mappings and everything else
        are durable (``synchronous=FULL``), and their fsync of the WAL makes every earlier
        commit durable too. On PostgreSQL every commit is durable."""
        delay = 0.02
        for attempt in range(1, attempts + 1):
            try:
                async with self._writer():
                    async with self.engine.connect() as conn:
                        if not durable and self.dialect == "sqlite":
                            conn = await conn.execution_options(channelmgr_durable=False)
                        async with conn.begin():
                            held_from = time.monotonic()  # BEGIN (IMMEDIATE) done: the write lock is ours
                            try:
                                result = await fn(conn)
                            except BaseException:
                                self._held(held_from, fn, failed=True)
                                raise
                    self._held(held_from, fn)  # body and COMMIT
                return result
            except (OperationalError, DBAPIError) as e:
                if attempt == attempts or not _retriable(e):
                    raise
                log.debug("transaction retried", attempt=attempt, reason=str(e.orig)[:120])
                await asyncio.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def _writer(self) -> Any:
        if self.dialect != "sqlite":
            return contextlib.nullcontext()
        loop = asyncio.get_running_loop()
        lock = self._writer_locks.get(id(loop))
        if lock is None:
            if len(self._writer_locks) > 8:  # loops of earlier asyncio.run()s
                self._writer_locks.clear()
            lock = self._writer_locks[id(loop)] = asyncio.Lock()
        return lock

    async def write_grouped(self, fn: Callable[[AsyncConnection], Awaitable[T]], *, key: str | None = None,
                            attempts: int = 8, durable: bool = True) -> T:
        """Run ``fn`` as part of a write transaction shared with other callers waiting at
        the same moment (group commit), in its own SAVEPOINT: if it raises, only its own
        work is rolled back and the exception is raised here; the others commit. The
        result comes back only after the shared COMMIT (a booking acknowledged is on
        disk). ``key`` (a property) picks the lane on PostgreSQL, so that one property's
        rows are locked in one lane only. ``fn`` may run more than once (a retried
        transaction), so it must only touch the database, as for :meth:`write`. With no
        lanes (PostgreSQL by default) it is :meth:`write`. ``durable=False``: as for
        :meth:`write`, in lanes of their own (the push workers' claims and settles)."""
        lanes = self._lanes if durable else self._light_lanes
        if not lanes:
            return await self.write(fn, attempts=attempts, durable=durable)
        if key is not None:
            lane = lanes[zlib.crc32(key.encode()) % len(lanes)]
        else:
            lane = min(lanes, key=lambda ln: len(ln.queue) + (1 if ln.busy else 0))
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        lane.queue.append(_Job(fn, fut, attempts))
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._run_lane(lane), name="db-group-commit")
        # the shared transaction goes on if this caller is cancelled (the others wait on it)
        return await asyncio.shield(fut)

    async def _run_lane(self, lane: "_Lane") -> None:
        # a batch runs first without savepoints (two statements a job saved, issue 13): if one
        # of its jobs raises, that transaction is rolled back whole and the same batch runs
        # again with each job in its own SAVEPOINT, so that only the failing one is rolled back
        # (a job may run more than once, as for a retried transaction). A batch of one needs
        # none: its transaction is its savepoint.
        while lane.queue:
            batch = [lane.queue.popleft() for _ in range(min(self.group_max, len(lane.queue)))]
            budget = self.write_bound_seconds / 4  # the lock is held for a share of the bound at most
            outcome: list[tuple[bool, Any]] = []
            guarded = False

            async def group(conn: AsyncConnection) -> list[tuple[bool, Any]]:
                outcome.clear()  # a retried transaction starts again from the first job
                started = time.monotonic()
                for job in batch:
                    if outcome and time.monotonic() - started > budget:
                        break  # the rest go in the next transaction
                    if not guarded:
                        try:
                            outcome.append((True, await job.fn(conn)))
                        except Exception as e:  # the whole transaction is rolled back; see below
                            raise _JobFailed(e) from e
                        continue
                    try:
                        async with conn.begin_nested():
                            outcome.append((True, await job.fn(conn)))
                    except Exception as e:  # this job's savepoint is rolled back; the others stand
                        outcome.append((False, e))
                return outcome

            group.__qualname__ = "group commit of " + ", ".join(sorted({_name(j.fn) for j in batch}))
            lane.busy = True
            try:
                while True:
                    try:
                        await self.write(group, durable=lane.durable)
                        break
                    except _JobFailed as failed:
                        if len(outcome) == 0 and len(batch) == 1:  # rolled back alone already
                            outcome[:] = [(False, failed.error)]
                            break
                        guarded = True  # once more, each job in its savepoint
            except BaseException as e:  # the shared transaction failed (or we are stopping): all hear it
                for job in batch:
                    if not job.fut.done():
                        job.fut.set_exception(e if isinstance(e, Exception) else
                                              OperationalError("group commit", None, Exception("stopping")))
                if not isinstance(e, Exception):
                    raise
                continue
            finally:
                lane.busy = False
            self.group_commits += 1
            done = len(outcome)
            self.grouped += done
            for job in reversed(batch[done:]):  # not reached within the budget: first in the next one
                lane.queue.appendleft(job)
            for job, (ok, value) in zip(batch, outcome):
                if job.fut.done():
                    continue
                if ok:
                    job.fut.set_result(value)
                elif isinstance(value, (OperationalError, DBAPIError)) and _retriable(value) and job.attempts > 1:
                    job.attempts -= 1  # a deadlock or serialization failure of its own: once more, later
                    lane.queue.append(job)
                else:
                    job.fut.set_exception(value)

    def _held(self, started: float, fn: Callable[..., Any], failed: bool = False) -> None:
        """The write-transaction guard: how long one transaction held the write lock (on
        SQLite every other writer waits that long). Over ``write_bound_seconds`` it is a
        warning naming the transaction; the slowest is kept for tests and status."""
        held = time.monotonic() - started
        self.writes += 1
        for listener in self.write_listeners:
            try:
                listener(held, getattr(fn, "__qualname__", repr(fn)), failed)
            except Exception:  # a metric never fails a transaction
                log.exception("write listener failed")
        if held > self.slowest_write[0]:
            self.slowest_write = (held, getattr(fn, "__qualname__", repr(fn)))
        if held > self.write_bound_seconds:
            self.slow_writes += 1
            log.warning("write transaction held the lock longer than the bound", seconds=round(held, 3),
                        bound_seconds=self.write_bound_seconds, transaction=getattr(fn, "__qualname__", repr(fn)),
                        rolled_back=failed)

    async def read(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``fn`` in a read-only transaction (a consistent snapshot, no write lock)."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(channelmgr_readonly=True)
            async with conn.begin():
                return await fn(conn)

    async def dispose(self) -> None:
        for lane in self._lanes + self._light_lanes:  # what is queued gets its transaction before the engine goes
            if lane.task is not None and not lane.task.done():
                try:
                    await asyncio.wait_for(asyncio.shield(lane.task), 10)
                except Exception:
                    lane.task.cancel()
        await self.engine.dispose()
