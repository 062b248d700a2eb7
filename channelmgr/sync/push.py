"""Ledger -> OTA: the push worker of one channel.

The loop: claim outbox rows -> read the ledger's latest values for their cells (so ten
edits of one cell are one push: coalescing) -> derive what this channel should hold
through the mappings -> merge equal nights into ranges and batch within the adapter's
limits -> wait for the (channel, property) rate budget -> send, retrying what may be
retried with backoff and jitter (honouring Retry-After), behind a circuit breaker ->
settle every row: done, back to pending with backoff, or dead-lettered with the OTA's
reason and a conflict for an operator. Nothing is dropped silently.

Claims are leases: a row claimed by a worker that died goes back to pending when its lease
runs out, so a crash loses no push. A cell whose push is in flight is not claimed again
until that push settles, so two values of one cell never race each other to the OTA.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import structlog
from sqlalchemy import and_, exists, func, select, update
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from adapters.base.contract import ChannelAdapter, ItemResult
from adapters.base.errors import AuthError, ChannelError, FatalError, RateLimitedError, RetriableError
from channelmgr import dates
from channelmgr.ledger import models as m
from channelmgr.ledger.ledger import Ledger
from channelmgr.mapping import MappingSet
from channelmgr.mapping.derive import all_keys, derive
from channelmgr.sync.batching import Item, batches, probe_nights, to_items
from channelmgr.sync.limits import CircuitBreaker, TokenBucket
from channelmgr.sync.snapshots import SharedSnapshots
from channelmgr.sync.synclog import SyncLog, current_attempt, current_property

log = structlog.get_logger("channelmgr.push")
# this task's message carries a closure: it takes the property's next token before prices
_urgent_send: contextvars.ContextVar[bool] = contextvars.ContextVar("urgent_send", default=False)


class BreakerOpen(Exception):
    pass


@dataclass
class PushSettings:
    claim_batch: int = 5000
    lease_seconds: float = 60.0
    max_attempts: int = 8  # row-level: then dead-lettered
    call_attempts: int = 3  # in-line retries of one call before the rows go back to pending
    horizon_days: int = 365
    property_concurrency: int = 16
    flush_interval: float = 2.0
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    wait: Any = None  # tenacity wait strategy; tests pass wait_none()
    split_budget: int = 64  # extra calls one round may spend re-sending refused ranges in halves
    # the claim (issue 13): pending rows are counted per property without the write lock,
    # in the order of each property's most urgent row; whole properties are taken (so a
    # property's cells go out as the fewest messages), several at once, while the rows
    # taken stay under ``claim_batch`` (a property is never cut at it)
    claim_groups: int = 5_000  # properties (with pending rows) one look considers
    claim_inline: int = 2_000  # at most this many pending rows are read with the counts (one read)
    write_chunk: int = 2000  # rows claimed or settled done per write transaction
    # a burst (``coalesce_cells`` or more pending cells of one property, the newest younger
    # than ``coalesce_seconds``) waits until it has been quiet that long, at most
    # ``coalesce_max_seconds`` from its oldest row; a lone change and a closure go at once
    coalesce_cells: int = 16
    coalesce_seconds: float = 0.4
    coalesce_max_seconds: float = 20.0
    # several properties' bursts at once (a bulk): held until the outbox has been quiet this long
    coalesce_bulk_seconds: float = 1.5
    # a property taken for a push comes with all its pending rows, up to this many in one claim
    claim_whole_max: int = 200_000


@dataclass
class ChannelRuntime:
    """One channel in the running daemon: its adapter, breaker and budgets."""

    name: str
    adapter: ChannelAdapter
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    buckets: dict[int, TokenBucket] = field(default_factory=dict)
    sandbox: Any = None

    @property
    def caps(self):
        return self.adapter.capabilities

    lanes: dict[int, "Lane"] = field(default_factory=dict)

    def lane(self, property_id: int) -> "Lane":
        ln = self.lanes.get(property_id)
        if ln is None:
            ln = self.lanes[property_id] = Lane()
        return ln

    def bucket(self, property_id: int) -> TokenBucket:
        b = self.buckets.get(property_id)
        if b is None:
            b = self.buckets[property_id] = TokenBucket(self.caps.rate_limit_per_second, self.caps.rate_limit_burst)
        return b


class Lane:
    """One (channel, property): its messages go out one at a time, a closure's first.

    ``generation`` grows when a closure's push of the property starts while another push
    of it is in flight: that one reads and derives what it still has to send again before
    its next message, so no message after the closure carries the count from before it.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._lock = asyncio.Lock()
        self._urgent = 0

    async def acquire(self, urgent: bool) -> None:
        if urgent:
            self._urgent += 1
            try:
                await self._lock.acquire()
            finally:
                self._urgent -= 1
            return
        while True:
            await self._lock.acquire()
            if not self._urgent:
                return
            self._lock.release()  # a closure waits: it goes first
            await asyncio.sleep(0.005)

    def release(self) -> None:
        self._lock.release()


def _aware(dt: datetime | None) -> datetime | None:
    return None if dt is None else (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc))


# what a push needs of a claimed row (no timestamps: parsing them is most of a claim's cost)
_CLAIMED = (m.outbox.c.id, m.outbox.c.property_id, m.outbox.c.kind, m.outbox.c.room_type_id, m.outbox.c.rate_plan_id,
            m.outbox.c.night, m.outbox.c.cell, m.outbox.c.attempts, m.outbox.c.priority, m.outbox.c.channel)


