"""Settlement (issue 14): a Ctrip sandbox's statement with three planted differences, imported.

The sandbox is real (aiohttp on loopback); its bookings are injected through its control API
and the same bookings written to the ledger through Ledger.apply_booking, as the intake would.
The mapping charges ctrip 12 %, as the sandbox does by default.
"""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import aiohttp
import pytest
from sqlalchemy import func, select

from adapters.base.sandbox import SandboxCatalog
from adapters.ctrip.sandbox import CtripSandbox
from channelmgr.config import Config
from channelmgr.ledger import models as m
from channelmgr.ledger.types import IncomingBooking, LocalStay
from channelmgr.reports.settlement import SettlementError, import_statement, parse
from tests.reports.test_figures import RPT, local

HOTEL = "H-RPT"
AMOUNTS = [100000, 80000, 60000, 50000, 40000]  # five stays in March, 1,000.00 .. 400.00


class _Rate:
    def __init__(self, d, pct):
        self.from_, self.basis_points = d, pct * 100


def _runtime(db):
    pm = SimpleNamespace(file=SimpleNamespace(commission={"ctrip": [_Rate(date(2026, 1, 1), 12)]}))
    return SimpleNamespace(db=db, config=Config(), mappings=SimpleNamespace(get=lambda code: pm if code == "RPT" else None))


@pytest.fixture
async def sandbox():
    sb = CtripSandbox(SandboxCatalog.from_dict(
        {"hotels": {HOTEL: {"currency": "CNY", "timezone": "Asia/Shanghai", "rooms": {"R1": ["P1"]}}}}), {})
    base = await sb.start()
    yield sb, base
    await sb.stop()


async def test_three_planted_differences_are_reported_once(ledger, sandbox, tmp_path):
    sb, base = sandbox
    await ledger.sync_catalog([RPT])
    ids = []
    for i, amount in enumerate(AMOUNTS):
        ci = date(2026, 3, 2 + 3 * i)
        b = sb.inject({"hotel": HOTEL, "room": "R1", "rate": "P1", "checkin": ci.isoformat(),
                       "checkout": (ci + timedelta(days=2)).isoformat(), "amount_minor": amount, "force": True})
        ids.append(b.ota_booking_id)
        await ledger.apply_booking(IncomingBooking(
            channel="ctrip", hotel_code=HOTEL, property="RPT", ota_booking_id=b.ota_booking_id, revision="1",
            action="new", stays=(LocalStay("R1", "P1", "K", "BAR-K", ((ci, amount // 2), (ci + timedelta(days=1),
                                                                                        amount // 2))),),
            amount_minor=amount, currency="CNY", booked_at=local(2026, 2, 1, 10)))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/_sandbox/statement", params={"month": "2026-03"}) as resp:
            clean = await resp.read()
        async with http.get(f"{base}/_sandbox/statement",
                            params={"month": "2026-03", "plant": "amount,commission,missing"}) as resp:
            assert resp.status == 200
            planted = await resp.read()
        async with http.get(f"{base}/_sandbox/statement", params={"month": "March"}) as resp:
            assert resp.status == 400
    rt = _runtime(ledger.db)

    ok = await import_statement(rt, "ctrip", "clean.csv", clean, actor="cli:test")
    assert ok["differences"] == [] and ok["months"][0]["error_rate"] == 0 and not ok["months"][0]["flagged"]

    r = await import_statement(rt, "ctrip", "march.csv", planted, actor="cli:wang")
    kinds = {(d["kind"], d["ota_booking_id"]): d for d in r["differences"]}
    # sorted by id, the sandbox planted: line 1 +100.00 amount, line 2 commission +10.00, line 3 left out
    assert set(kinds) == {("amount", ids[0]), ("commission", ids[1]), ("missing_on_statement", ids[2])}
    assert kinds[("amount", ids[0])]["difference_minor"] == 10000
    assert kinds[("commission", ids[1])]["difference_minor"] == 1000  # 9600 expected (12 % of 800.00), 10600 billed
    assert kinds[("missing_on_statement", ids[2])]["difference_minor"] == 60000
    # the line with the planted amount also bills 12 % of the larger amount: 13200 = 12 % of 110000, no
    # commission difference on it. Statement total: 110000 + 80000 + 50000 + 40000 = 280000.
    # error rate = (10000 + 1000 + 60000) / 280000 = 71000 / 280000 = 25.357 %
    month = r["months"][0]
    assert (month["month"], month["statement_total_minor"], month["differences_minor"]) == ("2026-03", 280000, 71000)
    assert month["error_rate"] == pytest.approx(71000 / 280000) and month["flagged"]
    assert r["imported_by"] == "cli:wang" and not r["already_imported"]

    async def counts(conn):
        return ((await conn.execute(select(func.count()).select_from(m.statements))).scalar(),
                (await conn.execute(select(func.count()).select_from(m.statement_lines))).scalar())

    before = await ledger.db.read(counts)
    again = await import_statement(rt, "ctrip", "march-copy.csv", planted, actor="cli:li")
    assert again["already_imported"] and again["imported_by"] == "cli:wang"
    assert await ledger.db.read(counts) == before == (2, 5 + 4)
    assert again["differences"] == r["differences"] and again["months"] == r["months"]


async def test_bad_files_say_where(ledger):
    from channelmgr.reports.settlement import DEFAULT_COLUMNS

    cols = DEFAULT_COLUMNS["ctrip"]
    head = ",".join(cols[f] for f in ("ota_id", "hotel", "checkin", "checkout", "amount", "commission", "currency"))
    with pytest.raises(SettlementError, match=r"bad\.csv:3: .*more than 2 decimal"):
        parse("bad.csv", f"{head}\nA1,H,2026-03-01,2026-03-02,100.00,12.00,CNY\nA2,H,2026-03-01,2026-03-02,1.005,0,CNY\n"
              .encode(), cols)
    with pytest.raises(SettlementError, match=r"bad\.csv:2: the dates"):
        parse("bad.csv", f"{head}\nA1,H,01/03/2026,2026-03-02,100.00,12.00,CNY\n".encode(), cols)
    with pytest.raises(SettlementError, match="no column"):
        parse("bad.csv", b"a,b,c\n1,2,3\n", cols)
