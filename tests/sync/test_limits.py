"""Rate budgets and circuit breakers."""

from __future__ import annotations

import asyncio
import time

from channelmgr.sync.limits import CircuitBreaker, TokenBucket


async def test_a_burst_goes_out_at_once_then_the_rate_holds():
    b = TokenBucket(rate=20, burst=5)
    t0 = time.monotonic()
    for _ in range(5):
        await b.acquire()
    assert time.monotonic() - t0 < 0.05  # idle budget: no delay at all
    for _ in range(4):
        await b.acquire()
    assert 0.15 <= time.monotonic() - t0 < 0.5  # then 20 a second


async def test_retry_after_pauses_the_budget():
    b = TokenBucket(rate=100, burst=1)
    await b.acquire()
    b.pause(0.2)
    t0 = time.monotonic()
    await b.acquire()
    assert time.monotonic() - t0 >= 0.19


async def test_breaker_opens_probes_and_closes():
    br = CircuitBreaker(failures=3, reset_seconds=0.1)
    assert br.allow()
    for _ in range(2):
        assert not br.failure()
    assert br.failure() and br.state == "open"
    assert not br.allow()
    await asyncio.sleep(0.12)
    assert br.allow() and br.state == "half_open"
    assert not br.allow()  # one probe at a time
    assert br.failure() and br.state == "open"  # the probe failed: open again
    await asyncio.sleep(0.12)
    assert br.allow()
    assert br.success() and br.state == "closed"
