"""`mappings check`: the shipped example passes; broken copies of it say where and what.

These run against the installed adapters' declared capabilities, as the daemon does.
"""

from __future__ import annotations

import dataclasses

import pytest

from channelmgr.mapping.loader import (
    check_paths,
    check_texts,
    registry_capabilities,
    summary,
)
from tests.mapping.conftest import SHIPPED, edit, line_of, shipped_text

NAME = "mappings/sha-bund.yaml"


def problems_of(text: str, capabilities_for=None) -> list[str]:
    return [str(p) for p in check_texts({NAME: text}, capabilities_for).problems]


def test_the_shipped_example_passes_with_a_one_line_summary():
    result = check_paths(SHIPPED)
    assert result.ok, [str(p) for p in result.problems]
    (path, pm), = result.properties.items()
    line = summary(path, pm)
    assert "\n" not in line
    assert "SHA-BUND" in line and "4 room types" in line and "6 rate plans (2 derived)" in line
    assert "4 channels (booking, ctrip, fliggy, meituan)" in line
    assert set(pm.room_types) == {"SK", "ST", "DK", "ES"}
    assert set(pm.rate_plans) == {"BAR-SK", "LS-SK", "BAR-ST", "BAR-DK", "EB-DK", "BAR-ES"}


def test_a_typo_in_a_key_is_one_problem_with_a_suggestion():
    text = edit(shipped_text(), "physical_rooms: 30", "phisical_rooms: 30")
    line = line_of(text, "phisical_rooms")
    assert problems_of(text) == [
        f"{NAME}:{line}:5: 'phisical_rooms' is not a key that belongs here; did you mean 'physical_rooms'?"]


def test_a_line_indented_too_little_names_both_lines():
    text = edit(shipped_text(), "    physical_rooms: 30", "   physical_rooms: 30")
    line = line_of(text, "   physical_rooms: 30")
    (p,) = problems_of(text)
    assert p.startswith(f"{NAME}:{line}:4: the indentation is wrong here: this line starts at column 4 "
                        f"and line {line - 1} above at column 5")


def test_a_line_indented_too_far_is_explained_not_blamed_on_a_colon():
    text = edit(shipped_text(), "    physical_rooms: 30", "      physical_rooms: 30")
    line = line_of(text, "      physical_rooms: 30")
    (p,) = problems_of(text)
    assert p.startswith(f"{NAME}:{line}:7: the indentation is wrong here")
    assert f"line it up with line {line - 1}" in p


def test_a_tab_is_named():
    text = edit(shipped_text(), "    physical_rooms: 30", "\tphysical_rooms: 30")
    (p,) = problems_of(text)
    assert "a tab is used for indentation here; YAML needs spaces" in p


def test_an_unknown_room_code_in_a_channel_map():
    text = edit(shipped_text(), '      ES: "284673104"\n', '      ES: "284673104"\n      DX: "284673105"\n')
    line = line_of(text, 'DX: "284673105"')
    assert problems_of(text) == [
        f"{NAME}:{line}:7: the booking mapping names room type 'DX', which this hotel does not have "
        "(room types: SK, ST, DK, ES)"]


def test_a_derived_plan_that_comes_back_to_itself():
    text = edit(shipped_text(), "    derived_from: BAR-SK", "    derived_from: LS-SK")
    line = line_of(text, "derived_from: LS-SK")
    assert problems_of(text) == [
        f"{NAME}:{line}:19: rate plan 'LS-SK' is derived in a circle (LS-SK -> LS-SK): "
        "a price cannot come from itself"]


def test_a_cycle_of_two_plans_is_reported_at_both():
    text = edit(shipped_text(), "    room_type: DK\n    occupancy: 2\n  - code: EB-DK",
                "    room_type: DK\n    occupancy: 2\n    derived_from: EB-DK\n  - code: EB-DK")
    first = line_of(text, "derived_from: EB-DK")
    second = line_of(text, "derived_from: BAR-DK")
    assert problems_of(text) == [
        f"{NAME}:{first}:19: rate plan 'BAR-DK' is derived in a circle (BAR-DK -> EB-DK -> BAR-DK): "
        "a price cannot come from itself",
        f"{NAME}:{second}:19: rate plan 'EB-DK' is derived in a circle (EB-DK -> BAR-DK -> EB-DK): "
        "a price cannot come from itself"]


