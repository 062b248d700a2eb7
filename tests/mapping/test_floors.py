"""Issue 10, money and stays: a price rule that takes a price to zero or under its floor is
refused by `check` (statically) and by the hot reload (against the ledger's prices), the
engine never sends such a price, and a rule that cuts more than half is a warning."""

from __future__ import annotations

from datetime import date, timedelta

from structlog.testing import capture_logs

from channelmgr.mapping.derive import RateNight, Snapshot, all_keys, derive
from channelmgr.mapping.loader import check_texts, registry_capabilities
from tests.mapping.conftest import col_of, edit, line_of, shipped_text
from tests.mapping.test_commands import run, workdir  # noqa: F401  (fixture)
from tests.mapping.test_reload import drain, pending, reloader, rt, save  # noqa: F401  (rt: fixture)

NAME = "mappings/sha-bund.yaml"
CTRIP_CAP = "    availability:\n      cap: 20"
NO_FLOOR = ("  min_price: 100\n", "")  # the shipped file without its property min_price


def with_ctrip_price(text: str, rule: str) -> str:
    return edit(text, CTRIP_CAP, f"    price: {rule}\n{CTRIP_CAP}")


def with_eb_step(text: str, step: str) -> str:
    return edit(text, "      - percent: -15\n", f"      - percent: -15\n      - {step}\n")


def at(text: str, needle: str, value: str) -> str:
    """'file:line:col' of ``value`` on the first line containing ``needle``."""
    line = line_of(text, needle)
    return f"{NAME}:{line}:{text.splitlines()[line - 1].index(value) + 1}"


def check(text: str):
    return check_texts({NAME: text})


# ---- static: `check`, no ledger ----------------------------------------------------


def test_the_shipped_file_has_a_floor_and_passes_without_warnings():
    r = check(shipped_text())
    assert r.ok and r.warnings == [], [str(p) for p in r.problems + r.warnings]
    pm = next(iter(r.properties.values()))
    assert str(pm.file.property.min_price) == "100"


def test_a_negative_channel_amount_is_refused_at_the_rule():
    text = with_ctrip_price(shipped_text(), "{amount: -700}")
    r = check(text)
    msgs = [str(p) for p in r.problems]
    assert len(msgs) == 1, msgs
    assert msgs[0].startswith(at(text, "amount: -700", "-700") + ": the ctrip price rule ('amount: -700') takes ")
    assert "to -600.00 CNY, zero or below" in msgs[0] and "min_price" in msgs[0]


def test_a_derived_step_amount_is_refused_at_the_step():
    text = with_eb_step(shipped_text(), "amount: -900")
    msgs = [str(p) for p in check(text).problems]
    assert len(msgs) == 1, msgs
    assert msgs[0].startswith(at(text, "amount: -900", "-900") + ": rate plan 'EB-DK': the step 'amount: -900'")
    assert "zero or below" in msgs[0]


def test_an_amount_that_stays_above_zero_from_the_floor_is_not_refused():
    # 100.00 (the hotel's floor) - 15% = 85.00 - 60 = 25.00: above zero, but more than half off
    text = with_eb_step(shipped_text(), "amount: -60")
    r = check(text)
    assert r.ok, [str(p) for p in r.problems]
    assert [str(w) for w in r.warnings] == [
        f"{at(text, 'amount: -60', '-60')}: warning: rate plan 'EB-DK': the step 'amount: -60' cuts BAR-DK's "
        "lowest price 100.00 CNY by more than half, to 25.00 CNY; is that meant?"]


def test_a_percent_chain_under_one_percent_is_refused_without_a_floor():
    text = edit(shipped_text(), *NO_FLOOR)
    text = edit(text, "      - percent: -15\n", "      - percent: -90\n      - percent: -95\n")
    msgs = [str(p) for p in check(text).problems]
    assert len(msgs) == 1, msgs
    assert msgs[0].startswith(at(text, "percent: -95", "-95") + ": rate plan 'EB-DK': with the step 'percent: -95'")
    assert "leave 0.5% of BAR-DK's price, under the floor of 1%" in msgs[0]


