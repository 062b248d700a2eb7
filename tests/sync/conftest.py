"""Fixtures of the end-to-end tests: a running daemon with the four sandboxes."""

from __future__ import annotations

import pytest

from tests.sync.harness import start


@pytest.fixture
async def running(tmp_path, db_url):
    """A daemon on a fresh ledger (SQLite and PostgreSQL), its four sandboxes on loopback."""
    r = await start(tmp_path, db_url)
    yield r
    await r.close()
