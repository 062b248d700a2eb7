"""Hot reload against a real ledger: a valid edit swaps in and queues exactly its cells; a
broken one is refused, logged, and the last good version stays; editors' saves are seen."""

from __future__ import annotations

import asyncio
import os
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from structlog.testing import capture_logs

from channelmgr.config import Config
from channelmgr.ledger import models as m
from channelmgr.ledger.types import AriChange
from channelmgr.mapping.reload import MappingReloader
from channelmgr.runtime import Runtime
from tests.mapping.conftest import edit, shipped_text

START = date(2027, 3, 1)
DAYS = 30
END = START + timedelta(days=DAYS - 1)


def config(mappings_dir: Path) -> Config:
    """The four channels run, as with the shipped config.yaml (a channel that is not
    configured does not run, and nothing is queued for it)."""
    return Config(mappings_dir=str(mappings_dir), channels={n: {} for n in ("booking", "ctrip", "fliggy", "meituan")})


@pytest.fixture
async def rt(db, cipher, ledger, mappings_dir: Path):
    runtime = Runtime(config(mappings_dir), db, cipher, ledger)
    assert await runtime.load_and_sync_mappings() is not None, runtime.mapping_errors
    for plan, room, price in (("BAR-SK", "SK", 69800), ("BAR-ST", "ST", 75800), ("BAR-DK", "DK", 99900),
                              ("BAR-ES", "ES", 188800)):
        await ledger.set_ari(AriChange("SHA-BUND", room, START, END, rate_plan=plan, price_minor=price),
                             actor="test")
    await drain(db)
    return runtime


async def drain(db) -> None:
    """As if the push worker had sent everything queued so far."""
    async def tx(conn):
        await conn.execute(update(m.outbox).values(status="done"))

    await db.write(tx)


def reloader(rt, **kw) -> MappingReloader:
    return MappingReloader(rt, today_for=lambda tz: START, diff_days=DAYS, **kw)


async def pending(ledger) -> set[tuple]:
    """Pending pushes as (channel, kind, room type code, rate plan code, night)."""
    from sqlalchemy import select

    async def q(conn):
        rts = {r.id: r.code for r in (await conn.execute(select(m.room_types))).all()}
        rps = {r.id: r.code for r in (await conn.execute(select(m.rate_plans))).all()}
        return rts, rps

    rts, rps = await ledger.db.read(q)
    return {(r["channel"], r["kind"], rts.get(r["room_type_id"]), rps.get(r["rate_plan_id"]), r["night"])
            for r in await ledger.outbox_pending()}