def _ts(v: Any) -> datetime:
    """A timestamp as read raw (SQLite's text or PostgreSQL's datetime), aware UTC."""
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    return v if v.tzinfo else v.replace(tzinfo=timezone.utc)


def _id_chunks(ids: list[int], n: int = 2000):
    """Ids in chunks that stay under both drivers' bound-parameter limits."""
    for i in range(0, len(ids), n):
        yield ids[i:i + n]



async def release_claims(conn: Any, *cond: Any) -> int:
    """Claimed outbox rows (matching ``cond``) back to pending, in the caller's transaction.

    While a row was claimed, a newer change to the same cell may have queued a pending row
    (at most one pending row per channel and cell): then the claimed row is settled as
    superseded, since the pending one pushes the ledger's latest values anyway.
    """
    o = m.outbox
    newer = m.outbox.alias("newer")
    has_newer = exists().where(and_(newer.c.channel == o.c.channel, newer.c.cell == o.c.cell,
                                    newer.c.status == "pending"))
    merged = await conn.execute(update(o).where(*cond, has_newer).values(
        status="done", claimed_by=None, lease_until=None,
        last_error="released unfinished; superseded by a newer pending push of the same cell"))
    back = await conn.execute(update(o).where(*cond).values(status="pending", claimed_by=None, lease_until=None))
    return (merged.rowcount or 0) + (back.rowcount or 0)