def test_a_markup_that_leaves_less_than_one_percent_is_refused_without_a_floor():
    text = with_ctrip_price(edit(shipped_text(), *NO_FLOOR), "{markup_percent: -99.5}")
    msgs = [str(p) for p in check(text).problems]
    assert len(msgs) == 1 and msgs[0].startswith(at(text, "markup_percent: -99.5", "-99.5") + ": a markup of -99.5%")


def test_a_cut_of_more_than_half_is_a_warning_not_a_refusal():
    text = edit(shipped_text(), "      - percent: -15\n", "      - percent: -60\n")
    r = check(text)
    assert r.ok and len(r.warnings) == 1, [str(p) for p in r.problems + r.warnings]
    assert str(r.warnings[0]).startswith(at(text, "percent: -60", "-60") + ": warning: rate plan 'EB-DK'")
    assert "more than half" in str(r.warnings[0])
    text = with_ctrip_price(shipped_text(), "{markup_percent: -55}")
    r = check(text)
    assert r.ok and [str(w).split(": warning: ")[0] for w in r.warnings] == [at(text, "markup_percent: -55", "-55")]


def test_without_a_floor_a_fixed_amount_is_a_warning_that_check_cannot_tell():
    text = with_ctrip_price(edit(shipped_text(), *NO_FLOOR), "{amount: -700}")
    r = check(text)
    assert r.ok, [str(p) for p in r.problems]
    (w,) = r.warnings
    assert str(w).startswith(at(text, "amount: -700", "-700") + ": warning: the ctrip price rule takes a fixed "
                                                                 "700.00 CNY off")
    assert "set property.min_price" in str(w)


def test_min_price_is_money_and_more_than_zero():
    assert [str(p) for p in check(edit(shipped_text(), "min_price: 100", "min_price: 100.005")).problems] == [
        f"{NAME}:{line_of(shipped_text(), 'min_price: 100')}:14: 'min_price' 100.005 has more decimals than CNY "
        "has (2); prices in CNY are counted in 2 decimals"]
    msgs = [str(p) for p in check(edit(shipped_text(), "min_price: 100", "min_price: 0")).problems]
    assert len(msgs) == 1 and "'min_price' is the lowest price ever sold, more than 0" in msgs[0]


def test_check_on_the_command_line_refuses_and_warns(workdir):  # noqa: F811
    f = workdir / "mappings" / "sha-bund.yaml"
    f.write_text(with_ctrip_price(shipped_text(), "{amount: -700}"), encoding="utf-8")
    r = run("mappings", "check", cwd=workdir)
    assert r.returncode == 1 and r.stdout == ""
    assert "mappings/sha-bund.yaml:" in r.stderr and "the ctrip price rule ('amount: -700')" in r.stderr
    assert "1 problem in 1 file" in r.stderr
    text = edit(shipped_text(), "      - percent: -15\n", "      - percent: -60\n")
    f.write_text(text, encoding="utf-8")
    r = run("mappings", "check", cwd=workdir)
    assert r.returncode == 0 and ": ok: SHA-BUND" in r.stdout
    assert r.stderr.startswith(f"mappings/sha-bund.yaml:{line_of(text, 'percent: -60')}:")
    assert ": warning: rate plan 'EB-DK'" in r.stderr and "more than half" in r.stderr


# ---- the engine: never a price under the floor ------------------------------------


def _pm(text: str):
    r = check(text)
    assert r.ok, [str(p) for p in r.problems]
    return next(iter(r.properties.values()))


