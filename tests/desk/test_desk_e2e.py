"""The reservations desk end to end: a running daemon with the four sandboxes over loopback HTTP,
on SQLite and PostgreSQL (issue 12)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from channelmgr.ledger import models as m
from channelmgr.ledger.types import AriChange
from tests.sync.harness import CHANNELS, start
from tests.web.helpers import bearer, make_user

pytestmark = pytest.mark.slow
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture
async def run(tmp_path, db_url):
    r = await start(tmp_path, db_url, horizon_days=30)
    yield r
    await r.close()


def _config_file(r, tmp_path) -> str:
    """A config.yaml for the real `channelmgr` CLI naming the daemon's database, mappings and key."""
    data = r.d.config.model_dump(mode="json", exclude={"source"})  # the daemon's own settings (JSON is YAML)
    path = tmp_path / "cli-config.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


async def cli(config: str, *args: str) -> subprocess.CompletedProcess:
    """The real CLI in a process of its own; the event loop (and the daemon on it) keeps running meanwhile,
    so a daemon transaction in flight is never frozen while the CLI waits for the lock."""
    env = dict(os.environ)
    env.pop("CHANNELMGR_DATABASE_URL", None)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "channelmgr", "--config", config, *args,
                                                cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


async def _rooms_everywhere(r, room_type: str, night, rate_plan: str) -> dict[str, int | None]:
    return {ch: await r.rooms(ch, room_type, night, rate_plan=rate_plan) for ch in CHANNELS}