class PushWorker:
    def __init__(self, channel: ChannelRuntime, ledger: Ledger, mappings: Callable[[], MappingSet | None],
                 synclog: SyncLog, settings: PushSettings | None = None, worker_id: str | None = None,
                 snapshots: SharedSnapshots | None = None):
        self.ch = channel
        self.ledger = ledger
        # the ledger reads, shared with the other channels' workers (the daemon's one)
        self.snapshots = snapshots or SharedSnapshots(ledger, gather_seconds=0)
        self.db = ledger.db
        self.mappings = mappings
        self.synclog = synclog
        self.s = settings or PushSettings()
        self.worker_id = worker_id or f"{channel.name}-{uuid.uuid4().hex[:8]}"
        self._stopping = asyncio.Event()
        self._busy = asyncio.Lock()
        self._last_status_write = 0.0
        self._raised_auth = False
        self.pushed_items = 0  # for benchmarks and tests
        self.pushed_calls = 0
        self._inflight: dict[asyncio.Task, int] = {}  # property pushes in flight -> property id
        self._next_due: float | None = None  # a coalescing burst to look at again (monotonic)
        self._bursts: dict[int, tuple[int, float, float]] = {}  # property -> (top id, grew at, first seen)
        # what the last claim saw (issue 13: a look at the outbox is two statements, and every
        # push used to cost five of them): ``_more``, it stopped at its scan limit, so another
        # look may find more at once; ``_deferred``, it left pending rows for a reason a
        # push's end removes (the cell or property in flight, every slot taken)
        self._more = False
        self._deferred = False
        self._outbox_top = 0  # the newest outbox id seen, and when it last grew (monotonic)
        self._outbox_grew = float("-inf")
        self._held_since: float | None = None  # looks have only held bursts since then
        self._bulk = False  # the last look saw several properties' bursts
        self._codes: dict[int, str] = {}  # property id -> code (an id's code never changes)
        self._catalog_ids: dict[int, dict[str, dict[int, str]]] = {}  # property id -> room/rate ids -> codes

    # ---- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        """Keep up to ``property_concurrency`` property pushes in flight: whenever one ends, a
        change is committed (wakeup) or a coalescing burst is due, claim more. No round
        waits for its slowest property, so a booking's closure never queues behind a year
        of another hotel's prices."""
        await self.release(stale_only=True)
        try:
            while not self._stopping.is_set():
                self.ch.wakeup.clear()
                launched = 0
                try:
                    async with self._busy:
                        launched = await self._launch()
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # never let one bad batch stop the channel
                    log.error("push step failed", channel=self.ch.name, error=f"{e.__class__.__name__}: {e}")
                if launched and self._more and len(self._inflight) < self.s.property_concurrency:
                    await asyncio.sleep(0)  # let the new pushes start; then look for more work
                    continue
                timeout = self.s.flush_interval
                if self.ch.breaker.state == "open":
                    timeout = max(0.05, min(timeout, self.ch.breaker.seconds_until_probe()))
                if self._next_due is not None:
                    timeout = max(0.01, min(timeout, self._next_due - time.monotonic()))
                try:
                    await asyncio.wait_for(self._wait_wakeup_or_stop(), timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            if self._inflight:  # cancelled: do not leave pushes running unattended
                for t in list(self._inflight):
                    t.cancel()
                await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _launch(self) -> int:
        """Claim work for the free slots and start it; returns the rows claimed."""
        if not self.ch.breaker.allow():
            return 0
        slots = self.s.property_concurrency - len(self._inflight)
        busy = set(self._inflight.values())
        rows = await self.claim(slots=max(0, slots), busy=busy)
        if not rows:
            self.ch.breaker.cancel_probe()  # nothing to probe with: the next push will
            return 0
        ms = self.mappings()
        for (pid, full), group in self._groups(rows).items():
            if pid in busy:  # a closure overtakes this property's push in flight (see Lane)
                self.ch.lane(pid).generation += 1
            t = asyncio.create_task(self._push_guarded(pid, full, group, ms), name=f"push-{self.ch.name}-{pid}")
            self._inflight[t] = pid
            t.add_done_callback(self._ended)
        return len(rows)

    def _ended(self, t: asyncio.Task) -> None:
        self._inflight.pop(t, None)
        if self._deferred or self._more:  # a slot is free, or a cell it held: what waited for it may go
            self.ch.wakeup.set()

    async def _push_guarded(self, pid: int, full: bool, group: list[Any], ms: MappingSet | None) -> None:
        try:
            await self._push_property(pid, full, group, ms)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the rows stay claimed; their lease (or a restart) gives them back
            log.error("push of a property failed", channel=self.ch.name, property_id=pid,
                      error=f"{e.__class__.__name__}: {e}")
            try:
                o = m.outbox
                ids = [r.id for r in group]

                async def tx(conn):
                    return await release_claims(conn, o.c.id.in_(ids), o.c.status == "claimed",
                                                o.c.claimed_by == self.worker_id)

                await self.db.write(tx)
            except Exception:
                pass

    @staticmethod
    def _groups(rows: list[Any]) -> dict[tuple[int, bool], list[Any]]:
        groups: dict[tuple[int, bool], list[Any]] = {}
        for r in rows:
            groups.setdefault((r.property_id, r.kind == "full"), []).append(r)
        return groups

    async def _wait_wakeup_or_stop(self) -> None:
        stop = asyncio.ensure_future(self._stopping.wait())
        wake = asyncio.ensure_future(self.ch.wakeup.wait())
        try:
            await asyncio.wait({stop, wake}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            wake.cancel()

    async def stop(self, grace: float) -> None:
        """Stop taking work; finish the batch in flight within ``grace``, else release it."""
        self._stopping.set()
        self.ch.wakeup.set()
        deadline = time.monotonic() + grace
        try:
            await asyncio.wait_for(self._busy.acquire(), grace)
            self._busy.release()
            if self._inflight:
                await asyncio.wait(set(self._inflight), timeout=max(0.01, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            pass
        if self._inflight:
            log.warning("push batch still in flight at shutdown; releasing it", channel=self.ch.name)
            for t in list(self._inflight):
                t.cancel()
            await asyncio.wait(set(self._inflight), timeout=5)
        await self.release(stale_only=False)

    # ---- claiming -------------------------------------------------------------------
    async def claim(self, slots: int | None = None, busy: set[int] | frozenset[int] = frozenset()) -> list[Any]:
        """Claim whole properties' pending rows for up to ``slots`` property pushes.

        First reads, without the write lock: the pending rows counted per property (one row
        each, in the order of its most urgent row), then the ids of the properties taken.
        Each property is taken with all its pending rows (so its cells go out as the fewest
        messages, and several properties are in flight); a property already in flight
        (``busy``) is taken only for its closures. A burst still growing waits (coalescing),
        and while a bulk over many properties is still being written (the outbox grew within
        ``coalesce_bulk_seconds``) a look is two index seeks until it ends, or a closure comes,
        or ``coalesce_max_seconds`` pass. Then short writes claim those ids, each only if it
        is still pending and no row of its cell is claimed (in flight, or another process
        was quicker: left for after it settles).
        """
        now = datetime.now(timezone.utc)
        slots = self.s.property_concurrency if slots is None else max(0, slots)
        lease = now + timedelta(seconds=self.s.lease_seconds)
        o = m.outbox
        ch = self.ch.name
        mono = time.monotonic()
        # a bulk still being written (the outbox grew within coalesce_bulk_seconds, by anyone) holds
        # its bursts: while it goes on, a look is two index seeks (the newest row; any closure),
        # not a scan of the backlog
        holding = (self._held_since is not None and mono - self._held_since < self.s.coalesce_max_seconds)

        async def newest(conn):
            return (await conn.execute(select(func.max(o.c.id)))).scalar() or 0

        async def urgent_waiting(conn):
            return (await conn.execute(select(o.c.id).where(
                o.c.channel == ch, o.c.status == "pending", o.c.priority == 0,
                o.c.available_at <= now).limit(1))).scalar() is not None

        if holding:
            async def peek(conn):
                return await newest(conn), await urgent_waiting(conn)

            top, urgent_now = await self.db.read(peek)
            if top != self._outbox_top:
                self._outbox_top, self._outbox_grew = top, mono
            window = self.s.coalesce_bulk_seconds if self._bulk else self.s.coalesce_seconds
            if not urgent_now and mono - self._outbox_grew < window:
                self._next_due = mono + min(window, self.s.coalesce_seconds)
                self._more = False
                return []

        full_c = (o.c.kind == "full").label("full")
        pending = (o.c.channel == ch, o.c.status == "pending", o.c.available_at <= now)

        async def look(conn):
            # one row a property (and a full push apart): counted in the database, in the order
            # of its most urgent row, so no backlog's rows are read into Python to find the work
            groups = (await conn.execute(
                select(o.c.property_id, full_c, func.min(o.c.priority).label("priority"),
                       func.count().label("n"), func.max(o.c.id).label("top"))
                .where(*pending).group_by(o.c.property_id, full_c)
                .order_by(func.min(o.c.priority), func.min(o.c.id)).limit(self.s.claim_groups))).all()
            rows = None
            if sum(g.n for g in groups) <= self.s.claim_inline:  # few (a booking's): read them now
                rows = (await conn.execute(select(o.c.id, o.c.property_id, o.c.priority, full_c)
                                           .where(*pending).order_by(o.c.id))).all()
            return await newest(conn), groups, rows

        top, groups, inline = await self.db.read(look)
        if top != self._outbox_top:
            self._outbox_top, self._outbox_grew = top, mono
        self._more = len(groups) >= self.s.claim_groups
        self._deferred = False
        if not groups:
            self._next_due = None
            self._held_since = None
            return []
        # several properties' bursts at once: a bulk over many properties, whose writer may
        # pause longer between commits (one transaction a room type, a year each) than one
        # property's edit does, and may come back to a property with its prices
        self._bulk = sum(1 for g in groups if not g.full and g.n >= self.s.coalesce_cells) > 1
        window = self.s.coalesce_bulk_seconds if self._bulk else self.s.coalesce_seconds
        bulk_going = mono - self._outbox_grew < window
        next_due: float | None = None
        held_any = False
        take: dict[tuple[int, bool], bool] = {}  # (property, full) -> only its closures
        taken = rows_n = 0
        for g in groups:
            pid, full, urgent = g.property_id, bool(g.full), g.priority == 0
            only_urgent = False
            if taken >= slots or rows_n >= self.s.claim_batch:
                self._deferred = True  # the rest when a slot is free
                if taken < slots:
                    self._more = True  # slots left: the next claim at once
                if not urgent:  # in (priority, id) order: no closure after this one either
                    break
                only_urgent = True  # every slot is taken: closures still go, on their own
            elif pid in busy:  # its push is in flight: only closures overtake it
                self._deferred = True  # its other rows after it
                if not urgent:
                    continue
                only_urgent = True
            elif not urgent and not full and g.n >= self.s.coalesce_cells:
                # a burst: by this worker's own clock (a large change's transaction may take
                # longer than the window), it has grown within the window, or the outbox as a
                # whole has (a bulk over many properties, which may come back to this one with
                # its prices): wait, at most coalesce_max_seconds from its first sight
                seen = self._bursts.get(pid)
                if seen is None or seen[0] != g.top:
                    # it grew no later than the outbox's newest row was first seen (a look
                    # while held does not read the bursts)
                    grew_at = self._outbox_grew if self._outbox_grew != float("-inf") else mono
                    seen = (g.top, grew_at, seen[2] if seen else mono)
                    self._bursts[pid] = seen
                quiet, age = mono - seen[1], mono - seen[2]
                if (quiet < window or bulk_going) and age < self.s.coalesce_max_seconds:
                    due = mono + min(self.s.coalesce_seconds, self.s.coalesce_max_seconds - age)
                    next_due = due if next_due is None else min(next_due, due)
                    held_any = True
                    continue  # more of this burst is probably on its way
            if not only_urgent:
                self._bursts.pop(pid, None)
            take[(pid, full)] = only_urgent
            rows_n += g.n
            taken += 1
        self._next_due = next_due
        if held_any and not take:
            if self._held_since is None:
                self._held_since = mono
        else:
            self._held_since = None
        if not take:
            return []

        async def rows_of(conn):
            return (await conn.execute(select(o.c.id, o.c.property_id, o.c.priority, full_c).where(
                *pending, o.c.property_id.in_(sorted({pid for pid, _ in take})))
                .order_by(o.c.id).limit(self.s.claim_whole_max))).all()

        got_rows = inline if inline is not None else await self.db.read(rows_of)
        if len(got_rows) >= self.s.claim_whole_max:
            self._more = True
        ids: list[int] = []
        for r in got_rows:
            only_urgent = take.get((r.property_id, bool(r.full)))
            if only_urgent is None or (only_urgent and r.priority != 0):
                continue
            ids.append(r.id)
        busy_cell = m.outbox.alias("busy")

        def tx_for(chunk):
            async def claim_tx(conn):
                res = await conn.execute(update(o).where(
                    o.c.id.in_(chunk), o.c.status == "pending",
                    ~exists().where(and_(busy_cell.c.channel == o.c.channel, busy_cell.c.cell == o.c.cell,
                                         busy_cell.c.status == "claimed"))
                ).values(status="claimed", claimed_by=self.worker_id, lease_until=lease).returning(*_CLAIMED))
                return res.all()

            return claim_tx

        got: list[Any] = []
        # short writes (the write lock is everyone's): a few hundred rows each
        for chunk in _id_chunks(ids, self.s.write_chunk):
            # shared with the other channels' claims of the moment (group commit): they end together,
            # so their pushes share one ledger read (SharedSnapshots)
            got.extend(await self.db.write_grouped(tx_for(chunk), durable=False))  # lost: claimed again
        if len(got) < len(ids):
            self._deferred = True  # a cell in flight (or taken by another process): after it settles
        return sorted(got, key=lambda r: r.id)

    async def release(self, *, stale_only: bool) -> int:
        """Claimed rows back to pending: ours at shutdown; otherwise anyone's whose process is
        known to be gone (at once: see channelmgr.sync.processes) or whose lease ran out
        (the backstop, for claims that name no known process)."""
        from sqlalchemy import or_

        from channelmgr.sync.processes import gone, process_of

        now = datetime.now(timezone.utc)
        o = m.outbox
        taken_over: list[str] = []

        async def tx(conn):
            cond = [o.c.channel == self.ch.name, o.c.status == "claimed"]
            if not stale_only:
                return await release_claims(conn, *cond, o.c.claimed_by == self.worker_id)
            owners = (await conn.execute(select(o.c.claimed_by).distinct().where(
                *cond, o.c.lease_until >= now, o.c.claimed_by != self.worker_id))).scalars().all()
            by_process = {process_of(c): c for c in owners if process_of(c)}
            dead = await gone(conn, list(by_process), exclude=process_of(self.worker_id))
            taken_over[:] = [by_process[p] for p in dead]
            expired = o.c.lease_until < now
            return await release_claims(conn, *cond, or_(expired, o.c.claimed_by.in_(taken_over))
                                        if taken_over else expired)

        n = await self.db.write(tx)
        if n:
            log.info("released claimed pushes", channel=self.ch.name, rows=n, stale_only=stale_only,
                     taken_over_from=taken_over or None)
        return n

    # ---- one round --------------------------------------------------------------------
    async def step(self) -> int:
        """One claim, pushed to the end (tests and tools; the loop is ``run``)."""
        if not self.ch.breaker.allow():
            return 0
        # allow() may have let a probe through; claim it
        rows = await self.claim()
        if not rows:
            self.ch.breaker.cancel_probe()  # nothing to probe with: the next push will
            return 0
        ms = self.mappings()
        groups = self._groups(rows)
        sem = asyncio.Semaphore(self.s.property_concurrency)

        async def one(key, group):
            async with sem:
                await self._push_property(key[0], key[1], group, ms)

        # full syncs wait for this round's small changes
        small = [one(k, g) for k, g in groups.items() if not k[1]]
        large = [one(k, g) for k, g in groups.items() if k[1]]
        await asyncio.gather(*small)
        await asyncio.gather(*large)
        return len(rows)

    async def _push_property(self, property_id: int, full: bool, rows: list[Any], ms: MappingSet | None) -> None:
        started = time.perf_counter()
        code = await self._property_code(property_id)
        token = current_property.set(code)
        try:
            pm = ms.get(code) if (ms and code) else None
            if pm is None or pm.channel(self.ch.name) is None:
                await self._settle({r.id: ("done", None) for r in rows})
                self.synclog.record(channel=self.ch.name, property=code, operation="push_skipped", result="skipped",
                                    items=len(rows), error=f"{code} is not listed on {self.ch.name} in the mappings")
                return
            caps = self.ch.caps
            now = datetime.now(timezone.utc)
            today = dates.business_date(now, pm.timezone)
            # the nights this OTA accepts now (its own calendar, late-night hours included),
            # within the nights the daemon keeps in step
            lo, hi = caps.window.bounds(now, pm.timezone)
            hi = min(hi, today + timedelta(days=self.s.horizon_days - 1))
            outside_why = (f"outside {self.ch.name}'s window {lo}..{hi} "
                           f"({caps.window.describe()}); not sent")
            ids = await self._catalog_codes(property_id, (
                {r.room_type_id for r in rows if r.room_type_id is not None},
                {r.rate_plan_id for r in rows if r.rate_plan_id is not None}))
            keyed: dict[tuple, set[int]] = {}
            outside = 0
            skipped: dict[int, str] = {}
            for r in rows:
                if r.kind == "full":
                    for key in all_keys(pm, self.ch.name, dates.days(max(lo, today), hi)):
                        keyed.setdefault(key, set()).add(r.id)
                    continue
                if r.night < lo or r.night > hi:
                    outside += 1
                    keyed.setdefault(("skip", r.id), set()).add(r.id)
                    skipped[r.id] = f"the night is {outside_why}"  # one reason: one statement settles them
                    continue
                rt = ids["rt"].get(r.room_type_id)
                rp = ids["rp"].get(r.rate_plan_id) if r.rate_plan_id else None
                if rt is None or (r.rate_plan_id and rp is None):
                    keyed.setdefault(("skip", r.id), set()).add(r.id)
                    continue
                keyed.setdefault((r.kind, rt, rp, r.night), set()).add(r.id)
            if outside:
                self.synclog.record(channel=self.ch.name, property=code, operation="push_outside_window",
                                    result="skipped", items=outside, error=f"{outside} cell(s) {outside_why}")
            real_keys = [k for k in keyed if k[0] != "skip"]
            outcome: dict[int, tuple[str, str | None]] = {
                r.id: ("skipped", skipped[r.id]) if r.id in skipped else ("done", None) for r in rows}
            if real_keys:
                full_rows = {r.id for r in rows if r.kind == "full"}
                urgent = {r.id for r in rows if getattr(r, "priority", 1) == 0}
                lane = self.ch.lane(property_id)

                cell_keys: dict[tuple, set[tuple]] = {}  # (hotel, room, rate, night) -> local keys

                async def plan(keys: list[tuple], first: bool) -> list[list[Item]]:
                    """One ledger read and one derivation for the keys, batched; closures first."""
                    nights = [k[3] for k in keys]
                    snap = await self.snapshots.get(code, min(nights), max(nights))
                    cells = derive(pm, self.ch.name, snap, keys, today=today, supported=caps.restrictions,
                                   inventory_level=caps.inventory_level)
                    refused = [c for c in cells if c.price_refused]
                    if refused and first:
                        await self._price_refused(property_id, code, refused)
                    with_rows = []
                    for c in cells:
                        mine = cell_keys.setdefault((c.hotel, c.room, c.rate, c.night), set())
                        mine.add(("rooms", c.room_type, None, c.night))
                        if c.rate_plan is not None:
                            mine.add(("rate", c.room_type, c.rate_plan, c.night))
                        if (c.rooms_to_sell is None and not c.prices and c.min_los is None and c.max_los is None
                                and c.cta is None and c.ctd is None and c.stop_sell is None):
                            continue  # nothing to set (e.g. a rate with no price yet): nothing to send
                        linked = set(keyed.get(("rooms", c.room_type, None, c.night), ()))
                        if c.rate_plan is not None:
                            linked |= keyed.get(("rate", c.room_type, c.rate_plan, c.night), set())
                        linked |= full_rows
                        with_rows.append((c, linked))
                    todo = batches(to_items(with_rows, caps), caps)
                    # closures first: a sold-out night never waits behind this property's prices
                    if urgent:
                        todo.sort(key=lambda b: 0 if any(it.rows & urgent for it in b) else 1)
                    return todo

                budget = [self.s.split_budget]
                gen = lane.generation
                todo = await plan(real_keys, True)
                sent: set[tuple] = set()
                i = 0
                while i < len(todo):
                    if lane.generation != gen:
                        # a closure of this property overtook us: what is still to send is read
                        # and derived again, so no later message of ours carries an older count
                        gen = lane.generation
                        rest = [k for k in real_keys if k not in sent]
                        todo, i = (await plan(rest, False) if rest else []), 0
                        continue
                    batch = todo[i]
                    i += 1
                    _urgent_send.set(bool(urgent) and any(it.rows & urgent for it in batch))
                    for it, res in await self._deliver(property_id, code, batch, full, budget):
                        u = it.update
                        for d in dates.days(u.start, u.end):
                            sent |= cell_keys.get((u.hotel, u.room, u.rate, d), set())
                        for rid in it.rows:
                            outcome[rid] = _worse(outcome[rid], res)
            await self._settle(outcome, {r.id: r for r in rows})
        finally:
            current_property.reset(token)
            log.debug("pushed property", channel=self.ch.name, property=code, rows=len(rows),
                      ms=round((time.perf_counter() - started) * 1000, 1))

    async def _deliver(self, property_id: int, code: str, batch: list[Item], full: bool,
                       budget: list[int]) -> list[tuple[Item, tuple[str, str | None]]]:
        """Send one batch; what the OTA refuses in part is sent again, so good nights go out.

        A message refused as a whole is sent again as two halves of its items. A range the
        OTA refuses is probed at its first, middle and last night: all three refused means
        the range is refused as a whole (an unknown room, say: one dead letter, no call per
        night); otherwise the probes settle their own nights and the nights between them are
        sent again, and probed again if refused. So only the nights the OTA itself refuses
        end dead, each with the OTA's reason, in a few calls (log2 of the range per edge).
        ``budget`` bounds the extra calls of one round.
        """
        results, whole = await self._send(property_id, code, batch, full)
        if whole and len(batch) > 1 and budget[0] >= 2:
            budget[0] -= 1  # two calls, one of them this one's
            mid = len(batch) // 2
            return (await self._deliver(property_id, code, batch[:mid], full, budget)
                    + await self._deliver(property_id, code, batch[mid:], full, budget))
        out: list[tuple[Item, tuple[str, str | None]]] = []
        refused: list[tuple[Item, tuple[str, str | None]]] = []
        for it in batch:
            res = results[it.update.key]
            (refused if res[0] == "dead" and it.nights > 1 and budget[0] >= 1 else out).append((it, res))
        if not refused:
            return out
        self.synclog.record(channel=self.ch.name, property=code, operation="push_split", result="retry",
                            items=len(refused), error=f"{self.ch.name} refused {len(refused)} range(s) in part or "
                                                      "whole; probing their nights to send the good ones")
        probes = {it.update.key: [it.piece(d, d) for d in probe_nights(it)] for it, _ in refused}
        settled = {p.update.key: r for p, r in await self._send_pieces(
            property_id, code, [p for ps in probes.values() for p in ps], full, budget)}
        rest: list[Item] = []
        for it, res in refused:
            got = [(p, settled.get(p.update.key, res)) for p in probes[it.update.key]]
            if all(r[0] == "dead" for _, r in got):
                out.append((it, got[0][1]))  # refused whatever the nights: the OTA's reason, once
                continue
            out.extend(got)
            starts = [p.update.start for p, _ in got]
            rest.extend(it.piece(a + timedelta(days=1), b - timedelta(days=1))
                        for a, b in zip(starts, starts[1:]) if (b - a).days > 1)
        out.extend(await self._send_pieces(property_id, code, rest, full, budget))
        return out

    async def _send_pieces(self, property_id: int, code: str, pieces: list[Item], full: bool,
                           budget: list[int]) -> list[tuple[Item, tuple[str, str | None]]]:
        """Pieces of refused ranges, batched within the adapter's limits, one call of the
        round's budget a batch (a batch refused whole is halved, a refused range probed)."""
        out: list[tuple[Item, tuple[str, str | None]]] = []
        for sub in batches(pieces, self.ch.caps):
            if budget[0] < 1:
                out.extend((it, ("dead", f"{self.ch.name} refused its range and this round's budget for sending "
                                         "the good nights again is spent")) for it in sub)
                continue
            budget[0] -= 1
            out.extend(await self._deliver(property_id, code, sub, full, budget))
        return out

    async def _send(self, property_id: int, code: str, batch: list[Item],
                    full: bool) -> tuple[dict[str, tuple[str, str | None]], bool]:
        """One message, retried in line; returns per item ('done'|'retry'|'dead', reason), and
        whether the OTA refused the message as a whole."""
        updates = [it.update for it in batch]
        bucket = self.ch.bucket(property_id)
        lane = self.ch.lane(property_id)
        base_wait = self.s.wait or wait_exponential_jitter(initial=0.2, max=10, jitter=0.5)

        def wait(rs) -> float:
            exc = rs.outcome.exception() if rs.outcome else None
            if isinstance(exc, RateLimitedError) and exc.retry_after:
                return 0 if self.s.wait is not None else exc.retry_after
            return base_wait(rs)

        last_error: list[str] = []  # the OTA's last refusal, for `status` when the breaker cuts the retries short
        try:
            async for attempt in AsyncRetrying(stop=stop_after_attempt(self.s.call_attempts), wait=wait,
                                               retry=retry_if_exception_type(RetriableError), reraise=True):
                with attempt:
                    current_attempt.set(attempt.retry_state.attempt_number)
                    if attempt.retry_state.attempt_number > 1 and not self.ch.breaker.allow():
                        raise BreakerOpen()
                    urgent = _urgent_send.get()
                    await lane.acquire(urgent)
                    try:
                        await bucket.acquire(urgent=urgent)
                        outcome = await self.ch.adapter.push_ari(updates, full=full)
                    except RateLimitedError as e:
                        if e.retry_after:
                            bucket.pause(e.retry_after)
                        raise
                    except RetriableError as e:
                        last_error[:] = [str(e)]
                        if self.ch.breaker.failure():
                            await self._breaker_changed()
                        raise
                    finally:
                        lane.release()
        except BreakerOpen:
            if last_error:  # the breaker opened on this push's own failures: `status` says why
                await self._status(error=last_error[0])
            return {u.key: ("retry", f"{self.ch.name} circuit breaker is open") for u in updates}, False
        except RetriableError as e:
            await self._status(error=str(e))
            return {u.key: ("retry", str(e)) for u in updates}, False
        except AuthError as e:
            if self.ch.breaker.failure():
                await self._breaker_changed()
            await self._status(error=str(e))
            await self._raise_auth(code, e)
            return {u.key: ("retry", str(e)) for u in updates}, False
        except FatalError as e:
            await self._status(error=str(e))
            return {u.key: ("dead", f"{self.ch.name} refused the message: {e}") for u in updates}, True
        finally:
            current_attempt.set(1)
        self.pushed_calls += 1
        self.pushed_items += len(updates)
        if self.ch.breaker.success():
            await self._breaker_changed()
        self._raised_auth = False
        await self._status(success=True)
        by_key = {r.key: r for r in outcome.results}
        out: dict[str, tuple[str, str | None]] = {}
        for u in updates:
            r: ItemResult | None = by_key.get(u.key)
            if r is None:
                out[u.key] = ("retry", f"{self.ch.name} gave no result for this item")
            elif r.status in ("applied", "skipped"):
                out[u.key] = ("done", None if r.status == "applied" else (r.text or "skipped by the adapter"))
            elif r.retriable:
                out[u.key] = ("retry", f"{r.code}: {r.text}")
            else:
                out[u.key] = ("dead", f"{self.ch.name} rejected it: {r.code}: {r.text}")
        return out, False

    # ---- settling -------------------------------------------------------------------
    async def _settle(self, outcome: dict[int, tuple[str, str | None]], rows: dict[int, Any] | None = None) -> None:
        now = datetime.now(timezone.utc)
        o = m.outbox
        done = [i for i, (s, _) in outcome.items() if s == "done"]
        skipped = [(i, why) for i, (s, why) in outcome.items() if s == "skipped"]
        retry = [(i, why) for i, (s, why) in outcome.items() if s == "retry"]
        dead = [(i, why) for i, (s, why) in outcome.items() if s == "dead"]

        def done_tx(chunk):
            async def settle_done(conn):  # one statement for many rows
                await conn.execute(update(o).where(o.c.id.in_(chunk)).values(
                    status="done", claimed_by=None, lease_until=None, last_error=None))

            return settle_done

        # the done rows in short writes of their own; the rest (rare) in one
        for chunk in _id_chunks(done, self.s.write_chunk):
            await self.db.write_grouped(done_tx(chunk), durable=False)  # lost in a power cut: pushed again

        async def tx(conn):
            by_why: dict[str, list[int]] = {}
            for rid, why in skipped:  # never sent: outside the OTA's window
                by_why.setdefault((why or "")[:2000], []).append(rid)
            for why, rids in by_why.items():
                for chunk in _id_chunks(rids):
                    await conn.execute(update(o).where(o.c.id.in_(chunk)).values(
                        status="skipped", claimed_by=None, lease_until=None, last_error=why))
            for rid, why in retry:
                row = rows.get(rid) if rows else None
                attempts = (row.attempts if row else 0) + 1
                if attempts >= self.s.max_attempts:
                    dead.append((rid, f"gave up after {attempts} attempts: {why}"))
                    continue
                delay = min(self.s.backoff_max, self.s.backoff_base * 2 ** (attempts - 1)) * (0.5 + random.random())
                # a newer pending row for the same cell may exist: merge into it instead
                newer = m.outbox.alias("newer")
                res = await conn.execute(update(o).where(o.c.id == rid, ~exists().where(and_(
                    newer.c.channel == self.ch.name, newer.c.cell == (row.cell if row else ""),
                    newer.c.status == "pending"))).values(
                    status="pending", attempts=attempts, claimed_by=None, lease_until=None,
                    available_at=now + timedelta(seconds=delay), last_error=(why or "")[:2000]))
                if not res.rowcount:
                    await conn.execute(update(o).where(o.c.id == rid).values(
                        status="done", claimed_by=None, lease_until=None,
                        last_error=f"superseded by a newer pending push: {why}"[:2000]))
            for rid, why in dead:
                row = rows.get(rid) if rows else None
                await conn.execute(update(o).where(o.c.id == rid).values(
                    status="dead", claimed_by=None, lease_until=None, last_error=(why or "")[:2000]))
                await Ledger.raise_conflict(
                    conn, kind="dead_letter", property_id=row.property_id if row else None, channel=self.ch.name,
                    summary=f"a push to {self.ch.name} was given up: {why}",
                    detail={"outbox_id": rid, "cell": row.cell if row else None,
                            "night": row.night.isoformat() if row and row.night else None})

        if skipped or retry or dead:
            await self.db.write(tx)
        if dead:
            log.error("pushes dead-lettered", channel=self.ch.name, rows=len(dead), reason=dead[0][1])

    # ---- helpers --------------------------------------------------------------------
    async def _catalog_codes(self, property_id: int, need: tuple[set[int], set[int]] = (set(), set())
                             ) -> dict[str, dict[int, str]]:
        """A property's room type and rate plan ids -> codes. A row's code never changes, so
        they are kept; read again when a row of ``need`` (room type ids, rate plan ids) is
        not among them (one added since)."""
        got = self._catalog_ids.get(property_id)
        if got is not None and need[0] <= got["rt"].keys() and need[1] <= got["rp"].keys():
            return got

        async def q(conn):
            rts = (await conn.execute(select(m.room_types.c.id, m.room_types.c.code).where(
                m.room_types.c.property_id == property_id))).all()
            rps = (await conn.execute(select(m.rate_plans.c.id, m.rate_plans.c.code).where(
                m.rate_plans.c.property_id == property_id))).all()
            return {"rt": dict(rts), "rp": dict(rps)}

        got = await self.db.read(q)
        if len(self._catalog_ids) > 50_000:
            self._catalog_ids.clear()
        self._catalog_ids[property_id] = got
        return got

    async def _property_code(self, property_id: int) -> str | None:
        """A property's code (kept: an id's code never changes)."""
        code = self._codes.get(property_id)
        if code is not None:
            return code

        async def q(conn):
            return (await conn.execute(select(m.properties.c.code).where(m.properties.c.id == property_id))).scalar()

        code = await self.db.read(q)
        if code is not None:
            if len(self._codes) > 50_000:
                self._codes.clear()
            self._codes[property_id] = code
        return code

    async def _status(self, *, success: bool = False, error: str | None = None) -> None:
        now = time.monotonic()
        if success and error is None and now - self._last_status_write < 1.0:
            return
        self._last_status_write = now
        await self.synclog.set_status(self.ch.name, breaker=self.ch.breaker.state, success=success, error=error)

    async def _breaker_changed(self) -> None:
        log.warning("circuit breaker", channel=self.ch.name, state=self.ch.breaker.state)
        await self.synclog.set_status(self.ch.name, breaker=self.ch.breaker.state)

    async def _price_refused(self, property_id: int, code: str, cells: list[Any]) -> None:
        """Prices held back under the floor: in the sync log every time, and one open conflict
        per property and channel for a person (not one per push)."""
        first = cells[0]
        why = (f"{len(cells)} price(s) held back, e.g. {first.room_type}/{first.rate_plan} {first.night}: "
               f"{first.price_refused}")
        self.synclog.record(channel=self.ch.name, property=code, operation="price_refused", result="skipped",
                            items=len(cells), error=why)
        c = m.conflicts

        async def tx(conn):
            open_one = (await conn.execute(select(c.c.id).where(
                c.c.kind == "price_refused", c.c.property_id == property_id, c.c.channel == self.ch.name,
                c.c.status == "open").limit(1))).scalar()
            if open_one is None:
                await Ledger.raise_conflict(
                    conn, kind="price_refused", property_id=property_id, channel=self.ch.name,
                    summary=f"{self.ch.name} was not sent {why}. Rooms and restrictions still go out; fix the "
                            "price or the rule in the mapping (min_price) and the price goes out.",
                    detail={"nights": sorted({x.night.isoformat() for x in cells})[:31]})

        await self.db.write(tx)

    async def _raise_auth(self, code: str | None, e: ChannelError) -> None:
        if self._raised_auth:
            return
        self._raised_auth = True

        async def tx(conn):
            await Ledger.raise_conflict(conn, kind="credentials", channel=self.ch.name,
                                        summary=f"{self.ch.name} refused our credentials: {e}. Pushes are kept "
                                                "and retried; fix the credentials and they go out.")

        await self.db.write(tx)


_RANK = {"skipped": 0, "done": 0, "retry": 1, "dead": 2}


def _worse(a: tuple[str, str | None], b: tuple[str, str | None]) -> tuple[str, str | None]:
    return b if _RANK[b[0]] > _RANK[a[0]] else a