def test_derive_holds_back_a_price_under_the_floor_and_keeps_rooms_and_restrictions():
    # LS-SK may never go under 650.00; BAR-SK at 698.00 -10% = 628.00 would
    text = edit(shipped_text(), "    min_los: 3\n", "    min_los: 3\n    min_price: 650\n")
    pm = _pm(text)
    night = date(2027, 3, 1)
    snap = Snapshot("SHA-BUND", {("SK", night): 7},
                    {("BAR-SK", night): RateNight(prices={2: 69800}, currency="CNY", stop_sell=False)})
    caps = registry_capabilities("ctrip")
    cells = {c.rate_plan: c for c in derive(pm, "ctrip", snap, all_keys(pm, "ctrip", [night]), today=night,
                                            supported=caps.restrictions, inventory_level=caps.inventory_level)}
    assert cells["BAR-SK"].prices == ((2, 69800),) and cells["BAR-SK"].price_refused is None
    ls = cells["LS-SK"]
    assert ls.prices == () and ls.currency is None
    assert ls.price_refused and "under its floor of 650.00 CNY" in ls.price_refused
    assert ls.min_los == 3 and ls.stop_sell is False  # restrictions still go
    assert any(n.startswith("price held back: ") for n in ls.notes)
    # the fliggy cell of a rate-level channel still carries rooms to sell: closing never waits on a price
    fl = {c.rate_plan: c for c in derive(pm, "fliggy", snap, all_keys(pm, "fliggy", [night]), today=night,
                                         supported=frozenset({"stop_sell"}), inventory_level="rate")}
    assert fl["BAR-SK"].rooms_to_sell == 7


def test_derive_never_sends_a_price_of_zero_or_below():
    # no floor written, and the rule passed `check` with a warning: the ledger decides
    text = with_ctrip_price(edit(shipped_text(), *NO_FLOOR), "{amount: -700}")
    pm = _pm(text)
    night = date(2027, 3, 1)
    snap = Snapshot("SHA-BUND", {("SK", night): 7},
                    {("BAR-SK", night): RateNight(prices={2: 69800}, currency="CNY")})
    caps = registry_capabilities("ctrip")
    cells = derive(pm, "ctrip", snap, [("rate", "SK", "BAR-SK", night)], today=night,
                   supported=caps.restrictions, inventory_level=caps.inventory_level)
    assert [c.prices for c in cells] == [()]
    assert "zero or below" in cells[0].price_refused
    # what the push worker batches: an item with no price at all (never 1 fen)
    from channelmgr.sync.batching import batches, to_items

    items = to_items([(c, {1}) for c in cells], caps)
    sent = [it.update for batch in batches(items, caps) for it in batch]
    assert sent and all(u.prices == () for u in sent)


# ---- against the ledger: hot reload and diff ---------------------------------------


def _problems_point_at(result, text: str, needle: str, value: str) -> None:
    assert result.problems, result
    assert all(str(p).startswith(f"{p.file}:") for p in result.problems)
    p = result.problems[0]
    assert (p.line, p.col) == (line_of(text, needle), text.splitlines()[line_of(text, needle) - 1].index(value) + 1)


async def test_hot_reload_refuses_a_rule_under_the_floor_and_the_last_good_stays(rt, ledger, mappings_dir):  # noqa: F811
    good = rt.mappings
    text = with_ctrip_price(shipped_text(), "{amount: -700}")
    save(mappings_dir / "sha-bund.yaml", text)
    with capture_logs() as logs:
        result = await reloader(rt).reload("file change")
    assert not result.ok and not result.changed and rt.mappings is good
    _problems_point_at(result, text, "amount: -700", "-700")
    assert any("mapping refused" in e["event"] and "amount: -700" in e.get("problem", "") for e in logs)
    assert await pending(ledger) == set()


