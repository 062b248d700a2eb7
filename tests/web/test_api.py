"""The operator API against a running daemon and its sandboxes, on SQLite and PostgreSQL (issue 11)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select

from channelmgr.ledger import models as m
from channelmgr.ledger.types import AriChange
from tests.web.helpers import bearer

pytestmark = pytest.mark.slow


async def get(r, path: str, headers: dict, **params) -> tuple[int, dict]:
    async with r.http.get(r.d.base_url + "/api/v1" + path, headers=headers, params=params) as resp:
        return resp.status, await resp.json()


async def send(r, method: str, path: str, headers: dict, body) -> tuple[int, dict]:
    async with r.http.request(method, r.d.base_url + "/api/v1" + path, headers=headers, json=body) as resp:
        return resp.status, await resp.json()


async def _booking(r, oid_hint: str) -> tuple[str, list]:
    nights = [r.today() + timedelta(days=8 + i) for i in range(2)]
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", nights[0], nights[-1], rate_plan="BAR-DK", rooms=5,
                                     price_minor=88800, stop_sell=False), actor="test")
    r.d.wake_all()
    await r.converge(nights, channels=("ctrip",))
    room, rate = r.codes("ctrip", "DK", "BAR-DK")
    oid = (await r.book("ctrip", hotel=r.hotel("ctrip"), room=room, rate=rate, checkin=nights[0].isoformat(),
                        checkout=nights[1].isoformat(), rooms=1, amount_minor=88800, currency="CNY",
                        guest={"name": "张伟", "phone": "13812340000", "email": "zhang.wei@example.cn"},
                        special_requests="高楼层，无烟房"))["ota_booking_id"]

    async def arrived():
        return await r.ledger.booking("ctrip", oid) is not None

    await r.wait_for(arrived, timeout=30, what=f"booking {oid_hint} to arrive")
    return oid, nights


async def test_viewer_sees_masked_guests_and_may_not_change_anything(run):
    r = run
    viewer, operator = await bearer(r.d, "viewer"), await bearer(r.d, "operator")
    oid, nights = await _booking(r, "for the viewer")
    status, body = await get(r, "/bookings", viewer, ota_id=oid)
    assert status == 200 and len(body["bookings"]) == 1, body
    row = body["bookings"][0]
    assert row["guest"] == {"name": "张*", "phone": "138****0000", "email": None, "id_number": None}
    assert row["checkin"] == nights[0].isoformat() and row["channel"] == "ctrip" and row["amount_minor"] == 88800
    status, one = await get(r, f"/bookings/{row['id']}", viewer)
    assert status == 200 and one["guest"]["name"] == "张*" and one["guest"]["phone"] == "138****0000"
    assert "zhang.wei" not in json.dumps(one) and one["special_requests"] == "***"
    assert [v["action"] for v in one["revisions"]] == ["new"] and len(one["nights"]) == 1
    # an operator sees the guest
    status, one = await get(r, f"/bookings/{row['id']}", operator)
    assert one["guest"]["name"] == "张伟" and one["guest"]["phone"] == "13812340000"
    assert one["special_requests"] == "高楼层，无烟房"
    status, body = await get(r, "/bookings", operator, arrival=nights[0].isoformat(), channel="ctrip")
    assert [b["ota_booking_id"] for b in body["bookings"]] == [oid] and body["bookings"][0]["guest"]["name"] == "张伟"
    status, body = await get(r, "/bookings", viewer, status="cancelled")
    assert (status, body["bookings"]) == (200, [])
    status, body = await get(r, "/bookings", viewer, channel="expedia")
    assert status == 400 and body["field"] == "channel" and "booking, ctrip" in body["error"]

    # the viewer may not set ARI nor resolve a conflict
    ari = {"property": "SHA-BUND", "room_type": "DK", "rate_plan": "BAR-DK", "from": nights[0].isoformat(),
           "to": nights[0].isoformat(), "price": "999.00"}
    status, body = await send(r, "PUT", "/ari", viewer, ari)
    assert status == 403 and "revenue" in body["error"]
    status, body = await send(r, "PUT", "/ari", operator, ari)
    assert status == 403

    async def conflict_id(conn):
        return await r.ledger.raise_conflict(conn, kind="drift", summary="a test drift", channel="ctrip")

    cid = await r.d.rt.db.write(conflict_id)
    status, body = await send(r, "POST", f"/conflicts/{cid}/resolve", viewer, {"note": "looked"})
    assert status == 403 and "operator" in body["error"]
    assert (await get(r, f"/conflicts/{cid}", viewer))[1]["status"] == "open"


def _cli(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "channelmgr", "--config", str(config), *args],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


async def test_an_operator_resolves_a_conflict_who_and_when_recorded(run, tmp_path):
    r = run
    operator = await bearer(r.d, "operator", "zhao")

    async def two(conn):
        pid = (await conn.execute(select(m.properties.c.id).where(m.properties.c.code == "SHA-BUND"))).scalar()
        a = await r.ledger.raise_conflict(conn, kind="overbooking", summary="sold one room twice", property_id=pid,
                                          channel="ctrip")
        b = await r.ledger.raise_conflict(conn, kind="drift", summary="meituan holds 3, should hold 2",
                                          property_id=pid, channel="meituan")
        return a, b

    a, b = await r.d.rt.db.write(two)
    status, body = await get(r, "/conflicts", operator)
    assert status == 200 and [c["id"] for c in body["conflicts"]] == [b, a]
    assert body["open_by_kind"] == {"overbooking": 1, "drift": 1}
    status, body = await get(r, "/conflicts", operator, kind="drift")
    assert [c["id"] for c in body["conflicts"]] == [b]

    status, body = await send(r, "POST", f"/conflicts/{a}/resolve", operator, {"note": ""})
    assert status == 400 and body["field"] == "note"
    status, body = await send(r, "POST", f"/conflicts/{a}/resolve", operator, {"note": "moved the guest to 1203"})
    assert status == 200, body
    assert body["status"] == "resolved" and body["resolved_by"] == "zhao" and body["resolution"] == "moved the guest to 1203"
    assert body["resolved_at"]
    status, again = await send(r, "POST", f"/conflicts/{a}/resolve", operator, {"note": "twice"})
    assert status == 409 and "already resolved" in again["error"]
    status, body = await send(r, "POST", "/conflicts/999999/resolve", operator, {"note": "x"})
    assert status == 404
    rows = [j for j in await r.ledger.journal("SHA-BUND", limit=20) if j["entity"] == "conflict"]
    assert [(j["actor"], j["action"], j["key"]["conflict"], j["after"]["status"]) for j in rows] == [
        ("user:zhao", "resolve", a, "resolved")]
    status, body = await get(r, "/conflicts", operator)
    assert [c["id"] for c in body["conflicts"]] == [b] and body["open_by_kind"] == {"drift": 1}

    # the same on the command line
    cfg = tmp_path / "cli.yaml"
    cfg.write_text(json.dumps({"database": {"url": r.d.config.database.url},
                               "security": {"data_key_file": str(tmp_path / "data.key")}}))
    out = await asyncio.to_thread(_cli, cfg, "conflicts", "show", str(a))
    assert out.returncode == 0, out.stderr
    assert "resolved" in out.stdout and "by zhao: moved the guest to 1203" in out.stdout
    out = await asyncio.to_thread(_cli, cfg, "conflicts", "resolve", str(b), "--note", "re-pushed meituan")
    assert out.returncode == 0, out.stderr
    out = await asyncio.to_thread(_cli, cfg, "conflicts", "show", str(b), "--json")
    shown = json.loads(out.stdout)
    assert shown["status"] == "resolved" and shown["resolved_by"].startswith("cli:")
    out = await asyncio.to_thread(_cli, cfg, "conflicts", "resolve", str(b), "--note", "again")
    assert out.returncode == 1 and "already resolved" in out.stderr
    out = await asyncio.to_thread(_cli, cfg, "conflicts", "show", "424242")
    assert out.returncode == 1 and "no conflict #424242" in out.stderr
    out = await asyncio.to_thread(_cli, cfg, "conflicts")  # the list still works as before
    assert out.returncode == 0 and "no open conflicts" in out.stdout


async def test_revenue_sets_ari_through_the_api_and_the_sandbox_gets_it(run):
    r = run
    revenue = await bearer(r.d, "revenue", "chen")
    night = r.today() + timedelta(days=12)
    ari = {"property": "SHA-BUND", "room_type": "DK", "rate_plan": "BAR-DK", "from": night.isoformat(),
           "to": night.isoformat(), "rooms": 6, "price": "777.00", "stop_sell": False, "reason": "api test"}
    status, body = await send(r, "PUT", "/ari", revenue, ari)
    assert status == 200, body
    assert body["nights"] == 1 and body["cells_changed"] >= 2 and body["outbox_rows"] > 0
    shown = await r.ledger.show("SHA-BUND", night, night)
    assert [x["physical"] for x in shown["rooms"] if x["room_type"] == "DK"] == [6]
    assert [x["price_minor"] for x in shown["rates"] if x["rate_plan"] == "BAR-DK"] == [77700]
    rows = [j for j in await r.ledger.journal("SHA-BUND", limit=10) if j["correlation_id"] == body["correlation_id"]]
    assert rows and all(j["actor"] == "user:chen" and j["reason"] == "api test" for j in rows)
    status, api_rows = await get(r, "/journal", revenue, property="SHA-BUND", limit=10)
    assert status == 200 and [j for j in api_rows["rows"] if j["correlation_id"] == body["correlation_id"]] == rows
    await r.converge([night], channels=("booking", "ctrip"))
    held = await r.state("booking")
    room, rate = r.codes("booking", "DK", "BAR-DK")
    want = [max(c.prices)[1] for c in await r.expected("booking", [night]) if c.room == room and c.rate == rate]
    # 777.00 through booking's rule in mappings/ (the sandbox holds what the rules derive from it)
    assert want and held[(r.hotel("booking"), room, rate, night.isoformat())]["price_minor"] == want[0]
    assert await r.rooms("booking", "DK", night) == 6

    # the CLI's validation, as sentences with the field
    for bad, field in (({**ari, "price": "7.777"}, "price"), ({**ari, "price": "abc"}, "price"),
                       ({**ari, "rooms": -1}, "rooms"), ({**ari, "min_los": 0}, "min_los"),
                       ({**ari, "from": "2026-13-01"}, "from"), ({**ari, "colour": "red"}, "colour"),
                       ({**ari, "from": "9999-12-30", "to": "9999-12-31"}, "from")):
        status, body = await send(r, "PUT", "/ari", revenue, bad)
        assert status == 400 and body["field"] == field and body["error"], (bad, body)
    for bad, words in (({**ari, "property": "NOPE"}, "no property"),
                       ({**ari, "to": (night - timedelta(days=1)).isoformat()}, "before it starts"),
                       ({k: v for k, v in ari.items() if k not in ("rooms", "price", "stop_sell")}, "nothing to change"),
                       ({**ari, "rate_plan": None, "rooms": None}, "rate plan")):
        status, body = await send(r, "PUT", "/ari", revenue, bad)
        assert status == 400 and words in body["error"], (bad, body)
    async with r.http.put(r.d.base_url + "/api/v1/ari", headers=revenue, data=b"{not json") as resp:
        assert resp.status == 400 and "JSON" in (await resp.json())["error"]


async def test_calendar_status_sync_log_and_mappings(run):
    r = run
    viewer = await bearer(r.d, "viewer")
    nights = [r.today() + timedelta(days=20 + i) for i in range(3)]
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", nights[1], nights[1], rate_plan="BAR-DK", stop_sell=True,
                                     price_minor=50000), actor="test")
    status, cal = await get(r, "/calendar", viewer, **{"property": "SHA-BUND", "from": nights[0].isoformat(),
                                                       "to": nights[-1].isoformat()})
    assert status == 200, cal
    dk = next(t for t in cal["room_types"] if t["room_type"] == "DK")
    assert [n["date"] for n in dk["nights"]] == [n.isoformat() for n in nights]
    assert all(n["free"] == n["physical"] - n["sold"] - n["out_of_order"] - n["held"] for n in dk["nights"])
    assert cal["timezone"] == "Asia/Shanghai" and cal["from"] == nights[0].isoformat()
    stopped = [x for x in cal["rates"] if x["rate_plan"] == "BAR-DK" and x["date"] == nights[1].isoformat()]
    assert stopped and stopped[0]["stop_sell"] is True
    status, body = await get(r, "/calendar", viewer, **{"property": "SHA-BUND", "from": nights[0].isoformat(),
                                                        "to": (nights[0] + timedelta(days=400)).isoformat()})
    assert status == 400 and body["field"] == "to"
    status, body = await get(r, "/calendar", viewer, **{"property": "SHA-BUND", "from": "9999-12-01",
                                                        "to": "9999-12-31", "channel": "booking"})
    assert status == 400 and body["field"] == "from"  # the night after date.max does not exist
    status, body = await get(r, "/calendar", viewer, **{"property": "SHA-BUND", "from": "soon", "to": "later"})
    assert status == 400 and body["field"] == "from"

    # with a channel: what that OTA should hold, the cells the push worker derives
    status, cal = await get(r, "/calendar", viewer, **{"property": "SHA-BUND", "from": nights[0].isoformat(),
                                                       "to": nights[-1].isoformat(), "channel": "booking"})
    assert status == 200, cal
    want = {(c.room, c.rate, c.night.isoformat()): c.rooms_to_sell for c in await r.expected("booking", nights)}
    got = {(c["room"], c["rate"], c["night"]): c["rooms_to_sell"] for c in cal["channel_cells"]}
    assert got == want and got
    status, body = await get(r, "/calendar", viewer, **{"property": "SHA-BUND", "from": nights[0].isoformat(),
                                                        "to": nights[-1].isoformat(), "channel": "agoda"})
    assert status == 400 and body["field"] == "channel"

    status, st = await get(r, "/status", viewer)
    assert status == 200 and {c["channel"] for c in st["channels"]} == {"booking", "ctrip", "fliggy", "meituan"}

    r.d.wake_all()
    await r.converge(nights, channels=("ctrip",))

    async def pushed_twice():
        await r.d.synclog.flush()
        return len((await get(r, "/sync-log", viewer, channel="ctrip"))[1]["rows"]) >= 2

    await r.wait_for(pushed_twice, what="the full push and the stop-sell in ctrip's sync log")
    await r.d.synclog.flush()
    status, body = await get(r, "/sync-log", viewer, channel="ctrip", since="1h")
    assert status == 200 and body["rows"] and {x["channel"] for x in body["rows"]} == {"ctrip"}
    assert "request" not in body["rows"][0] or body["rows"][0]["request"] is None
    last = body["last_id"]
    status, later = await get(r, "/sync-log", viewer, after_id=last)
    assert status == 200 and all(x["id"] > last for x in later["rows"])
    assert len(body["rows"]) >= 2  # the full push and the change above, at least
    status, page = await get(r, "/sync-log", viewer, channel="ctrip", limit=1)
    assert [x["id"] for x in page["rows"]] == [max(x["id"] for x in body["rows"])]
    status, back = await get(r, "/sync-log", viewer, channel="ctrip", before_id=page["first_id"], limit=1)
    assert status == 200 and [x["id"] for x in back["rows"]] == [sorted(x["id"] for x in body["rows"])[-2]]
    status, full = await get(r, "/sync-log", viewer, channel="ctrip", full="true", limit=1)
    assert len(full["rows"]) == 1 and full["rows"][0]["request"]
    status, body = await get(r, "/sync-log", viewer, since="yesterday")
    assert status == 400 and body["field"] == "since"
    status, body = await get(r, "/sync-log", viewer, channel="ctrip", failed="true")
    assert status == 200 and all(x["result"] not in ("ok", "skipped") for x in body["rows"])

    status, mp = await get(r, "/mappings", viewer)
    assert status == 200 and mp["fingerprint"] == r.d.mappings.fingerprint
    assert mp["recorded"]["files"] == ["sha-bund.yaml"] and mp["recorded"]["at"] and mp["problems"] == []