async def test_phone_booking_by_cli_and_api_close_the_room_on_every_ota(run, tmp_path):
    r = run
    await r.settled()
    nights = [r.today() + timedelta(days=10 + i) for i in range(2)]
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", nights[0], nights[-1], rate_plan="BAR-DK", rooms=3,
                                     price_minor=88800, stop_sell=False), actor="test")
    r.d.wake_all()
    await r.converge(nights)
    before = await _rooms_everywhere(r, "DK", nights[0], "BAR-DK")
    assert all(v and v > 0 for v in before.values()), before
    config = _config_file(r, tmp_path)
    arrival, departure = nights[0].isoformat(), (nights[-1] + timedelta(days=1)).isoformat()

    # a phone booking by the real CLI, priced from the ledger's rate
    p = await cli(config, "bookings", "add", "--property", "SHA-BUND", "--room-type", "DK", "--rate-plan", "BAR-DK",
            "--arrival", arrival, "--departure", departure, "--guest-name", "王芳", "--phone", "13912345678",
            "--request", "无烟房，高楼层", "--source", "phone", "--json")
    assert p.returncode == 0, p.stderr
    by_cli = json.loads(p.stdout)
    assert by_cli["amount_minor"] == 2 * 88800 and by_cli["currency"] == "CNY" and by_cli["outbox_rows"] > 0

    # two rooms by the API, with an idempotency key: the retry makes no second booking
    headers = {**await bearer(r.d, "operator", "pms"), "Idempotency-Key": "web-order-4711"}
    body = {"property": "SHA-BUND", "room_type": "DK", "rate_plan": "BAR-DK", "arrival": arrival,
            "departure": departure, "rooms": 2, "guest_name": "John Smith", "phone": "+1 415 555 2671",
            "email": "john@example.com", "source": "website", "amount": "3552.00"}
    url = r.d.base_url + "/api/v1/bookings"
    async with r.http.post(url, json=body, headers=headers) as resp:
        first = await resp.json()
        assert resp.status == 200, first
    async with r.http.post(url, json=body, headers=headers) as resp:
        again = await resp.json()
        assert resp.status == 200 and resp.headers.get("Idempotent-Replayed") == "true"
    assert again == first and first["amount_minor"] == 355200
    async with r.http.post(url, json={**body, "rooms": 1}, headers=headers) as resp:
        assert resp.status == 422 and "Idempotency-Key" in (await resp.json())["error"]

    async def count(conn):
        return (await conn.execute(select(func.count()).select_from(m.bookings).where(
            m.bookings.c.channel.in_(("phone", "website"))))).scalar()

    assert await r.ledger.db.read(count) == 2
    # every OTA closes the room
    r.d.wake_all()
    await r.converge(nights)
    after = await _rooms_everywhere(r, "DK", nights[0], "BAR-DK")
    assert after == {ch: 0 for ch in CHANNELS}, after

    # sold out: refused with the reason; taken with --override by an operator, journaled
    args = ["bookings", "add", "--property", "SHA-BUND", "--room-type", "DK", "--rate-plan", "BAR-DK",
            "--arrival", arrival, "--departure", departure, "--guest-name", "赵六", "--phone", "13712345678"]
    p = await cli(config, *args)
    assert p.returncode == 1 and "no free room" in p.stderr, p.stderr
    await make_user(r.d, "desk-op", "operator")
    p = await cli(config, *args, "--override", "--as", "desk-op", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["overbooked"] is True
    rows = await r.ledger.journal("SHA-BUND", limit=200)
    assert any(j["action"] == "override" and j["actor"] == "user:desk-op" for j in rows)

    # one list; show masks, --reveal is audited
    p = await cli(config, "bookings", "list", "--source", "phone", "--json")
    listed = json.loads(p.stdout)
    assert {b["confirmation"] for b in listed} >= {by_cli["confirmation"]}
    assert all("*" in b["guest"]["name"] for b in listed)
    p = await cli(config, "bookings", "show", by_cli["confirmation"], "--json")
    shown = json.loads(p.stdout)
    assert shown["guest"]["name"] == "王*" and {q["kind"] for q in shown["requests"]} == {"non_smoking", "high_floor"}
    told = {c["channel"]: c for c in shown["channels_told"]}
    assert set(told) == set(CHANNELS) and all(c["sent"] > 0 and c["failed"] == 0 for c in told.values()), told
    assert (await cli(config, "bookings", "show", by_cli["confirmation"], "--reveal")).returncode == 1
    p = await cli(config, "bookings", "show", by_cli["confirmation"], "--reveal", "--as", "desk-op", "--why",
            "guest called to confirm", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["guest"]["name"] == "王芳"
    audit = json.loads((await cli(config, "audit", "--json")).stdout)
    assert audit[0]["actor"] == "user:desk-op" and audit[0]["why"] == "guest called to confirm"


async def test_ctrip_requests_on_a_clock_overdue_and_followed_by_a_modification(run):
    from channelmgr.desk import commands

    r = run
    nights = [r.today() + timedelta(days=12 + i) for i in range(2)]
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", nights[0], nights[-1], rate_plan="BAR-DK", rooms=5,
                                     price_minor=88800, stop_sell=False), actor="test")
    r.d.wake_all()
    await r.converge(nights, channels=("ctrip",))
    room, rate = r.codes("ctrip", "DK", "BAR-DK")
    oid = (await r.book("ctrip", hotel=r.hotel("ctrip"), room=room, rate=rate, checkin=nights[0].isoformat(),
                        checkout=(nights[-1] + timedelta(days=1)).isoformat(), rooms=1, amount_minor=177600,
                        currency="CNY", guest={"name": "张伟", "phone": "13812340001"},
                        special_requests="无烟房，高楼层"))["ota_booking_id"]

    async def arrived():
        return await r.ledger.booking("ctrip", oid) is not None

    await r.wait_for(arrived, timeout=30, what="the ctrip booking")
    await r.d.desk_scan()
    reqs = [q for q in await r.d.desk.requests.list() if q["ota_booking_id"] == oid]
    assert sorted(q["kind"] for q in reqs) == ["high_floor", "non_smoking"]
    for q in reqs:
        assert 7000 <= q["seconds_left"] <= 7200 and not q["overdue"]
    ns = argparse.Namespace(config=None, overdue=True, all=False, property=None, json=True)
    with time_machine.travel(reqs[0]["due_at"], tick=True) as t:
        t.shift(timedelta(minutes=1))
        rt_cfg = r.d.config

        async def over():
            return [q for q in await r.d.desk.requests.list(overdue=True) if q["ota_booking_id"] == oid]

        assert len(await over()) == 2
        # the CLI's own command (in process, so that the moved clock holds), and the metric
        from channelmgr.desk.service import Desk

        async def fake_open(_args):
            return _NoClose(r.d.rt), Desk(r.ledger, rt_cfg.desk, lambda: r.d.mappings)

        import contextlib
        import io

        orig, buf = commands._open, io.StringIO()
        commands._open = fake_open
        try:
            with contextlib.redirect_stdout(buf):
                await commands.cmd_requests(ns)
        finally:
            commands._open = orig
        out = buf.getvalue()  # (the daemon's own log lines may share stdout)
        printed = json.JSONDecoder().raw_decode(out, out.index("[\n"))[0]
        assert sorted(q["kind"] for q in printed if q["ota_booking_id"] == oid) == ["high_floor", "non_smoking"]
        async with r.http.get(r.d.base_url + "/metrics") as resp:
            text = await resp.text()
        line = next(x for x in text.splitlines() if x.startswith("channelmgr_requests_overdue "))
        assert float(line.split()[1]) >= 2
    r.clock_back()  # the scheduler's jobs were planned on the moved clock
    # a modification drops the high floor: that request is withdrawn, non-smoking stays
    await r.book("ctrip", action="modify", ota_booking_id=oid, special_requests="无烟房")

    async def followed():
        await r.d.desk_scan()
        got = {q["kind"]: q["status"] for q in await r.d.desk.requests.list(status=None) if q["ota_booking_id"] == oid}
        return got == {"non_smoking": "open", "high_floor": "withdrawn"}

    await r.wait_for(followed, timeout=30, what="the request to follow the modification")


