"""Rate budgets and circuit breakers: how the engine stays welcome at an OTA."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Literal


class TokenBucket:
    """``rate`` calls a second on average, bursts of ``burst``. ``acquire`` waits as little
    as the budget allows: with tokens left a change goes out at once."""

    def __init__(self, rate: float, burst: int):
        self.rate = max(rate, 0.001)
        self.capacity = max(1, burst)
        self.tokens = float(self.capacity)
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()
        self._urgent = 0  # urgent acquirers waiting: the others let them go first

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    async def acquire(self, urgent: bool = False) -> float:
        """Take one token; returns the seconds waited. An ``urgent`` caller (a closure)
        takes the next token before every waiting non-urgent one (prices, openings)."""
        waited = 0.0
        if urgent:
            self._urgent += 1
            try:
                while True:
                    self._refill()
                    if self.tokens >= 1:
                        self.tokens -= 1
                        return waited
                    delay = (1 - self.tokens) / self.rate
                    waited += delay
                    await asyncio.sleep(delay)
            finally:
                self._urgent -= 1
        async with self._lock:
            while True:
                self._refill()
                if self.tokens >= 1 and not self._urgent:
                    self.tokens -= 1
                    return waited
                delay = max((1 - self.tokens) / self.rate, 0.005)
                waited += delay
                await asyncio.sleep(delay)

    def pause(self, seconds: float) -> None:
        """The OTA said wait (Retry-After): empty the bucket for that long."""
        self._refill()
        self.tokens = min(self.tokens, 0) - seconds * self.rate


@dataclass
class CircuitBreaker:
    """Opens after ``failures`` failed calls in a row; after ``reset_seconds`` lets one probe
    through (half-open); a success closes it, a failure opens it again."""

    failures: int = 5
    reset_seconds: float = 30.0
    state: Literal["closed", "open", "half_open"] = "closed"
    consecutive: int = 0
    opened_at: float = 0.0
    _probe_in_flight: bool = field(default=False, repr=False)

    def allow(self) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open" and time.monotonic() - self.opened_at >= self.reset_seconds:
            self.state = "half_open"
            self._probe_in_flight = False
        if self.state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def seconds_until_probe(self) -> float:
        if self.state != "open":
            return 0.0
        return max(0.0, self.reset_seconds - (time.monotonic() - self.opened_at))

    def cancel_probe(self) -> None:
        """The probe found nothing to send; the next call may probe instead."""
        self._probe_in_flight = False

    def success(self) -> bool:
        """Returns True when this success closed an open breaker."""
        changed = self.state != "closed"
        self.state, self.consecutive, self._probe_in_flight = "closed", 0, False
        return changed

    def failure(self) -> bool:
        """Returns True when this failure opened the breaker."""
        self.consecutive += 1
        self._probe_in_flight = False
        if self.state == "half_open" or (self.state == "closed" and self.consecutive >= self.failures):
            self.state = "open"
            self.opened_at = time.monotonic()
            return True
        return False
