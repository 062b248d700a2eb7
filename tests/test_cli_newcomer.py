"""The command line as a person new to it meets it (issue 9): real processes, real files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import run

ROOT = Path(__file__).resolve().parents[1]



# ---- 1. --config before or after the command ------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_is_read_before_or_after_the_command(workdir, tmp_path_factory, where):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    cfg = str(workdir / "config.yaml")
    args = ["--config", cfg, "db", "upgrade"] if where == "before" else ["db", "upgrade", "--config", cfg]
    r = run(*args, cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert str(workdir / "var" / "ledger.db") in r.stdout
    assert (workdir / "var" / "ledger.db").exists() and not (elsewhere / "var").exists()
    st = ["--config", cfg, "status", "--json"] if where == "before" else ["status", "--json", "--config", cfg]
    r = run(*st, cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert "channels" in json.loads(r.stdout)


# ---- 2. a database without tables, a missing mappings folder -----------------------------


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["logs"], ["conflicts"]])
def test_reading_a_database_without_tables_says_to_run_db_upgrade(workdir, command):
    (workdir / "var").mkdir()
    sqlite3.connect(workdir / "var" / "ledger.db").execute("create table unrelated (a)").connection.close()
    r = run(*command, cwd=workdir)
    assert r.returncode == 1
    assert "channelmgr db upgrade" in r.stderr, r.stderr
    assert "unexpected error" not in r.stderr and "OperationalError" not in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_run_without_the_mappings_folder_is_one_sentence(workdir):
    (workdir / "mappings" / "sha-bund.yaml").unlink()
    (workdir / "mappings").rmdir()
    r = run("run", cwd=workdir, env={"CHANNELMGR__HTTP__PORT": "0"})
    assert r.returncode == 1
    assert "unexpected error" not in r.stderr and "RuntimeError" not in r.stderr and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(workdir / "mappings") in lines[0] and "does not exist" in lines[0] and "mappings_dir" in lines[0]


def test_run_with_only_broken_mappings_and_none_in_force_is_a_sentence(workdir):
    f = workdir / "mappings" / "sha-bund.yaml"
    f.write_text(f.read_text(encoding="utf-8").replace("physical_rooms: 30", "physical_rooms: thirty"),
                 encoding="utf-8")
    r = run("run", cwd=workdir, env={"CHANNELMGR__HTTP__PORT": "0"})
    assert r.returncode == 1
    assert "unexpected error" not in r.stderr and "Traceback" not in r.stderr
    assert "no valid mappings in" in r.stderr and "mappings check" in r.stderr


# ---- 3. no command, an unknown channel, more rooms than the hotel has ---------------------


def test_no_command_prints_the_help_and_exits_2(workdir):
    r = run(cwd=workdir)
    assert r.returncode == 2
    assert "usage: channelmgr" in r.stderr and "journal" in r.stderr
    for group in ("db", "ari", "mappings", "users"):
        r = run(group, cwd=workdir)
        assert r.returncode == 2 and f"usage: channelmgr {group}" in r.stderr


def test_logs_of_an_unknown_channel_is_an_error_listing_the_known_ones(workdir):
    assert run("db", "upgrade", cwd=workdir).returncode == 0
    r = run("logs", "--channel", "expedia", cwd=workdir)
    assert r.returncode == 2  # a usage error, as argparse's own
    assert "expedia" in r.stderr
    for name in ("booking", "ctrip", "fliggy", "meituan"):
        assert name in r.stderr
    assert run("logs", "--channel", "ctrip", cwd=workdir).returncode == 0


def test_more_rooms_than_physical_warns_with_the_physical_count_and_is_done(workdir):
    r = run("ari", "set", "--property", "SHA-BUND", "--room-type", "DK", "--from", "2027-01-01", "--to",
            "2027-01-01", "--rooms", "99999", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert "warning:" in r.stderr and "99999" in r.stderr and "30 physical rooms" in r.stderr
    show = run("ari", "show", "--property", "SHA-BUND", "--from", "2027-01-01", "--to", "2027-01-01", "--json",
               cwd=workdir)
    dk = [x for x in json.loads(show.stdout)["rooms"] if x["room_type"] == "DK"]
    assert dk[0]["physical"] == 99999
    r = run("ari", "set", "--property", "SHA-BUND", "--room-type", "DK", "--from", "2027-01-02", "--to",
            "2027-01-02", "--rooms", "30", cwd=workdir)
    assert r.returncode == 0 and "warning" not in r.stderr


# ---- 4. derived plans' prices --------------------------------------------------------------


def test_ari_show_gives_derived_plans_their_derived_price(workdir):
    for plan, room, price in (("BAR-DK", "DK", "500.00"), ("BAR-SK", "SK", "800.00")):
        assert run("ari", "set", "--property", "SHA-BUND", "--room-type", room, "--rate-plan", plan, "--from",
                   "2027-03-01", "--to", "2027-03-02", "--price", price, cwd=workdir).returncode == 0
    r = run("ari", "show", "--property", "SHA-BUND", "--from", "2027-03-01", "--to", "2027-03-02", "--json",
            cwd=workdir)
    rates = {(x["rate_plan"], x["date"]): x for x in json.loads(r.stdout)["rates"]}
    # mappings/sha-bund.yaml: EB-DK = BAR-DK -15 % ending .00; LS-SK = BAR-SK -10 % rounded to 1
    assert rates[("EB-DK", "2027-03-01")]["price_minor"] == 42500
    assert rates[("LS-SK", "2027-03-02")]["price_minor"] == 72000
    assert rates[("EB-DK", "2027-03-01")]["derived"] is True and rates[("EB-DK", "2027-03-01")]["currency"] == "CNY"
    assert rates[("BAR-DK", "2027-03-01")]["derived"] is False
    assert rates[("BAR-ST", "2027-03-01")]["price_minor"] is None  # no price set: still none
    text = run("ari", "show", "--property", "SHA-BUND", "--from", "2027-03-01", "--to", "2027-03-01",
               cwd=workdir).stdout
    ls = next(line for line in text.splitlines() if line.strip().startswith("LS-SK"))
    bar = next(line for line in text.splitlines() if line.strip().startswith("BAR-SK"))
    assert "720.00 CNY*" in ls and "*" not in bar
    assert any(line.strip().startswith("* derived") for line in text.splitlines())


# ---- 5. pipes and the journal's order --------------------------------------------------------


def _many_journal_rows(workdir):
    r = run("ari", "set", "--property", "SHA-BUND", "--room-type", "DK", "--rate-plan", "BAR-DK", "--from",
            "2027-01-01", "--to", "2028-02-01", "--rooms", "9", "--price", "500", "--min-los", "2",
            "--reason", "many", cwd=workdir)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("command", [
    ["journal", "--limit", "5000"], ["journal", "--limit", "5000", "--json"],
    ["ari", "show", "--property", "SHA-BUND", "--from", "2027-01-01", "--to", "2028-01-01"],
])
def test_a_reader_that_stops_early_ends_it_quietly(workdir, command):
    _many_journal_rows(workdir)
    e = dict(os.environ)
    e.pop("CHANNELMGR_DATABASE_URL", None)
    p = subprocess.Popen([sys.executable, "-m", "channelmgr", *command], cwd=workdir, env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline()  # like `| head -1`: one line, then the reader is gone
    p.stdout.close()
    err = p.stderr.read().decode()
    rc = p.wait(timeout=120)
    assert err == "", err
    assert rc in (0, 141)


def test_journal_is_newest_first_in_text_and_json_and_limit_takes_the_newest(workdir):
    for i, price in enumerate(("100", "200", "300")):
        assert run("ari", "set", "--property", "SHA-BUND", "--room-type", "DK", "--rate-plan", "BAR-DK",
                   "--from", "2027-05-01", "--to", "2027-05-01", "--price", price, "--reason", f"step {i}",
                   cwd=workdir).returncode == 0
    rows = json.loads(run("journal", "--limit", "2", "--json", cwd=workdir).stdout)
    assert [r["reason"] for r in rows] == ["step 2", "step 1"]
    text = run("journal", "--limit", "2", cwd=workdir).stdout.splitlines()
    assert len(text) == 2
    assert "step 2" in text[0] and "step 1" in text[1]
    assert [f"#{r['id']}" for r in rows] == [line.split()[2] for line in text]


def test_status_where_there_is_no_database_says_so_and_creates_nothing(workdir):
    r = run("status", cwd=workdir)
    assert r.returncode == 1
    assert str(workdir / "var" / "ledger.db") in r.stderr and "channelmgr db upgrade" in r.stderr
    assert not (workdir / "var" / "ledger.db").exists()
