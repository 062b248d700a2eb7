"""Issue 13 (the idle daemon at 10,000 properties): what a loaded mapping set keeps is compact,
and a reload parses only the files whose text changed. The contracts stay: a broken edit is
refused with file:line:col (also when the other file of a clash was not parsed again), the
last good version stays in force."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from channelmgr.mapping import load_mappings
from channelmgr.mapping.loader import _check_chunk
from channelmgr.mapping.model import Interner, Texts
from channelmgr.mapping.schema import PriceRule
from tests.mapping.conftest import col_of, edit, line_of, shipped_text
from tests.mapping.test_reload import reloader, rt, save  # noqa: F401 (rt: the fixture)


def other_hotel(text: str) -> str:
    """The shipped hotel as a second property, with its own code and OTA hotel ids."""
    text = edit(text, "code: SHA-BUND", "code: SHA-TWO")
    for old, new in (('hotel_id: "2846731"', 'hotel_id: "2846799"'), ('hotel_id: "436512"', 'hotel_id: "436599"'),
                     ('hotel_id: "sha-bund-001"', 'hotel_id: "sha-two-001"'), ('hotel_id: "158937"', 'hotel_id: "158999"')):
        text = edit(text, old, new)
    return text


def test_equal_parts_of_files_are_one_object_and_texts_are_kept_whole(mappings_dir: Path):
    (mappings_dir / "two.yaml").write_text(other_hotel(shipped_text()), encoding="utf-8")
    ms = load_mappings(mappings_dir)
    assert ms.files["two.yaml"] == (mappings_dir / "two.yaml").read_text(encoding="utf-8")
    assert dict(ms.files) == {p.name: p.read_text(encoding="utf-8") for p in mappings_dir.iterdir()}
    # what a worker process sends back for a chunk of files (a start with many files)
    (_, a, _, _), (_, b, _, _) = _check_chunk([(str(p), p.read_text(encoding="utf-8"))
                                               for p in sorted(mappings_dir.iterdir())])
    assert a.file.room_types is b.file.room_types  # the same room types: one tuple of models
    assert a.file.channels["booking"].price is b.file.channels["booking"].price
    assert a.file.channels["booking"] is not b.file.channels["booking"]  # other hotel ids
    assert a.file.channels["booking"].hotel_id == "2846731" and b.file.channels["booking"].hotel_id == "2846799"
    assert a == ms.get("SHA-BUND") and b == ms.get("SHA-TWO")


def test_many_files_are_checked_in_worker_processes_with_the_same_result(tmp_path: Path, monkeypatch):
    import channelmgr.mapping.loader as loader

    (tmp_path / "sha-bund.yaml").write_text(shipped_text(), encoding="utf-8")
    (tmp_path / "two.yaml").write_text(other_hotel(shipped_text()), encoding="utf-8")
    (tmp_path / "broken.yaml").write_text(edit(other_hotel(shipped_text()), "code: SHA-TWO", "code: SHA-3")
                                          .replace("physical_rooms: 60", "physical_rooms: many", 1), encoding="utf-8")
    here = loader.check_paths(tmp_path)
    monkeypatch.setattr(loader, "POOL_MIN_FILES", 2)
    monkeypatch.setattr(loader, "POOL_CHUNK", 2)
    pooled = loader.check_paths(tmp_path)
    assert pooled.problems == here.problems
    assert any("physical_rooms" in p.message and p.line == 20 for p in pooled.problems)  # at its line:col
    assert pooled.properties == here.properties


def test_parts_written_differently_are_not_shared():
    intern = Interner()
    a = intern(PriceRule(amount=Decimal("12.50")))
    b = intern(PriceRule(amount=Decimal("12.5")))
    c = intern(PriceRule(amount=Decimal("12.50")))
    assert a is c and a is not b and str(b.amount) == "12.5"
    assert intern(PriceRule()) is not intern(PriceRule(markup_percent=Decimal(0)))  # given vs default
    assert Texts({"x.yaml": "é: 1\n"})["x.yaml"] == "é: 1\n"
    many = {f"{i}.yaml": f"code: H{i}\n" * (i + 1) for i in range(5)} | {"empty.yaml": ""}
    assert dict(Texts(many)) == many  # each compressed against the first


def test_models_that_stay_apart_share_their_set_of_given_fields_and_a_copy_does_not_touch_it(mappings_dir: Path):
    (mappings_dir / "two.yaml").write_text(other_hotel(shipped_text()), encoding="utf-8")
    (_, a, _, _), (_, b, _, _) = _check_chunk([(str(p), p.read_text(encoding="utf-8"))
                                               for p in sorted(mappings_dir.iterdir())])
    ba, bb = a.file.channels["booking"], b.file.channels["booking"]
    assert ba is not bb  # other hotel ids: two models ...
    assert ba.model_fields_set is bb.model_fields_set  # ... one set of the fields each file gave
    assert "hotel_id" in ba.model_fields_set
    given = set(ba.model_fields_set)
    moved = ba.model_copy(update={"hotel_id": "1"})
    assert moved.hotel_id == "1" and ba.hotel_id == "2846731"
    assert ba.model_fields_set == given == bb.model_fields_set  # the copy has its own set
    # a set the interner shares is never one a model validated afterwards is given
    shared = Interner()(PriceRule(amount=Decimal("1"))).model_fields_set
    assert PriceRule(amount=Decimal("1")).model_fields_set is not shared


async def test_a_reload_parses_only_the_edited_file(rt, mappings_dir: Path):
    save(mappings_dir / "two.yaml", other_hotel(shipped_text()))
    r = reloader(rt)
    assert (await r.reload("add")).changed
    before = rt.mappings
    save(mappings_dir / "two.yaml", edit(other_hotel(shipped_text()), "      - percent: -15", "      - percent: -20"))
    result = await r.reload("edit")
    assert result.changed
    assert rt.mappings.get("SHA-BUND") is before.get("SHA-BUND")  # not parsed again
    assert rt.mappings.get("SHA-TWO") is not before.get("SHA-TWO")
    assert rt.mappings.get("SHA-TWO").rate_plans["EB-DK"].steps[0].percent == -20


async def test_a_clash_with_a_file_not_parsed_again_is_refused_at_its_line_and_column(rt, mappings_dir: Path):
    zed = other_hotel(shipped_text())
    save(mappings_dir / "zed.yaml", zed)
    r = reloader(rt)
    assert (await r.reload("add")).changed
    in_force = rt.mappings.fingerprint
    # the first file (by name) now takes zed's Booking.com hotel id: zed.yaml, unchanged, is where it clashes
    save(mappings_dir / "sha-bund.yaml", edit(shipped_text(), 'hotel_id: "2846731"', 'hotel_id: "2846799"'))
    result = await r.reload("edit")
    assert not result.ok and rt.mappings.fingerprint == in_force
    (p,) = result.problems
    assert p.file.endswith("zed.yaml") and "2846799" in p.message
    assert (p.line, p.col) == (line_of(zed, 'hotel_id: "2846799"'), col_of(zed, '"2846799"'))


def test_the_fingerprint_of_a_folder_read_a_file_at_a_time_is_the_one_of_its_texts(tmp_path: Path):
    from channelmgr.mapping.loader import fingerprint_paths, read_texts
    from channelmgr.mapping.model import fingerprint

    (tmp_path / "b.yaml").write_text(shipped_text(), encoding="utf-8")
    (tmp_path / "a.yaml").write_bytes(other_hotel(shipped_text()).replace("\n", "\r\n").encode())  # CRLF
    (tmp_path / "notes.txt").write_text("not a mapping file", encoding="utf-8")
    texts, problems = read_texts([tmp_path])
    assert not problems and fingerprint_paths([tmp_path]) == fingerprint(texts)
    assert fingerprint_paths([tmp_path]) == load_mappings(tmp_path).fingerprint
    (tmp_path / "b.yaml").write_text(shipped_text() + "\n", encoding="utf-8")
    assert fingerprint_paths([tmp_path]) == fingerprint(read_texts([tmp_path])[0]) != fingerprint(texts)
    (tmp_path / "c.yaml").write_bytes(b"\xff\xfe not utf-8")
    assert fingerprint_paths([tmp_path]) is None  # read them all to say why
    assert fingerprint_paths([tmp_path / "empty"]) is None
