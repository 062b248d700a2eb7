"""The same demo on PostgreSQL (CHANNELMGR_DATABASE_URL, the documented override, on a
database of its own): log in, four channels in step, a booking within 5 s (issue 11)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.browser.demo import Demo
from tests.browser.test_console import check_booking_within_goal, check_login_and_channels
from tests.conftest import create_pg_database, drop_pg_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("browser")]


def run(coro):
    """A coroutine to its end in a thread of its own (Playwright's sync API holds this one's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    url = run(create_pg_database())
    d = Demo(tmp_path_factory.mktemp("demo-pg"), db_url=url)
    try:
        d.start()
        d.wait_settled()
        yield d
    finally:
        rc = d.stop()
        run(drop_pg_database(url))
    assert rc == 0, d.tail()


def test_on_postgresql_log_in_and_see_four_channels_in_step(demo, context, tmp_path):
    check_login_and_channels(demo, context, tmp_path, "-pg")


def test_on_postgresql_a_booking_is_on_bookings_and_in_the_calendar_within_5_seconds(demo, context, tmp_path):
    check_booking_within_goal(demo, context, tmp_path, "-pg")