def test_two_plans_mapped_to_one_ota_code():
    text = edit(shipped_text(), 'EB-DK: "51005"', 'EB-DK: "51004"')
    line = line_of(text, 'EB-DK: "51004"')
    col = text.splitlines()[line - 1].index('"51004"') + 1
    assert problems_of(text) == [
        f"{NAME}:{line}:{col}: rate plans 'BAR-DK' and 'EB-DK' are both mapped to ctrip rate '51004'; "
        "each OTA rate code can stand for one rate plan only"]


def fliggy_takes_cny_only(name: str):
    caps = registry_capabilities(name)
    return dataclasses.replace(caps, currencies=frozenset({"CNY"})) if name == "fliggy" else caps


def test_a_currency_the_channel_cannot_take():
    text = edit(shipped_text(), '    price:\n      ending: ".00"',
                '    price:\n      currency: USD\n      rate: "0.1385"\n      ending: ".00"')
    line = line_of(text, "currency: USD")
    assert problems_of(text, fliggy_takes_cny_only) == [
        f"{NAME}:{line}:17: fliggy takes prices in CNY only, not USD; set price.currency and price.rate to convert"]


def test_a_conversion_needs_its_rate():
    text = edit(shipped_text(), "      markup_percent: 3", "      currency: USD\n      markup_percent: 3")
    line = line_of(text, "currency: USD") - 1
    (p,) = problems_of(text)
    assert p == (f"{NAME}:{line}:5: booking prices are in USD but the hotel's are in CNY: give the conversion "
                 "'rate' (1 CNY = rate USD)")


@pytest.mark.parametrize("old, new, needle, words", [
    ("  meituan:", "  meitaun:", "meitaun:", "'meitaun' is not a channel this installation knows; did you mean 'meituan'?"),
    ('      - ending: ".00"', '      - ending: ".9"', '".9"', "an ending for CNY has 2 decimals, like .99 or .00, not .9"),
    ("      - round: 1", "      - amount: -0.005", "-0.005", "'amount' -0.005 has more decimals than CNY has (2)"),
    ("      cap: 20 ", "      cap: 20\n      offset: 20 ", "offset: 20",
     "a cap of 20 minus an offset of 20 leaves ctrip nothing to sell on any night; "
     "to stop selling on ctrip on purpose, write 'closed: true'"),
    ("    occupancy: 2\n    meal_plan: room_only\n", "    occupancy: 2\n    meal_plan: room_only\n    inherit:\n"
     "      cta: false\n", "inherit:", "rate plan 'BAR-SK' is not derived from another plan, so it has nothing to inherit"),
    ("      - percent: -15", "      - percent: -15\n        round: 1", "percent: -15",
     "each step is exactly one of 'percent: -15', 'amount: -20', 'round: 1' or 'ending: .99' "
     "(this one has percent, round)"),
    ("    occupancy: 3", "    occupancy: three", "three", "'occupancy' must be a whole number, not 'three'"),
    ("    derived_from: BAR-DK", "    derived_from: BAR-KD", "BAR-KD",
     "rate plan 'EB-DK' is derived from 'BAR-KD', which is not a rate plan of this hotel; did you mean 'BAR-DK'?"),
])
def test_other_mistakes_each_say_where_and_what(old, new, needle, words):
    text = edit(shipped_text(), old, new)
    (p,) = problems_of(text)
    assert p.startswith(f"{NAME}:{line_of(text, needle)}:"), p
    assert words in p


def test_unquoted_endings_and_amounts_mean_what_they_look_like():
    text = edit(shipped_text(), '      - ending: ".00"', "      - ending: .00")
    result = check_texts({NAME: text})
    assert result.ok
    pm = next(iter(result.properties.values()))
    assert pm.rate_plans["EB-DK"].steps[1].ending == ".00"


BROKEN_FOUR_WAYS = [
    ("physical_rooms: 30", "phisical_rooms: 30"),
    ('      ES: "284673104"\n', '      ES: "284673104"\n      DX: "284673105"\n'),
    ("    derived_from: BAR-SK", "    derived_from: LS-SK"),
    ('EB-DK: "51005"', 'EB-DK: "51004"'),
]


