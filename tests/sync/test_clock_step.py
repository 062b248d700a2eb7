"""The wall clock stepping back (an NTP correction, a restored VM) must not stop the pulls.

APScheduler 3 plans interval jobs on the wall clock: after a step back of an hour the pulls
of Booking.com would wait an hour, and its bookings with them. The daemon's clock guard
plans them again for now (channelmgr.clockguard).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import time_machine

from channelmgr.clockguard import ClockGuard
from tests.sync.harness import start


def test_the_guard_tells_a_step_back_and_nothing_else():
    wall, mono = [1_000_000.0], [50.0]
    told: list[float] = []
    g = ClockGuard(told.append, threshold=2.0, wall=lambda: wall[0], mono=lambda: mono[0])
    for _ in range(10):  # time passing, and NTP slewing half a second between two looks
        wall[0] += 1.5
        mono[0] += 1.0
        assert g.check() is None
    wall[0] += 3600 + 1  # a step forward: the jobs are due at once anyway
    mono[0] += 1
    assert g.check() is None
    wall[0] -= 3600 - 1  # the step back
    mono[0] += 1
    assert g.check() == 3600 and told == [3600]
    wall[0] += 1
    mono[0] += 1
    assert g.check() is None and g.steps_back == 1


async def test_pulls_go_on_after_the_clock_steps_back_an_hour(tmp_path, db_url):
    r = await start(tmp_path, db_url)
    try:
        pull = r.d.scheduler.get_job("pull:booking")
        assert pull is not None
        real = datetime.now(timezone.utc)
        lead = r.d.clock_guard.offset
        with time_machine.travel(real + timedelta(hours=1), tick=True):
            # the scheduler plans its next pull on the moved clock: an hour after the real time
            await r.wait_for(lambda: _planned(pull.id, r, real, after=timedelta(minutes=50)), timeout=10,
                             what="a pull planned on the moved clock")

            async def guard_saw_it():  # the clock was wrong for a while (not between two looks)
                return r.d.clock_guard.offset > lead + 3000

            await r.wait_for(guard_saw_it, timeout=10, what="the clock guard to see the moved clock")
        # the clock is back an hour: without the guard the next pull would be an hour away
        await r.wait_for(lambda: _planned(pull.id, r, datetime.now(timezone.utc), after=timedelta(minutes=-1),
                                          before=timedelta(minutes=5)),
                         timeout=10, what="the pull planned again for now")
        assert r.d.clock_guard.steps_back >= 1

        nights = [r.today() + timedelta(days=12)]
        room, rate = r.codes("booking", "DK", "BAR-DK")
        oid = (await r.book("booking", hotel=r.hotel("booking"), room=room, rate=rate,
                            checkin=nights[0].isoformat(), checkout=(nights[0] + timedelta(days=1)).isoformat(),
                            rooms=1, amount_minor=88800, currency="CNY", guest={"name": "李雷"}))["ota_booking_id"]

        async def pulled():
            return await r.ledger.booking("booking", oid) is not None

        await r.wait_for(pulled, timeout=20, what="the booking pulled after the step back")
    finally:
        await r.close()


async def _planned(job_id: str, r, since: datetime, *, after: timedelta, before: timedelta | None = None) -> bool:
    """Whether the job's next run lies between ``since + after`` and ``since + before``."""
    job = r.d.scheduler.get_job(job_id)
    if job is None or job.next_run_time is None:
        return False
    ahead = job.next_run_time - since
    return ahead > after and (before is None or ahead < before)
