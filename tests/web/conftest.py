from __future__ import annotations

import pytest

from tests.sync.harness import start


@pytest.fixture
async def run(tmp_path, db_url):
    """A daemon with the four sandboxes, on SQLite and on PostgreSQL."""
    r = await start(tmp_path, db_url, horizon_days=30)
    yield r
    await r.close()


@pytest.fixture
async def run_sqlite(tmp_path):
    """The same on SQLite only, for what does not depend on the database."""
    r = await start(tmp_path, None, horizon_days=30)
    yield r
    await r.close()
