"""What keeps the daemon cheap when nothing happens (issue 13), held without timing.

- The drift watchdog reads back one property at a time per channel, spaced over the round
  (``sync.drift.readback_gap``), never in a burst: driven here with a virtual clock, the
  sandbox's own request log shows at most one read-back between two waits, each at or after
  its slot, the whole round inside the interval.
- The mapping watcher, told by the kernel when the folder changes, does not scan an
  unchanged folder every poll interval, and still sees an edit.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from channelmgr.sync.drift import check_drift, readback_gap
from tests.sync.harness import ROOT, start

pytestmark = pytest.mark.slow

EXTRA = 5  # properties besides the shipped one


def write_properties(folder: Path, n: int) -> None:
    """N more copies of the shipped hotel, each with its own OTA ids and Fliggy codes."""
    folder.mkdir(parents=True, exist_ok=True)
    template = (ROOT / "mappings" / "sha-bund.yaml").read_text(encoding="utf-8")
    for i in range(n):
        text = template.replace("code: SHA-BUND", f"code: IDLE-{i}")
        for old, new in (('hotel_id: "2846731"', f'hotel_id: "{7_000_000 + i}"'),
                         ('hotel_id: "436512"', f'hotel_id: "{700_000 + i}"'),
                         ('hotel_id: "sha-bund-001"', f'hotel_id: "idle-{i}"'),
                         ('hotel_id: "158937"', f'hotel_id: "{70_000 + i}"')):
            text = text.replace(old, new)
        head, rest = text.split("  fliggy:\n", 1)
        block, tail = rest.split("  meituan:\n", 1)
        block = re.sub(r'(\n      [A-Z-]+: )"([A-Z_]+)"', lambda mt, i=i: f'{mt.group(1)}"{mt.group(2)}-I{i}"', block)
        (folder / f"idle-{i}.yaml").write_text(head + "  fliggy:\n" + block + "  meituan:\n" + tail,
                                               encoding="utf-8")


@pytest.fixture
async def running(tmp_path, db_url):
    write_properties(tmp_path / "mappings", EXTRA)
    r = await start(tmp_path, db_url)
    r.d.scheduler.pause_job("pull:booking")
    yield r
    await r.close()


def test_the_gap_spreads_a_round_and_keeps_under_the_cap():
    assert readback_gap(100, 240, None) == pytest.approx(2.4)  # 100 read-backs over 240 s
    assert readback_gap(10_000, 240, 1.0) == 1.0  # the cap: a round then takes 10,000 s
    assert readback_gap(10, 240, 1.0) == pytest.approx(24.0)
    assert readback_gap(10, None, None) == 0.0  # driven by hand: back to back


async def test_the_watchdog_spaces_its_read_backs_over_the_interval(running):
    r = running
    sandbox = r.d.channels["booking"].sandbox
    path = r.d.channels["booking"].adapter.opts.readback_path
    properties = len([pm for pm in r.d.mappings.properties.values() if pm.channel("booking")])
    assert properties == EXTRA + 1
    interval = 300.0
    gap = readback_gap(properties, 0.8 * interval, None)
    now = 0.0
    waits: list[tuple[float, int]] = []  # (virtual time after the wait, read-backs seen before it)

    def read_backs() -> int:
        return sum(1 for q in sandbox.requests if q["path"] == path)

    async def sleep(seconds: float) -> None:
        nonlocal now
        waits.append((now + seconds, read_backs()))
        now += seconds
        await asyncio.sleep(0)

    before = read_backs()
    await check_drift(r.d, "booking", spread_over=0.8 * interval, sleep=sleep, clock=lambda: now)
    done = read_backs() - before
    assert done == properties  # every property read back once (one 31-day call each)
    assert len(waits) == properties - 1  # a wait before every read-back but the first
    seen = [n - before for _, n in waits] + [done]
    # at most one read-back between two waits: never a burst, one in flight at a time
    assert all(b - a <= 1 for a, b in zip([0] + seen, seen))
    # the k-th read-back goes out at or after its slot, and the round ends inside the interval
    for k, (at, _) in enumerate(waits, start=1):
        assert at >= k * gap - 1e-6
    assert now <= 0.8 * interval


async def test_the_watchdog_round_runs_in_the_background_and_stops_with_the_daemon(running):
    r = running
    await r.d.watchdog()
    task = r.d._drift_tasks.get("booking")
    assert task is not None
    await r.d.watchdog()  # a round still running is not started twice
    assert r.d._drift_tasks["booking"] is task
    assert "ctrip" not in r.d._drift_tasks  # no read-back at Ctrip