def save(path: Path, text: str) -> None:
    """An editor's atomic save: a temporary file in the same folder, renamed over the old one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


async def test_a_valid_edit_swaps_in_and_queues_exactly_its_cells(rt, ledger, mappings_dir):
    before = rt.mappings
    changes: list = []
    r = reloader(rt, on_change=changes.append)
    save(mappings_dir / "sha-bund.yaml", edit(shipped_text(), "      - percent: -15", "      - percent: -20"))
    result = await r.reload("SIGHUP")
    assert result.ok and result.changed, result
    assert rt.mappings is not before and rt.mappings.fingerprint == result.fingerprint
    assert changes == [rt.mappings]
    assert rt.mappings.get("SHA-BUND").rate_plans["EB-DK"].steps[0].percent == -20
    nights = [START + timedelta(days=i) for i in range(DAYS)]
    assert await pending(ledger) == {(ch, "rate", "DK", "EB-DK", n) for ch in ("booking", "ctrip", "fliggy")
                                     for n in nights}
    assert result.cells_enqueued == 3 * DAYS and result.full_push == ()
    assert result.enqueued == {("SHA-BUND", "booking"): DAYS, ("SHA-BUND", "ctrip"): DAYS,
                               ("SHA-BUND", "fliggy"): DAYS}
    journal = [j for j in await ledger.journal("SHA-BUND", 10) if j["entity"] == "push"]
    assert len(journal) == 3 and {j["key"]["channel"] for j in journal} == {"booking", "ctrip", "fliggy"}
    assert all(j["reason"] == "mapping edit (SIGHUP)" and j["after"]["cells"] == DAYS for j in journal)
    in_force = await ledger.mapping_in_force()
    assert in_force["fingerprint"] == result.fingerprint
    assert "percent: -20" in in_force["files"]["sha-bund.yaml"]
    # the same folder again: nothing to do
    again = await r.reload("SIGHUP")
    assert again.ok and not again.changed and await pending(ledger) == {
        (ch, "rate", "DK", "EB-DK", n) for ch in ("booking", "ctrip", "fliggy") for n in nights}


async def test_a_broken_edit_is_refused_logged_and_the_last_good_stays(rt, ledger, mappings_dir):
    good = rt.mappings
    in_force = await ledger.mapping_in_force()
    text = edit(shipped_text(), "physical_rooms: 30", "phisical_rooms: 30")
    text = edit(text, 'EB-DK: "51005"', 'EB-DK: "51004"')
    save(mappings_dir / "sha-bund.yaml", text)
    with capture_logs() as logs:
        result = await reloader(rt).reload("file change")
    assert not result.ok and not result.changed
    assert len(result.problems) == 2
    assert rt.mappings is good
    errors = [e for e in logs if e["log_level"] == "error"]
    logged = [e["problem"] for e in errors if "problem" in e]
    assert logged == [str(p) for p in result.problems]
    assert any("did you mean 'physical_rooms'" in p for p in logged)
    assert any("both mapped to ctrip rate '51004'" in p for p in logged)
    assert all(e["event"].startswith("mapping") for e in errors)
    assert await pending(ledger) == set()
    assert (await ledger.mapping_in_force())["fingerprint"] == in_force["fingerprint"]


async def test_a_catalog_change_is_left_to_the_ledgers_full_push(rt, ledger, mappings_dir):
    save(mappings_dir / "sha-bund.yaml", edit(shipped_text(), "physical_rooms: 8", "physical_rooms: 9"))
    result = await reloader(rt).reload("SIGHUP")
    assert result.ok and result.full_push == ("SHA-BUND",) and result.cells_enqueued == 0
    rows = await ledger.outbox_pending()
    assert sorted(r["channel"] for r in rows) == ["booking", "ctrip", "fliggy", "meituan"]
    assert {r["kind"] for r in rows} == {"full"}


async def test_watch_sees_an_atomic_save_and_a_burst_of_writes(rt, ledger, mappings_dir):
    r = reloader(rt, settle_seconds=0.2)
    task = asyncio.create_task(r.watch(interval=0.05))
    f = mappings_dir / "sha-bund.yaml"
    try:
        first = rt.mappings.fingerprint
        save(f, edit(shipped_text(), "      cap: 20 ", "      cap: 10 "))
        await until(lambda: r.last is not None and r.last.changed and r.last.fingerprint != first)
        assert rt.mappings.get("SHA-BUND").channel("ctrip").availability.cap == 10
        assert {(c, k) for c, k, *_ in await pending(ledger)} == {("ctrip", "rooms")}
        # a broken save is refused once; the watch goes on
        second = rt.mappings.fingerprint
        with capture_logs() as logs:
            save(f, edit(shipped_text(), "physical_rooms: 30", "phisical_rooms: 30"))
            await until(lambda: r.last is not None and not r.last.ok)
            await asyncio.sleep(0.5)
        assert rt.mappings.fingerprint == second
        refusals = [e for e in logs if e["event"] == "mapping edit refused"]
        assert len(refusals) == 1
        # a file written in two pieces, the first of which is not valid on its own: only the
        # whole file is read
        text = edit(shipped_text(), "      offset: 1 ", "      offset: 2 ")
        with capture_logs() as logs:
            with open(f, "w", encoding="utf-8") as out:
                out.write(text[: len(text) // 2])
                out.flush()
                await asyncio.sleep(0.05)
                out.write(text[len(text) // 2:])
            await until(lambda: r.last.changed and r.last.fingerprint != second)
        assert [e for e in logs if e["log_level"] == "error"] == []
        assert rt.mappings.get("SHA-BUND").channel("meituan").availability.offset == 2
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_watch_leaves_an_unchanged_folder_alone_and_still_sees_an_edit(rt, ledger, mappings_dir):
    """Idle cost (issue 13): told by the kernel when the folder changes, the watcher does not
    scan an unchanged folder at every poll interval (at 10,000 files each scan is a stat per
    file); an edit wakes it at once."""
    r = reloader(rt, settle_seconds=0.05)
    task = asyncio.create_task(r.watch(interval=0.02, full_scan_seconds=3600))
    try:
        await until(lambda: r.scans >= 1)
        await asyncio.sleep(1.0)  # fifty poll intervals with nothing changing
        assert r.scans <= 2
        first = rt.mappings.fingerprint
        save(mappings_dir / "sha-bund.yaml", edit(shipped_text(), "      cap: 20 ", "      cap: 10 "))
        await until(lambda: r.last is not None and r.last.changed and r.last.fingerprint != first)
        assert rt.mappings.get("SHA-BUND").channel("ctrip").availability.cap == 10
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def until(condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_an_edit_made_while_nothing_ran_is_queued_at_the_next_start(rt, db, cipher, ledger, mappings_dir):
    """The daemon was stopped, revenue staff saved an edit, the daemon (or any CLI command)
    starts: the edit is compared with the version the ledger had in force and its cells are
    queued, not left for the nightly full sync."""
    save(mappings_dir / "sha-bund.yaml", edit(shipped_text(), "      - percent: -15", "      - percent: -20"))
    restarted = Runtime(config(mappings_dir), db, cipher, ledger)
    assert await restarted.load_and_sync_mappings() is not None, restarted.mapping_errors
    assert restarted.mappings.get("SHA-BUND").rate_plans["EB-DK"].steps[0].percent == -20
    queued = await pending(ledger)
    nights = {START + timedelta(days=i) for i in range(DAYS)}
    for ch in ("booking", "ctrip", "fliggy"):
        assert {n for (c, kind, room, plan, n) in queued if (c, kind, room, plan) == (ch, "rate", "DK", "EB-DK")} >= nights
    assert {c for (c, *_rest) in queued} == {"booking", "ctrip", "fliggy"}  # meituan does not sell EB-DK
    assert (await ledger.mapping_in_force())["fingerprint"] == restarted.mappings.fingerprint
