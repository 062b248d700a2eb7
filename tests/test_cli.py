"""The command line as an operator uses it: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, **(env or {}))
    e.pop("CHANNELMGR_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "channelmgr", *args], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=120)




def test_ari_set_then_show_json_round_trips_and_is_journaled(workdir):
    assert run("db", "upgrade", cwd=workdir).returncode == 0
    r = run("ari", "set", "--property", "SHA-BUND", "--room-type", "DK", "--rate-plan", "BAR-DK",
            "--from", "2027-02-28", "--to", "2027-03-01", "--rooms", "9", "--price", "1288.00",
            "--min-los", "2", "--no-cta", "--ctd", "--stop-sell", "--reason", "spring fair", cwd=workdir)
    assert r.returncode == 0, r.stderr
    r = run("ari", "show", "--property", "SHA-BUND", "--from", "2027-02-28", "--to", "2027-03-01", "--json",
            cwd=workdir)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) == {"rooms", "rates"}
    dk = [x for x in data["rooms"] if x["room_type"] == "DK"]
    assert dk == [{"room_type": "DK", "date": d, "physical": 9, "out_of_order": 0, "sold": 0, "held": 0, "free": 9}
                  for d in ("2027-02-28", "2027-03-01")]
    bar = [x for x in data["rates"] if x["rate_plan"] == "BAR-DK"]
    assert bar == [{"rate_plan": "BAR-DK", "date": d, "occupancy": 2, "price_minor": 128800, "currency": "CNY",
                    "min_los": 2, "max_los": None, "cta": False, "ctd": True, "stop_sell": True, "derived": False}
                   for d in ("2027-02-28", "2027-03-01")]
    j = run("journal", "--property", "SHA-BUND", "--limit", "6", "--json", cwd=workdir)
    rows = json.loads(j.stdout)
    assert {r["reason"] for r in rows} == {"spring fair"}
    assert {r["entity"] for r in rows} == {"inventory", "rate", "restriction"}
    text = run("journal", "--limit", "3", cwd=workdir).stdout
    assert "spring fair" in text and "cli:" in text


@pytest.mark.parametrize("content, where, words", [
    ("database:\n  url: sqlite:///x.db\n http:\n  port: 1\n", ":3:2:", "indentation"),
    ("database:\n  ulr: sqlite:///x.db\n", ":2:3:", "did you mean 'url'"),
    ("http:\n  port: eighty\n", ":2:9:", "whole number"),
    ("sync:\n  nightly_full_sync_at: '25:99'\n", ":2:25:", "03:30"),
])
def test_a_bad_config_gives_file_line_col_and_status_1(workdir, content, where, words):
    (workdir / "config.yaml").write_text(content, encoding="utf-8")
    r = run("db", "upgrade", cwd=workdir)
    assert r.returncode == 1
    assert f"config.yaml{where}" in r.stderr, r.stderr
    assert words in r.stderr
    assert "Traceback" not in r.stderr


def test_a_broken_mapping_is_reported_and_the_last_good_catalog_stays(workdir):
    assert run("ari", "show", "--property", "SHA-BUND", "--from", "2027-01-01", "--to", "2027-01-01",
               cwd=workdir).returncode == 0
    f = workdir / "mappings" / "sha-bund.yaml"
    f.write_text(f.read_text(encoding="utf-8").replace("physical_rooms: 30", "physical_rooms: thirty"),
                 encoding="utf-8")
    r = run("ari", "show", "--property", "SHA-BUND", "--from", "2027-01-01", "--to", "2027-01-01", "--json",
            cwd=workdir)
    assert r.returncode == 0
    assert "sha-bund.yaml:" in r.stderr and "whole number" in r.stderr
    dk = [x for x in json.loads(r.stdout)["rooms"] if x["room_type"] == "DK"]
    assert dk[0]["physical"] == 30


def test_bad_input_is_a_sentence_not_a_traceback(workdir):
    r = run("ari", "set", "--property", "SHA-BUND", "--room-type", "DK", "--rate-plan", "BAR-DK",
            "--from", "2027-01-01", "--to", "2027-01-01", "--price", "12.345", cwd=workdir)
    assert r.returncode == 1 and "more than 2 decimal places" in r.stderr and "Traceback" not in r.stderr
    r = run("ari", "set", "--property", "NOPE", "--room-type", "DK", "--from", "2027-01-01", "--to", "2027-01-01",
            "--rooms", "1", cwd=workdir)
    assert r.returncode == 1 and "no property 'NOPE'" in r.stderr
    r = run("ari", "show", "--property", "SHA-BUND", "--from", "2027-13-01", "--to", "2027-01-01", cwd=workdir)
    assert r.returncode == 2 and "not a date" in r.stderr


def test_every_command_explains_itself(workdir):
    for args in (["--help"], ["db", "upgrade", "--help"], ["ari", "set", "--help"], ["ari", "show", "--help"],
                 ["journal", "--help"]):
        r = run(*args, cwd=workdir)
        assert r.returncode == 0 and len(r.stdout) > 200, args
    assert "closed to arrival" in run("ari", "set", "--help", cwd=workdir).stdout
