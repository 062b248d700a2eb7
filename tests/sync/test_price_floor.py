"""Issue 10: a price under the floor never reaches an OTA, through a running daemon and
its sandboxes. The rule (ctrip: 700.00 off) went into force while the ledger had no
prices to judge it by (no min_price in the file: `check` can only warn); then revenue staff
set a price it takes below zero. Before the floors, Ctrip was sent 0.01 CNY."""

from __future__ import annotations

from datetime import timedelta

import pytest

from channelmgr.ledger.types import AriChange

pytestmark = pytest.mark.slow




async def test_a_price_a_rule_takes_below_zero_is_never_sent(running, tmp_path):
    r = running
    f = tmp_path / "mappings" / "sha-bund.yaml"
    text = f.read_text(encoding="utf-8").replace("  min_price: 100\n", "", 1)
    text = text.replace("    availability:\n      cap: 20", "    price: {amount: -700}\n    availability:\n      cap: 20", 1)
    f.write_text(text, encoding="utf-8")
    result = await r.d.reload("test")
    assert result.ok, result  # nothing in the ledger to judge it by yet
    assert r.d.mappings.get("SHA-BUND").channel("ctrip").price.amount == -700

    nights = [r.today() + timedelta(days=20 + i) for i in range(3)]
    await r.ledger.set_ari(AriChange("SHA-BUND", "SK", nights[0], nights[-1], rate_plan="BAR-SK", rooms=6,
                                     price_minor=69800, stop_sell=False), actor="test")
    r.d.wake_all()
    await r.converge(nights, channels=("booking", "ctrip"))  # rooms, restrictions and the prices that may go

    hotel = r.hotel("booking")
    room, rate = r.codes("booking", "SK", "BAR-SK")
    held = await r.state("booking")
    assert [held[(hotel, room, rate, n.isoformat())]["price_minor"] for n in nights] == [71900] * 3  # +3%, whole

    hotel = r.hotel("ctrip")
    room, rate = r.codes("ctrip", "SK", "BAR-SK")
    held = await r.state("ctrip")
    cells = [held.get((hotel, room, rate, n.isoformat())) for n in nights]
    assert all(c is not None and c["stop_sell"] is False for c in cells), cells  # the cells were pushed
    assert [c["price_minor"] for c in cells] == [None] * 3, cells  # but never a price: not 0.01 CNY
    assert [await r.rooms("ctrip", "SK", n) for n in nights] == [6, 6, 6]
    expected = await r.expected("ctrip", nights)
    refused = [c for c in expected if c.rate_plan == "BAR-SK"]
    assert refused and all(c.price_refused and "zero or below" in c.price_refused for c in refused)

    # operators are told once: a conflict per property and channel, and the sync log says why
    from sqlalchemy import select

    from channelmgr.ledger import models as m

    async def q(conn):
        return (await conn.execute(select(m.conflicts.c.summary, m.conflicts.c.channel).where(
            m.conflicts.c.kind == "price_refused", m.conflicts.c.status == "open"))).all()

    await r.wait_for(lambda: _has(r, q), timeout=10, what="a price_refused conflict")
    got = await r.ledger.db.read(q)
    assert [c.channel for c in got] == ["ctrip"] and "held back" in got[0].summary
    await r.ledger.set_ari(AriChange("SHA-BUND", "SK", nights[0], nights[-1], rate_plan="BAR-SK",
                                     price_minor=69900), actor="test")
    r.d.wake_all()
    await r.converge(nights, channels=("ctrip",))
    assert len(await r.ledger.db.read(q)) == 1  # not one more per push


async def _has(r, q) -> bool:
    return bool(await r.ledger.db.read(q))
