"""`channelmgr mappings check|diff` as revenue staff run them: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from channelmgr.dates import business_date
from tests.mapping.conftest import ROOT, edit, line_of, shipped_text
from tests.mapping.test_check import BROKEN_FOUR_WAYS


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("CHANNELMGR_DATABASE_URL", None)
    env.pop("CHANNELMGR_MAPPINGS_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "channelmgr", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def workdir(tmp_path: Path, mappings_dir: Path) -> Path:
    (tmp_path / "config.yaml").write_text("database:\n  url: sqlite:///var/ledger.db\nmappings_dir: mappings\n",
                                          encoding="utf-8")
    return tmp_path


def test_check_with_no_path_checks_the_configs_folder(workdir):
    r = run("mappings", "check", cwd=workdir)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mappings/sha-bund.yaml: ok: SHA-BUND"), r.stdout
    assert not (workdir / "var").exists()  # check never opens the ledger


def test_check_lists_every_problem_and_exits_1(workdir):
    f = workdir / "mappings" / "sha-bund.yaml"
    text = shipped_text()
    for old, new in BROKEN_FOUR_WAYS:
        text = edit(text, old, new)
    f.write_text(text, encoding="utf-8")
    r = run("mappings", "check", "mappings/sha-bund.yaml", cwd=workdir)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("mappings/sha-bund.yaml:")]
    assert len(errors) == 4, r.stderr
    assert "4 problems in 1 file" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_check_of_several_files_says_which_are_good(workdir):
    other = workdir / "other.yaml"
    other.write_text(edit(edit(edit(edit(edit(shipped_text(), "code: SHA-BUND", "code: SHA-PUDONG"),
                                              'hotel_id: "2846731"', 'hotel_id: "2846799"'),
                                         'hotel_id: "436512"', 'hotel_id: "436599"'),
                                    'hotel_id: "sha-bund-001"', 'hotel_id: "sha-pudong-001"'),
                               'hotel_id: "158937"', 'hotel_id: "158999"'), encoding="utf-8")
    r = run("mappings", "check", "mappings", "other.yaml", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert [line.split(":")[0] for line in r.stdout.splitlines()] == ["mappings/sha-bund.yaml", "other.yaml"]


def _today() -> str:
    return business_date(datetime.now(timezone.utc), "Asia/Shanghai").isoformat()


def test_diff_of_an_edited_copy_shows_its_effect_and_pushes_nothing(workdir):
    today = _today()
    assert run("db", "upgrade", cwd=workdir).returncode == 0
    r = run("ari", "set", "--property", "SHA-BUND", "--room-type", "DK", "--rate-plan", "BAR-DK",
            "--from", today, "--to", today, "--price", "999.00", cwd=workdir)
    assert r.returncode == 0, r.stderr
    journal_before = json.loads(run("journal", "--limit", "500", "--json", cwd=workdir).stdout)
    edited = workdir / "edits" / "sha-bund.yaml"
    edited.parent.mkdir()
    edited.write_text(edit(shipped_text(), "      - percent: -15", "      - percent: -20"), encoding="utf-8")
    r = run("mappings", "diff", "edits/sha-bund.yaml", "--days", "5", cwd=workdir)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "comparing edits/sha-bund.yaml with the version in force" in out
    assert f"booking 284673103 (DK) 11890025 (EB-DK) {today} price(2) 874.00 -> 823.00 CNY" in out
    assert f"ctrip 1098203 (DK) 51005 (EB-DK) {today} price 849.00 -> 799.00 CNY" in out
    assert "booking (hotel 2846731): 1 cell change" in out and "meituan (hotel 158937): no change" in out
    assert "3 cells would change on 3 channels; nothing has been pushed." in out
    j = json.loads(run("mappings", "diff", "edits/sha-bund.yaml", "--days", "5", "--json", cwd=workdir).stdout)
    assert j["cells_changed"] == 3
    (prop,) = j["properties"]
    booking = next(c for c in prop["channels"] if c["channel"] == "booking")
    (change,) = booking["changes"]
    assert change["rate_plan"] == "EB-DK" and change["date"] == today and change["status"] == "changed"
    assert {(f["field"], f["old"], f["new"]) for f in change["fields"]} == {("price(1)", 87400, 82300),
                                                                           ("price(2)", 87400, 82300)}
    # nothing was put in force, queued or written: a second diff says the same, the journal is as it was
    assert run("mappings", "diff", "edits/sha-bund.yaml", "--days", "5", cwd=workdir).stdout == out
    assert json.loads(run("journal", "--limit", "500", "--json", cwd=workdir).stdout) == journal_before


def test_diff_of_a_broken_copy_says_where(workdir):
    edited = workdir / "edits" / "sha-bund.yaml"
    edited.parent.mkdir()
    text = edit(shipped_text(), "physical_rooms: 30", "phisical_rooms: 30")
    edited.write_text(text, encoding="utf-8")
    r = run("mappings", "diff", "edits/sha-bund.yaml", cwd=workdir)
    assert r.returncode == 1
    assert (f"edits/sha-bund.yaml:{line_of(text, 'phisical_rooms')}:5: 'phisical_rooms' is not a key that belongs "
            "here; did you mean 'physical_rooms'?") in r.stderr
    assert "Traceback" not in r.stderr


def test_the_commands_explain_themselves(workdir):
    for args in (["mappings", "--help"], ["mappings", "check", "--help"], ["mappings", "diff", "--help"]):
        r = run(*args, cwd=workdir)
        assert r.returncode == 0 and len(r.stdout) > 200, args
    r = run("mappings", cwd=workdir)  # without its action: the help, as a usage error (like `db`, `ari`)
    assert r.returncode == 2 and "usage: channelmgr mappings" in r.stderr
