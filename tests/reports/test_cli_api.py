"""`channelmgr report ...` on a terminal, as JSON, CSV and XLSX, and /api/v1/reports/... (issue 14)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import aiohttp

from channelmgr.ledger.types import IncomingBooking, LocalStay
from channelmgr.runtime import Runtime
from tests.web.helpers import bearer

ARGS = ["--property", "SHA-BUND", "--from", "2026-12-01", "--to", "2026-12-31"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.pop("CHANNELMGR_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "channelmgr", *args], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=120)


async def _bookings(ledger) -> None:
    # booking.com: DK 12-24, 12-25 at 888.00 a night; ctrip: SK 12-24 at 500.00, 2 rooms
    for channel, oid, rt, rp, nights, rooms in (("booking", "BK1", "DK", "BAR-DK", [88800, 88800], 1),
                                                ("ctrip", "CT1", "SK", "BAR-SK", [50000], 2)):
        first = date(2026, 12, 24)
        await ledger.apply_booking(IncomingBooking(
            channel=channel, hotel_code="X", property="SHA-BUND", ota_booking_id=oid, revision="1", action="new",
            stays=(LocalStay(rt, rp, rt, rp, tuple((first + timedelta(days=i), p) for i, p in enumerate(nights)),
                             rooms),),
            amount_minor=sum(nights) * rooms, currency="CNY", booked_at=datetime(2026, 12, 1, 2, tzinfo=timezone.utc)))


async def test_the_cli_prints_a_table_json_csv_and_xlsx(workdir):
    rt = await Runtime.open(str(workdir / "config.yaml"))
    try:
        await _bookings(rt.ledger)
    finally:
        await rt.close()
    t = cli("report", "summary", *ARGS, cwd=workdir)
    assert t.returncode == 0, t.stderr
    lines = t.stdout.splitlines()
    assert lines[0].startswith("summary of SHA-BUND  2026-12-01 .. 2026-12-31")
    assert "room_nights" in lines[1] and "adr" in lines[1]
    booking = next(x for x in lines if x.strip().startswith("2026-12-01..2026-12-31  booking"))
    assert " 2 " in booking and "1776.00" in booking and "888.00" in booking  # 2 room nights, gross, ADR
    total = next(x for x in lines if x.strip().startswith("total"))
    assert "2776.00" in total  # 1776.00 + 2 x 500.00

    j = cli("report", "channels", *ARGS, "--by", "month", "--json", cwd=workdir)
    assert j.returncode == 0, j.stderr
    doc = json.loads(j.stdout)
    assert doc["report"] == "channels" and doc["by"] == "month" and doc["totals"]["room_nights"] == 4
    rows = {r["group"]: r for r in doc["rows"]}
    assert rows["ctrip"]["money"][0]["gross_minor"] == 100000 and rows["ctrip"]["room_nights_share"] == 0.5

    c = cli("report", "lead-time", *ARGS, "--csv", cwd=workdir)
    assert c.returncode == 0, c.stderr
    got = list(csv.DictReader(io.StringIO(c.stdout)))
    total = next(r for r in got if r["period"] == "total")
    assert total["bookings"] == "2" and total["lead_8-14"] == "0" and total["lead_15-30"] == "2"  # 12-01 -> 12-24: 23

    x = cli("report", "summary", *ARGS, "--by", "week", "--group", "room_type", "--xlsx", str(workdir / "r.xlsx"),
            cwd=workdir)
    assert x.returncode == 0, x.stderr
    from openpyxl import load_workbook

    wb = load_workbook(workdir / "r.xlsx")
    ws = wb["summary"]
    header = [c.value for c in ws[1]]
    assert header[:4] == ["period", "group", "bookings", "room_nights"]
    periods = {ws.cell(r, 1).value for r in range(2, ws.max_row + 1)}
    assert "2026-W52" in periods and "total" in periods
    assert wb["about"]["B1"].value == "summary"

    bad = cli("report", "summary", "--property", "SHA-BUND", "--from", "2026-12-31", "--to", "2026-12-01", cwd=workdir)
    assert bad.returncode == 1 and "before it starts" in bad.stderr
    nope = cli("report", "pace", "--property", "SHA-BUND", "--from", "2026-12-01", "--to", "2026-12-31", "--by",
               "year", cwd=workdir)
    assert nope.returncode == 2


async def test_the_api_answers_json_csv_xlsx_and_4xx(run_sqlite):
    r = run_sqlite
    await _bookings(r.d.rt.ledger)
    h = await bearer(r.d, "viewer")
    base = r.d.base_url + "/api/v1/reports"
    q = {"property": "SHA-BUND", "from": "2026-12-01", "to": "2026-12-31", "by": "day", "group": "rate_plan"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/summary", params=q, headers=h) as resp:
            assert resp.status == 200, await resp.text()
            doc = await resp.json()
        assert doc["from"] == "2026-12-01" and doc["group"] == "rate_plan"
        day = {(x["period"], x["group"]): x for x in doc["rows"]}
        assert day[("2026-12-25", "BAR-DK")]["money"][0]["gross_minor"] == 88800
        async with http.get(f"{base}/channels", params={**q, "format": "csv"}, headers=h) as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            assert "attachment" in resp.headers["Content-Disposition"]
            assert (await resp.text()).startswith("period,group,bookings")
        async with http.get(f"{base}/pace", params={**q, "group": "channel", "format": "xlsx"}, headers=h) as resp:
            assert resp.status == 200
            assert (await resp.read())[:2] == b"PK"
        for params, status, field in (({**q, "from": "2026-13-01"}, 400, "from"),
                                      ({**q, "to": "2026-11-01"}, 400, "to"),
                                      ({**q, "by": "year"}, 400, "by"),
                                      ({**q, "property": "NOPE"}, 404, "property"),
                                      ({**q, "group": "guest"}, 400, "group")):
            async with http.get(f"{base}/summary", params=params, headers=h) as resp:
                body = await resp.json()
                assert resp.status == status, body
                assert body["field"] == field and body["error"]
        # cancellations by room type: answered (the bookings row keeps its room type, migration 0006)
        async with http.get(f"{base}/cancellations", params={**q, "group": "room_type"}, headers=h) as resp:
            assert resp.status == 200 and (await resp.json())["group"] == "room_type"
        async with http.get(f"{base}/nonsense", params=q, headers=h) as resp:
            assert resp.status == 404
        async with http.get(f"{base}/summary", params=q) as resp:
            assert resp.status == 401
