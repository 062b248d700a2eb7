"""aiosqlite with the short operations run on the event loop's own thread (issue 13).

aiosqlite runs every call on a thread of its connection: creating a cursor, executing,
fetching and closing are four round trips between threads for one statement, each a queue,
a wake-up of the loop and, under load, a wait for the GIL. Measured on this project's
2-core machine: about 600 microseconds of CPU a statement through SQLAlchemy, where SQLite
itself takes 4. Most of the ledger's statements are indexed look-ups of a few rows, so that
hand-over was most of what a booking cost.

Here those run where they are asked for, at once; what may wait or take long still goes to
the connection's thread, so the loop never waits on a lock or a disk:

- ``BEGIN IMMEDIATE`` (it may wait for another process's write lock) and the ``COMMIT`` of a
  transaction that wrote (an fsync), and everything that is not a plain statement (DDL,
  VACUUM, a checkpoint), go to the thread, as before;
- a ``SELECT`` runs here with its rows fetched at once, within ``slice_seconds``: SQLite's
  progress handler stops one that runs longer (a report over a year, say) and it runs again
  on the thread from the start, where it may take as long as it takes (a SELECT stopped
  so changes nothing, whatever transaction it is in);
- an INSERT, UPDATE or DELETE runs here only inside a write transaction this connection
  began with ``BEGIN IMMEDIATE`` (it holds the write lock, so it never waits for one); the
  daemon's write transactions are bounded in size by design (Database.write).

The sqlite3 connection is used by one thread at a time: SQLAlchemy awaits each call before
the next, and a call runs here only when the thread has finished every call handed to it
(one whose caller was cancelled may still be running there: then the next calls queue
behind it on the thread).
"""

from __future__ import annotations

import collections
import sqlite3
import time
from typing import Any

import aiosqlite

_DML = frozenset(("INSERT", "UPDATE", "DELETE", "REPLACE"))
_TXN = frozenset(("SAVEPOINT", "RELEASE", "ROLLBACK"))


def _head(sql: Any) -> str:
    if not isinstance(sql, str):
        return ""
    parts = sql[:40].split(None, 2)
    return parts[0].upper() if parts else ""


class InlineConnection(aiosqlite.Connection):
    def __init__(self, connector, iter_chunk_size: int = 64, *, slice_seconds: float = 0.005):
        super().__init__(connector, iter_chunk_size)
        self._thread.daemon = True
        self.slice_seconds = slice_seconds
        self._deadline: float | None = None
        self._writing = False  # in a transaction begun here with BEGIN IMMEDIATE
        self._changes_at_begin = 0
        self._dirty = False  # a statement that may have written went to the thread
        self._fetched: dict[int, tuple[Any, collections.deque]] = {}  # cursor -> rows of its SELECT run here
        self._threaded: set[int] = set()  # cursors whose statement went to the thread: so do their fetches
        self.inline_calls = 0
        self.thread_calls = 0
        self._sent = self._done = 0  # calls handed to the thread, and finished there

    async def _connect(self) -> "InlineConnection":
        await super()._connect()
        self._conn.set_progress_handler(self._progress, 1000)
        return self

    def _progress(self) -> int:
        d = self._deadline
        return 1 if d is not None and time.perf_counter() > d else 0

    async def _thread_call(self, fn, *args, **kwargs):
        self.thread_calls += 1
        self._sent += 1  # written on the loop's thread only; _done on the worker's only

        def run():
            try:
                return fn(*args, **kwargs)
            finally:
                self._done += 1

        return await super()._execute(run)

    async def _execute(self, fn, *args, **kwargs):
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if self._sent != self._done:
            # the thread is still at a call whose caller went away (cancelled): everything
            # goes after it, in order, so the connection is never used by two threads at once
            return await self._thread_call(fn, *args, **kwargs)
        name = getattr(fn, "__name__", "")
        owner = getattr(fn, "__self__", None)
        if name in ("execute", "executemany") and isinstance(owner, sqlite3.Cursor):
            key = id(owner)
            self._fetched.pop(key, None)
            self._threaded.discard(key)
            head = _head(args[0] if args else kwargs.get("sql"))
            if head == "SELECT" and name == "execute":
                if self._select_here(owner, fn, args, kwargs):
                    return owner
                self._threaded.add(key)
                return await self._thread_call(fn, *args, **kwargs)
            if (head in _DML and self._writing) or head in _TXN or (head == "PRAGMA" and _is_sync_pragma(args)):
                self.inline_calls += 1
                return fn(*args, **kwargs)
            if head == "BEGIN":
                self._changes_at_begin = self._conn.total_changes
                self._dirty = False
                sql = args[0].upper()
                if "IMMEDIATE" in sql or "EXCLUSIVE" in sql:
                    result = await self._thread_call(fn, *args, **kwargs)  # may wait for the write lock
                    self._writing = True
                    return result
                self.inline_calls += 1
                return fn(*args, **kwargs)  # a deferred BEGIN takes no lock
            self._threaded.add(key)
            self._dirty = True
            return await self._thread_call(fn, *args, **kwargs)
        if name in ("fetchall", "fetchone", "fetchmany") and isinstance(owner, sqlite3.Cursor):
            got = self._fetched.get(id(owner))
            if got is not None:
                rows = got[1]
                if name == "fetchall":
                    del self._fetched[id(owner)]
                    return list(rows)
                if name == "fetchone":
                    return rows.popleft() if rows else None
                size = args[0] if args else kwargs.get("size", owner.arraysize)
                return [rows.popleft() for _ in range(min(size, len(rows)))]
            if id(owner) in self._threaded:
                return await self._thread_call(fn, *args, **kwargs)
            self.inline_calls += 1
            return fn(*args, **kwargs)  # the rows of a statement run here (RETURNING): already made
        if name == "cursor" and owner is self._connection:
            self.inline_calls += 1
            return fn(*args, **kwargs)
        if name == "close" and isinstance(owner, sqlite3.Cursor):
            self._fetched.pop(id(owner), None)
            self._threaded.discard(id(owner))
            self.inline_calls += 1
            return fn(*args, **kwargs)
        if name in ("commit", "rollback") and owner is self._connection:
            wrote = self._dirty or self._conn.total_changes != self._changes_at_begin
            self._writing = self._dirty = False
            if name == "rollback" or not wrote:
                self.inline_calls += 1
                return fn(*args, **kwargs)
            return await self._thread_call(fn, *args, **kwargs)  # the commit of a write: an fsync
        return await self._thread_call(fn, *args, **kwargs)

    def _select_here(self, cur: sqlite3.Cursor, fn, args, kwargs) -> bool:
        """Run a SELECT here with its rows, unless it takes longer than the slice."""
        self._deadline = time.perf_counter() + self.slice_seconds
        try:
            fn(*args, **kwargs)
            rows = cur.fetchall()
        except sqlite3.OperationalError as e:
            if "interrupt" not in str(e).lower():
                raise
            return False  # a long one: again on the thread, from the start
        finally:
            self._deadline = None
        self.inline_calls += 1
        self._fetched[id(cur)] = (cur, collections.deque(rows))
        return True


def _is_sync_pragma(args: tuple) -> bool:
    return bool(args) and isinstance(args[0], str) and "SYNCHRONOUS" in args[0][:40].upper()


def connector_for(path: str, **kwargs: Any):
    """An ``async_creator`` for SQLAlchemy: an InlineConnection to ``path``."""

    async def create() -> InlineConnection:
        conn = InlineConnection(lambda: sqlite3.connect(path, check_same_thread=False, **kwargs))
        return await conn

    return create
