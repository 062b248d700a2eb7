"""`diff` of an edited copy of the shipped example shows exactly the edit's effect.

The ledger is real (SQLite and PostgreSQL); both sides of the diff are made by derive(),
the push worker's own function, over the same snapshot.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest

from channelmgr.ledger.types import AriChange
from channelmgr.mapping.diff import diff_mappings, format_diff, ledger_snapshots
from channelmgr.mapping.loader import load_texts, registry_capabilities
from tests.mapping.conftest import edit, shipped_text

START = date(2027, 3, 1)
DAYS = 30
END = START + timedelta(days=DAYS - 1)
BASE_PRICES = {"BAR-SK": ("SK", 69800), "BAR-ST": ("ST", 75800), "BAR-DK": ("DK", 99900), "BAR-ES": ("ES", 188800)}


def load(text: str, caps=registry_capabilities):
    return load_texts({"sha-bund.yaml": text}, caps)


@pytest.fixture
async def seeded(ledger):
    """The shipped catalog in the ledger, prices for every parent plan over the window."""
    ms = load(shipped_text())
    await ledger.sync_catalog(ms.specs())
    for plan, (room, price) in BASE_PRICES.items():
        await ledger.set_ari(AriChange("SHA-BUND", room, START, END, rate_plan=plan, price_minor=price),
                             actor="test")
    return ms


async def run_diff(ledger, old, new, caps=registry_capabilities, days=DAYS):
    return await diff_mappings(old, new, ledger_snapshots(ledger), lambda tz: START, days, caps)


def changed(diff, channel):
    cd = diff.channel("SHA-BUND", channel)
    return [] if cd is None else cd.changes


async def test_an_unchanged_copy_changes_nothing(ledger, seeded):
    diff = await run_diff(ledger, seeded, load(shipped_text()))
    assert diff.cells_changed() == 0
    assert "no channel would change over the next 30 nights" in format_diff(diff)


async def test_early_bird_deeper_discount_changes_only_its_prices(ledger, seeded):
    new = load(edit(shipped_text(), "      - percent: -15", "      - percent: -20"))
    diff = await run_diff(ledger, seeded, new)
    # EB-DK is sold on booking, ctrip and fliggy, not on meituan
    for channel in ("booking", "ctrip", "fliggy"):
        cells = changed(diff, channel)
        assert len(cells) == DAYS, channel
        assert {(c.cell.room_type, c.cell.rate_plan) for c in cells} == {("DK", "EB-DK")}
        assert sorted(c.cell.night for c in cells) == [START + timedelta(days=i) for i in range(DAYS)]
        assert all(c.status == "changed" and all(f.field.startswith("price") for f in c.fields) for c in cells)
    assert changed(diff, "meituan") == []
    # 999.00 -15% = 849.15 -> ends in .00: 849.00; booking adds 3% and rounds to 1 yuan: 874.00
    # 999.00 -20% = 799.20 -> 799.00; booking: 822.97 -> 823.00
    b = changed(diff, "booking")[0]
    assert {(f.field, f.old, f.new) for f in b.fields} == {("price(1)", 87400, 82300), ("price(2)", 87400, 82300)}
    c = changed(diff, "ctrip")[0]
    assert [(f.field, f.old, f.new) for f in c.fields] == [("price", 84900, 79900)]
    text = format_diff(diff)
    assert f"booking 284673103 (DK) 11890025 (EB-DK) {START} price(2) 874.00 -> 823.00 CNY" in text
    assert f"ctrip 1098203 (DK) 51005 (EB-DK) {START} price 849.00 -> 799.00 CNY" in text
    assert "booking (hotel 2846731): 30 cells change" in text
    assert "meituan (hotel 158937): no change" in text
    assert "90 cells would change on 3 channels; nothing has been pushed." in text


async def test_a_lower_ctrip_cap_changes_only_ctrip_rooms_above_it(ledger, seeded):
    await ledger.set_ari(AriChange("SHA-BUND", "SK", START, START, rooms=12), actor="test")
    new = load(edit(shipped_text(), "      cap: 20 ", "      cap: 10 "))
    diff = await run_diff(ledger, seeded, new)
    assert changed(diff, "booking") == changed(diff, "fliggy") == changed(diff, "meituan") == []
    cells = changed(diff, "ctrip")
    # SK 60, ST 50, DK 30 rooms: 20 -> 10 every night (SK on the first night: 12 free -> 10);
    # ES has 8 rooms, under both caps: unchanged
    assert {c.cell.room_type for c in cells} == {"SK", "ST", "DK"}
    assert len(cells) == 3 * DAYS
    assert all(c.cell.rate_plan is None and [(f.field, f.old, f.new) for f in c.fields] == [("rooms_to_sell", 20, 10)]
               for c in cells if not (c.cell.room_type == "SK" and c.cell.night == START))
    first = next(c for c in cells if c.cell.room_type == "SK" and c.cell.night == START)
    assert [(f.field, f.old, f.new) for f in first.fields] == [("rooms_to_sell", 12, 10)]
    assert f"ctrip 1098201 (SK) - {START} rooms_to_sell 12 -> 10" in format_diff(diff, samples=50)


async def test_a_booking_markup_changes_every_booking_price_and_nothing_else(ledger, seeded):
    new = load(edit(shipped_text(), "markup_percent: 3 ", "markup_percent: 5 "))
    diff = await run_diff(ledger, seeded, new)
    cells = changed(diff, "booking")
    assert len(cells) == 6 * DAYS  # six plans, every night
    assert {c.cell.rate_plan for c in cells} == {"BAR-SK", "LS-SK", "BAR-ST", "BAR-DK", "EB-DK", "BAR-ES"}
    assert changed(diff, "ctrip") == changed(diff, "fliggy") == changed(diff, "meituan") == []
    bar_dk = next(c for c in cells if c.cell.rate_plan == "BAR-DK")
    # 999.00 * 1.03 = 1028.97 -> 1029.00; * 1.05 = 1048.95 -> 1049.00
    assert {(f.old, f.new) for f in bar_dk.fields} == {(102900, 104900)}


async def test_unmapping_a_rate_shows_cells_no_longer_sent_and_pushes_none_of_them(ledger, seeded):
    new = load(edit(shipped_text(), '      LS-SK: "880102"\n', ""))
    diff = await run_diff(ledger, seeded, new)
    cd = diff.channel("SHA-BUND", "meituan")
    assert len(cd.changes) == DAYS and all(c.status == "gone" for c in cd.changes)
    assert cd.push_keys() == []
    text = format_diff(diff)
    assert "(no longer sent)" in text and "close them in its extranet" in text


async def test_min_los_emulation_is_said_in_the_diff(ledger, seeded):
    def meituan_without_min_los(name):
        caps = registry_capabilities(name)
        if name == "meituan":
            return dataclasses.replace(caps, restrictions=caps.restrictions - {"min_los"} | {"stop_sell"})
        return caps

    # the long-stay plan's minimum stay goes from 3 to 4 nights
    new = load(edit(shipped_text(), "    min_los: 3", "    min_los: 4"), meituan_without_min_los)
    old = load(shipped_text(), meituan_without_min_los)
    diff = await run_diff(ledger, old, new, meituan_without_min_los)
    cd = diff.channel("SHA-BUND", "meituan")
    # meituan cannot hold min_los: LS-SK is closed either way, so nothing is pushed there
    assert cd.changes == []
    b = changed(diff, "booking")
    assert len(b) == DAYS and all([(f.field, f.old, f.new) for f in c.fields] == [("min_los", 3, 4)] for c in b)
    # reopening the plan for one-night stays changes meituan, and the note is gone with it
    new = load(edit(shipped_text(), "    min_los: 3\n", ""), meituan_without_min_los)
    diff = await run_diff(ledger, old, new, meituan_without_min_los)
    cd = diff.channel("SHA-BUND", "meituan")
    assert len(cd.changes) == DAYS
    assert all([(f.field, f.old, f.new) for f in c.fields] == [("stop_sell", True, None)] for c in cd.changes)
    # and the other way round, the diff says why meituan closes
    diff = await run_diff(ledger, new, old, meituan_without_min_los)
    text = format_diff(diff)
    assert "note (30 cells): min_los 3 emulated by stop-sell (meituan has no minimum stay)" in text


async def test_more_physical_rooms_show_as_more_rooms_to_sell(ledger, seeded):
    new = load(edit(shipped_text(), "    physical_rooms: 8", "    physical_rooms: 10"))
    diff = await run_diff(ledger, seeded, new, days=3)
    pd = diff.properties[0]
    assert pd.catalog == ["room type ES: physical rooms 8 -> 10"]
    booking = changed(diff, "booking")
    assert [(f.field, f.old, f.new) for c in booking for f in c.fields] == [("rooms_to_sell", 8, 10)] * 3
    meituan = changed(diff, "meituan")  # offset 1
    assert [(f.field, f.old, f.new) for c in meituan for f in c.fields] == [("rooms_to_sell", 7, 9)] * 3
