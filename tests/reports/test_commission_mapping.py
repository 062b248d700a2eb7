"""Commission and exchange rates in the mapping (issue 14): read, and bad values refused with file:line:col."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from channelmgr.mapping.loader import check_texts
from channelmgr.reports.figures import Money

ROOT = Path(__file__).resolve().parents[2]
NAME = "mappings/sha-bund.yaml"
EXTRA = """
commission:
  booking:
    - {from: 2026-01-01, percent: 15}
    - {from: 2026-07-01, percent: 17.5}
  agency:
    - {from: 2026-01-01, percent: 10}
exchange_rates:
  EUR: 7.8123
"""


def shipped() -> str:
    return (ROOT / "mappings" / "sha-bund.yaml").read_text(encoding="utf-8")


def problems(extra: str) -> list[str]:
    return [str(p) for p in check_texts({NAME: shipped() + extra}).problems]


def test_commission_and_rates_are_read():
    result = check_texts({NAME: shipped() + EXTRA})
    assert result.ok, [str(p) for p in result.problems]
    money = Money.from_mapping(next(iter(result.properties.values())))
    assert money.commission["booking"] == [(date(2026, 1, 1), 1500), (date(2026, 7, 1), 1750)]
    assert money.commission["agency"] == [(date(2026, 1, 1), 1000)]
    assert money.rates == {"EUR": Decimal("7.8123")}


def test_bad_values_say_where():
    lines = len(shipped().splitlines())
    bad = problems("\ncommission:\n  booking:\n    - {from: 2026-01-01, percent: 120}\n")
    assert len(bad) == 1 and bad[0].startswith(f"{NAME}:{lines + 4}:") and "0 to 100" in bad[0]
    bad = problems("\ncommission:\n  ctrip:\n    - {from: 2026-01-01, percent: 12.345}\n")
    assert len(bad) == 1 and bad[0].startswith(f"{NAME}:{lines + 4}:") and "two decimals" in bad[0]
    bad = problems("\ncommission:\n  ctrip:\n    - {from: \"2026-02-30\", percent: 12}\n")
    assert len(bad) == 1 and bad[0].startswith(f"{NAME}:{lines + 4}:")
    bad = problems("\nexchange_rates:\n  EUR: 0\n")
    assert len(bad) == 1 and bad[0].startswith(f"{NAME}:{lines + 2}:") and "more than 0" in bad[0]
    bad = problems("\nexchange_rates:\n  XYZ: 1.2\n")
    assert len(bad) == 1 and "XYZ" in bad[0]
