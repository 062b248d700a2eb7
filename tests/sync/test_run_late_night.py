"""`channelmgr run` as a newcomer starts it, at 02:30 in Shanghai: libfaketime moves the clock
of the daemon process; everything else is the shipped config.yaml and mapping, demo guests
included. No dead letter, and every sandbox holds every night of the horizon its OTA takes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from adapters.base.registry import load
from channelmgr import dates
from channelmgr.mapping import load_mappings

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
HORIZON = 45
# libfaketime itself (LD_PRELOAD), not the `faketime` wrapper, so SIGTERM reaches the daemon
FAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)


def _inherited_offset() -> int:
    """This process's own clock offset when it runs under a relative FAKETIME (CI's late-night
    pass): a child's libfaketime moves the real clock, so the child's offset must include it."""
    if "faketime" not in os.environ.get("LD_PRELOAD", ""):
        return 0
    ours = os.environ.get("FAKETIME", "")
    return int(ours[:-1]) if ours[:1] in "+-" and ours.endswith("s") and ours[1:-1].isdigit() else 0


def _offset_to_shanghai(hh: int, mm: int) -> int:
    """Seconds from the real clock to today's hh:mm in Shanghai (today as this process sees it)."""
    target = datetime.now(SHANGHAI).replace(hour=hh, minute=mm, second=0, microsecond=0)
    return int(target.timestamp() - time.time()) + _inherited_offset()


def _status(tmp: Path, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-m", "channelmgr", "status", "--json"], cwd=tmp, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(FAKETIME is None, reason="libfaketime is not installed (apt-get install faketime; "
                                             ".ci/run installs it)")
async def test_channelmgr_run_at_shanghai_0230_sends_no_dead_letter_and_fills_every_window(tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    offset = _offset_to_shanghai(2, 30)
    env = {**os.environ, "CHANNELMGR__HTTP__PORT": "0", "CHANNELMGR__LOG__FORMAT": "json",
           "CHANNELMGR__SYNC__HORIZON_DAYS": str(HORIZON), "CHANNELMGR__DEMO__BOOKINGS_PER_MINUTE": "60"}
    faked = {**env, "LD_PRELOAD": str(FAKETIME), "FAKETIME": f"{offset:+d}s", "FAKETIME_DONT_RESET": "1"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "channelmgr", "run", cwd=tmp_path, env=faked,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    sandboxes: dict[str, str] = {}
    lines: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            lines.append(line)
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "sandbox started":
                sandboxes[ev["channel"]] = ev["url"]

    reader = asyncio.create_task(read())
    try:
        deadline = time.monotonic() + 60
        while len(sandboxes) < 4:
            assert proc.returncode is None, "\n".join(lines[-30:])
            assert time.monotonic() < deadline, "the daemon did not start its four sandboxes:\n" + "\n".join(lines[-30:])
            await asyncio.sleep(0.2)
        now = datetime.now(timezone.utc) + timedelta(seconds=offset - _inherited_offset())  # the daemon's clock
        assert now.astimezone(SHANGHAI).hour == 2
        today = dates.business_date(now, "Asia/Shanghai")
        # let the first full sync, the demo prices and some demo bookings go out
        deadline = time.monotonic() + 150
        while True:
            await asyncio.sleep(2)
            st = _status(tmp_path, env)
            waiting = sum(c["outbox_depth"] for c in st["channels"])
            if waiting == 0 and time.monotonic() > deadline - 140:  # ten seconds of demo guests at least
                break
            assert time.monotonic() < deadline, f"still {waiting} pushes waiting: {st}"
        assert [(c["channel"], c["dead_letters"]) for c in st["channels"]] == [
            (c["channel"], 0) for c in st["channels"]], st
        assert not any("dead-lettered" in line for line in lines), [x for x in lines if "dead-lettered" in x][:3]

        pm = load_mappings(tmp_path / "mappings").get("SHA-BUND")
        async with aiohttp.ClientSession() as http:
            for channel, url in sorted(sandboxes.items()):
                caps = load(channel).capabilities
                lo, hi = caps.window.bounds(now, pm.timezone)
                first, last = max(lo, today), min(hi, today + timedelta(days=HORIZON - 1))
                async with http.get(f"{url}/_sandbox/state") as r:
                    cells = (await r.json())["cells"]
                held = {(c["room"], c["rate"], c["date"]) for c in cells if c.get("rooms_to_sell") is not None}
                ch = pm.channel(channel)
                missing = []
                for rt, room in ch.rooms.items():
                    rates = [ch.rates[p] for p, plan in pm.rate_plans.items()
                             if plan.room_type == rt and p in ch.rates] if caps.inventory_level == "rate" else [None]
                    for rate in rates:
                        for night in dates.days(first, last):
                            if (room, rate, night.isoformat()) not in held:
                                missing.append(f"{room}/{rate} {night}")
                assert not missing, f"{channel} lacks {len(missing)} night(s) of {first}..{last}, e.g. {missing[:5]}"
                assert first == today, (channel, first, today)  # tonight (yesterday's date) is on sale
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except asyncio.TimeoutError:
                proc.kill()
        reader.cancel()
    assert proc.returncode == 0, "\n".join(lines[-20:])
