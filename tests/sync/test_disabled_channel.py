"""A channel with ``enabled: false`` queues nothing, says "disabled", and gets everything
it must hold once it is enabled again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from channelmgr.daemon import Daemon
from channelmgr.ledger import models as m
from channelmgr.ledger.types import AriChange
from channelmgr.ops import status
from tests.sync.harness import Running, fast_push_settings, make_config

pytestmark = pytest.mark.slow


async def _start(tmp_path, meituan_enabled: bool) -> Running:
    cfg = make_config(tmp_path)
    cfg.channels["meituan"].enabled = meituan_enabled
    d = Daemon(cfg, push_settings=fast_push_settings(40))
    await d.start()
    return Running(d)


async def _rows(r, channel: str) -> int:
    async def q(conn):
        return (await conn.execute(select(func.count()).select_from(m.outbox).where(
            m.outbox.c.channel == channel, m.outbox.c.status.in_(("pending", "claimed", "done", "dead"))))).scalar()

    return await r.ledger.db.read(q)


async def test_a_disabled_channel_queues_nothing_and_enabling_it_pushes_all(tmp_path):
    r = await _start(tmp_path, meituan_enabled=False)
    try:
        assert "meituan" not in r.d.channels
        today = r.today()
        nights = [today + timedelta(days=5 + i) for i in range(3)]
        await r.ledger.set_ari(AriChange("SHA-BUND", "DK", nights[0], nights[-1], rate_plan="BAR-DK", rooms=5,
                                         price_minor=88800, stop_sell=False), actor="test")
        r.d.wake_all()
        await r.converge(nights, channels=("booking", "ctrip", "fliggy"))
        room, rate = r.codes("booking", "DK", "BAR-DK")
        await r.book("booking", hotel=r.hotel("booking"), room=room, rate=rate, checkin=nights[0].isoformat(),
                     checkout=nights[1].isoformat(), amount_minor=88800, currency="CNY", guest={"name": "李娜"})

        async def sold():
            return await r.rooms("ctrip", "DK", nights[0]) == 4

        await r.wait_for(sold, timeout=30, what="the booking to reach ctrip")
        assert await _rows(r, "meituan") == 0  # nothing queued for the disabled channel
        st = {c["channel"]: c for c in (await status(r.ledger.db, list(r.d.channels), ["meituan"]))["channels"]}
        assert st["meituan"]["enabled"] is False and st["meituan"]["breaker"] == "disabled"
        assert st["meituan"]["outbox_depth"] == 0
        from tests.web.helpers import bearer

        async with r.http.get(f"{r.d.base_url}/api/status", headers=await bearer(r.d)) as resp:
            assert resp.status == 200
            api = {c["channel"]: c for c in (await resp.json())["channels"]}
        assert api["meituan"]["breaker"] == "disabled"
    finally:
        await r.close()

    r = await _start(tmp_path, meituan_enabled=True)
    try:
        # enabled again: the whole horizon goes out, the booking's sold room included (the
        # other sandboxes are new, empty processes here: only meituan is asked)
        await r.converge(nights, timeout=60, channels=("meituan",))
        assert await r.rooms("meituan", "DK", nights[0]) == await r.rooms("meituan", "DK", nights[2]) - 1
    finally:
        await r.close()
