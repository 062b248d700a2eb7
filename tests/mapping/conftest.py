"""Copies of the shipped example, broken or edited on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "mappings" / "sha-bund.yaml"


def shipped_text() -> str:
    return SHIPPED.read_text(encoding="utf-8")


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, f"the shipped example no longer contains {old!r}"
    return text.replace(old, new, 1)


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not found")


def col_of(text: str, needle: str) -> int:
    line = text.splitlines()[line_of(text, needle) - 1]
    return line.index(needle) + 1


@pytest.fixture
def mappings_dir(tmp_path: Path) -> Path:
    d = tmp_path / "mappings"
    d.mkdir()
    (d / "sha-bund.yaml").write_text(shipped_text(), encoding="utf-8")
    return d
