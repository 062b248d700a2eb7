"""The mapping watcher's idle cost (issue 13): it stats the folder and reads only what changed."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

from channelmgr.config import Config
from channelmgr.mapping.loader import read_texts
from channelmgr.mapping.reload import MappingReloader
from tests.mapping.conftest import shipped_text


def _reloader(folder: Path) -> MappingReloader:
    rt = SimpleNamespace(config=Config(mappings_dir=str(folder), channels={}), mappings=None, ledger=None)
    return MappingReloader(rt)


def _age(folder: Path, seconds: float = 60) -> None:
    """Files written a while ago (the watcher re-reads files changed in the last two seconds)."""
    past = time.time() - seconds
    for f in folder.iterdir():
        os.utime(f, (past, past))


def test_the_watcher_reads_only_the_edited_file(tmp_path):
    folder = tmp_path / "mappings"
    folder.mkdir()
    text = shipped_text()
    for i in range(40):
        (folder / f"p{i:02d}.yaml").write_text(text.replace("code: SHA-BUND", f"code: P{i:02d}"), encoding="utf-8")
    (folder / ".p00.yaml.swp").write_text("editor junk", encoding="utf-8")
    _age(folder)
    r = _reloader(folder)

    def whole() -> str:  # a scan that reads everything afresh
        fresh = _reloader(folder)
        sig = fresh._scan()
        assert fresh.files_read == len(read_texts([folder])[0])
        return sig

    first = r._scan()
    assert first == whole()
    assert r.files_read == 40
    # nothing changed: nothing is read
    for _ in range(3):
        assert r._scan() == first
    assert r.files_read == 40
    # one edit (same size, so only the times tell): that file alone is read, and seen
    f = folder / "p07.yaml"
    edited = f.read_text(encoding="utf-8").replace("physical_rooms: 30", "physical_rooms: 31", 1)
    assert len(edited) == len(f.read_text(encoding="utf-8"))
    f.write_text(edited, encoding="utf-8")
    os.utime(f, (time.time() - 30, time.time() - 30))
    second = r._scan()
    assert second != first and second == whole()
    assert r.files_read == 41
    assert r._scan() == second and r.files_read == 41
    # a file just written is read again until it is old enough to trust its times
    g = folder / "p08.yaml"
    g.write_text(g.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    third = r._scan()
    assert third == whole() and third != second
    assert r.files_read == 42
    r._scan()
    assert r.files_read == 43  # re-read: written under two seconds ago
    # a file removed and one added are seen without reading the others
    (folder / "p09.yaml").unlink()
    new = folder / "new.yaml"
    new.write_text(text.replace("code: SHA-BUND", "code: NEW"), encoding="utf-8")
    os.utime(new, (time.time() - 30, time.time() - 30))
    before = r.files_read
    fourth = r._scan()
    assert fourth == whole()
    assert r.files_read - before == 2  # the new file, and p08 (still under two seconds old)
