"""One ledger read for the channels that push the same property at the same moment.

A booking wakes every channel's push worker at once, and each used to read the same
property's same nights on its own: four reads of the same rows for one change (issue 13:
the snapshot was the largest single cost of a booking's fan-out). Here a push asks for its
snapshot after its claim has committed, and joins a read of that property that has been
asked for but has not started yet; a read starts ``gather_seconds`` after it was first
asked for. So every read starts after the claim of every push that takes it: it sees
every change whose outbox rows those pushes claimed (they were written in one transaction
with the change), which is all a push needs to send the ledger's latest values. A read
already started is never joined: a push that asks then gets a read of its own.

Joined ranges are merged (the union of the nights asked for) while they lie within
``join_nights`` of each other; a range farther away is read on its own.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any


class _Read:
    __slots__ = ("start", "end", "future")

    def __init__(self, start: date, end: date, future: asyncio.Future):
        self.start, self.end, self.future = start, end, future


class SharedSnapshots:
    def __init__(self, ledger: Any, *, gather_seconds: float = 0.002, join_nights: int = 62):
        self.ledger = ledger
        self.gather_seconds = gather_seconds
        self.join_nights = join_nights
        self._waiting: dict[str, _Read] = {}  # property code -> the read asked for, not started
        self._tasks: set[asyncio.Task] = set()
        self.reads = 0  # reads made, and asks served (tests and benchmarks)
        self.asks = 0

    async def get(self, property_code: str, start: date, end: date) -> Any:
        """The snapshot of ``property_code`` over at least ``start``..``end``, read after now."""
        self.asks += 1
        r = self._waiting.get(property_code)
        gap = timedelta(days=self.join_nights)
        if r is not None and start <= r.end + gap and end >= r.start - gap:
            r.start, r.end = min(r.start, start), max(r.end, end)
        else:
            r = _Read(start, end, asyncio.get_running_loop().create_future())
            self._waiting[property_code] = r  # a farther range replaces it here; it still runs
            task = asyncio.get_running_loop().create_task(self._read(property_code, r),
                                                          name=f"snapshot-{property_code}")
            self._tasks.add(task)  # a reference, so the loop does not lose it
            task.add_done_callback(self._tasks.discard)
        # shielded: one caller cancelled does not cancel the read the others wait on
        return await asyncio.shield(r.future)

    async def _read(self, property_code: str, r: _Read) -> None:
        try:
            try:
                await asyncio.sleep(self.gather_seconds)
            finally:
                if self._waiting.get(property_code) is r:
                    del self._waiting[property_code]  # started: from here on nobody joins it
            self.reads += 1
            snap = await self.ledger.snapshot(property_code, r.start, r.end)
        except Exception as e:
            if not r.future.done():
                r.future.set_exception(e)
        except BaseException:  # cancelled (the daemon stops): so are those who wait on it
            r.future.cancel()
            raise
        else:
            if not r.future.done():
                r.future.set_result(snap)

    async def close(self) -> None:
        """Cancel the reads still going (the daemon stops) and wait for them to let go."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        self._waiting.clear()