class _NoClose:
    def __init__(self, rt):
        self.rt = rt
        self.db = rt.db

    async def close(self):
        pass


async def test_two_ota_bookings_for_the_last_room_settled_by_an_upgrade(run, tmp_path):
    r = run
    await r.settled()
    nights = [r.today() + timedelta(days=15)]
    await r.ledger.set_ari(AriChange("SHA-BUND", "DK", nights[0], nights[0], rate_plan="BAR-DK", rooms=1,
                                     price_minor=88800, stop_sell=False), actor="test")
    await r.ledger.set_ari(AriChange("SHA-BUND", "ES", nights[0], nights[0], rate_plan="BAR-ES", rooms=4,
                                     price_minor=188800, stop_sell=False), actor="test")
    r.d.wake_all()
    await r.converge(nights)
    oids = []
    for i, chan in enumerate(("ctrip", "booking")):  # both sold it before hearing of the other (force)
        room, rate = r.codes(chan, "DK", "BAR-DK")
        got = await r.book(chan, hotel=r.hotel(chan), room=room, rate=rate, checkin=nights[0].isoformat(),
                           checkout=(nights[0] + timedelta(days=1)).isoformat(), rooms=1, amount_minor=88800,
                           currency="CNY", guest={"name": f"客人{i}", "phone": f"1391234567{i}"}, force=True)
        oids.append((chan, got["ota_booking_id"]))

    async def all_in():
        return all([await r.ledger.booking(ch, o) is not None for ch, o in oids])

    await r.wait_for(all_in, timeout=30, what="the two bookings")

    async def conflict(conn):
        return (await conn.execute(select(m.conflicts).where(m.conflicts.c.kind == "overbooking",
                                                             m.conflicts.c.status == "open"))).first()

    await r.d.desk_scan()
    c = await r.ledger.db.read(conflict)
    assert c is not None
    ways = c.detail["ways_out"]
    assert {"from": "DK", "to": "ES", "free_after": 3, "possible": True} in ways["upgrades"]
    assert [p["name"] for p in ways["partners"]][:1] == ["外滩悦榕酒店 Bund Garden Hotel"]
    config = _config_file(r, tmp_path)
    await make_user(r.d, "desk-op", "operator")
    p = await cli(config, "conflicts", "resolve", str(c.id), "--relocate", "Nowhere Inn", "--as", "desk-op")
    assert p.returncode == 1 and "Bund Garden Hotel" in p.stderr, p.stderr
    p = await cli(config, "conflicts", "resolve", str(c.id), "--upgrade-to", "ST", "--as", "desk-op")
    assert p.returncode == 1 and "not on the upgrade ladder" in p.stderr, p.stderr
    p = await cli(config, "conflicts", "resolve", str(c.id), "--upgrade-to", "ES", "--as", "desk-op")
    assert p.returncode == 0, p.stderr
    out = await r.d.desk.overbooking._conflict_out(c.id)
    assert out["status"] == "resolved" and out["resolved_by"] == "user:desk-op" and "ES" in out["resolution"]
    p = await cli(config, "conflicts", "resolve", str(c.id), "--cancel", "--as", "desk-op")
    assert p.returncode == 1 and "already resolved" in p.stderr
    show = await r.ledger.show("SHA-BUND", nights[0], nights[0])
    rooms = {x["room_type"]: x for x in show["rooms"]}
    assert rooms["DK"]["sold"] == 1 and rooms["DK"]["free"] == 0 and rooms["ES"]["sold"] == 1
    r.d.wake_all()
    await r.converge(nights)  # every channel holds the new counts of both room types
    es = await _rooms_everywhere(r, "ES", nights[0], "BAR-ES")
    assert es["ctrip"] == 3 and es["meituan"] == 2, es
    rows = await r.ledger.journal("SHA-BUND", limit=50)
    up = [j for j in rows if (j["reason"] or "").endswith(" upgrade")]
    assert {j["key"]["room_type"] for j in up} == {"DK", "ES"} and len({j["correlation_id"] for j in up}) == 1
    assert any(j["action"] == "upgrade" and j["entity"] == "booking" for j in rows)


