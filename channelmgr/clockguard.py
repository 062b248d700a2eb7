"""The wall clock stepping back: an NTP correction, a VM restored from a snapshot, `date -s`.

APScheduler 3 plans an interval job's next run on the wall clock. When the clock steps back
an hour, every interval job (the pulls of Booking.com and Fliggy, the flush, the watchdog,
the desk scan) waits for that hour to pass again: bookings are not pulled, nothing says so.

:class:`ClockGuard` compares the wall clock with the monotonic one, which never steps. When
the wall clock has fallen behind by more than ``threshold`` seconds since the last look,
``on_step_back`` is called with how far; the daemon plans its interval jobs for now. A step
forward needs nothing: the jobs are due at once, and ``coalesce`` runs each once. NTP's slow
slewing never reaches the threshold between two looks.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import structlog

log = structlog.get_logger("channelmgr.clock")


class ClockGuard:
    def __init__(self, on_step_back: Callable[[float], None], *, threshold: float = 2.0, interval: float = 1.0,
                 wall: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic):
        self.on_step_back = on_step_back
        self.threshold = threshold
        self.interval = interval
        self._wall, self._mono = wall, mono
        self.offset = wall() - mono()
        self.steps_back = 0

    def check(self) -> float | None:
        """How far the wall clock stepped back since the last look (and ``on_step_back`` was
        told), or None."""
        offset = self._wall() - self._mono()
        back = self.offset - offset
        self.offset = offset  # the wall clock's lead on the monotonic one, at the last look
        if back <= self.threshold:
            return None
        self.steps_back += 1
        log.warning("the system clock stepped back; interval jobs are planned again for now",
                    seconds=round(back, 1))
        self.on_step_back(back)
        return back

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception as e:  # noqa: BLE001 - the guard never stops the daemon
                log.error("clock guard failed", error=f"{e.__class__.__name__}: {e}")
