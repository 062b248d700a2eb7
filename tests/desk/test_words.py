"""The desk's pure parts: requests sorted into kinds, phone numbers that cannot be one, the mapping's
overbooking policy checked with file:line:col (issue 12)."""

from __future__ import annotations

import time

import pytest

from channelmgr.desk.classify import classify
from channelmgr.desk.contacts import normalise_email, normalise_phone, phone_problem


@pytest.mark.parametrize("text,kinds", [
    ("无烟房，高楼层", ["non_smoking", "high_floor"]),
    ("Non-smoking room, high floor please", ["non_smoking", "high_floor"]),
    ("需要无障碍客房；加床", ["accessible", "extra_bed"]),
    ("Wheelchair accessible room", ["accessible"]),
    ("需要婴儿床", ["cot"]),
    ("a cot for our baby", ["cot"]),
    ("cottage view", ["other"]),
    ("素食，对花生过敏", ["dietary"]),
    ("vegetarian breakfast, nut allergy", ["dietary"]),
    ("晚到，约23:30入住", ["late_arrival"]),
    ("Late arrival around 23:00", ["late_arrival"]),
    ("纪念日，如有可能请升级", ["other"]),
    (None, []),
    ("", []),
])
def test_requests_are_sorted_into_kinds_keeping_the_words(text, kinds):
    got = classify(text)
    assert [k for k, _ in got] == kinds
    for _, words in got:
        assert words and words in (text or "")[:2000] or "，" in words or "," in words


def test_a_piece_without_a_kind_stays_with_the_request_before_it():
    assert classify("晚到，约23:30入住") == [("late_arrival", "晚到，约23:30入住")]


def test_classifying_is_bounded_on_hostile_text():
    t0 = time.perf_counter()
    got = classify("无烟，" * 200_000 + "a" * 1_000_000)
    assert time.perf_counter() - t0 < 1.0 and len(got) <= 20


@pytest.mark.parametrize("phone,ok", [
    ("+86 138 1234 5678", True), ("13812345678", True), ("021-6444 1234", True), ("+86 21 6321 0000", True),
    ("12812345678", False), ("+86 1381234", False), ("1381234567890", False), ("12345", False),
    ("+1 415 555 2671", True), ("+1 015 555 2671", False), ("+852 9123 4567", True), ("+852 912 3456", False),
    ("+44 20 7946 0958", True), ("138-1234-567x", False),
])
def test_phone_numbers_that_cannot_be_one(phone, ok):
    assert (phone_problem(phone) is None) == ok, phone_problem(phone)


def test_contacts_are_normalised_before_their_keyed_digest():
    assert normalise_phone("+86 138-1234-5678") == normalise_phone("13812345678") == "+8613812345678"
    assert normalise_email(" Guest@Example.CN ") == "guest@example.cn"


def test_the_overbooking_policy_in_the_mapping_is_checked_with_positions(tmp_path):
    from channelmgr.mapping.loader import check_paths
    from tests.conftest import ROOT

    text = (ROOT / "mappings" / "sha-bund.yaml").read_text(encoding="utf-8")
    for wrong, words in (("{allowed: -1, upgrade_to: [ES]}", "allowed"), ("{allowed: 0, upgrade_to: [XX]}", "'XX'"),
                         ("{allowed: 0, upgrade_to: [DK]}", "itself")):
        bad = text.replace("overbooking: {allowed: 0, upgrade_to: [ES]}", "overbooking: " + wrong)
        assert bad != text
        (tmp_path / "sha-bund.yaml").write_text(bad, encoding="utf-8")
        problems = [str(p) for p in check_paths([tmp_path / "sha-bund.yaml"]).problems]
        assert len(problems) == 1 and ":31:" in problems[0] and words in problems[0], problems