async def test_unacknowledged_booking_com_reservation_raises_the_deadline_before_30_minutes(run, tmp_path):
    r = run
    await r.settled(channels=("booking",))
    await r.faults("booking", ack_error_rate=1.0, status=500)  # Booking.com's acknowledgement endpoint failing
    night = r.today() + timedelta(days=9)
    room, rate = r.codes("booking", "SK", "BAR-SK")
    oid = (await r.book("booking", hotel=r.hotel("booking"), room=room, rate=rate, checkin=night.isoformat(),
                        checkout=(night + timedelta(days=1)).isoformat(), rooms=1, amount_minor=88800,
                        currency="CNY", guest={"name": "Anna Berg", "phone": "+44 20 7946 0958"}))["ota_booking_id"]

    async def arrived():
        return await r.ledger.booking("booking", oid) is not None

    await r.wait_for(arrived, timeout=30, what="the booking.com booking")
    from channelmgr.ops import status

    st = await status(r.ledger.db, list(r.d.channels))
    u = st["unacknowledged"]["booking"]
    assert u["oldest"]["ota_booking_id"] == oid and 25 * 60 < u["oldest"]["seconds_left"] <= 30 * 60
    async with r.http.get(r.d.base_url + "/api/v1/status", headers=await bearer(r.d, "viewer")) as resp:
        api = await resp.json()
        assert resp.status == 200, api
    assert api["unacknowledged"]["booking"]["oldest"]["ota_booking_id"] == oid
    p = await cli(_config_file(r, tmp_path), "status")
    assert p.returncode == 0 and f"the oldest, {oid}" in p.stdout and "before booking's fallback" in p.stdout, p.stdout

    async def deadline_conflicts(conn):
        return (await conn.execute(select(m.conflicts).where(m.conflicts.c.kind == "ack_deadline"))).all()

    await r.d.desk.check_acks()
    assert await r.ledger.db.read(deadline_conflicts) == []
    received = __import__("datetime").datetime.fromisoformat(u["oldest"]["received_at"])
    with time_machine.travel(received + timedelta(minutes=21), tick=True):
        await r.d.desk.check_acks()  # (the daemon's own scan may raise it first, on the moved clock too)
        rows = await r.ledger.db.read(deadline_conflicts)
    r.clock_back()  # the pulls were planned on the moved clock
    assert len(rows) == 1 and rows[0].status == "open" and oid in rows[0].summary and "e-mail" in rows[0].summary
    assert r.d.channels["booking"].sandbox.booking_state(oid)["state"] != "acknowledged"
    # the ack works again: the booking is re-delivered, answered as a duplicate, acknowledged; the system closes it
    await r.faults("booking", ack_error_rate=0.0)

    async def closed():
        await r.d.desk.check_acks()
        got = await r.ledger.db.read(deadline_conflicts)
        return got[0].status == "resolved" and got[0].resolved_by == "system"

    await r.wait_for(closed, timeout=30, what="the deadline conflict to close once acknowledged")
    assert r.d.channels["booking"].sandbox.booking_state(oid)["state"] == "acknowledged"