def test_check_reports_every_problem_of_a_file_not_only_the_first():
    text = shipped_text()
    for old, new in BROKEN_FOUR_WAYS:
        text = edit(text, old, new)
    problems = problems_of(text)
    assert len(problems) == 4, problems
    assert [int(p.split(":")[1]) for p in problems] == sorted([
        line_of(text, "phisical_rooms"), line_of(text, "DX:"), line_of(text, "derived_from: LS-SK"),
        line_of(text, 'EB-DK: "51004"')])


def test_two_files_for_one_property_or_one_ota_hotel(tmp_path):
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(shipped_text(), encoding="utf-8")
    b.write_text(shipped_text(), encoding="utf-8")
    problems = [str(p) for p in check_paths(tmp_path).problems]
    assert len(problems) == 1 and "property 'SHA-BUND' is also declared in" in problems[0]
    b.write_text(edit(shipped_text(), "code: SHA-BUND", "code: SHA-BUND-2"), encoding="utf-8")
    problems = [str(p) for p in check_paths(tmp_path).problems]
    assert problems and all("hotel id" in p and "is already used by property SHA-BUND" in p for p in problems)


def test_the_member_rate_of_the_docs_is_valid_and_priced_as_documented():
    from datetime import date

    from channelmgr.mapping.derive import RateNight, Snapshot, plan_price

    member = ("  - code: MBR-DK\n    name: 会员价 Member rate\n    room_type: DK\n    derived_from: BAR-DK\n"
              "    steps:\n      - percent: -8\n      - amount: -20\n      - ending: \".00\"\n"
              "    inherit:\n      cta: false\n")
    text = edit(shipped_text(), "  - code: BAR-ES\n", member + "  - code: BAR-ES\n")
    result = check_texts({NAME: text})
    assert result.ok, [str(p) for p in result.problems]
    pm = next(iter(result.properties.values()))
    night = date(2027, 3, 1)
    snap = Snapshot("SHA-BUND", {}, {("BAR-DK", night): RateNight(prices={2: 99900}, currency="CNY")})
    assert plan_price(pm, snap, "MBR-DK", night, 2) == 89900  # 999.00 -8% = 919.08, -20 = 899.08 -> 899.00


def test_the_summary_says_where_a_minimum_stay_closes_nights():
    def meituan_without_min_los(name):
        caps = registry_capabilities(name)
        if name == "meituan":
            return dataclasses.replace(caps, restrictions=frozenset({"stop_sell", "cta", "ctd"}))
        # the other channels hold everything here, so the summary speaks of meituan alone
        return dataclasses.replace(caps, restrictions=frozenset({"min_los", "max_los", "cta", "ctd", "stop_sell"}))

    result = check_texts({NAME: shipped_text()}, meituan_without_min_los)
    (path, pm), = result.properties.items()
    line = summary(path, pm, meituan_without_min_los)
    assert "meituan has no minimum stay: nights with min_los are closed (stop-sell) there" in line
    assert "meituan cannot hold max_los: it is not sent" in line
    # switched off in the file: a choice, not a limit, so nothing to say
    text = edit(shipped_text(), "      offset: 1 ", "      offset: 1\n    restrictions:\n      min_los: false\n"
                "      max_los: false\n     ")
    result = check_texts({NAME: text}, meituan_without_min_los)
    assert result.ok, [str(p) for p in result.problems]
    (path, pm), = result.properties.items()
    assert summary(path, pm, meituan_without_min_los).endswith("(booking, ctrip, fliggy, meituan)")


def test_an_impossible_unquoted_date_is_a_problem_at_its_place_and_a_good_one_is_a_date():
    """`from: 2026-02-30` made ruamel raise a bare ValueError out of the loader (no file, no line,
    and a reload that fell over); it is now read as text and checked by the schema."""
    bad = shipped_text() + "\ncommission:\n  booking:\n    - {from: 2026-02-30, percent: 15}\n"
    line = line_of(bad, "from: 2026-02-30")
    (p,) = problems_of(bad)
    assert p.startswith(f"{NAME}:{line}:") and "'from'" in p and "date" in p, p
    good = bad.replace("2026-02-30", "2026-02-28")
    result = check_texts({NAME: good}, None)
    assert result.ok, [str(x) for x in result.problems]
    (pm,) = result.properties.values()
    import datetime

    (rate,) = pm.file.commission["booking"]
    assert rate.from_ == datetime.date(2026, 2, 28)