async def test_hot_reload_refuses_what_only_the_ledgers_prices_show(rt, ledger, mappings_dir):  # noqa: F811
    # first the file without a floor goes into force (no price changes)
    base = edit(shipped_text(), *NO_FLOOR)
    save(mappings_dir / "sha-bund.yaml", base)
    first = await reloader(rt).reload("SIGHUP")
    assert first.ok and first.changed, first
    await drain(ledger.db)
    good = rt.mappings
    # ctrip: 698.00 - 700 = -2.00 on every night of BAR-SK: check can only warn, the ledger refuses
    text = with_ctrip_price(base, "{amount: -700}")
    assert check(text).ok
    save(mappings_dir / "sha-bund.yaml", text)
    result = await reloader(rt).reload("file change")
    assert not result.ok and rt.mappings is good
    _problems_point_at(result, text, "amount: -700", "-700")
    msg = result.problems[0].message
    assert "takes BAR-SK's 698.00 CNY on 2027-03-01 to -2.00 CNY, zero or below" in msg
    assert "never sent" in msg
    # a derived step: BAR-DK 999.00 -15% -900 goes below zero
    text = with_eb_step(base, "amount: -900")
    save(mappings_dir / "sha-bund.yaml", text)
    result = await reloader(rt).reload("file change")
    assert not result.ok and rt.mappings is good
    _problems_point_at(result, text, "amount: -900", "-900")
    # a plan's own floor: LS-SK >= 650.00, BAR-SK 698.00 -10% = 628.00
    text = edit(base, "    min_los: 3\n", "    min_los: 3\n    min_price: 650\n")
    save(mappings_dir / "sha-bund.yaml", text)
    result = await reloader(rt).reload("file change")
    assert not result.ok and rt.mappings is good
    (p,) = result.problems
    assert (p.line, p.col) == (line_of(text, "      - percent: -10"), col_of(text, "-10"))
    assert "under its floor of 650.00 CNY (rate plan LS-SK's min_price)" in p.message
    assert await pending(ledger) == set()
    # a floor the prices stay above is fine
    save(mappings_dir / "sha-bund.yaml", edit(base, "    min_los: 3\n", "    min_los: 3\n    min_price: 600\n"))
    assert (await reloader(rt).reload("file change")).ok


async def test_diff_says_the_daemon_would_refuse(workdir):  # noqa: F811
    # the ledger: prices for BAR-SK, and the shipped file (without a floor) in force
    base = edit(shipped_text(), *NO_FLOOR)
    (workdir / "mappings" / "sha-bund.yaml").write_text(base, encoding="utf-8")
    today = _today()
    r = run("ari", "set", "--property", "SHA-BUND", "--room-type", "SK", "--rate-plan", "BAR-SK",
            "--from", today.isoformat(), "--to", (today + timedelta(days=4)).isoformat(), "--price", "698.00",
            cwd=workdir)
    assert r.returncode == 0, r.stderr
    (workdir / "edits").mkdir()
    text = with_ctrip_price(base, "{amount: -700}")
    (workdir / "edits" / "sha-bund.yaml").write_text(text, encoding="utf-8")
    r = run("mappings", "diff", "edits/sha-bund.yaml", "--days", "5", cwd=workdir)
    assert r.returncode == 1, (r.stdout, r.stderr)
    line = line_of(text, "amount: -700")
    assert f"edits/sha-bund.yaml:{line}:" in r.stderr and "zero or below" in r.stderr
    assert "the daemon would refuse this edit" in r.stderr
    # a cut of more than half is a warning in diff too
    text = edit(base, "      - percent: -15\n", "      - percent: -60\n")
    (workdir / "edits" / "sha-bund.yaml").write_text(text, encoding="utf-8")
    r = run("mappings", "diff", "edits/sha-bund.yaml", "--days", "5", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert f"edits/sha-bund.yaml:{line_of(text, 'percent: -60')}:" in r.stderr and ": warning: " in r.stderr


def _today() -> date:
    from datetime import datetime, timezone

    from channelmgr.dates import business_date

    return business_date(datetime.now(timezone.utc), "Asia/Shanghai")