async def test_suspicious_flags_fire_on_crafted_cases_and_the_bookings_still_apply(run):
    r = run
    night = r.today() + timedelta(days=20)
    await r.ledger.set_ari(AriChange("SHA-BUND", "SK", night, night + timedelta(days=1), rate_plan="BAR-SK",
                                     rooms=40, price_minor=68800, stop_sell=False), actor="test")
    r.d.wake_all()
    await r.converge([night], channels=("ctrip", "fliggy"))
    made = []
    for i, ch in enumerate(("ctrip", "fliggy", "ctrip")):  # one phone, 6 rooms within the hour, two channels
        room, rate = r.codes(ch, "SK", "BAR-SK")
        made.append((ch, (await r.book(ch, hotel=r.hotel(ch), room=room, rate=rate, checkin=night.isoformat(),
                                       checkout=(night + timedelta(days=1)).isoformat(), rooms=2,
                                       amount_minor=137600, currency="CNY",
                                       guest={"name": "刘强", "phone": "+86 135 0000 1234"}))["ota_booking_id"]))

        async def landed(ch=ch, o=made[-1][1]):  # one after the other (sandboxes deliver bookings at once)
            return await r.ledger.booking(ch, o) is not None

        await r.wait_for(landed, timeout=30, what="the booking")
    room, rate = r.codes("ctrip", "SK", "BAR-SK")
    made.append(("ctrip", (await r.book("ctrip", hotel=r.hotel("ctrip"), room=room, rate=rate,
                                        checkin=night.isoformat(), checkout=(night + timedelta(days=1)).isoformat(),
                                        rooms=1, amount_minor=68800, currency="CNY",
                                        guest={"name": "钱七", "phone": "12345"}))["ota_booking_id"]))

    async def all_in():
        return all([await r.ledger.booking(ch, o) is not None for ch, o in made])

    await r.wait_for(all_in, timeout=30, what="the bookings")
    await r.d.desk_scan()

    async def flags(conn):
        return (await conn.execute(select(m.conflicts.c.detail, m.bookings.c.ota_booking_id, m.bookings.c.status)
                                   .join(m.bookings, m.bookings.c.id == m.conflicts.c.booking_id)
                                   .where(m.conflicts.c.kind == "suspicious"))).all()

    got = await r.ledger.db.read(flags)
    by = {(x.ota_booking_id, x.detail["flag"]) for x in got}
    # the third of the phone's bookings to arrive (fliggy is pulled, ctrip pushes) takes it past 4 rooms
    arrival = []
    for ch, o in made[:3]:
        arrival.append(((await r.ledger.booking(ch, o))["id"], o))
    arrival.sort()
    assert {o for o, f in by if f == "rooms_per_phone"} == {arrival[-1][1]}, by
    assert (made[3][1], "impossible_phone") in by
    assert not any(f == "impossible_phone" for o, f in by if o != made[3][1])
    assert all(x.status == "confirmed" for x in got)  # never refused
