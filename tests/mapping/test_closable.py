"""Issue 10, money and stays: every room mapped on a channel can be closed there. A channel
that holds rooms to sell per rate plan (Fliggy) can only close a room through one of its
rate plans, so a room mapped there with none is refused by `check` and by the hot reload."""

from __future__ import annotations

from datetime import date

from channelmgr.mapping.derive import Snapshot, derive
from channelmgr.mapping.loader import check_texts, registry_capabilities
from tests.mapping.conftest import edit, line_of, shipped_text
from tests.mapping.test_reload import pending, reloader, rt, save  # noqa: F401  (rt: fixture)

NAME = "mappings/sha-bund.yaml"


def check(text: str):
    return check_texts({NAME: text})


FLIGGY_ES_RATE = '      BAR-ES: "BAR_ES"'


def test_a_room_on_fliggy_with_no_rate_plan_mapped_is_refused_where_it_is_mapped():
    text = edit(shipped_text(), FLIGGY_ES_RATE, "")
    msgs = [str(p) for p in check(text).problems]
    fliggy_es = line_of(text, 'ES: "ES"')
    assert msgs == [f"{NAME}:{fliggy_es}:7: room type 'ES' is mapped on fliggy but none of its rate plans is: "
                    "fliggy holds rooms to sell on each rate plan, so ES could never be closed there and would go "
                    "on selling after the last room is sold; map one of its rate plans (BAR-ES) under "
                    "channels.fliggy.rates, or remove ES from channels.fliggy.rooms"]
    # dropping the room from Fliggy is the other way out
    assert check(edit(text, '      ES: "ES"\n', "")).ok


def test_a_room_level_channel_needs_no_rate_plan_to_close_a_room():
    # meituan holds rooms per room type: a room with no rate plan mapped is still closable
    text = edit(shipped_text(), '      BAR-ES: "880104"\n', "")
    assert check(text).ok, [str(p) for p in check(text).problems]
    assert registry_capabilities("meituan").inventory_level == "room"
    assert registry_capabilities("fliggy").inventory_level == "rate"


def test_the_shipped_file_closes_the_suite_on_fliggy():
    pm = next(iter(check(shipped_text()).properties.values()))
    night = date(2027, 3, 1)
    snap = Snapshot("SHA-BUND", {("ES", night): 0}, {})
    cells = derive(pm, "fliggy", snap, [("rooms", "ES", None, night)], today=night,
                   supported=registry_capabilities("fliggy").restrictions, inventory_level="rate")
    assert [(c.room, c.rate, c.rooms_to_sell) for c in cells] == [("ES", "BAR_ES", 0)]


async def test_hot_reload_refuses_a_room_fliggy_could_never_close(rt, ledger, mappings_dir):  # noqa: F811
    good = rt.mappings
    text = edit(shipped_text(), FLIGGY_ES_RATE, "")
    save(mappings_dir / "sha-bund.yaml", text)
    result = await reloader(rt).reload("file change")
    assert not result.ok and rt.mappings is good
    (p,) = result.problems
    assert (p.line, p.col) == (line_of(text, 'ES: "ES"'), 7) and "could never be closed there" in p.message
    assert await pending(ledger) == set()
